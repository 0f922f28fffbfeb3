"""The sequence plugin as installed: entry point, light import, modality inference, docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfuse_sequence import GruOptions, TransformerOptions, transfuse_infer_modality

ROOT = Path(__file__).resolve().parents[3]
EVENTS = [{"amount": 1.5, "mcc": "5411"}]


def test_installed_plugin_is_listed_as_active_with_its_encoders():
    out = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = next(r for r in json.loads(out) if r["name"] == "sequence")
    assert record["status"] == "active", record["error"]
    assert record["distribution"] == "transfuse-sequence"
    names = {c["name"] for c in record["components"] if c["modality"] == "sequence"}
    assert names == {"sequence.gru", "sequence.transformer"}


def test_importing_the_plugin_pulls_no_torch():
    code = "import sys, transfuse_sequence; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([EVENTS, None, [], EVENTS * 3], "sequence"),
        ([json.dumps(EVENTS), " ", '[{"amount": 2}]'], "sequence"),
        ([np.array(EVENTS, dtype=object)], "sequence"),
        ([[], []], None),  # only empty lists: could be anything
        ([[1, 2], [3]], None),
        (["[not json", json.dumps(EVENTS)], None),
        (["groceries", "rent"], None),
    ],
)
def test_transfuse_infer_modality_answers_sequence_for_event_lists_only(values, expected):
    assert transfuse_infer_modality(pd.Series(values, dtype=object)) == expected


def test_the_manager_asks_the_plugin(transfuse_manager, sequence_plugin):
    assert transfuse_manager.infer_modality(pd.Series([EVENTS] * 30, dtype=object)) == "sequence"


def test_the_reference_page_documents_every_option():
    page = (ROOT / "docs" / "reference" / "sequence.md").read_text("utf-8")
    page = page.split("## Options")[1].split("## Example")[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.M))
    assert rows == set(GruOptions.model_fields) | set(TransformerOptions.model_fields)
