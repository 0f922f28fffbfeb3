"""Turning a column of raw values into texts, and telling which rows are missing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transfuse import DataError

__all__ = ["is_missing_text", "missing_texts", "to_texts"]


def is_missing_text(value: Any) -> bool:
    """None, NaN, pd.NA and blank strings are a missing text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _column(values: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise DataError(
                f"a text encoder reads one column, got {values.shape[1]}: {list(values.columns)}",
                where="inputs",
                fix="give the input a single `column:`, or one input per text column",
            )
        return values.iloc[:, 0]
    return values


def missing_texts(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """A boolean array, true where the row has no text."""
    return np.array([is_missing_text(v) for v in _column(values).tolist()], dtype=bool)


def to_texts(values: pd.Series | pd.DataFrame) -> list[str]:
    """One string per row; a missing value becomes the empty string."""
    return ["" if is_missing_text(v) else str(v) for v in _column(values).tolist()]
