"""Domain shift between a source and a target table, measured before any training.

Three views, so a user can see whether transfer can pay: each shared column's population
stability index (PSI, source bins against target shares), a domain classifier's
cross-validated ROC-AUC (can a model tell a source row from a target row? 0.5: no), and
the shared columns ranked by how far they moved. Only features are used, never labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transfuse.errors import DataError

__all__ = ["ColumnShift", "ShiftReport", "domain_auc", "domain_shift", "psi"]

#: Conventional PSI bands (credit scoring): below 0.1 stable, 0.1-0.25 moderate, above major.
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
_EPS = 1e-4  # share given to an empty bin, so the logarithm stays finite
_TOP_CATEGORIES = 30  # categories beyond the source's most frequent ones are pooled


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _bins_numeric(source: pd.Series, target: pd.Series, bins: int) -> tuple[Any, Any]:
    """Bin indices of both sides on the source's quantile edges; missing is a bin of its own."""
    s = pd.to_numeric(source, errors="coerce").astype(float).to_numpy()
    t = pd.to_numeric(target, errors="coerce").astype(float).to_numpy()
    present = s[~np.isnan(s)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    edges: np.ndarray = np.unique(np.quantile(present, inner)) if len(present) else np.zeros(0)
    missing = len(edges) + 1

    def index(x: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, x, side="right")
        out[np.isnan(x)] = missing
        return out

    return index(s), index(t)


def _bins_categorical(source: pd.Series, target: pd.Series) -> tuple[Any, Any]:
    """Category codes: the source's most frequent values, the rest pooled, missing apart."""
    s_text = (
        source.astype(object).where(source.notna(), None).map(lambda v: v if v is None else str(v))
    )
    t_text = (
        target.astype(object).where(target.notna(), None).map(lambda v: v if v is None else str(v))
    )
    top = list(s_text.dropna().value_counts().index[:_TOP_CATEGORIES])
    codes = {v: i for i, v in enumerate(top)}
    other, missing = len(top), len(top) + 1

    def index(x: pd.Series) -> np.ndarray:
        return np.asarray([missing if v is None else codes.get(v, other) for v in x], np.int64)

    return index(s_text), index(t_text)


def psi(source: pd.Series, target: pd.Series, bins: int = 10) -> float:
    """Population stability index of one column: ``sum((t - s) * ln(t / s))`` over bins
    (numbers: the source's deciles; categories: values), missing values a bin of their own."""
    if len(source) == 0 or len(target) == 0:
        raise DataError(
            "PSI needs rows on both sides",
            where=f"column {source.name!r}",
            fix="give non-empty source and target frames",
        )
    numeric = _is_numeric(source) and _is_numeric(target)
    s, t = _bins_numeric(source, target, bins) if numeric else _bins_categorical(source, target)
    size = int(max(s.max(), t.max())) + 1
    ps = np.maximum(np.bincount(s, minlength=size) / len(s), _EPS)
    pt = np.maximum(np.bincount(t, minlength=size) / len(t), _EPS)
    return float(np.sum((pt - ps) * np.log(pt / ps)))


def _design(
    frames: Sequence[pd.DataFrame], columns: Sequence[str]
) -> tuple[np.ndarray, list[bool]]:
    """One numeric matrix for a tree model: numbers as they are, categories as codes."""
    joined = pd.concat([f[list(columns)] for f in frames], ignore_index=True)
    parts, categorical = [], []
    for column in columns:
        values = joined[column]
        if _is_numeric(values):
            parts.append(pd.to_numeric(values, errors="coerce").astype(float).to_numpy())
            categorical.append(False)
        else:
            text = values.astype(object).where(values.notna(), None)
            top = list(text.dropna().astype(str).value_counts().index[:250])
            codes = {v: float(i) for i, v in enumerate(top)}
            parts.append(
                np.asarray([np.nan if v is None else codes.get(str(v), np.nan) for v in text])
            )
            categorical.append(True)
    return np.column_stack(parts), categorical


def domain_auc(
    source: pd.DataFrame,
    target: pd.DataFrame,
    columns: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    max_rows: int = 5000,
) -> tuple[float, float] | None:
    """Mean and std over folds of a gradient-boosting domain classifier's ROC-AUC (source
    0, target 1; at most ``max_rows`` per side, stratified k-fold); None when too few rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    sides = []
    for frame in (source, target):
        if len(frame) > max_rows:
            frame = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
        sides.append(frame)
    folds = min(folds, len(sides[0]), len(sides[1]))
    if folds < 2 or not columns:
        return None
    x, categorical = _design(sides, columns)
    y = np.r_[np.zeros(len(sides[0])), np.ones(len(sides[1]))]
    aucs = []
    # one OpenMP thread: a small model, and far faster than many threads on a busy machine
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            model = HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, categorical_features=categorical,
                random_state=seed,
            )  # fmt: skip
            model.fit(x[train], y[train])
            aucs.append(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    return float(np.mean(aucs)), float(np.std(aucs))


@dataclass
class ColumnShift:
    """One shared column: its PSI and a one-line summary of how it moved."""

    column: str
    kind: str  # "numeric" or "categorical"
    psi: float
    moved: str  # e.g. "median 12.0 -> 15.5" or "'RENT' 41% -> 55%"
    missing: tuple[float, float]  # share missing in source, target


@dataclass
class ShiftReport:
    """Source against target, before training: PSI per shared column and a domain AUC."""

    source_rows: int
    target_rows: int
    columns: list[ColumnShift] = field(default_factory=list)  # largest PSI first
    domain_auc: float | None = None
    domain_auc_std: float | None = None
    only_source: list[str] = field(default_factory=list)
    only_target: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        """One sentence reading the numbers."""
        major = [c.column for c in self.columns if c.psi >= PSI_MAJOR]
        auc = self.domain_auc
        if auc is None:
            level = "the domain classifier could not be fitted (too few rows)"
        elif auc < 0.6:
            level = "the domains are hard to tell apart: the source model should carry over"
        elif auc < 0.75:
            level = "a moderate shift: the source helps, target labels should correct it"
        else:
            level = "a strong shift: expect the source to help less and target labels to matter"
        tail = f"; major PSI on {', '.join(major)}" if major else ""
        return f"{level}{tail}."

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``metrics.json`` of a transferred run)."""
        out = asdict(self)
        out["verdict"] = self.verdict()
        return out

    def to_markdown(self, top: int = 10) -> str:
        """The report.md section: domain AUC, verdict, and the columns that moved most."""
        auc = (
            f"{self.domain_auc:.3f} ± {self.domain_auc_std:.3f}"
            if self.domain_auc is not None and self.domain_auc_std is not None
            else "n/a"
        )
        lines = [
            f"Source {self.source_rows} rows, target {self.target_rows} rows (features only, "
            "no labels). Domain classifier (gradient boosting, 5-fold) ROC-AUC telling a "
            f"target row from a source row: **{auc}** (0.5: indistinguishable). "
            f"{self.verdict()[0].upper()}{self.verdict()[1:]}",
            "",
            f"PSI bands: < {PSI_MODERATE} stable, {PSI_MODERATE}-{PSI_MAJOR} moderate, "
            f"> {PSI_MAJOR} major. Shared columns that moved most:",
            "",
            "| column | PSI | how it moved | missing (source / target) |",
            "| --- | ---: | --- | ---: |",
        ]
        for c in self.columns[:top]:
            missing = f"{c.missing[0]:.0%} / {c.missing[1]:.0%}"
            lines.append(f"| {c.column} | {c.psi:.3f} | {c.moved} | {missing} |")
        if len(self.columns) > top:
            rest = max(c.psi for c in self.columns[top:])
            lines.append(f"| ({len(self.columns) - top} more) | <= {rest:.3f} | | |")
        for side, names in (("source", self.only_source), ("target", self.only_target)):
            if names:
                lines += ["", f"Only the {side} has: {', '.join(names)}."]
        return "\n".join(lines)


def _moved(source: pd.Series, target: pd.Series) -> str:
    if _is_numeric(source) and _is_numeric(target):
        s = pd.to_numeric(source, errors="coerce").astype(float).median()
        t = pd.to_numeric(target, errors="coerce").astype(float).median()
        return f"median {_num(s)} -> {_num(t)}"
    s_share = source.astype(str).where(source.notna()).value_counts(normalize=True)
    t_share = target.astype(str).where(target.notna()).value_counts(normalize=True)
    values = s_share.index.union(t_share.index)
    if not len(values):
        return "all missing"
    change = (t_share.reindex(values, fill_value=0) - s_share.reindex(values, fill_value=0)).abs()
    v = change.idxmax()
    return f"{v!r} {s_share.get(v, 0.0):.0%} -> {t_share.get(v, 0.0):.0%}"


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4g}"


def domain_shift(
    source: pd.DataFrame,
    target: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    bins: int = 10,
    folds: int = 5,
    seed: int = 0,
    max_rows: int = 5000,
) -> ShiftReport:
    """The shift between ``source`` and ``target`` over ``columns`` (default: every column
    both frames have); columns only one side has are listed, not scored."""
    wanted = list(columns) if columns is not None else list(dict.fromkeys([*source, *target]))
    shared = [c for c in wanted if c in source.columns and c in target.columns]
    if not shared:
        raise DataError(
            "the source and target frames share none of the columns",
            where="domain shift",
            fix="give frames with the same column names (rename with layer-map's columns)",
        )
    report = ShiftReport(
        source_rows=len(source),
        target_rows=len(target),
        only_source=[c for c in wanted if c in source.columns and c not in target.columns],
        only_target=[c for c in wanted if c in target.columns and c not in source.columns],
    )
    for column in shared:
        s, t = source[column], target[column]
        kind = "numeric" if _is_numeric(s) and _is_numeric(t) else "categorical"
        missing = (float(s.isna().mean()), float(t.isna().mean()))
        report.columns.append(ColumnShift(column, kind, psi(s, t, bins), _moved(s, t), missing))
    report.columns.sort(key=lambda c: -c.psi)
    auc = domain_auc(source, target, shared, folds=folds, seed=seed, max_rows=max_rows)
    if auc is not None:
        report.domain_auc, report.domain_auc_std = auc
    return report
