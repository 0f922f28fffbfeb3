"""The fitted column schema shared by the tabular encoders.

:class:`TableSchema` learns from training rows which columns are numeric, categorical or
boolean, the numeric statistics (mean, std, quantiles, bin edges) and the categorical
vocabularies, and turns any later frame into arrays: raw numbers (NaN where missing) and
category codes (0 = missing, 1 = unknown, 2.. = the vocabulary in a stable order).

A free-text column listed under ``text_statistics`` becomes numeric columns, one per
:data:`TEXT_STATISTICS` (``"note:words"``, ``"note:capitals"``, ...), computed from the text
whenever a frame is turned into numbers: the length and style of a text, which a bag of
words does not see, for a table encoder beside a text encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from torch import nn

from transfuse.errors import ConfigError, DataError

__all__ = [
    "MISSING",
    "TEXT_STATISTICS",
    "UNKNOWN",
    "Column",
    "TableSchema",
    "as_frame",
    "category_key",
]

Kind = Literal["numeric", "categorical", "boolean"]

#: Category code of a missing value.
MISSING = 0
#: Category code of a value outside the vocabulary (unseen, or rarer than min_frequency).
UNKNOWN = 1
_QUANTILES = 1000
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_RESERVED = set(dir(nn.ModuleDict()))

#: What a ``text_statistics`` column becomes: statistic -> the regular expression whose
#: matches are counted (``characters``: the text's length; ``link`` and ``leading_quote``:
#: 0 or 1; ``capitals``: Latin capital letters, accented ones included).
TEXT_STATISTICS: dict[str, str] = {
    "characters": "",
    "words": r"\S+",
    "capitals": "[A-Z\u00c0-\u00d6\u00d8-\u00de]",
    "digits": r"\d",
    "punctuation": r"[^\w\s]",
    "exclamations": "!",
    "questions": r"\?",
    "quotes": '["\u201c\u201d]',
    "mentions": "@",
    "hashtags": "#",
    "link": r"https?://|www\.",
    "leading_quote": '^\\s*["\u201c]',
}
_FLAGS = {"link", "leading_quote"}


def _text_statistics(series: pd.Series) -> pd.DataFrame:
    """A text column's :data:`TEXT_STATISTICS`, one float column each (NaN where the text is
    missing)."""
    present = series.notna()
    text = series.where(present, "").astype(str)
    out: dict[str, np.ndarray] = {}
    for name, pattern in TEXT_STATISTICS.items():
        if name == "characters":
            values = text.str.len()
        elif name in _FLAGS:
            values = text.str.contains(pattern, regex=True).astype(float)
        else:
            values = text.str.count(pattern)
        column = values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        column[~present.to_numpy()] = np.nan
        out[name] = column
    return pd.DataFrame(out, index=series.index)


@dataclass
class Column:
    """One fitted column: its name, its ModuleDict key, its kind and what fit learned."""

    name: str
    key: str
    kind: Kind
    mean: float = 0.0
    std: float = 1.0
    quantiles: list[float] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    missing_fraction: float = 0.0
    #: For a text statistic: the text column it is computed from, and which statistic.
    source: str = ""
    statistic: str = ""

    @property
    def cardinality(self) -> int:
        """Rows of this column's embedding table: missing, unknown, then the vocabulary."""
        return 2 + len(self.vocabulary)


def as_frame(values: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """A one-column input arrives as a Series; treat it as a one-column frame."""
    if isinstance(values, pd.Series):
        return values.to_frame(name=str(values.name) if values.name is not None else "value")
    return values


def category_key(value: Any) -> str:
    """The vocabulary key of a category value: its text, with 3.0 written as 3."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _safe_keys(names: Sequence[str]) -> list[str]:
    """ModuleDict keys for column names: '.' -> '__', reserved names prefixed, made unique."""
    keys: list[str] = []
    for name in names:
        key = name.replace(".", "__") or "_"
        if key in _RESERVED:
            key = f"col_{key}"
        base, n = key, 1
        while key in keys:
            n += 1
            key = f"{base}_{n}"
        keys.append(key)
    return keys


def _numbers(series: pd.Series, column: str) -> np.ndarray:
    """A column as float64 with NaN where missing (inf counts as missing)."""
    if pd.api.types.is_bool_dtype(series):
        out = series.astype("float64").to_numpy()
    else:
        parsed = pd.to_numeric(series, errors="coerce")
        bad = parsed.isna() & series.notna()
        if bad.any():
            row = series.index[int(bad.to_numpy().argmax())]
            raise DataError(
                f"value {series[row]!r} is not a number",
                where=f"column {column!r}, row {row!r}",
                fix="clean the column, or list it under the encoder's 'categorical' option",
            )
        out = parsed.to_numpy(dtype="float64", na_value=np.nan)
    out = out.astype("float64", copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def _booleans(series: pd.Series, column: str) -> np.ndarray:
    """A yes/no column as codes: 0 missing, 2 false, 3 true (vocabulary ['false', 'true'])."""
    codes = np.full(len(series), MISSING, dtype=np.int64)
    present = series.notna().to_numpy()
    text = series[present].map(lambda v: category_key(v).strip().lower())
    is_true, is_false = text.isin(_TRUE).to_numpy(), text.isin(_FALSE).to_numpy()
    if not (is_true | is_false).all():
        bad = text[~(is_true | is_false)].iloc[0]
        raise DataError(
            f"value {bad!r} is not a yes/no value",
            where=f"column {column!r}",
            fix="use true/false, yes/no or 1/0, or list the column under 'categorical'",
        )
    codes[present] = np.where(is_true, 3, 2)
    return codes


def _infer_kind(series: pd.Series, column: str) -> Kind:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        raise DataError(
            "date/time columns are not encoded directly",
            where=f"column {column!r}",
            fix="turn it into numbers (e.g. days since an event) or categories first",
        )
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


class TableSchema:
    """Column kinds, statistics and vocabularies learned from training rows."""

    def __init__(self, columns: Iterable[Column] = ()) -> None:
        self.columns = list(columns)
        self.by_name = {c.name: c for c in self.columns}

    # -- views ---------------------------------------------------------------------------
    @property
    def numeric(self) -> list[Column]:
        """Numeric columns, in fitted order."""
        return [c for c in self.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[Column]:
        """Categorical and boolean columns, in fitted order."""
        return [c for c in self.columns if c.kind != "numeric"]

    def column(self, name: str) -> Column:
        """A fitted column by name; DataError naming the known ones if absent."""
        try:
            return self.by_name[str(name)]
        except KeyError:
            raise DataError(
                f"no fitted column {name!r}",
                where="tabular encoder",
                fix=f"use one of {sorted(self.by_name)}",
            ) from None

    # -- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        boolean: Sequence[str] = (),
        text_statistics: Sequence[str] = (),
        min_frequency: int = 1,
        bins: int = 16,
    ) -> TableSchema:
        """Learn kinds (dtype, or the overrides), statistics and vocabularies; each
        ``text_statistics`` column becomes one numeric column per :data:`TEXT_STATISTICS`."""
        if frame.shape[1] == 0:
            raise DataError("the input has no columns", fix="list its columns in the config")
        if len(frame) == 0:
            raise DataError("no training rows to fit on", where="tabular encoder")
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise DataError("duplicate column names", where=f"columns {names}")
        overrides: dict[str, str] = {}
        for kind, listed in (
            ("numeric", numeric),
            ("categorical", categorical),
            ("boolean", boolean),
            ("text_statistics", text_statistics),
        ):
            for name in listed:
                if name not in names:
                    raise ConfigError(
                        f"'{kind}' names column {name!r}, which the input does not have",
                        where=f"options.{kind}",
                        fix=f"use one of {names}",
                    )
                if name in overrides:
                    raise ConfigError(
                        f"column {name!r} is listed as both {overrides[name]} and {kind}",
                        where=f"options.{kind}",
                    )
                overrides[name] = kind
        # A text column's statistics take its place, named "<column>:<statistic>".
        fitted: list[tuple[str, pd.Series, Kind, str, str]] = []  # + source, statistic
        for name, label in zip(names, frame.columns):
            series = frame[label]
            if overrides.get(name) != "text_statistics":
                kind = overrides.get(name) or _infer_kind(series, name)
                fitted.append((name, series, kind, "", ""))  # type: ignore[arg-type]
                continue
            for statistic, values in _text_statistics(series).items():
                fitted.append((f"{name}:{statistic}", values, "numeric", name, statistic))
        if len({f[0] for f in fitted}) != len(fitted):
            raise DataError(
                "a text statistic's name is also a column's name",
                where=f"columns {[f[0] for f in fitted]}",
                fix="rename the column, or drop it from the input",
            )
        columns = []
        keys = _safe_keys([f[0] for f in fitted])
        for (name, series, kind, source, statistic), key in zip(fitted, keys):
            column = Column(name=name, key=key, kind=kind, source=source, statistic=statistic)
            column.missing_fraction = float(series.isna().mean())
            if kind == "numeric":
                _fit_numeric(column, _numbers(series, name), bins)
            elif kind == "boolean":
                _booleans(series, name)  # validates the values
                column.vocabulary = ["false", "true"]
            else:
                _fit_vocabulary(column, series, min_frequency)
            columns.append(column)
        # Numbers first, then categories: the order prepare's tensors follow.
        return cls(
            [c for c in columns if c.kind == "numeric"]
            + [c for c in columns if c.kind != "numeric"]
        )

    # -- transforming --------------------------------------------------------------------
    def _series(self, frame: pd.DataFrame, column: Column) -> pd.Series:
        labels = {str(c): c for c in frame.columns}
        if column.name not in labels:
            raise DataError(
                f"column {column.name!r} is missing",
                where="tabular encoder input",
                fix="pass the same columns the encoder was fitted on",
            )
        return frame[labels[column.name]]

    def numbers(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw numeric values ``[N, numeric columns]``, NaN where missing. A text statistic
        is read from the frame when it has the column (a reference row), else computed
        from its text column."""
        out = np.empty((len(frame), len(self.numeric)), dtype=np.float64)
        labels = {str(c) for c in frame.columns}
        computed: dict[str, pd.DataFrame] = {}
        for j, column in enumerate(self.numeric):
            if not column.source or column.name in labels:
                out[:, j] = _numbers(self._series(frame, column), column.name)
                continue
            if column.source not in computed:
                source = Column(name=column.source, key="", kind="categorical")
                computed[column.source] = _text_statistics(self._series(frame, source))
            out[:, j] = computed[column.source][column.statistic].to_numpy()
        return out

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Category codes ``[N, categorical columns]``: 0 missing, 1 unknown, 2.. vocabulary."""
        out = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            series = self._series(frame, column)
            if column.kind == "boolean":
                out[:, j] = _booleans(series, column.name)
                continue
            index = {v: i + 2 for i, v in enumerate(column.vocabulary)}
            present = series.notna().to_numpy()
            codes = np.full(len(series), MISSING, dtype=np.int64)
            keys = series[present].map(category_key)
            codes[present] = keys.map(index).fillna(UNKNOWN).to_numpy(dtype=np.int64)
            out[:, j] = codes
        return out

    def unknown(self, frame: pd.DataFrame, first: int = 5) -> dict[str, dict[str, Any]]:
        """Per categorical column with any: the rows whose value went to the unknown bucket
        (unseen in training, or rarer than min_frequency) and the first few such values."""
        codes = self.codes(frame)
        out: dict[str, dict[str, Any]] = {}
        for j, column in enumerate(self.categorical):
            rows = np.flatnonzero(codes[:, j] == UNKNOWN)
            if len(rows):
                values = self._series(frame, column).iloc[rows].tolist()
                seen = list(dict.fromkeys(category_key(v) for v in values))
                out[column.name] = {"rows": len(rows), "first": seen[:first]}
        return out

    # -- state ---------------------------------------------------------------------------
    def to_state(self) -> list[dict[str, Any]]:
        """JSON-able: one dict per column, in order."""
        return [asdict(c) for c in self.columns]

    @classmethod
    def from_state(cls, state: Sequence[dict[str, Any]]) -> TableSchema:
        """Restore :meth:`to_state`."""
        return cls(Column(**c) for c in state)


def _fit_numeric(column: Column, x: np.ndarray, bins: int) -> None:
    """Mean/std, quantiles (for quantile scaling) and quantile bin edges (for ple)."""
    x = x[~np.isnan(x)]
    if len(x) == 0:
        column.quantiles, column.edges = [0.0, 1.0], [-0.5, 0.5]
        return
    column.mean = float(x.mean())
    std = float(x.std())
    column.std = std if std > 1e-12 else 1.0
    levels = np.linspace(0, 1, min(_QUANTILES, len(x)))
    column.quantiles = [float(q) for q in np.quantile(x, levels)]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    column.edges = [float(e) for e in edges]


def _fit_vocabulary(column: Column, series: pd.Series, min_frequency: int) -> None:
    """Categories seen at least min_frequency times, most frequent first, ties by value."""
    counts = series.dropna().map(category_key).value_counts()
    kept = sorted(
        ((str(k), int(n)) for k, n in counts.items() if n >= min_frequency),
        key=lambda kv: (-kv[1], kv[0]),
    )
    column.vocabulary = [k for k, _ in kept]
    column.counts = [n for _, n in kept]
