"""Fuzzing the data path: whatever DataFrame reaches ``fit`` or ``predict``, the pipeline
trains (or predicts) or raises a TransfuseError, never another exception.

The pipeline is tiny and real: ``tabular.mlp`` over a numeric and a categorical column and
``text.tfidf`` over a text column, one epoch on the CPU. The frames draw each column's
dtype at random (floats with NaN and infinities, integers, booleans, numbers as strings,
mixed objects, categoricals), unicode and empty text, and labels of one, two or no class.
Derandomized with small example counts (``TRANSFUSE_FUZZ_EXAMPLES`` raises them).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from transfuse import Pipeline, PluginManager, TransfuseError

EXAMPLES = int(os.environ.get("TRANSFUSE_FUZZ_EXAMPLES", "0")) or None
FIT = settings(
    max_examples=EXAMPLES or 12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
PREDICT = settings(FIT, max_examples=EXAMPLES or 40)

CONFIG: dict[str, Any] = {
    "name": "fuzz",
    "task": {"type": "binary", "target": "y"},
    "data": {"test_size": 0.2, "validation_size": 0.25},
    "inputs": {
        "table": {"encoder": "tabular.mlp", "columns": ["num", "cat"], "options": {"dim": 8}},
        "note": {"encoder": "text.tfidf", "column": "note"},
    },
    "fusion": {"method": "fusion.concat"},
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False, "seed": 0},
}

#: Mostly repeated words (so a fitted vocabulary has terms), some arbitrary unicode.
text = st.one_of(
    st.sampled_from(["paid on time", "late payment", "new client ü", "paid late 📈", "  "]),
    st.text(max_size=30),
)
weird = st.one_of(
    st.none(),
    st.just(np.nan),
    st.just(""),
    st.just("   "),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.sampled_from(["1e400", "-0", "nan", "inf", "1,5", "📈", "\x00", "é" * 50]),
)


def _column(kind: str, n: int, draw: Any) -> pd.Series:
    """One column of ``n`` values of the drawn kind."""
    if kind == "float":
        values = draw(
            st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)
        )
        return pd.Series(values, dtype="float64")
    if kind == "int":
        values = draw(st.lists(st.integers(-(2**31), 2**31), min_size=n, max_size=n))
        return pd.Series(values, dtype="int64")
    if kind == "nullable-int":
        values = draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=n, max_size=n))
        return pd.Series(values, dtype="Int64")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "text":
        values = draw(st.lists(st.one_of(text, st.just(""), st.none()), min_size=n, max_size=n))
        return pd.Series(values, dtype=object)
    if kind == "string":
        values = draw(st.lists(st.one_of(text, st.none()), min_size=n, max_size=n))
        return pd.Series(values, dtype="string")
    if kind == "category":
        values = draw(st.lists(st.sampled_from(["a", "b", "ü", ""]), min_size=n, max_size=n))
        return pd.Series(values, dtype="category")
    if kind == "datetime":
        return pd.Series(pd.date_range("2020-01-01", periods=n, freq="D"))
    values = draw(st.lists(weird, min_size=n, max_size=n))  # "mixed"
    return pd.Series(values, dtype=object)


# Repeats weight the draw: most frames should reach training, some be refused.
KINDS = [*["float", "int", "nullable-int", "bool", "text", "string", "category", "mixed"] * 2,
         "datetime"]  # fmt: skip
LABELS = ["two", "two", "two", "strings", "strings", "one", "missing", "floats", "mixed"]


@st.composite
def frames(draw: Any, *, min_rows: int = 0, label: bool = True) -> pd.DataFrame:
    """A frame with the pipeline's columns, each of a random kind."""
    n = draw(st.integers(min_value=min_rows, max_value=30))
    data = {name: _column(draw(st.sampled_from(KINDS)), n, draw) for name in ("num", "cat", "note")}
    if label:
        how = draw(st.sampled_from(LABELS))
        if how == "two":
            y: list[Any] = [i % 2 for i in range(n)]
        elif how == "strings":
            y = [["good", "bäd"][i % 2] if i < 2 else draw(st.sampled_from(["good", "bäd"]))
                 for i in range(n)]  # fmt: skip
        elif how == "one":
            y = [1] * n
        elif how == "missing":
            y = [draw(st.sampled_from([0, 1, None])) for _ in range(n)]
        elif how == "floats":
            y = draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n))
        else:
            y = draw(st.lists(weird, min_size=n, max_size=n))
        data["y"] = pd.Series(y, dtype=object if how in {"mixed", "missing"} else None)
    frame = pd.DataFrame(data)
    if draw(st.booleans()):
        frame.index = pd.Index(draw(st.lists(weird, min_size=n, max_size=n)), dtype=object)
    shape = draw(st.sampled_from([*["as is"] * 6, "repeat a column", "drop a column", "extra"]))
    name = draw(st.sampled_from(list(frame.columns)))
    if shape == "repeat a column":
        frame = pd.concat([frame, frame[[name]]], axis=1)
    elif shape == "drop a column":
        frame = frame.drop(columns=name)
    elif shape == "extra":
        frame[draw(st.one_of(st.integers(), text))] = draw(weird)
    return frame


def _fit(frame: pd.DataFrame, manager: PluginManager) -> tuple[Pipeline | None, str]:
    """The fitted pipeline (None when refused) and what happened."""
    pipeline = Pipeline.from_config(CONFIG, manager=manager)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.fit(frame)
    except TransfuseError as exc:
        assert "\n" not in str(exc)
        return None, f"refused: {exc.what[:40]}"
    return pipeline, "trained"


@pytest.fixture(scope="module")
def installed() -> PluginManager:
    """The installed plugins (tabular, text), not the test's core-only manager."""
    return PluginManager()


def _clean(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "cat": rng.choice(["red", "green", "blue"], size=n),
            "note": rng.choice(["paid on time", "late twice", "new customer"], size=n),
            "y": np.arange(n) % 2,
        }
    )


@pytest.fixture(scope="module")
def fitted(installed: PluginManager) -> Pipeline:
    """The pipeline trained once on clean rows, for the predict fuzz."""
    pipeline, _ = _fit(_clean(), installed)
    assert pipeline is not None
    return pipeline


def test_the_pipeline_trains_on_clean_rows(fitted: Pipeline) -> None:
    assert fitted.predict(_clean(5)).shape == (5, 2)


def test_predict_on_no_rows_gives_no_scores(fitted: Pipeline) -> None:
    # found by the predict fuzz on CI: rows prepared up-front joined zero chunks
    assert fitted.predict(_clean(5).iloc[:0]).shape == (0, 2)


@pytest.mark.slow
@FIT
@given(frame=frames(min_rows=10))  # fewer rows: tests/core/test_bad_data.py
def test_fit_on_any_frame_trains_or_is_a_transfuse_error(
    installed: PluginManager, frame: pd.DataFrame
) -> None:
    pipeline, outcome = _fit(frame, installed)
    event(outcome)  # pytest --hypothesis-show-statistics lists how often each happened
    if pipeline is not None:
        scores = pipeline.predict(frame)
        assert len(scores) == len(frame)


@pytest.mark.slow
@PREDICT
@given(frame=frames(label=False))
def test_predict_on_any_frame_scores_or_is_a_transfuse_error(
    fitted: Pipeline, frame: pd.DataFrame
) -> None:
    try:
        scores = fitted.predict(frame)
    except TransfuseError as exc:
        assert "\n" not in str(exc)
        return
    assert scores.shape == (len(frame), 2)
    assert np.isfinite(scores.to_numpy()).all()


@pytest.mark.slow
@PREDICT
@given(frame=frames())
def test_evaluate_on_any_frame_measures_or_is_a_transfuse_error(
    fitted: Pipeline, frame: pd.DataFrame
) -> None:
    try:
        metrics = fitted.evaluate(frame)
    except TransfuseError as exc:
        assert "\n" not in str(exc)
        return
    assert "loss" in metrics


@pytest.mark.parametrize(
    "rows", [_clean(3).to_dict(), _clean(3)["num"], _clean(3).to_numpy(), None, 3.5]
)
def test_rows_that_are_not_a_dataframe_are_a_transfuse_error(fitted: Pipeline, rows: Any) -> None:
    for call in (fitted.predict, fitted.evaluate):
        with pytest.raises(TransfuseError, match="must be a pandas DataFrame"):
            call(rows)


def test_a_rows_path_that_does_not_exist_is_one_line(fitted: Pipeline) -> None:
    for call in (fitted.predict, fitted.evaluate):  # a path is read as --data reads it
        with pytest.raises(TransfuseError, match=r"rows.csv: no such file .*check the path"):
            call("rows.csv")


#: Train settings to fuzz, each with values around and past its limits; not epochs (a huge
#: count is a valid, endless run), compile (slow on a CPU) or num_workers (processes).
extremes = st.sampled_from([0, 1e-300, 1e300, 3.4e39, float("inf"), float("nan"), -1])
TRAIN_VALUES: dict[str, Any] = {
    "batch_size": st.one_of(st.integers(-5, 10**13), extremes),
    "lr": st.one_of(st.floats(0, 1e3), extremes),
    "weight_decay": st.one_of(st.floats(0, 1e6), extremes),
    "warmup": st.one_of(st.floats(-1, 2), extremes),
    "grad_clip": st.one_of(st.none(), st.floats(0, 10), extremes),
    "patience": st.one_of(st.integers(-2, 10**12), extremes),
    "metric": st.sampled_from(["roc_auc", "loss", "ks", "brier", "rmse", "foo", None]),
    "device": st.sampled_from(["cpu", "auto", "CPU ", "cuda", "cuda:7", "mps", "tpu9"]),
    "precision": st.sampled_from(["auto", "fp32", "bf16", "fp16", "fp8"]),
    "seed": st.one_of(st.integers(-(2**40), 2**40), extremes),
}


@pytest.mark.slow
@FIT
@given(
    changes=st.lists(
        st.sampled_from(sorted(TRAIN_VALUES)), min_size=1, max_size=3, unique=True
    ).flatmap(lambda keys: st.fixed_dictionaries({k: TRAIN_VALUES[k] for k in keys}))
)
def test_any_train_settings_train_or_are_a_transfuse_error(
    installed: PluginManager, changes: dict[str, Any]
) -> None:
    config = {**CONFIG, "train": {**CONFIG["train"], **changes}}
    try:
        pipeline = Pipeline.from_config(config, manager=installed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline.fit(_clean())
    except TransfuseError as exc:
        assert "\n" not in str(exc)
        event(f"refused: {exc.what[:40]}")
        return
    event("trained")
