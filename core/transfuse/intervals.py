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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "binary_interval",
    "binary_metrics",
    "binary_paired",
    "interval",
    "paired",
    "resamples",
]

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


def _quantiles(point: Mapping[str, float], draws: Sequence[Mapping[str, float]]) -> dict[str, Any]:
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


# -- binary classification, vectorised over bootstrap rounds ------------------------------

BINARY = ("roc_auc", "ks", "pr_auc", "brier", "log_loss", "accuracy")


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC, KS, PR-AUC (average precision), Brier, log-loss and accuracy at 0.5 of each
    row of ``p`` ``[R, N]`` (probabilities) against ``y`` ``[R, N]`` (0/1), as scikit-learn
    computes them (ties grouped by threshold), in one pass over all ``R`` rounds."""
    from scipy.stats import rankdata

    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    ranks = rankdata(p, axis=1)
    auc = ((ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    order = np.argsort(-p, axis=1, kind="stable")
    ps, ys = np.take_along_axis(p, order, axis=1), np.take_along_axis(y, order, axis=1)
    tp = np.cumsum(ys, axis=1)
    fp = np.cumsum(1 - ys, axis=1)
    # a threshold ends where the next score differs (and at the last row)
    last = np.ones_like(ps, dtype=bool)
    last[:, :-1] = ps[:, 1:] != ps[:, :-1]
    ks = np.where(last, tp / n_pos[:, None] - fp / n_neg[:, None], -np.inf).max(axis=1)
    at = np.where(last, tp, 0.0)
    before = np.zeros_like(at)
    before[:, 1:] = np.maximum.accumulate(at, axis=1)[:, :-1]
    precision = tp / (tp + fp)
    ap = (np.where(last, tp - before, 0.0) * precision).sum(axis=1) / n_pos
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    return {
        "roc_auc": auc,
        "ks": ks,
        "pr_auc": ap,
        "brier": ((p - y) ** 2).mean(axis=1),
        "log_loss": -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean(axis=1),
        "accuracy": ((p >= 0.5) == (y == 1)).mean(axis=1),
    }


def _binary(y: np.ndarray) -> tuple[np.ndarray, int]:
    y = np.asarray(y).astype(np.int64).reshape(-1)
    return y, int(y.sum())


def binary_interval(
    y: np.ndarray, p: np.ndarray, *, rounds: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """Every :data:`BINARY` metric of probabilities ``p`` with a stratified percentile
    bootstrap 95% interval (needs both classes in ``y``)."""
    y, positives = _binary(y)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if positives in (0, len(y)):
        return {}
    point = {k: float(v[0]) for k, v in binary_metrics(y, p).items()}
    rows = resamples(len(y), rounds, strata=y, seed=seed)
    draws = binary_metrics(y[rows], p[rows])
    out = {}
    for name, value in point.items():
        low, high = np.quantile(draws[name], [0.025, 0.975])
        out[name] = Interval(value, float(low), float(high), len(y), positives)
    return out


def binary_paired(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, *, rounds: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """Per :data:`BINARY` metric: model ``a`` minus model ``b`` on the same rows, with a
    paired stratified bootstrap 95% interval."""
    y, positives = _binary(y)
    p_a = np.asarray(p_a, dtype=np.float64).reshape(-1)
    p_b = np.asarray(p_b, dtype=np.float64).reshape(-1)
    if positives in (0, len(y)):
        return {}
    a, b = binary_metrics(y, p_a), binary_metrics(y, p_b)
    rows = resamples(len(y), rounds, strata=y, seed=seed)
    da, db = binary_metrics(y[rows], p_a[rows]), binary_metrics(y[rows], p_b[rows])
    out = {}
    for name in a:
        low, high = np.quantile(da[name] - db[name], [0.025, 0.975])
        value = float(a[name][0] - b[name][0])
        out[name] = Interval(value, float(low), float(high), len(y), positives)
    return out
