"""The Python API and run directories: fit, predict, evaluate, save, load, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import CheckpointError, ConfigError, DataError, Pipeline, PluginManager
from transfuse.train import predict_logits

FUSIONS = ["fusion.concat", "fusion.gated", "fusion.attention", "fusion.lowrank", "fusion.late"]


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def trained():
    """One pipeline trained for the whole module (its manager holds the test encoders)."""
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    config = kit.config(
        inputs={
            "a": {"encoder": "test.numeric", "column": "a"},
            "b": {"encoder": "test.numeric", "column": "b"},
            "noise": {"encoder": "test.numeric", "column": "noise"},
        },
        train={"epochs": 6},
    )
    return Pipeline.from_config(config, manager=manager).fit(kit.frame(400))


def test_predict_gives_a_score_column_per_class_aligned_with_the_index(trained):
    rows = kit.frame(20, seed=5).set_index(pd.Index(range(100, 120)))
    scores = trained.predict(rows)
    assert list(scores.columns) == ["p_0", "p_1"]
    assert list(scores.index) == list(rows.index)
    assert np.allclose(scores.sum(axis=1), 1.0)


def test_predict_does_not_need_the_label_column(trained):
    rows = kit.frame(5).drop(columns="y")
    assert trained.predict(rows).shape == (5, 2)


def test_predict_without_an_input_column_is_a_data_error(trained):
    with pytest.raises(DataError, match=r"inputs\.noise\.column"):
        trained.predict(kit.frame(5).drop(columns="noise"))


def test_evaluate_reports_the_task_metrics(trained):
    metrics = trained.evaluate(kit.frame(200, seed=3))
    assert metrics["roc_auc"] > 0.85 and "loss" in metrics


def test_an_untrained_pipeline_cannot_predict(kit_manager):
    with pytest.raises(ConfigError, match="not trained"):
        Pipeline.from_config(kit.config(), manager=kit_manager).predict(kit.frame(3))


def test_masking_an_input_that_carries_the_signal_costs_more_than_masking_noise(trained):
    imp = trained.importance
    assert imp["a"]["drop"] > imp["noise"]["drop"] + 0.05
    assert imp["b"]["drop"] > imp["noise"]["drop"] + 0.05


def test_a_saved_run_holds_every_file_and_loads_to_identical_predictions(trained, tmp_path):
    path = trained.save(tmp_path / "run")
    names = {p.name for p in path.iterdir()}
    assert {
        "run.json",
        "config.yaml",
        "model.safetensors",
        "encoders",
        "task.json",
        "metrics.json",
        "environment.json",
        "report.md",
        "roc.png",
        "learning_curve.png",
        "modalities.png",
    } <= names
    assert {p.name for p in (path / "encoders").iterdir()} == {"a", "b", "noise"}
    env = json.loads((path / "environment.json").read_text())
    assert env["plugins"]["runtime-kit"]["version"] == "0.0.test"
    assert env["device"]["device"] == "cpu" and env["transfuse"] == transfuse.__version__
    metrics = json.loads((path / "metrics.json").read_text())
    assert {"validation", "test", "history", "importance"} <= set(metrics)
    report = (path / "report.md").read_text()
    assert "![" in report and "modalities.png" in report and "| noise |" in report
    loaded = transfuse.load(path, manager=trained.manager)
    rows = kit.frame(60, seed=11)
    assert np.array_equal(trained.predict(rows).to_numpy(), loaded.predict(rows).to_numpy())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folders left"


def test_saving_over_a_folder_that_is_not_a_run_is_refused(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        trained.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_saving_over_an_earlier_run_replaces_it(trained, tmp_path):
    trained.save(tmp_path / "run")
    (tmp_path / "run" / "stale.txt").write_text("old")
    trained.save(tmp_path / "run")
    assert not (tmp_path / "run" / "stale.txt").exists()


def test_a_crash_while_saving_leaves_no_half_run(trained, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("transfuse.report.write_report", boom)
    with pytest.raises(RuntimeError):
        trained.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_loading_a_folder_with_a_missing_file_names_it(trained, tmp_path):
    path = trained.save(tmp_path / "run")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors missing"):
        transfuse.load(path, manager=trained.manager)


def test_loading_weights_that_do_not_fit_the_config_is_a_checkpoint_error(trained, tmp_path):
    path = trained.save(tmp_path / "run")
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["fusion"]["options"]["dim"] = 7
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match="of another shape"):
        transfuse.load(path, manager=trained.manager)


def test_a_corrupt_weights_file_is_a_checkpoint_error(trained, tmp_path):
    path = trained.save(tmp_path / "run")
    (path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        transfuse.load(path, manager=trained.manager)


def test_loading_something_that_is_not_a_run(tmp_path, kit_manager):
    with pytest.raises(CheckpointError, match="no such run"):
        transfuse.load(tmp_path / "nothing", manager=kit_manager)
    with pytest.raises(CheckpointError, match="not a complete transfuse run"):
        transfuse.load(tmp_path, manager=kit_manager)


@pytest.mark.parametrize("method", FUSIONS)
def test_every_fusion_trains_and_scores_rows_with_a_modality_missing(kit_manager, method):
    config = kit.config(fusion={"method": method, "options": {"dim": 8}}, train={"epochs": 2})
    pipeline = Pipeline.from_config(config, manager=kit_manager).fit(kit.frame(160, missing=0.3))
    rows = kit.frame(6, seed=2)
    lacking = rows.assign(b=np.nan)
    scores = pipeline.predict_scores(lacking, raw=True)[:, 0]  # the network's own
    assert np.isfinite(scores).all()
    # A row without b scores as if b were masked, whatever b would have been.
    masked = predict_logits(
        pipeline.model, pipeline.frame_batches(rows), pipeline.device, masked=["b"]
    )
    assert np.allclose(pipeline.task.scores(torch.from_numpy(masked))[:, 0], scores, atol=1e-6)
    assert not np.allclose(pipeline.predict_scores(rows, raw=True)[:, 0], scores)


def test_multiclass_gives_a_column_per_class(kit_manager):
    df = kit.frame(300)
    df["grade"] = np.select([df["a"] < -0.5, df["a"] < 0.5], ["low", "mid"], "high")
    config = kit.config(task={"type": "multiclass", "target": "grade"}, train={"epochs": 3})
    pipeline = Pipeline.from_config(config, manager=kit_manager).fit(df)
    scores = pipeline.predict(df.head(4))
    assert list(scores.columns) == ["p_high", "p_low", "p_mid"]
    assert np.allclose(scores.sum(axis=1), 1.0)


def test_regression_predicts_values_and_reports_rmse(kit_manager, tmp_path):
    df = kit.frame(300)
    df["amount"] = 3 * df["a"] - df["b"] + 10
    config = kit.config(task={"type": "regression", "target": "amount"}, train={"epochs": 8})
    pipeline = Pipeline.from_config(config, manager=kit_manager).fit(df)
    assert list(pipeline.predict(df.head(3)).columns) == ["prediction"]
    assert pipeline.metrics["metric"] == "rmse"
    path = pipeline.save(tmp_path / "run")
    assert (path / "predictions.png").is_file() and not (path / "roc.png").exists()


def test_from_yaml_reads_data_relative_to_the_file(tmp_path, kit_manager):
    kit.frame(120).to_csv(tmp_path / "rows.csv", index=False)
    config = kit.config(data={"path": "rows.csv"}, train={"epochs": 1})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    pipeline = Pipeline.from_yaml(tmp_path / "p.yaml", manager=kit_manager).fit()
    assert pipeline.metrics["splits"]["train"] + pipeline.metrics["splits"]["validation"] == 96


def test_the_api_reads_a_rows_file_as_the_cli_does(trained, tmp_path, monkeypatch):
    """A path given to predict/evaluate is read like ``--data``: relative file paths in it
    are taken from the file's folder, whatever the working directory."""
    rows = kit.frame(30, seed=5)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    rows.assign(doc="docs/a.txt").to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.chdir(tmp_path.parent)  # somewhere else
    read = transfuse.read_rows(tmp_path / "rows.csv")
    assert read["doc"].iloc[0] == str(tmp_path.resolve() / "docs" / "a.txt")
    by_path = trained.predict(str(tmp_path / "rows.csv"))
    np.testing.assert_allclose(by_path.to_numpy(), trained.predict(rows).to_numpy(), atol=1e-6)
    assert trained.evaluate(tmp_path / "rows.csv") == pytest.approx(trained.evaluate(rows))
    with pytest.raises(DataError, match="no such file"):
        trained.predict(tmp_path / "missing.csv")
