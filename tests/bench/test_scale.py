"""bench/scale.py's pieces: the chunked row generator and the cheap frozen text encoder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(BENCH))  # scale.py imports its sibling perfkit.py
    try:
        spec = importlib.util.spec_from_file_location("bench_scale", BENCH / "scale.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # the encoder entry's factory names this module
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("bench_scale", None)


def test_rows_are_generated_in_chunks_with_nearly_distinct_notes(scale):
    frame = scale.generate(5000, seed=0, chunk=1200)
    assert len(frame) == 5000 and frame.index.equals(pd.RangeIndex(5000))
    assert list(frame.columns) == [*scale.NUMERIC, "purpose", "note", "bad"]
    assert frame["note"].nunique() > 0.9 * len(frame)
    assert 0.1 < frame["bad"].mean() < 0.9
    assert frame.equals(scale.generate(5000, seed=0, chunk=1200))  # seeded


def test_hashed_text_encoder_is_frozen_and_gives_unit_rows_per_text(scale):
    from transfuse.testing import cpu_device

    encoder = scale.HashedTextEncoder(scale.HashedTextOptions(dim=16, buckets=64), cpu_device())
    values = pd.Series(["paid on time", "late payment", "paid on time"])
    out = encoder(encoder.prepare(values)).detach().numpy()
    assert encoder.frozen and out.shape == (3, 16)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[0], out[2]) and not np.allclose(out[0], out[1])
    assert encoder.lengths(values).tolist() == [12, 12, 12]
