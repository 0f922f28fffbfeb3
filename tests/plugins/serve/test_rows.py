"""The request model per modality, and validated rows turned into the run's DataFrame."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from transfuse_serve.rows import Column, FileReader, row_model, to_frame

COLUMNS = [
    Column("income", "tabular", ("applicant",), "tabular.mlp"),
    Column("note", "text", ("note",), "text.tfidf"),
    Column("history", "sequence", ("history",), "sequence.gru"),
    Column("scan", "image", ("scan",), "image.timm"),
    Column("blob", "document", ("blob",), "third.party"),  # an unknown modality
    Column("id", "key", (), None),  # optional: left out, it is missing
]
Row = TypeAdapter(row_model(COLUMNS))
GOOD = {
    "income": 1.5,
    "note": "paid on time",
    "history": [{"amount": 12.5, "mcc": "5411"}],
    "scan": {"base64": base64.b64encode(b"\x89PNG").decode()},
    "blob": None,
    "id": 7,
}


def test_each_modality_takes_its_kind_of_value():
    row = Row.validate_python(GOOD)
    assert row["history"] == [{"amount": 12.5, "mcc": "5411"}]
    assert row["scan"].base64 == b"\x89PNG"
    as_text = Row.validate_python({**GOOD, "history": '[{"amount": 1}]'})  # JSON text too
    assert as_text["history"] == '[{"amount": 1}]'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("note", 3),  # text is a string
        ("history", [1, 2]),  # events are records
        ("scan", {"base64": "***"}),  # not base64
        ("blob", 3),  # an unknown modality is file-valued
        ("income", [1.0]),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_naming_the_column(field, value):
    with pytest.raises(ValidationError) as info:
        Row.validate_python({**GOOD, field: value})
    assert all(error["loc"][0] == field for error in info.value.errors())


def test_only_the_key_may_be_left_out():
    assert "id" not in Row.validate_python({k: v for k, v in GOOD.items() if k != "id"})
    with pytest.raises(ValidationError, match="note"):
        Row.validate_python({k: v for k, v in GOOD.items() if k != "note"})


def test_rows_become_the_runs_columns_with_file_bytes(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"from disk")
    rows = [
        Row.validate_python(GOOD),
        Row.validate_python({**GOOD, "income": None, "scan": "a.bin", "blob": ""}),
    ]
    frame = to_frame(rows, COLUMNS, FileReader(tmp_path, 1000), many=True)
    assert list(frame.columns) == [c.name for c in COLUMNS]
    assert frame["income"].dtype == np.float64 and np.isnan(frame.loc[1, "income"])
    assert frame["scan"].tolist() == [b"\x89PNG", b"from disk"]
    assert frame["blob"].isna().all()  # an empty path is a missing file


def test_an_all_missing_number_column_is_nan_as_from_a_csv_file():
    rows = [Row.validate_python({**GOOD, "income": None})]
    frame = to_frame(rows, COLUMNS, FileReader(None, 10), many=False)
    assert frame["income"].dtype == np.float64
