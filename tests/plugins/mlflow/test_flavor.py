"""The pyfunc flavour: a run directory as an MLflow model that predicts what
``transfuse predict`` writes, with nothing pickled."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mlflow_kit as kit

from transfuse import CheckpointError
from transfuse.cli import main
from transfuse_mlflow import log_model, save_model
from transfuse_mlflow.flavor import requirements

NEW = kit.rows(40, seed=7, start=5000).drop(columns="bad")


@pytest.fixture
def cli_scores(trained, tmp_path):
    """What `transfuse predict` writes for NEW (from a parquet file, to a CSV)."""
    NEW.to_parquet(tmp_path / "new.parquet", index=False)
    out = tmp_path / "scores.csv"
    assert main(["predict", str(trained["run"]), "--data", str(tmp_path / "new.parquet"),
                 "--out", str(out)]) == 0  # fmt: skip
    return pd.read_csv(out)


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns) == ["id", "p_0", "p_1"]
    assert got["id"].tolist() == want["id"].tolist()
    np.testing.assert_allclose(
        got[["p_0", "p_1"]].to_numpy(), want[["p_0", "p_1"]].to_numpy(), atol=1e-6
    )


def test_the_pyfunc_model_predicts_what_transfuse_predict_writes(trained, cli_scores, tmp_path):
    import mlflow

    save_model(trained["run"], tmp_path / "model", input_example=NEW.head(3))
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    _same(model.predict(NEW), cli_scores)
    assert [c.name for c in model.metadata.get_output_schema().inputs] == ["id", "p_0", "p_1"]


def test_the_model_folder_pickles_nothing_and_carries_the_run(trained, tmp_path):
    save_model(trained["run"], tmp_path / "model")
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in {".pkl", ".pickle", ".cloudpickle"}]
    mlmodel = (tmp_path / "model" / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel  # models from code
    shipped = tmp_path / "model" / "artifacts" / "run"
    assert (shipped / "model.safetensors").is_file() and (shipped / "config.yaml").is_file()
    assert (tmp_path / "model" / "model_code.py").is_file()


def test_log_model_goes_into_the_run_that_tracked_training_and_registers(
    trained, cli_scores, store
):
    import mlflow

    info = log_model(trained["run"], registered_model_name="credit-score")
    tracked = mlflow.MlflowClient().search_runs(
        [mlflow.MlflowClient().get_experiment_by_name("transfuse").experiment_id],
        filter_string=f"tags.`transfuse.fit` = '{trained['fit']}'",
    )[0]
    assert info.run_id == tracked.info.run_id
    registered = mlflow.pyfunc.load_model("models:/credit-score/1")
    _same(registered.predict(NEW), cli_scores)


def test_records_are_scored_and_rows_without_the_key_get_scores_only(trained, tmp_path):
    import mlflow

    save_model(trained["run"], tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    records = NEW.head(4).drop(columns="id").to_dict("records")
    got = model.predict(records)
    assert list(got.columns) == ["p_0", "p_1"] and len(got) == 4
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_requirements_pin_the_distributions_the_run_was_trained_with(trained):
    pins = requirements(trained["run"])
    names = {p.split("==")[0] for p in pins}
    assert {
        "transfuse",
        "transfuse-tabular",
        "transfuse-text",
        "torch",
        "transfuse-mlflow",
    } <= names
    assert all("+" not in p for p in pins)  # no local build tags (torch's +cu130)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a transfuse run directory"):
        save_model(tmp_path, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_the_mlflow_command_saves_or_logs_a_run(trained, store, tmp_path, capsys):
    import mlflow

    assert main(["mlflow", str(trained["run"]), "--save", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "MLmodel").is_file()
    kit.rows(10).to_csv(tmp_path / "example.csv", index=False)
    assert main(["mlflow", str(trained["run"]), "--example", str(tmp_path / "example.csv")]) == 0
    uri = capsys.readouterr().out.split(" as ")[-1].split()[0]
    schema = mlflow.pyfunc.load_model(uri).metadata.get_input_schema()
    assert schema.input_names() == ["id", "debt", "income", "purpose", "note"]  # no label
    assert main(["mlflow", str(tmp_path), "--save", str(tmp_path / "m2")]) == 2
    assert "not a transfuse run directory" in capsys.readouterr().err
