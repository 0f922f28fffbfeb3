"""Transfer from several source runs: config and CLI lists, the tensors' origins in the
printed report and report.md, strategy.source-weights through the workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import transfuse
from transfuse.cli import main
from transfuse.config import parse_config
from transfuse.errors import ConfigError
from transfuse.pipeline import Pipeline
from transfuse.workflow import source_runs


def rows(n: int, seed: int, columns: str) -> pd.DataFrame:
    """Numeric columns named by letters; label y from a + b (or c, when there is no b)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.standard_normal(n) for c in columns})
    z = frame["a"] + (frame["b"] if "b" in frame else frame["c"])
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int)
    return frame


def config(name: str, columns: str, epochs: int = 3) -> dict:
    return {
        "name": name,
        "task": {"type": "binary", "target": "y"},
        "data": {"test_size": 0.2, "validation_size": 0.25},
        "inputs": {"table": {"encoder": "tabular.mlp", "columns": list(columns)}},
        "train": {"epochs": epochs, "batch_size": 64, "seed": 0, "progress": False},
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """A run on columns a, b and one on a, c (the same network shape)."""
    base = tmp_path_factory.mktemp("sources")
    first = (
        Pipeline.from_config(config("card", "ab", 2)).fit(rows(300, 1, "ab")).save(base / "card")
    )
    second = (
        Pipeline.from_config(config("mort", "ac", 2)).fit(rows(300, 2, "ac")).save(base / "mort")
    )
    return first, second


def test_transfer_from_accepts_one_run_or_a_list():
    one = parse_config({**config("t", "ab"), "transfer": {"from": "runs/a"}})
    assert one.transfer.sources() == ["runs/a"]
    two = parse_config({**config("t", "ab"), "transfer": {"from": ["runs/a", "runs/b"]}})
    assert two.transfer.sources() == ["runs/a", "runs/b"]
    assert two.to_dict()["transfer"]["from"] == ["runs/a", "runs/b"]


@pytest.mark.parametrize(
    ("given", "message"), [([], "one or more"), (["runs/a", "runs/a"], "listed twice")]
)
def test_transfer_from_refuses_an_empty_or_repeated_list(given, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**config("t", "ab"), "transfer": {"from": given}})


def test_source_runs_split_commas_and_keep_the_order(tmp_path):
    assert source_runs("b,a", None) == [Path("b"), Path("a")]
    assert source_runs(["b", "a, c"], None) == [Path("b"), Path("a"), Path("c")]
    assert source_runs("x", tmp_path) == [tmp_path / "x"]  # relative to the pipeline file
    with pytest.raises(ConfigError, match="given twice"):
        source_runs(["a", "a"], None)


def test_cli_transfer_from_two_runs_prints_where_each_tensor_came_from(two_runs, tmp_path, capsys):
    first, second = two_runs
    data = tmp_path / "target.csv"
    rows(300, 3, "abc").to_csv(data, index=False)
    pipeline = tmp_path / "target.yaml"
    pipeline.write_text(yaml.safe_dump(config("target", "abc", epochs=1)), "utf-8")
    out = tmp_path / "moved"
    code = main(["transfer", str(pipeline), "--from", str(first), "--from", str(second),
                 "--out", str(out), "--data", str(data)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert f"from {first}, {second}" in printed
    lines = [line.strip() for line in printed.splitlines() if line.startswith("    ")]
    model = transfuse.load(out).model
    assert len(lines) == len(list(model.named_parameters()))  # one line per target tensor
    assert f"inputs.table.columns.b.weight: copied from {first}" in lines  # only the first
    assert f"inputs.table.columns.c.weight: copied from {second}" in lines  # only the second
    assert f"head.weight: copied from {first}" in lines  # both: the first given wins
    report = (out / "report.md").read_text("utf-8")
    assert "Tensors per source run:" in report and str(second) in report
    metrics = json.loads((out / "metrics.json").read_text("utf-8"))
    assert metrics["transfer"]["sources"] == [str(first), str(second)]
    tensors = json.loads((out / "transfer.json").read_text("utf-8"))[0]["tensors"]
    assert {t["run"] for t in tensors} >= {str(first), str(second)}


def test_comma_separated_from_and_a_list_in_the_config_are_the_same(two_runs, tmp_path):
    first, second = two_runs
    data = tmp_path / "target.csv"
    rows(200, 4, "abc").to_csv(data, index=False)
    raw = config("target", "abc", epochs=1)
    raw["transfer"] = {"from": [str(second), str(first)], "strategies": ["layer-map"]}
    pipeline = tmp_path / "target.yaml"
    pipeline.write_text(yaml.safe_dump(raw), "utf-8")
    assert main(["config", "validate", str(pipeline), "--from", f"{first},{second}"]) == 0
    assert main(["train", str(pipeline), "--out", str(tmp_path / "a"), "--data", str(data)]) == 0
    by_config = json.loads((tmp_path / "a" / "metrics.json").read_text("utf-8"))
    assert by_config["transfer"]["sources"] == [str(second), str(first)]
    code = main(["transfer", str(pipeline), "--from", f"{first},{second}",
                 "--out", str(tmp_path / "b"), "--data", str(data)])  # fmt: skip
    assert code == 0
    by_cli = json.loads((tmp_path / "b" / "metrics.json").read_text("utf-8"))
    assert by_cli["transfer"]["sources"] == [str(first), str(second)]  # --from wins


def test_a_missing_second_run_is_one_clear_line(two_runs, tmp_path, capsys):
    first, _ = two_runs
    pipeline = tmp_path / "t.yaml"
    pipeline.write_text(yaml.safe_dump(config("t", "ab")), "utf-8")
    code = main(["transfer", str(pipeline), "--from", str(first), "--from",
                 str(tmp_path / "nope"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_source_weights_weigh_the_runs_through_the_workflow(two_runs):
    first, second = two_runs
    result = transfuse.transfer(
        config("target", "abc", epochs=1), [first, second],
        [{"source-weights": {"temperature": 0.05}}], data=rows(300, 5, "abc"), shift=False,
    )  # fmt: skip
    pipeline = result.pipeline
    assert pipeline.metrics["transfer"]["strategies"] == ["strategy.source-weights"]
    (report,) = result.reports
    weights = [n for n in report.notes if "-> weight" in n]
    assert len(weights) == 2 and all("AUC" in n for n in weights)
    assert report.runs() and set(report.runs()) <= {str(first), str(second)}
