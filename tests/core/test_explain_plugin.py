"""A third-party encoder written from docs/plugins.md alone, in its own package, is
explained without any change to the core."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import transfuse
from transfuse.explain import explain_rows
from transfuse.reasons import code_table
from transfuse.testing import check_explanation

PLUGIN = """
import numpy as np
import torch
from transfuse import Encoder, EncoderEntry, Options, hookimpl
from transfuse.bases import Parts


class MeanOptions(Options):
    dim: int = 4


@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="tabular.mean", modality="tabular", options=MeanOptions,
                         factory="transfuse_mean:MeanEncoder",
                         description="Mean of numeric columns, projected.")]


class MeanEncoder(Encoder):
    handles_missing = True

    def __init__(self, options, device):
        super().__init__(options, device)
        self.output_dim = options.dim
        self.proj = torch.nn.Linear(1, options.dim)

    def prepare(self, values):
        frame = values.to_frame() if values.ndim == 1 else values
        mean = frame.astype("float32").mean(axis=1).fillna(0.0)
        return {"x": torch.tensor(mean.to_numpy()).unsqueeze(1)}

    def forward(self, batch):
        return self.proj(batch["x"])

    def fit(self, values):
        self.columns = [str(c) for c in (values.to_frame() if values.ndim == 1 else values)]

    def fitted_state(self):
        return {"columns": self.columns}

    def load_fitted_state(self, state):
        self.columns = list(state["columns"])

    def explain_parts(self):
        return list(self.columns)

    def attribute(self, values, logit):
        frame = values.to_frame() if values.ndim == 1 else values
        rows = torch.arange(len(frame))
        move = self.device_manager.move
        with torch.no_grad():
            full = logit(self(move(self.prepare(frame))), rows)
            scores = [
                (full - logit(self(move(self.prepare(frame.drop(columns=c)))), rows)).cpu()
                for c in frame.columns
            ]
        return Parts(
            labels=[list(frame.columns)] * len(frame),
            scores=list(torch.stack(scores, dim=1).double().numpy()),
            values=[[f"{v:g}" for v in row] for row in frame.to_numpy(np.float64)],
            method="leave one column out of the mean",
            baseline="the mean of the other columns",
        )
"""


@pytest.fixture
def mean_plugin(fake_dists: Any, register_plugin: Any) -> Any:
    fake_dists("transfuse-mean", "transfuse_mean", PLUGIN)
    module = importlib.import_module("transfuse_mean")
    register_plugin(module, name="transfuse-mean")
    yield module
    import sys

    sys.modules.pop("transfuse_mean", None)


def test_an_encoder_from_the_docs_is_explained(mean_plugin: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"big": rng.normal(size=200) * 3, "small": rng.normal(size=200) * 0.1})
    frame["bad"] = ((frame["big"] + frame["small"]) > 0).astype(int)
    config = {
        "name": "mean",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {"means": {"encoder": "tabular.mean", "columns": ["big", "small"]}},
        "train": {"epochs": 5, "batch_size": 32, "lr": 0.05, "device": "cpu", "progress": False},
    }
    pipeline = transfuse.load(
        transfuse.Pipeline.from_config(config).fit(frame).save(tmp_path / "r")
    )
    rows = frame.drop(columns=["bad"]).head(50)
    explained = explain_rows(pipeline, rows)
    parts = explained.parts["means"]
    assert parts.method == "leave one column out of the mean"
    assert parts.labels[0] == ["big", "small"]
    # the column with the large values moves the mean, and so the score, the most
    first = [labels[int(np.argmax(np.abs(s)))] for labels, s in zip(parts.labels, parts.scores)]
    assert np.mean([f == "big" for f in first]) >= 0.9
    assert explained.completeness_error() < 1e-4 and explained.parts_error() < 1e-6
    assert [c["factor"] for c in code_table(pipeline)] == ["means.big", "means.small"]
    result = pipeline.explain(rows, top=1)
    raised = result["attribution_1"].notna()  # rows that some column pushed up
    assert raised.any()
    assert result.loc[raised, "reason_1"].str.match(r"^(big|small) -?\d").all()
    assert check_explanation(pipeline.model.inputs["means"], rows) is not None
