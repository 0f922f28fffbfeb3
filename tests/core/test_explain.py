"""Row explanations end to end: a generated run whose label depends on one column and one
word only, explained through ``transfuse explain`` and ``Pipeline.explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("transfuse_tabular")
pytest.importorskip("transfuse_text")

import transfuse
from transfuse.cli import main
from transfuse.explain import explain_rows, shapley_weights
from transfuse.reasons import CODE_FILE
from transfuse.train import predict_logits

WORDS = ["manager", "driver", "teacher", "nurse", "clerk", "sales", "owner", "analyst"]
SIGNAL_WORD = "gambling"


def make_rows(n: int, seed: int) -> pd.DataFrame:
    """``bad`` iff ``income_gap > 0`` and the job text has the signal word; ``age`` and
    ``home`` are noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    signal += np.sign(signal) * 0.25  # a margin: no label is a matter of a rounding
    flag = rng.random(n) < 0.5
    texts = []
    for has in flag:
        words = list(rng.choice(WORDS, size=3, replace=False)) + ([SIGNAL_WORD] if has else [])
        texts.append(" ".join(rng.permutation(words)))
    return pd.DataFrame(
        {
            "id": [f"app-{seed}-{i}" for i in range(n)],
            "income_gap": signal,
            "age": rng.normal(40, 10, size=n).round(),
            "home": rng.choice(["rent", "own", "mortgage"], size=n),
            "job": texts,
            "bad": ((signal > 0) & flag).astype(int),
        }
    )


CONFIG: dict[str, Any] = {
    "name": "explain-test",
    "task": {"type": "binary", "target": "bad"},
    "data": {"key": "id"},
    "inputs": {
        "applicant": {"encoder": "tabular.mlp", "columns": ["income_gap", "age", "home"]},
        "job": {"encoder": "text.bag-of-words", "column": "job", "options": {"buckets": 1024}},
    },
    "train": {"epochs": 10, "batch_size": 32, "lr": 3e-3, "device": "cpu", "progress": False},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = make_rows(500, seed=0)
    pipeline = transfuse.Pipeline.from_config(CONFIG).fit(frame)
    assert pipeline.metrics["validation"]["roc_auc"] > 0.95
    return pipeline.save(tmp_path_factory.mktemp("runs") / "run")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    make_rows(200, seed=1).drop(columns=["bad"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def explained(run: Path, rows: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("out") / "explained.csv"
    assert main(["explain", str(run), "--data", str(rows), "--out", str(out), "--top", "3"]) == 0
    return pd.read_csv(out)


def _top_part(parts: dict[str, list[dict[str, Any]]], name: str) -> str:
    return str(max(parts[name], key=lambda p: p["attribution"])["part"])


def test_the_signal_column_and_word_rank_first_for_positive_rows(
    explained: pd.DataFrame, rows: Path
) -> None:
    truth = make_rows(200, seed=1)
    positive = truth.index[truth["bad"] == 1]
    assert len(positive) > 20
    parts = [json.loads(explained.loc[i, "parts"]) for i in positive]
    column_first = np.mean([_top_part(p, "applicant") == "income_gap" for p in parts])
    word_first = np.mean([_top_part(p, "job") == SIGNAL_WORD for p in parts])
    assert column_first >= 0.9
    assert word_first >= 0.9


def test_one_output_row_per_input_row_keyed_by_data_key(
    explained: pd.DataFrame, rows: Path
) -> None:
    given = pd.read_csv(rows)
    assert list(explained.columns[:1]) == ["id"]
    assert explained["id"].tolist() == given["id"].tolist()
    assert {"logit", "baseline_logit", "input.applicant", "input.job", "reason_3"} <= set(
        explained.columns
    )


def test_inputs_and_parts_add_up_to_the_logit(explained: pd.DataFrame) -> None:
    inputs = explained["input.applicant"] + explained["input.job"]
    assert np.abs(explained["baseline_logit"] + inputs - explained["logit"]).max() < 1e-3
    for _, row in explained.iterrows():
        parts = json.loads(row["parts"])
        for name in ("applicant", "job"):
            total = sum(p["attribution"] for p in parts[name])
            assert total == pytest.approx(row[f"input.{name}"], abs=1e-3)


def test_reasons_name_the_signal_with_its_value_and_a_code(
    explained: pd.DataFrame, run: Path
) -> None:
    codes = json.loads((run / CODE_FILE).read_text("utf-8"))["codes"]
    by_factor = {c["factor"]: c["code"] for c in codes}
    assert list(by_factor) == ["applicant.income_gap", "applicant.age", "applicant.home", "job"]
    risky = explained.sort_values("logit").iloc[-1]
    reasons = {risky["reason_1"], risky["reason_2"]}
    assert f"job: '{SIGNAL_WORD}'" in reasons
    gap = next(r for r in reasons if r.startswith("income_gap "))
    assert "higher than" in gap and "% of training rows" in gap
    codes_given = {risky["code_1"], risky["code_2"]}
    assert codes_given == {by_factor["applicant.income_gap"], by_factor["job"]}


def test_codes_are_stable_and_the_output_deterministic(
    run: Path, rows: Path, explained: pd.DataFrame, tmp_path: Path
) -> None:
    table = run / CODE_FILE
    # a factor that no longer exists keeps its code; new factors are appended after it
    data = json.loads(table.read_text("utf-8"))
    data["codes"].insert(0, {"code": "R01", "factor": "applicant.gone", "input": "applicant"})
    for i, row in enumerate(data["codes"][1:], start=2):
        row["code"] = f"R{i:02d}" if row["factor"] != "job" else "R99"
    table.write_text(json.dumps(data), "utf-8")
    before = json.loads(table.read_text("utf-8"))["codes"]
    out = tmp_path / "again.csv"
    assert main(["explain", str(run), "--data", str(rows), "--out", str(out), "--top", "3"]) == 0
    assert json.loads(table.read_text("utf-8"))["codes"] == before
    again = pd.read_csv(out)
    pd.testing.assert_frame_equal(
        again.drop(columns=[c for c in again if c.startswith("code_")]),
        explained.drop(columns=[c for c in explained if c.startswith("code_")]),
    )
    risky = again.sort_values("logit").iloc[-1]
    assert "R99" in {risky["code_1"], risky["code_2"]}


def test_pipeline_explain_keeps_the_frame_index(run: Path) -> None:
    frame = make_rows(12, seed=2).drop(columns=["bad"])
    frame.index = [f"r{i}" for i in range(12)]
    pipeline = transfuse.load(run)
    result = pipeline.explain(frame, top=2)
    assert list(result.index) == list(frame.index)
    assert pipeline.model is not None and pipeline.device is not None
    logits = predict_logits(pipeline.model, pipeline.frame_batches(frame), pipeline.device)
    assert np.allclose(result["logit"].to_numpy(), logits[:, 0], atol=1e-4)


def test_shapley_weights_make_a_complete_split() -> None:
    for k in range(1, 6):
        w = shapley_weights(k)
        # each player's coalitions without it: sum over sizes of C(k-1, s) w[s] == 1
        from math import comb

        assert sum(comb(k - 1, s) * w[s] for s in range(k)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("raw", "total"),
    [
        ([0.3, 0.1, 0.0], 0.8),  # one sign: a rescaling, order kept
        ([0.02, 0.013, -0.034], -0.19),  # both signs nearly cancelling (MiniLM word occlusion)
        ([0.02, 0.013, -0.0329], 0.19),
        ([0.0, 0.0], -0.5),  # nothing found: spread evenly
    ],
)
def test_completed_parts_add_up_and_move_no_more_than_the_gap(raw: list, total: float) -> None:
    from transfuse.explain import _complete

    found = np.asarray(raw)
    done = _complete(found, total)
    assert done.sum() == pytest.approx(total)
    assert np.abs(done - found).max() <= abs(total - found.sum()) + 1e-12
    if (found >= 0).all() and found.sum() > 0:
        assert np.allclose(done, found * total / found.sum())


def test_a_missing_input_gets_no_share(run: Path) -> None:
    frame = make_rows(6, seed=3).drop(columns=["bad"])
    frame.loc[frame.index[:3], "job"] = None
    explained = explain_rows(transfuse.load(run), frame)
    assert np.allclose(explained.inputs["job"][:3], 0.0)
    assert all(len(labels) == 0 for labels in explained.parts["job"].labels[:3])
    assert np.abs(explained.inputs["job"][3:]).max() > 0


def test_a_run_that_does_not_exist_is_a_one_line_error(
    tmp_path: Path, rows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["explain", str(tmp_path / "nope"), "--data", str(rows), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such run directory" in err


def test_rows_missing_a_column_are_a_one_line_error(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    make_rows(5, seed=4).drop(columns=["bad", "age"]).to_csv(bad, index=False)
    out = tmp_path / "o.csv"
    assert main(["explain", str(run), "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'age'" in err
    assert not out.exists()


def test_the_report_shows_attribution_per_input_and_column(run: Path) -> None:
    report = (run / "report.md").read_text("utf-8")
    assert "## Attribution per input and per column" in report
    assert "attribution.png" in report and (run / "attribution.png").is_file()
    view = json.loads((run / "metrics.json").read_text("utf-8"))["attribution"]
    columns = view["columns"]
    assert max(columns, key=columns.get) == "applicant.income_gap"
    assert set(view["inputs"]) == {"applicant", "job"} and view["rows"] > 0


def test_saliency_maps_are_written_as_pictures(tmp_path: Path) -> None:
    from transfuse.explain import Explanations, InputParts
    from transfuse.reasons import write_maps

    saliency = np.outer(np.arange(8.0), np.ones(6))
    parts = InputParts(
        labels=[["centre"], []], scores=[np.ones(1), np.zeros(0)], raw=[np.ones(1), np.zeros(0)],
        values=[[""], []], notes=[[""], []], method="m", baseline="b", complete=False,
        fixed=None, maps=[saliency, None],
    )  # fmt: skip
    explained = Explanations(
        index=pd.RangeIndex(2), output="logit", logit=np.ones(2), baseline=np.zeros(2),
        inputs={"statement": np.ones(2)}, parts={"statement": parts},
    )  # fmt: skip
    assert write_maps(explained, ["app/1", "app 2"], tmp_path / "maps") == 1
    from PIL import Image

    with Image.open(tmp_path / "maps" / "app_1_statement.png") as picture:
        assert picture.size == (6, 8)


def test_the_riskiest_rows_come_with_their_reasons(run: Path) -> None:
    from transfuse.explain import riskiest

    frame = make_rows(40, seed=5).drop(columns=["bad"])
    lines = riskiest(transfuse.load(run), frame, n=3, top=2)
    assert len(lines) == 3 and lines[0].startswith("1. `app-5-")
    assert f"job: '{SIGNAL_WORD}'" in lines[0] and "income_gap " in lines[0]
