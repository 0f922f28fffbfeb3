"""The built-in csv and parquet sources: reading, column selection, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from transfuse import DataError
from transfuse.plugins import PluginManager
from transfuse.testing import check_data_source

FRAME = pd.DataFrame(
    {
        "annual_income": [52000.0, 81000.5, None],
        "emp_title": ["nurse", "welder; part-time", "teacher"],
        "bad_loan": [0, 1, 0],
    }
)


def load(manager: PluginManager, name: str, path: Path, columns: list[str] | None = None):
    entry = manager.get("data_source", name)
    return entry.load()(entry.validate_options({"path": str(path), "columns": columns})).load()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    csv, parquet = tmp_path / "loans.csv", tmp_path / "loans.parquet"
    FRAME.to_csv(csv, index=False)
    FRAME.to_parquet(parquet, index=False)
    return {"csv": csv, "parquet": parquet}


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_builtin_sources_pass_the_conformance_check(transfuse_manager, files, name):
    frame = check_data_source(
        transfuse_manager.get("data_source", name), options={"path": str(files[name])}
    )
    pd.testing.assert_frame_equal(frame, FRAME, check_dtype=False)


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_columns_are_read_in_the_order_asked(transfuse_manager, files, name):
    frame = load(transfuse_manager, name, files[name], ["bad_loan", "annual_income"])
    assert list(frame.columns) == ["bad_loan", "annual_income"]
    assert frame["bad_loan"].tolist() == [0, 1, 0]


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_a_missing_file_is_a_data_error_naming_it(transfuse_manager, tmp_path, name):
    path = tmp_path / f"nowhere.{name}"
    with pytest.raises(DataError, match="file not found") as info:
        load(transfuse_manager, name, path)
    assert str(path) in str(info.value) and "data.options.path" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["csv", "parquet"])
def test_a_missing_column_is_a_data_error_listing_the_real_ones(transfuse_manager, files, name):
    with pytest.raises(DataError, match=r"\['income'\] not in the") as info:
        load(transfuse_manager, name, files[name], ["bad_loan", "income"])
    assert str(files[name]) in str(info.value) and "annual_income" in str(info.value)


def test_a_file_that_is_not_parquet_is_a_data_error(transfuse_manager, files):
    with pytest.raises(DataError, match="cannot read it as parquet") as info:
        load(transfuse_manager, "parquet", files["csv"])
    assert str(files["csv"]) in str(info.value) and "\n" not in str(info.value)


def test_an_unreadable_csv_is_a_data_error(transfuse_manager, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('a,b\n1,"unterminated\n', encoding="utf-8")
    with pytest.raises(DataError, match="cannot read it as CSV") as info:
        load(transfuse_manager, "csv", path)
    assert str(path) in str(info.value)


def test_an_empty_csv_is_a_data_error(transfuse_manager, tmp_path):
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("", encoding="utf-8")
    header_only.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="CSV file is empty"):
        load(transfuse_manager, "csv", empty)
    with pytest.raises(DataError, match="has no rows"):
        load(transfuse_manager, "csv", header_only)


def test_a_semicolon_csv_is_split_on_semicolons(transfuse_manager, tmp_path):
    path = tmp_path / "european.csv"
    path.write_text("income;status\n1200,5;good\n900;bad\n", encoding="utf-8")
    frame = load(transfuse_manager, "csv", path)
    assert list(frame.columns) == ["income", "status"]
    assert frame["status"].tolist() == ["good", "bad"]


def test_a_compressed_csv_is_read(transfuse_manager, tmp_path):
    path = tmp_path / "loans.csv.gz"
    FRAME.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load(transfuse_manager, "csv", path), FRAME, check_dtype=False)
