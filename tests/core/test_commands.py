"""The runtime commands: transfuse train, evaluate and predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import hookimpl
from transfuse.cli import main


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


@pytest.fixture
def project(tmp_path, kit_manager):
    """A pipeline file over a CSV beside it, and rows to score."""
    kit.frame(200).to_csv(tmp_path / "rows.csv", index=False)
    kit.frame(30, seed=4).drop(columns="y").to_parquet(tmp_path / "new.parquet")
    config = kit.config(data={"path": "rows.csv"}, train={"epochs": 3})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def train(project, *extra):
    return main(["train", str(project / "pipeline.yaml"), "--out", str(project / "run"), *extra])


def test_train_writes_a_run_and_removes_its_checkpoint(project, capsys):
    assert train(project) == 0
    assert "validation roc_auc" in capsys.readouterr().out
    assert (project / "run" / "model.safetensors").is_file()
    assert not (project / ".run.checkpoint").exists()


def test_train_overrides_epochs_and_data(project, tmp_path):
    kit.frame(100, seed=3).to_csv(tmp_path / "other.csv", index=False)
    assert train(project, "--epochs", "1", "--data", str(tmp_path / "other.csv")) == 0
    metrics = json.loads((project / "run" / "metrics.json").read_text())
    assert len(metrics["history"]) == 1 and metrics["splits"]["test"] == 20


def test_predict_writes_one_column_per_class_and_evaluate_prints_metrics(project, capsys):
    assert train(project) == 0
    out = project / "scores.csv"
    code = main(
        [
            "predict",
            str(project / "run"),
            "--data",
            str(project / "new.parquet"),
            "--out",
            str(out),
            "--keep",
            "a",
        ]
    )
    assert code == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["a", "p_0", "p_1"] and len(scores) == 30
    assert (
        main(
            [
                "predict",
                str(project / "run"),
                "--data",
                str(project / "rows.csv"),
                "--out",
                str(project / "s.parquet"),
            ]
        )
        == 0
    )
    assert pd.read_parquet(project / "s.parquet").shape == (200, 2)
    capsys.readouterr()
    assert (
        main(["evaluate", str(project / "run"), "--data", str(project / "rows.csv"), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["roc_auc"] > 0.8


def test_predict_refuses_to_overwrite_its_input(project, capsys):
    assert train(project) == 0
    data = str(project / "rows.csv")
    assert main(["predict", str(project / "run"), "--data", data, "--out", data]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert "y" in pd.read_csv(data).columns


def test_user_errors_print_one_line_and_exit_2(project, capsys):
    (project / "junk").mkdir()
    (project / "junk" / "keep.txt").write_text("x")
    code = main(["train", str(project / "pipeline.yaml"), "--out", str(project / "junk")])
    assert code == 2 and "refusing to overwrite" in capsys.readouterr().err
    assert train(project, "--resume") == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert main(["predict", str(project / "nope"), "--data", "x.csv", "--out", "y.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("transfuse: error:")


def test_a_killed_train_resumes_from_its_checkpoint(project, register_plugin, capsys):
    class Kill:
        @hookimpl
        def transfuse_on_event(self, event, payload):
            if event == "checkpoint" and payload["epoch"] == 0:
                raise KeyboardInterrupt

    register_plugin(Kill(), name="kill")
    assert train(project) == 130
    assert (project / ".run.checkpoint" / "checkpoint" / "state.json").is_file()
    assert not (project / "run").exists()
    from transfuse.plugins import get_plugin_manager

    get_plugin_manager().unregister("kill")
    assert train(project, "--resume") == 0
    history = json.loads((project / "run" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
