"""Explaining an audio clip by time segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfuse.testing import check_explanation
from transfuse_audio.explain import SEGMENTS


@pytest.fixture
def entry(transfuse_manager, audio_plugin):
    return transfuse_manager.get("encoder", "audio.mel-cnn")


def test_time_segments_are_parts_and_obey_the_contract(entry, write_audio, tone, small) -> None:
    rate = 8000
    clips = pd.Series(
        [write_audio("a.wav", tone(300, 0.6, rate), rate), None,
         write_audio("b.wav", tone(900, 0.6, rate), rate)]
    )  # fmt: skip
    encoder = entry.load()(entry.validate_options(small), _cpu())
    encoder.fit(clips)
    parts = check_explanation(encoder, clips)
    assert parts.labels[1] == []
    assert len(parts.labels[0]) == SEGMENTS
    assert parts.labels[0][0].startswith("0.00-") and parts.labels[0][-1].endswith(" s")
    assert np.abs(parts.scores[0]).sum() > 0


def _cpu():
    from transfuse.testing import cpu_device

    return cpu_device()
