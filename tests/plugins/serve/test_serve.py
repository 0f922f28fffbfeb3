"""``transfuse serve``'s app on a real uvicorn server: the same scores as ``transfuse predict``,
metadata, and bad or oversized requests answered with 4xx while the server stays up."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import transfuse
from transfuse.cli import main

COLUMNS = ["income", "age", "purpose", "owns_home"]


def as_json(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: NaN and None as null, numpy scalars as JSON ones."""
    rows = json.loads(frame.to_json(orient="records"))
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def test_predict_gives_the_scores_of_the_predict_command(client, tabular_run, tmp_path, applicants):
    rows = applicants(40, seed=7)[["id", *COLUMNS]]
    data, out = tmp_path / "rows.csv", tmp_path / "scores.csv"
    rows.to_csv(data, index=False)
    assert main(["predict", str(tabular_run), "--data", str(data), "--out", str(out)]) == 0
    expected = pd.read_csv(out)
    answer = client.post("/predict", json=as_json(rows))
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["predictions"])
    assert list(got.columns) == ["id", "p_0", "p_1"]
    assert got["id"].tolist() == rows["id"].tolist()
    np.testing.assert_allclose(got[["p_0", "p_1"]], expected[["p_0", "p_1"]], atol=1e-6, rtol=0)


def test_one_row_gets_one_prediction_equal_to_its_batch_score(client, tabular_run, applicants):
    rows = applicants(12, seed=3)[["id", *COLUMNS]]
    batch = client.post("/predict", json=as_json(rows)).json()["predictions"]
    pipeline = transfuse.load(tabular_run)
    direct = pipeline.predict(rows)
    for i, row in enumerate(as_json(rows)):
        answer = client.post("/predict", json=row)
        assert answer.status_code == 200, answer.text
        one = answer.json()["prediction"]
        assert one["id"] == row["id"]
        assert one["p_1"] == pytest.approx(batch[i]["p_1"], abs=1e-6)
        assert one["p_1"] == pytest.approx(direct["p_1"].iloc[i], abs=1e-6)


def test_the_key_may_be_left_out(client, applicants):
    row = as_json(applicants(1)[COLUMNS])[0]
    answer = client.post("/predict", json=row)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prediction"]["id"] is None


def test_health_and_metadata_describe_the_run(client, tabular_run):
    assert client.get("/health").json() == {"status": "ok", "run": tabular_run.name}
    meta = client.get("/metadata").json()
    assert meta["name"] == "serve-tabular" and meta["run"] == tabular_run.name
    assert meta["task"] == {"type": "binary", "target": "bad"}
    assert meta["score_columns"] == ["p_0", "p_1"]
    encoder = meta["components"]["inputs.applicant.encoder"]
    assert encoder["name"] == "tabular.mlp" and encoder["distribution"] == "transfuse-tabular"
    assert encoder["version"] and meta["transfuse"] == transfuse.__version__
    columns = meta["inputs"]["applicant"]["columns"]
    assert [c["column"] for c in columns] == COLUMNS
    assert {c["type"] for c in columns} == {"tabular"}
    assert meta["key"] == "id"
    assert meta["limits"] == {"max_rows": 50, "max_body_bytes": 65536, "files_by_path": False}


def test_the_openapi_page_shows_the_request_model(client):
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/metadata"} <= set(schema["paths"])
    row = schema["components"]["schemas"]["Row"]
    assert set(row["required"]) == set(COLUMNS)
    assert set(row["properties"]) == {"id", *COLUMNS}
    assert row["additionalProperties"] is False
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


GOOD = {"id": 1, "income": 52000.0, "age": 41, "purpose": "car", "owns_home": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in GOOD.items() if k != "age"}, "age"),  # a column left out
        ({**GOOD, "incme": 1.0}, "incme"),  # an unknown (misspelled) key
        ({**GOOD, "income": {"value": 1}}, "income"),  # not a scalar
        ([GOOD, {**GOOD, "purpose": [1, 2]}], "purpose"),  # the second row's column
    ],
    ids=["missing", "unknown", "object", "second-row"],
)
def test_a_malformed_row_gets_422_naming_the_field(client, body, field):
    content = json.dumps(body).encode()
    answer = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]  # one error, naming the field
    many = isinstance(body, list)
    assert error["loc"] == (["body", "rows", 1, field] if many else ["body", "row", field])
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_a_number_that_is_not_finite_gets_422(client, number):
    body = json.dumps({**GOOD, "income": 0.5}).replace("0.5", "@").encode()
    answer = client.post(
        "/predict",
        content=body.replace(b"@", number),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "row", "income"]


def test_a_value_the_encoder_refuses_gets_422_naming_the_column(client):
    answer = client.post("/predict", json={**GOOD, "income": "a lot"})
    assert answer.status_code == 422, answer.text
    message = answer.json()["detail"][0]["msg"]
    assert "income" in message
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 422),
        (b"", 422),
        (b"[]", 422),
        (b"42", 422),
        (b'"text"', 422),
        (b"null", 422),
        (b"[" * 20_000 + b"]" * 20_000, 422),  # past the JSON parser's recursion limit
        (json.dumps({**GOOD, "purpose": "car\ud800"}).encode(), 422),  # a lone surrogate
    ],
    ids=["broken", "empty", "no-rows", "number", "string", "null", "deeply-nested", "surrogate"],
)
def test_a_body_that_is_no_row_gets_4xx(client, content, status):
    answer = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert client.get("/health").status_code == 200


def test_more_rows_than_the_limit_get_422(client):
    answer = client.post("/predict", json=[GOOD] * 51)
    assert answer.status_code == 422
    assert "50" in answer.text
    assert client.post("/predict", json=[GOOD] * 50).status_code == 200


def test_a_body_over_the_size_limit_gets_413(client):
    big = json.dumps([{**GOOD, "purpose": "x" * 70_000}]).encode()
    answer = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "65536 bytes" in answer.json()["detail"]

    def chunks():  # no Content-Length: the limit counts the chunks as they arrive
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    answer = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert client.get("/health").status_code == 200


def test_unknown_paths_and_methods_get_4xx(client):
    assert client.get("/predict").status_code == 405
    assert client.get("/../../etc/passwd").status_code == 404
    assert client.post("/nothing", json={}).status_code == 404


def test_settings_are_checked_before_serving(tabular_run, tmp_path):
    from transfuse import ConfigError, DataError
    from transfuse_serve.app import ServeSettings

    with pytest.raises(DataError, match="no such run directory"):
        ServeSettings.checked(tmp_path / "nothing")
    with pytest.raises(DataError, match="--root"):
        ServeSettings.checked(tabular_run, root=tmp_path / "absent")
    with pytest.raises(ConfigError, match="--max-rows"):
        ServeSettings.checked(tabular_run, max_rows=0)
    assert Path(ServeSettings.checked(tabular_run).run).is_absolute()


@pytest.mark.skipif(
    not hasattr(transfuse.Pipeline, "explain"), reason="this core has no Pipeline.explain"
)
def test_explain_gives_each_rows_reasons(client, applicants):
    rows = as_json(applicants(3, seed=5)[["id", *COLUMNS]])
    answer = client.post("/explain", json=rows)
    assert answer.status_code == 200, answer.text
    explanations = answer.json()["explanations"]
    assert len(explanations) == 3
    assert all("logit" in e and isinstance(e["parts"], dict) for e in explanations)
    assert client.post("/explain", json={**rows[0], "age": [1]}).status_code == 422
    assert "/explain" in client.get("/openapi.json").json()["paths"]
