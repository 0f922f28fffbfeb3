"""A pipeline fusing a table column and a video column trains, saves, reloads and predicts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import transfuse
from transfuse.plugins import reset_plugin_manager

pytestmark = pytest.mark.slow


def test_a_table_and_video_pipeline_trains_saves_reloads_and_predicts(
    tmp_path: Path, write_video: Callable[..., Path], square_clip: Callable[..., np.ndarray]
) -> None:
    rng = np.random.default_rng(0)
    moving = np.arange(40) % 2
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=40),
            "interview": [
                str(write_video(tmp_path / f"v{i}.mp4", square_clip(bool(m), rng)))
                for i, m in enumerate(moving)
            ],
            "flag": moving,
        }
    )
    frame.loc[3, "interview"] = None  # a row without a video
    config = {
        "name": "table-and-video",
        "task": {"type": "binary", "target": "flag"},
        "data": {"validation_size": 0.25, "test_size": 0},
        "inputs": {
            "applicant": {"encoder": "tabular.mlp", "columns": ["income"]},
            "interview": {
                "encoder": "video.frames",
                "column": "interview",
                "options": {"image_size": 32, "num_frames": 4, "dim": 16, "dropout": 0.0},
            },
        },
        "fusion": {"method": "fusion.concat", "options": {"dim": 16, "dropout": 0.0}},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "progress": False},
    }
    reset_plugin_manager(None)
    pipeline = transfuse.Pipeline.from_config(config).fit(frame)
    pipeline.save(tmp_path / "run")
    scores = pipeline.predict(frame)
    reloaded = transfuse.load(tmp_path / "run").predict(frame)
    assert len(scores) == 40 and np.isfinite(scores.to_numpy(dtype=float)).all()
    np.testing.assert_allclose(
        reloaded.to_numpy(dtype=float), scores.to_numpy(dtype=float), atol=1e-5
    )
