"""The tabular plugin as installed: entry point, light import, modality inference, docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfuse_tabular import transfuse_encoders, transfuse_infer_modality

ROOT = Path(__file__).resolve().parents[3]


def test_installed_plugin_is_listed_as_active_with_its_encoders():
    out = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = next(r for r in json.loads(out) if r["name"] == "tabular")
    assert record["status"] == "active", record["error"]
    assert record["distribution"] == "transfuse-tabular"
    names = {c["name"] for c in record["components"] if c["kind"] == "encoder"}
    assert names == {"tabular.mlp", "tabular.ft-transformer", "tabular.gbdt"}


def test_importing_the_plugin_pulls_no_heavy_module():
    code = (
        "import sys, transfuse_tabular; "
        "print([m for m in ('torch', 'lightgbm', 'sklearn', 'scipy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.5, 2.0, None]),
        pd.Series([1, 2, 3]),
        pd.Series([True, False, True]),
        pd.Series(["a", "b", "c"], dtype="category"),
        pd.Series(["RENT", "OWN", "MORTGAGE"] * 20),
    ],
)
def test_numbers_yes_no_and_repeated_short_strings_are_tabular(column):
    assert transfuse_infer_modality(column) == "tabular"


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([f"free text number {i} about my small business plans" for i in range(50)]),
        pd.Series(["statement.png", "scan.png"] * 20),
        pd.Series(pd.to_datetime(["2020-01-01", "2021-01-01"])),
        pd.Series([None, None], dtype=object),
    ],
)
def test_free_text_files_dates_and_empty_columns_are_left_to_others(column):
    assert transfuse_infer_modality(column) is None


def test_the_core_manager_asks_the_plugin(tabular):
    assert tabular.infer_modality(pd.Series(np.arange(5.0))) == "tabular"


def test_reference_docs_list_every_option_of_every_encoder():
    text = (ROOT / "docs" / "reference" / "tabular.md").read_text()
    for entry in transfuse_encoders():
        assert f"## `{entry.name}`" in text
        section = text.split(f"## `{entry.name}`", 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
        assert documented == set(entry.options.model_fields), entry.name
