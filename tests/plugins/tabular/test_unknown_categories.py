"""Categories never seen in training go to the unknown bucket and are counted per column:
in ``Pipeline.predict_report``, in a fitted run's ``log.json`` and on ``transfuse predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from transfuse import Pipeline
from transfuse.cli import main
from transfuse_tabular.columns import UNKNOWN, TableSchema

CONFIG: dict[str, Any] = {
    "name": "colours",
    "task": {"type": "binary", "target": "y"},
    "data": {"test_size": 0.25},
    "inputs": {"table": {"encoder": "tabular.mlp", "columns": ["x", "colour"]}},
    "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "progress": False},
}


def frame(n: int = 48, colours: tuple[str, ...] = ("red", "green")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": [colours[i % len(colours)] for i in range(n)],
            "y": np.arange(n) % 2,
        }
    )


def test_the_schema_counts_unknown_rows_per_column_with_the_first_values() -> None:
    schema = TableSchema.fit(pd.DataFrame({"c": ["a", "b", "a", "b"], "n": [1.0, 2, 3, 4]}))
    rows = pd.DataFrame({"c": ["a", "z", None, "y", "z"], "n": [1.0, 2, 3, 4, 5]})
    assert (schema.codes(rows)[:, 0] == UNKNOWN).tolist() == [False, True, False, True, True]
    assert schema.unknown(rows) == {"c": {"rows": 3, "first": ["z", "y"]}}
    assert schema.unknown(rows.iloc[:1]) == {}


@pytest.fixture
def fitted(tabular: Any) -> Pipeline:
    return Pipeline.from_config(CONFIG, manager=tabular).fit(frame())


def test_unseen_categories_score_as_the_unknown_bucket_and_are_counted(fitted: Pipeline) -> None:
    rows = frame(6)
    rows["colour"] = ["red", "purple", "violet", "purple", "green", None]
    scores = fitted.predict(rows)["p_1"].to_numpy()
    assert fitted.predict_report == {
        "table": {"unknown_categories": {"colour": {"rows": 3, "first": ["purple", "violet"]}}}
    }
    same = rows.assign(colour=["red", "violet", "purple", "violet", "green", None])
    assert np.allclose(scores, fitted.predict(same)["p_1"].to_numpy())  # one bucket for both
    known = rows.assign(colour=["red", "red", "red", "red", "green", None])
    assert not np.allclose(scores, fitted.predict(known)["p_1"].to_numpy())
    fitted.predict(frame(4))
    assert fitted.predict_report == {}


@pytest.mark.slow
def test_a_run_logs_unknown_categories_of_its_held_out_rows(tabular: Any, tmp_path: Path) -> None:
    rows = frame(48)
    rows.loc[[5, 17, 33], "colour"] = "teal"  # three rare rows, wherever the split puts them
    config = {**CONFIG, "inputs": {"table": {**CONFIG["inputs"]["table"],
                                             "options": {"min_frequency": 4}}}}  # fmt: skip
    pipeline = Pipeline.from_config(config, manager=tabular).fit(rows)
    log = json.loads((pipeline.save(tmp_path / "run") / "log.json").read_text("utf-8"))
    counted = [split["table"]["unknown_categories"]["colour"] for split in log["data"].values()]
    assert sum(c["rows"] for c in counted) == 3
    assert all(c["first"] == ["teal"] for c in counted)
    report = (tmp_path / "run" / "report.md").read_text("utf-8")
    assert "## Data notes" in report
    assert "| table | `colour`:" in report and "(first: `teal`)" in report


def test_transfuse_predict_prints_the_count(
    fitted: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fitted.save(tmp_path / "run")
    rows = frame(4).drop(columns="y").assign(colour=["red", "mauve", "mauve", "green"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    args = ["predict", str(run), "--data", str(tmp_path / "rows.csv")]
    assert main([*args, "--out", str(tmp_path / "scores.csv")]) == 0
    err = capsys.readouterr().err
    assert "note: inputs.table: colour: 2 rows in the unknown bucket (first: mauve)" in err
    assert "{" not in err  # words, not raw JSON
