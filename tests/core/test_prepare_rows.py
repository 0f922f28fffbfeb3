"""Row-wise encoders (``Encoder.rowwise_prepare``) are prepared once per frame, not per batch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse.data import _CHUNK, FrameBatches, InputPlan
from transfuse.testing import cpu_device


class Counted(kit.Numeric):
    """test.numeric, declared row-wise, counting the rows it prepares."""

    rowwise_prepare = True
    prepared: list[int] = []

    def prepare(self, values):
        Counted.prepared.append(len(values))
        return super().prepare(values)


@pytest.fixture
def data():
    Counted.prepared.clear()
    df = kit.frame(50, missing=0.3)
    encoder = Counted(kit.NumericOptions(), cpu_device())
    encoder.fit(df[["a", "b"]])
    return df, FrameBatches(df, [InputPlan("ab", ["a", "b"], encoder)], cpu_device(), batch_size=8)


def test_rows_are_prepared_once_for_every_epoch(data):
    _, batches = data
    for epoch in range(3):
        assert len(list(batches.batches(shuffle=True, seed=epoch))) == 7
    assert Counted.prepared == [50]  # one call over the frame, none per batch


def test_sliced_batches_equal_batches_prepared_row_by_row(data):
    df, batches = data
    for batch in batches.batches(shuffle=True, seed=1):
        rows = batch["index"].numpy()
        direct = Counted.prepare(batches.inputs[0].encoder, df[["a", "b"]].iloc[rows])
        assert torch.equal(batch["inputs"]["ab"]["x"], direct["x"])
        present = ~(df[["a", "b"]].iloc[rows].isna().all(axis=1).to_numpy())
        assert np.array_equal(batch["present"]["ab"].numpy(), present)


def test_large_frames_are_prepared_in_chunks(monkeypatch, data):
    import transfuse.data

    df, batches = data
    monkeypatch.setattr(transfuse.data, "_CHUNK", 16)
    batches.prepare_rows()
    assert Counted.prepared == [16, 16, 16, 2] and _CHUNK > 16
    whole = Counted.prepare(batches.inputs[0].encoder, df[["a", "b"]])
    assert torch.equal(batches._rows["ab"]["x"], whole["x"])


class Labels:
    """A task's ``encode``: counts its calls."""

    calls = 0

    def encode(self, labels):
        Labels.calls += 1
        return torch.tensor(labels.to_numpy(dtype="float32"))


def test_labels_are_encoded_once_and_follow_their_rows(data):
    df, batches = data
    batches.task, batches.target = Labels(), "y"
    for epoch in range(2):
        for batch in batches.batches(shuffle=True, seed=epoch):
            expected = df["y"].to_numpy()[batch["index"].numpy()]
            assert np.array_equal(batch["target"].numpy(), expected)
    assert Labels.calls == 1
