"""Tracking: every fit an MLflow run, fed by transfuse's events, opt-in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mlflow_kit as kit

from transfuse import ConfigError, get_plugin_manager
from transfuse_mlflow import tracking_enabled
from transfuse_mlflow.tracking import RUN_DIR_TAG, Tracker, flatten


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _run_of(trained):
    client = _client()
    found = client.search_runs(
        [client.get_experiment_by_name("transfuse").experiment_id],
        filter_string=f"tags.`transfuse.fit` = '{trained['fit']}'",
    )
    assert len(found) == 1
    return found[0]


def test_a_fit_is_a_finished_run_with_the_resolved_config_as_parameters(trained, store):
    run = _run_of(trained)
    assert run.info.status == "FINISHED" and run.info.run_name == "mlflow-credit"
    params = run.data.params
    assert params["train.epochs"] == "2" and params["inputs.note.encoder"] == "text.bag-of-words"
    assert json.loads(params["inputs.applicant.columns"]) == ["debt", "income", "purpose"]
    assert int(params["rows.train"]) > 0


def _per_step(run_id, key):
    """The first value logged at each step (MLflow 3's log_model copies a run's latest
    metrics again at step 0 into the same run, after the epochs)."""
    first: dict[int, float] = {}
    for m in sorted(_client().get_metric_history(run_id, key), key=lambda m: m.timestamp):
        first.setdefault(m.step, m.value)
    return first


def test_each_epoch_logs_its_metrics_at_its_step(trained, store):
    run = _run_of(trained)
    history = _per_step(run.info.run_id, "validation_roc_auc")
    expected = [h["validation"]["roc_auc"] for h in trained["metrics"]["history"]]
    assert list(history) == [0, 1]
    assert list(history.values()) == pytest.approx(expected)
    assert list(_per_step(run.info.run_id, "train_loss")) == [0, 1]


def test_the_saved_run_logs_its_report_plots_and_test_metrics(trained, store):
    run = _run_of(trained)
    path = trained["run"]
    assert run.data.tags[RUN_DIR_TAG] == str(path.resolve())
    logged = {Path(a.path).name for a in _client().list_artifacts(run.info.run_id, "run")}
    plots = {p.name for p in path.glob("*.png")}
    assert plots and plots | {"report.md", "metrics.json", "config.yaml"} <= logged
    assert "model.safetensors" not in logged  # weights travel with log_model only
    test = json.loads((path / "metrics.json").read_text())["test"]
    assert run.data.metrics["final_test_roc_auc"] == pytest.approx(test["roc_auc"])


def test_a_transfer_tags_its_source_and_the_run_that_tracked_it(trained, store, tmp_path):
    import transfuse

    result = transfuse.transfer(
        kit.config("mlflow-target", epochs=1),
        trained["run"],
        ["finetune"],
        data=kit.rows(120, seed=5),
        shift=False,
    )
    result.save(tmp_path / "target")
    client = _client()
    source = _run_of(trained)
    target = _run_of({"fit": result.pipeline.fit_id})
    tags = target.data.tags
    assert json.loads(tags["transfuse.transfer.sources"]) == [str(trained["run"])]
    assert tags["transfuse.transfer.source_run_id"] == source.info.run_id
    assert "strategy.finetune" in json.loads(tags["transfuse.transfer.strategies"])
    assert client.get_run(target.info.run_id).data.tags[RUN_DIR_TAG].endswith("target")


def _events(tracker, fit="f1", epochs=2):
    tracker.on_event("fit_start", {"fit": fit, "name": "events", "config": {"train": {"lr": 0.1}}})
    tracker.on_event("run_start", {"rows": {"train": 10}, "device": "cpu"})
    for epoch in range(epochs):
        tracker.on_event("epoch_end", {"epoch": epoch, "train_loss": 0.5, "metrics": {"loss": 0.4}})


def test_a_fit_inside_an_active_mlflow_run_is_its_child(store):
    import mlflow

    tracker = Tracker()
    with mlflow.start_run(run_name="parent") as parent:
        _events(tracker)
        tracker.on_event("run_end", {"metric": "loss", "best_value": 0.4, "best_epoch": 1})
    child = _client().get_run(tracker.runs["f1"])
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.experiment_id == parent.info.experiment_id
    assert child.data.params == {"train.lr": "0.1", "rows.train": "10"}


def test_a_fit_that_never_ended_is_failed_by_the_next_and_killed_at_exit(store):
    tracker = Tracker()
    _events(tracker, "crashed")
    _events(tracker, "next")  # a notebook fits again after an exception
    assert _client().get_run(tracker.runs["crashed"]).info.status == "FAILED"
    tracker.close()
    assert _client().get_run(tracker.runs["next"]).info.status == "KILLED"


def test_without_the_variables_nothing_is_tracked(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRANSFUSE_MLFLOW", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not tracking_enabled()
    get_plugin_manager().emit("fit_start", {"fit": "x", "name": "quiet", "config": {}})
    assert not (tmp_path / "mlruns").exists()


def test_the_default_store_is_an_mlruns_folder_in_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFUSE_MLFLOW", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker()
    _events(tracker, epochs=1)
    tracker.close()
    assert (tmp_path / "mlruns").is_dir()
    assert tracker.uri == (tmp_path / "mlruns").as_uri()


@pytest.mark.parametrize(
    ("flag", "uri", "on"),
    [("1", None, True), ("true", None, True), (None, "file:/x", True), ("0", "file:/x", False),
     (None, None, False), ("off", None, False)],
)  # fmt: skip
def test_tracking_is_opt_in(monkeypatch, flag, uri, on):
    for name, value in (("TRANSFUSE_MLFLOW", flag), ("MLFLOW_TRACKING_URI", uri)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert tracking_enabled() is on


def test_an_unclear_switch_is_a_config_error(monkeypatch):
    monkeypatch.setenv("TRANSFUSE_MLFLOW", "maybe")
    with pytest.raises(ConfigError, match="TRANSFUSE_MLFLOW"):
        tracking_enabled()


def test_the_config_flattens_to_dotted_parameters():
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d": "", "e": "{}"}
