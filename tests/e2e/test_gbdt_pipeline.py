"""tabular.gbdt inside a pipeline gets the training labels and validation rows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from transfuse.pipeline import Pipeline


def test_gbdt_input_learns_from_the_labels_in_a_pipeline():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    frame["y"] = ((frame.a + 0.5 * frame.b) > 0).astype(int)
    config = {
        "name": "gbdt",
        "task": {"type": "binary", "target": "y"},
        "inputs": {"table": {"encoder": "tabular.gbdt", "columns": ["a", "b"]}},
        "train": {"epochs": 5, "lr": 3e-3, "progress": False},
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*without labels.*")
        pipeline = Pipeline.from_config(config).fit(frame)
    assert pipeline.metrics["test"]["roc_auc"] > 0.9
