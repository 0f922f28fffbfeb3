"""``transfuse data describe NAME``: what a registered data source holds, without opening
the package's files: rows, each column's type, missing share and distinct values, an
example value, and the label's balance (the source's own label, or ``--target``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transfuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.plugins import PluginManager

__all__ = ["SourceSummary", "describe_source", "parse_options"]


@dataclass
class SourceSummary:
    """A data source's table at a glance."""

    name: str
    description: str
    rows: int
    columns: list[dict[str, Any]] = field(default_factory=list)
    target: str | None = None
    balance: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "rows": self.rows,
            "target": self.target,
            "balance": self.balance,
            "columns": self.columns,
        }

    def to_text(self) -> str:
        lines = [f"{self.name}: {self.rows:,} rows, {len(self.columns)} columns"]
        if self.description:
            lines.append(f"  {self.description}")
        if self.target is not None:
            total = sum(self.balance.values()) or 1
            parts = ", ".join(f"{k}: {n:,} ({n / total:.1%})" for k, n in self.balance.items())
            lines.append(f"  label {self.target!r}: {parts}")
        width = max((len(c["name"]) for c in self.columns), default=6)
        lines.append(f"  {'column':<{width}}  {'type':<8} {'missing':>8} {'distinct':>9}  example")
        for c in self.columns:
            example = c["example"] if len(c["example"]) <= 40 else c["example"][:37] + "..."
            lines.append(
                f"  {c['name']:<{width}}  {c['type']:<8} {c['missing']:>8.1%} "
                f"{c['distinct']:>9,}  {example}"
            )
        return "\n".join(lines)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as options; each value is read as YAML (``sample=500`` is 500)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"cannot read option {pair!r}", where="--option", fix="write KEY=VALUE"
            )
        out[key.strip()] = yaml.safe_load(value)
    return out


def _kind(series: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def describe_source(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    target: str | None = None,
    manager: PluginManager | None = None,
) -> SourceSummary:
    """Load the data source ``name`` with ``options`` and summarise its table."""
    from transfuse.plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    entry = manager.get("data_source", name, where="data describe")
    factory = entry.load()
    source = factory(entry.validate_options(dict(options or {}), f"{entry.name} options"))
    frame = source.load()
    target = target or getattr(source, "target", None)
    if target is not None and target not in frame.columns:
        raise DataError(
            f"label column {target!r} not in the table",
            where=f"data describe {entry.name} --target",
            fix=f"pick one of its columns: {list(map(str, frame.columns))[:30]}",
        )
    columns = []
    for column in frame.columns:
        series = frame[column]
        present = series.dropna()
        columns.append(
            {
                "name": str(column),
                "type": _kind(series),
                "dtype": str(series.dtype),
                "missing": float(series.isna().mean()) if len(series) else 0.0,
                "distinct": int(present.nunique()),
                "example": str(present.iloc[0]) if len(present) else "",
            }
        )
    balance: dict[str, int] = {}
    if target is not None:
        counts = frame[target].value_counts(dropna=False).sort_index()
        balance = {str(k): int(v) for k, v in counts.items()}
    return SourceSummary(entry.name, entry.description, len(frame), columns, target, balance)


def render(summary: SourceSummary, as_json: bool) -> str:
    """The summary as text or JSON."""
    return json.dumps(summary.to_dict(), indent=2) if as_json else summary.to_text()
