"""End to end: a table, texts, images and recordings fused into one credit score.

The rows come from the quickstart's generator (examples/quickstart/make_data.py): each
applicant has four hidden risk factors, one per modality, and is ``bad`` when at least
three are present, so no single modality can tell the label. The test trains the fused
model and one model per modality on the same rows, checks that fusion wins on the
held-out rows, saves the run, and reloads it in a fresh Python process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

for plugin in ("transfuse_tabular", "transfuse_text", "transfuse_image", "transfuse_audio"):
    pytest.importorskip(plugin)

import transfuse  # noqa: E402
from transfuse.plugins import reset_plugin_manager  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INPUTS = {
    "applicant": {"encoder": "tabular.mlp", "columns": ["income", "employment"]},
    "note": {"encoder": "text.bag-of-words", "column": "note", "options": {"buckets": 4096}},
    "statement": {"encoder": "image.timm", "column": "statement", "options": {"image_size": 64}},
    "call": {
        "encoder": "audio.mel-cnn",
        "column": "call",
        "options": {"duration": 0.5, "channels": [8, 16], "dim": 32},
    },
}


def make_frame(n: int, folder: Path, seed: int) -> pd.DataFrame:
    path = ROOT / "examples" / "quickstart" / "make_data.py"
    spec = importlib.util.spec_from_file_location("quickstart_make_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = module.make_frame(n, folder, seed=seed)
    for column in ("statement", "call"):  # the generator names files relative to folder
        frame[column] = frame[column].map(lambda v: str(folder / v) if isinstance(v, str) else None)
    return frame


def config(inputs: dict) -> dict:
    return {
        "name": "e2e-" + "-".join(inputs),
        "task": {"type": "binary", "target": "bad"},
        "data": {"validation_size": 0.2},
        "inputs": inputs,
        "fusion": {"method": "fusion.concat", "options": {"dim": 32, "dropout": 0.0}},
        "train": {"epochs": 8, "batch_size": 32, "lr": 3e-3, "patience": 3, "progress": False},
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    folder = tmp_path_factory.mktemp("e2e")
    os.environ["TRANSFUSE_CACHE"] = str(folder / "cache")
    frame = make_frame(480, folder / "files", seed=0)
    return frame.iloc[:360].reset_index(drop=True), frame.iloc[360:].reset_index(drop=True), folder


def test_fused_model_beats_every_single_modality_and_reloads_identically(data):
    train, test, folder = data
    reset_plugin_manager(None)
    fused = transfuse.Pipeline.from_config(config(INPUTS)).fit(train, test=test)
    fused_auc = fused.metrics["test"]["roc_auc"]
    single = {}
    for name, spec in INPUTS.items():
        alone = transfuse.Pipeline.from_config(config({name: spec})).fit(train, test=test)
        single[name] = alone.metrics["test"]["roc_auc"]
    assert fused_auc > 0.9, fused_auc
    for name, auc in single.items():
        assert fused_auc > auc + 0.05, f"fused {fused_auc:.3f} vs {name} alone {auc:.3f}"

    # Rows that lack the image or the call are scored.
    lacking = test[test["statement"].isna() | test["call"].isna()]
    assert len(lacking) >= 5
    scores = fused.predict(test)
    assert np.isfinite(scores.to_numpy()).all()
    assert np.allclose(scores.sum(axis=1), 1.0)

    run = fused.save(folder / "run")
    for name in (
        "report.md",
        "roc.png",
        "learning_curve.png",
        "modalities.png",
        "model.safetensors",
        "config.yaml",
        "metrics.json",
        "environment.json",
    ):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    assert all(f"| {name} |" in report for name in INPUTS)

    test.to_parquet(folder / "rows.parquet")
    code = (
        "import sys, pandas, transfuse\n"
        "p = transfuse.load(sys.argv[1])\n"
        "p.predict(pandas.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(run),
            str(folder / "rows.parquet"),
            str(folder / "out.parquet"),
        ],
        check=True,
        timeout=300,
        env={**os.environ},
    )
    reloaded = pd.read_parquet(folder / "out.parquet")
    assert np.array_equal(reloaded.to_numpy(), scores.to_numpy())
