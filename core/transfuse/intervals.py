"""Bootstrap intervals: how sure a metric is, and whether one model beats another.

A figure on a few hundred rows is a guess without its interval. ``interval`` resamples the
rows ``rounds`` times and reports the 2.5th and 97.5th percentiles of each metric (the
percentile bootstrap); ``paired`` resamples the same rows for two models' scores, so the
interval of their difference keeps the correlation between them (both models scored the
same applicants). For classification the resampling is stratified by label: every round
keeps the split's counts of each class, so ROC-AUC is always defined and a rare class is
never dropped. Rows and positives are reported with every figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "interval", "paired", "resamples"]

#: ``metrics(rows) -> {name: value}``: the metrics of the rows selected by an index array.
MetricsOf = Callable[[np.ndarray], Mapping[str, float]]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap 95% interval, and what it rests on."""

    value: float
    low: float
    high: float
    rows: int
    positives: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "low": self.low, "high": self.high}
        out["rows"] = self.rows
        if self.positives is not None:
            out["positives"] = self.positives
        return out

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero (a difference that holds)."""
        return self.low > 0 or self.high < 0


def resamples(
    n: int, rounds: int, *, strata: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """``[rounds, n]`` row indices drawn with replacement, within each stratum if given."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(rounds, n))
    out = np.empty((rounds, n), dtype=np.int64)
    start = 0
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        picks = rng.integers(0, len(members), size=(rounds, len(members)))
        out[:, start : start + len(members)] = members[picks]
        start += len(members)
    return out


def _quantiles(point: Mapping[str, float], draws: list[Mapping[str, float]]) -> dict[str, Any]:
    out = {}
    for name, value in point.items():
        values = np.array([d.get(name, np.nan) for d in draws], dtype=float)
        values = values[np.isfinite(values)]
        if not len(values) or not np.isfinite(value):
            continue
        low, high = np.quantile(values, [0.025, 0.975])
        out[name] = (float(value), float(low), float(high))
    return out


def interval(
    metrics: MetricsOf,
    n: int,
    *,
    labels: np.ndarray | None = None,
    positives: int | None = None,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, Interval]:
    """Every metric of ``metrics`` with its percentile-bootstrap 95% interval over ``n``
    rows (stratified by ``labels`` when given: pass class codes for classification)."""
    if n == 0:
        return {}
    rows = np.arange(n)
    draws = [metrics(r) for r in resamples(n, rounds, strata=labels, seed=seed)]
    return {
        name: Interval(value, low, high, n, positives)
        for name, (value, low, high) in _quantiles(metrics(rows), draws).items()
    }


def paired(
    metrics_a: MetricsOf,
    metrics_b: MetricsOf,
    n: int,
    *,
    labels: np.ndarray | None = None,
    positives: int | None = None,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, Interval]:
    """Per metric: ``a`` minus ``b`` on the same ``n`` rows, with a paired bootstrap 95%
    interval (each round draws one set of rows and scores both models on it)."""
    if n == 0:
        return {}

    def difference(rows: np.ndarray) -> dict[str, float]:
        a, b = metrics_a(rows), metrics_b(rows)
        return {k: float(a[k]) - float(b[k]) for k in a if k in b}

    draws = [difference(r) for r in resamples(n, rounds, strata=labels, seed=seed)]
    point = difference(np.arange(n))
    return {
        name: Interval(value, low, high, n, positives)
        for name, (value, low, high) in _quantiles(point, draws).items()
    }
