"""``transfuse data describe``: a data source's rows, columns, types and label balance."""

from __future__ import annotations

import json

import pandas as pd

from transfuse.cli import main


def _table(tmp_path):
    path = tmp_path / "loans.csv"
    pd.DataFrame(
        {
            "loan_id": [1, 2, 3, 4],
            "income": [10.0, None, 30.0, 40.0],
            "title": ["nurse", "chef", None, "nurse"],
            "bad": [0, 1, 0, 0],
        }
    ).to_csv(path, index=False)
    return path


def test_describe_prints_columns_types_missing_shares_and_the_label_balance(tmp_path, capsys):
    path = _table(tmp_path)
    code = main(["data", "describe", "csv", "--option", f"path={path}", "--target", "bad"])
    out = capsys.readouterr().out
    assert code == 0
    assert "csv: 4 rows, 4 columns" in out
    assert "label 'bad': 0: 3 (75.0%), 1: 1 (25.0%)" in out
    income = next(line for line in out.splitlines() if line.strip().startswith("income"))
    assert "number" in income and "25.0%" in income


def test_describe_as_json_gives_each_column(tmp_path, capsys):
    path = _table(tmp_path)
    assert main(["data", "describe", "csv", "--option", f"path={path}", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["rows"] == 4 and found["target"] is None
    title = next(c for c in found["columns"] if c["name"] == "title")
    assert (title["type"], title["distinct"], title["example"]) == ("text", 2, "nurse")


def test_an_unknown_label_column_is_a_one_line_error_naming_the_columns(tmp_path, capsys):
    path = _table(tmp_path)
    code = main(["data", "describe", "csv", "--option", f"path={path}", "--target", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "label column 'nope' not in the table" in err and "income" in err


def test_an_option_without_a_value_is_a_one_line_error(capsys):
    assert main(["data", "describe", "csv", "--option", "path"]) == 2
    assert "write KEY=VALUE" in capsys.readouterr().err
