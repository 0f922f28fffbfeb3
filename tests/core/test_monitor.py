"""``transfuse monitor``: population stability of new rows against a run's training rows."""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import EncoderEntry, PluginManager, hookimpl
from transfuse.bases import Batch, Encoder
from transfuse.cli import main
from transfuse.monitor import (
    FAIL_ABOVE,
    MIN_COUNT,
    column_reference,
    compare,
    monitor_run,
    psi_of_counts,
    sampling_noise,
)
from transfuse.plugins import reset_plugin_manager
from transfuse.shift import PSI_MAJOR, psi

MODULE = "transfuse_test_monitor"
sys.modules.setdefault(MODULE, sys.modules[__name__])  # the factory below imports it


class Buckets(Encoder):
    """Text categories hashed into 16 buckets, then an embedding."""

    def __init__(self, options: kit.NumericOptions, device: Any) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.embed = nn.Embedding(16, options.dim)

    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        pass

    def fitted_state(self) -> dict[str, Any]:
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        pass

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        codes = [zlib.crc32(str(v).encode()) % 16 for v in values]
        return {"x": torch.as_tensor(codes, dtype=torch.long)}

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.embed(batch["x"])


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    return [
        EncoderEntry(
            name="test.buckets",
            modality="tabular",
            factory=f"{MODULE}:Buckets",
            options=kit.NumericOptions,
            description="Hashed categories (tests).",
        )
    ]


def rows(n: int, seed: int, *, shift_a: float = 0.0) -> pd.DataFrame:
    """kit.frame's rows plus a frequent category and a unique id per row."""
    rng = np.random.default_rng(seed)
    frame = kit.frame(n, seed=seed)
    frame["a"] += shift_a
    frame["region"] = rng.choice(["north", "south", "east"], size=n)
    frame["applicant"] = [f"id-{seed}-{i:05d}" for i in range(n)]
    return frame


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[Path]:
    """A run trained by `transfuse train` on a CSV beside its pipeline file, once for the
    module (its plugin manager, with the test encoders, stays active meanwhile)."""
    root = tmp_path_factory.mktemp("monitor")
    manager = PluginManager(autoload=False)
    reset_plugin_manager(manager)
    patch = pytest.MonkeyPatch()
    patch.setenv("TRANSFUSE_CACHE", str(root / "cache"))
    for module, name in ((kit, "runtime-kit"), (sys.modules[__name__], "monitor-kit")):
        manager.register(module, name=name, distribution=name, version="0.0.test")
    rows(300, seed=0).to_csv(root / "train.csv", index=False)
    inputs = {
        "a": {"encoder": "test.numeric", "column": "a"},
        "b": {"encoder": "test.numeric", "column": "b"},
        "region": {"encoder": "test.buckets", "column": "region", "options": {"dim": 4}},
        "applicant": {"encoder": "test.buckets", "column": "applicant", "options": {"dim": 4}},
    }
    config = kit.config(data={"path": "train.csv"}, inputs=inputs, train={"epochs": 2})
    (root / "pipeline.yaml").write_text(yaml.safe_dump(config))
    try:
        assert main(["train", str(root / "pipeline.yaml"), "--out", str(root / "run")]) == 0
        yield root / "run"
    finally:
        patch.undo()
        reset_plugin_manager(None)


def monitor(run: Path, out: Path, frame: pd.DataFrame, *extra: str) -> int:
    """`transfuse monitor RUN --data NEW --out OUT/m` on ``frame`` written to OUT/new.csv."""
    frame.to_csv(out / "new.csv", index=False)
    return main(
        ["monitor", str(run), "--data", str(out / "new.csv"), "--out", str(out / "m"), *extra]
    )


def test_fresh_rows_from_the_training_distribution_are_stable(run, tmp_path, capsys):
    assert monitor(run, tmp_path, rows(300, seed=7)) == 0
    assert capsys.readouterr().out.startswith("stable: no PSI above 0.25")
    out = tmp_path / "m"
    assert {"monitor.md", "monitor.json", "psi.png", "score_0.png"} <= {
        p.name for p in out.iterdir()
    }
    result = json.loads((out / "monitor.json").read_text())
    assert result["status"] == "stable" and not result["crossed"]
    assert set(result["columns"]) == {"a", "b", "region", "applicant"}
    assert all(c["psi"] < PSI_MAJOR for c in result["columns"].values())
    # the training rows were reloaded from the run's data config, so the classifier ran
    assert "digest matches" in result["domain"]["note"]
    assert result["domain"]["auc"] < 0.65
    assert "Domain classifier" in (out / "monitor.md").read_text()


def test_rows_shifted_in_one_column_exit_1_naming_it(run, tmp_path, capsys):
    assert monitor(run, tmp_path, rows(300, seed=7, shift_a=3.0)) == 1
    out = capsys.readouterr().out
    assert out.startswith("shifted: ") and "column a (PSI" in out
    assert "column b" not in out and "column region" not in out
    result = json.loads((tmp_path / "m" / "monitor.json").read_text())
    assert result["columns"]["a"]["psi"] > PSI_MAJOR
    assert result["columns"]["a"]["band"] == "major"
    assert result["domain"]["auc"] > 0.9  # a new row is easy to tell from a training row


def test_a_missing_run_or_column_exits_2_naming_it(run, tmp_path, capsys):
    assert monitor(run.parent / "nope", tmp_path, rows(50, seed=7)) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert monitor(run, tmp_path, rows(50, seed=7).drop(columns="b")) == 2
    err = capsys.readouterr().err
    assert "'b'" in err and "Traceback" not in err
    assert monitor(run, tmp_path, rows(50, seed=7), "--fail-above", "0") == 2
    assert "--fail-above" in capsys.readouterr().err


def test_the_run_keeps_bins_and_counts_never_rows(run):
    text = (run / "reference.json").read_text()
    reference = json.loads(text)
    trained = rows(300, seed=0)
    assert not any(value in text for value in trained["applicant"])  # unique per row
    applicant = reference["columns"]["applicant"]
    assert applicant["kind"] == "text" and "categories" not in applicant
    assert set(reference["columns"]["region"]["categories"]) == {"north", "south", "east"}
    assert sum(reference["columns"]["a"]["counts"]) == reference["rows"]
    assert reference["score"] and reference["train_digest"]


def test_monitor_refuses_to_overwrite_a_folder_that_is_not_its_report(run, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    assert monitor(run, tmp_path, rows(50, seed=7)) == 2
    assert "not a monitor report" in capsys.readouterr().err
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


def test_the_domain_classifier_is_skipped_with_a_note_when_rows_cannot_be_reloaded(run, tmp_path):
    from transfuse import Pipeline

    config = kit.config(train={"epochs": 1})
    pipeline = Pipeline.from_config(config).fit(kit.frame(200))  # a frame, no data config
    path = pipeline.save(tmp_path / "run")
    result = monitor_run(path, kit.frame(200, seed=3), pipeline=pipeline)
    assert "auc" not in result["domain"]
    assert "could not be reloaded" in result["domain"]["note"]
    assert result["status"] == "stable"


def test_psi_from_stored_bins_equals_shift_psi_on_the_rows():
    rng = np.random.default_rng(0)
    source = pd.Series(rng.normal(size=500), name="x")
    target = pd.Series(rng.normal(0.4, 1.2, size=300), name="x")
    target[:20] = np.nan
    assert compare(column_reference(source), target)["psi"] == pytest.approx(psi(source, target))


def test_rare_categories_are_pooled_and_new_ones_counted_outside_the_reference():
    train = pd.Series(["x"] * 60 + ["y"] * 30 + ["rare"] * (MIN_COUNT - 1))
    reference = column_reference(train)
    assert reference["kind"] == "categorical"
    assert reference["categories"] == {"x": 60, "y": 30}
    assert reference["other"] == MIN_COUNT - 1
    found = compare(reference, pd.Series(["x"] * 50 + ["new"] * 50))
    assert found["outside_reference"]["new"] == pytest.approx(0.5)
    assert found["outside_reference"]["first"] == ["new"]
    assert found["psi"] > PSI_MAJOR


def test_psi_of_identical_histograms_is_zero_and_the_default_limit_is_the_major_band():
    assert psi_of_counts([10, 20, 0], [20, 40, 0]) == pytest.approx(0.0)
    assert FAIL_ABOVE == PSI_MAJOR


def test_sampling_noise_is_the_psi_that_same_distribution_samples_stay_under():
    rng = np.random.default_rng(3)
    shares = rng.dirichlet(np.ones(10) * 3)
    reference = rng.multinomial(1000, shares)
    found = [rng.multinomial(50, shares) for _ in range(300)]
    exceed = np.mean([psi_of_counts(reference, n) > sampling_noise(reference, n) for n in found])
    assert 0.0 < exceed < 0.12  # about 5%: the bound's level
    assert sampling_noise(reference, found[0]) > PSI_MAJOR  # 50 rows: the major band is noise
    assert sampling_noise([1000] * 10, [1000] * 10) < 0.02  # thousands of rows: a few 1e-3


def test_a_psi_above_the_limit_within_the_noise_of_few_rows_is_not_a_shift(run, tmp_path, capsys):
    assert monitor(run, tmp_path, rows(12, seed=7)) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "m" / "monitor.json").read_text())
    assert not result["crossed"] and result["within_noise"]  # 12 rows: PSI above 0.25
    assert all(v > PSI_MAJOR for v in result["within_noise"].values())
    assert "within the sampling noise of 12 rows" in out
    assert "within the sampling noise of 12 rows" in (tmp_path / "m" / "monitor.md").read_text()
