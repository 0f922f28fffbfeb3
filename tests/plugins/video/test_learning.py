"""Over frozen EfficientNet-Lite0 frame features, a trainable temporal pooling learns to
tell a moving square from a still one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse.testing import cpu_device
from transfuse_video import VideoFramesOptions
from transfuse_video.encoder import VideoFramesEncoder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("pooling", ["transformer", "attention"])
def test_temporal_pooling_tells_a_moving_square_from_a_still_one(
    tmp_path: Path,
    write_video: Callable[..., Path],
    square_clip: Callable[..., np.ndarray],
    pooling: str,
) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 2
    paths = [
        str(write_video(tmp_path / f"clip{i}.mp4", square_clip(bool(y), rng)))
        for i, y in enumerate(labels)
    ]
    torch.manual_seed(0)
    options = VideoFramesOptions(image_size=32, pooling=pooling, dim=32, dropout=0.0)
    encoder = VideoFramesEncoder(options, cpu_device())
    batch = encoder.prepare(pd.Series(paths))
    train, test = slice(0, 36), slice(36, 48)
    y = torch.tensor(labels, dtype=torch.float32)
    head = torch.nn.Linear(encoder.output_dim, 1)
    optimizer = torch.optim.Adam([*encoder.pool.parameters(), *head.parameters()], lr=3e-3)
    encoder.train()
    for _ in range(150):
        logits = head(encoder({k: v[train] for k, v in batch.items()})).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        guess = head(encoder({k: v[test] for k, v in batch.items()})).squeeze(-1) > 0
    assert (guess.float() == y[test]).float().mean() > 0.9
