"""Bad data handed to ``fit`` is one DataError line that says what, where and what to do,
before anything trains: missing columns (all of them listed), an empty table, an input empty
in every row, no label, repeated column names, a binary label with one or four classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from transfuse import DataError, Pipeline, PluginManager

CONFIG: dict[str, Any] = {
    "name": "bad-data",
    "task": {"type": "binary", "target": "y"},
    "inputs": {"t": {"encoder": "tabular.mlp", "columns": ["a", "b"]}},
    "train": {"epochs": 1, "device": "cpu", "progress": False},
}


def rows(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(n, dtype=float), "b": list("xy") * (n // 2),
                         "y": np.arange(n) % 2})  # fmt: skip


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing-columns": (
        lambda f: f.drop(columns=["a", "b"]),
        ["inputs.t.columns: columns 'a', 'b' are not in the table", "the table has: y"],
    ),
    "empty-table": (lambda f: f.iloc[:0], ["data: the table has no rows"]),
    "input-empty-in-every-row": (
        lambda f: f.assign(a=np.nan, b=None),
        ["inputs.t: columns 'a', 'b' of input 't' are empty in every row"],
    ),
    "no-label": (lambda f: f.assign(y=np.nan), ["no row has a label in column 'y'"]),
    "repeated-column": (
        lambda f: pd.concat([f, f[["a"]]], axis=1),
        ["the table has several columns named 'a'"],
    ),
    "one-class": (
        lambda f: f.assign(y=1),
        ["column 'y': a binary task needs exactly two classes, found 1", "multiclass"],
    ),
    "four-classes": (
        lambda f: f.assign(y=list("abcd") * 5),
        ["a binary task needs exactly two classes, found 4"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_is_one_data_error_line_naming_the_place(case: str) -> None:
    change, expected = CASES[case]
    pipeline = Pipeline.from_config(CONFIG, manager=PluginManager())
    with pytest.raises(DataError) as err:
        pipeline.fit(change(rows()))
    message = str(err.value)
    assert "\n" not in message and err.value.fix
    for part in expected:
        assert part in message
    assert pipeline.model is None  # refused before a model was built
