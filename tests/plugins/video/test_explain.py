"""Explaining a video frame by frame."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from transfuse.testing import check_explanation, cpu_device
from transfuse_video import VideoFramesOptions
from transfuse_video.encoder import VideoFramesEncoder


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_frames_are_parts_and_obey_the_contract(
    video_files: list, small: dict[str, Any], pooling: str
) -> None:
    encoder = VideoFramesEncoder(VideoFramesOptions(**small, pooling=pooling), cpu_device())
    values = pd.Series([str(video_files[0]), None, str(video_files[1])])
    encoder.fit(values)
    parts = check_explanation(encoder, values)
    assert parts.labels[1] == []
    assert parts.labels[0] == [f"frame {k + 1}" for k in range(small["num_frames"])]
