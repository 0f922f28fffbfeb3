"""A run's test metrics with their bootstrap 95% intervals (``metrics.json["intervals"]``).

Every figure in ``metrics["test"]`` gets ``{value, low, high, rows, positives}`` from
:func:`transfuse.intervals.interval` (percentile bootstrap, stratified by class). A
thousand rounds of scikit-learn's metrics cost seconds per run, so the built-in tasks'
metrics are recomputed here with numpy (ROC-AUC from ranks, KS and average precision from
one sort); each is checked against the task's own figure on all the rows first, and any
task whose figures do not match (a plugin's task) is resampled through ``task.metrics``.
The ``loss`` is the training loss, recomputed with the task on each resample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from transfuse.intervals import Interval, interval

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.bases import Task

__all__ = [
    "binary_metrics",
    "intervals_markdown",
    "metric_intervals",
    "multiclass_metrics",
    "regression_metrics",
]

_Fast = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC from average ranks (the Mann-Whitney statistic); ties count a half."""
    from scipy.stats import rankdata

    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _sorted_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows by descending score: cumulative positives and negatives, and a mask of the last
    row of each group of tied scores (the points of the ROC and PR curves)."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.arange(1, len(y) + 1) - tp
    ends = np.append(s[1:] != s[:-1], True)
    return tp, fp, ends


def _ks_ap(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """KS (max |TPR - FPR|) and average precision (scikit-learn's step-wise sum)."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan"), float("nan")
    tp, fp, ends = _sorted_counts(y, s)
    tp_end, fp_end = tp[ends], fp[ends]
    ks = float(np.max(np.abs(tp_end / pos - fp_end / neg)))
    precision = tp_end / (tp_end + fp_end)
    gained = np.diff(np.concatenate([[0], tp_end])) / pos
    return ks, float(np.sum(gained * precision))


def _f1(y: np.ndarray, hard: np.ndarray, classes: np.ndarray) -> float:
    """Macro F1 over ``classes`` (scikit-learn's: the labels in either array)."""
    scores = []
    for k in classes:
        tp = np.sum((hard == k) & (y == k))
        wrong = np.sum((hard == k) != (y == k))  # false positives plus false negatives
        denom = 2 * tp + wrong
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The binary task's metrics (see ``BinaryTask.metrics``) with numpy."""
    y = y.astype(np.int64)
    hard = (p >= 0.5).astype(np.int64)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    out = {
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
        "accuracy": float(np.mean(hard == y)),
        "macro_f1": _f1(y, hard, np.union1d(y, hard)),
    }
    if 0 < y.sum() < len(y):
        out["roc_auc"] = _auc(y, p)
        out["ks"], out["pr_auc"] = _ks_ap(y, p)
    return out


def multiclass_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The multiclass task's metrics (see ``MulticlassTask.metrics``) with numpy."""
    y = y.astype(np.int64)
    k = p.shape[1]
    p = p / p.sum(axis=1, keepdims=True)
    hard = p.argmax(axis=1)
    q = np.clip(p, 1e-7, 1.0)  # as the task floors them, then sums them to one again
    q = q / q.sum(axis=1, keepdims=True)
    out = {
        "accuracy": float(np.mean(hard == y)),
        "macro_f1": _f1(y, hard, np.union1d(y, hard)),
        "log_loss": float(-np.mean(np.log(q[np.arange(len(y)), y]))),
    }
    if len(np.unique(y)) == k:
        aucs = [_auc((y == c).astype(np.int64), p[:, c]) for c in range(k)]
        out["roc_auc"] = aucs[1] if k == 2 else float(np.mean(aucs))
    return out


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The regression task's metrics (see ``RegressionTask.metrics``) with numpy."""
    pred = p[:, 0]
    err = y - pred
    out = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
    if len(y) >= 2 and np.ptp(y) > 0:
        out["r2"] = float(1.0 - np.sum(err**2) / np.sum((y - y.mean()) ** 2))
    return out


def _binary_rounds(y: np.ndarray, p: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`binary_metrics` of every bootstrap round at once, from each row's draw count
    ``counts`` ``[R, N]`` (a resample is a multiset of the rows): one sort of the rows for
    all rounds, not one a round; the same figures (to rounding) as resampling the rows.
    Needs both classes in ``y``."""
    y = y.astype(np.int64)
    counts = counts.astype(np.float64)
    n = counts.sum(axis=1)
    pos_w = counts @ (y == 1).astype(np.float64)
    neg_w = n - pos_w
    hard = (p >= 0.5).astype(np.int64)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    out = {
        "brier": counts @ ((p - y) ** 2) / n,
        "log_loss": -(counts @ (y * np.log(q) + (1 - y) * np.log1p(-q))) / n,
        "accuracy": counts @ (hard == y).astype(np.float64) / n,
    }
    f1 = []
    for k in (0, 1):
        tp = counts @ ((hard == k) & (y == k)).astype(np.float64)
        wrong = counts @ ((hard == k) != (y == k)).astype(np.float64)
        denom = 2 * tp + wrong
        f1.append(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0))
    out["macro_f1"] = (f1[0] + f1[1]) / 2
    order = np.argsort(-p, kind="mergesort")
    ps = p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    cs = counts[:, order]
    pos_g = np.add.reduceat(cs * (y[order] == 1), starts, axis=1)
    neg_g = np.add.reduceat(cs, starts, axis=1) - pos_g
    tp = np.cumsum(pos_g, axis=1)  # descending thresholds
    fp = np.cumsum(neg_g, axis=1)
    # AUC: each positive beats the negatives below its group, ties count a half
    below = neg_w[:, None] - fp
    out["roc_auc"] = (pos_g * (below + 0.5 * neg_g)).sum(axis=1) / (pos_w * neg_w)
    out["ks"] = np.max(np.abs(tp / pos_w[:, None] - fp / neg_w[:, None]), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    out["pr_auc"] = (pos_g / pos_w[:, None] * precision).sum(axis=1)
    return out


def _fast_for(task: Task) -> _Fast | None:
    from transfuse.tasks import BinaryTask, MulticlassTask, RegressionTask

    if isinstance(task, BinaryTask):
        return lambda y, p: binary_metrics(y, p[:, 0])
    if isinstance(task, MulticlassTask):
        return multiclass_metrics
    if isinstance(task, RegressionTask):
        return regression_metrics
    return None


def _matches(fast: Mapping[str, float], exact: Mapping[str, float]) -> bool:
    return set(fast) == set(exact) and all(
        np.isclose(fast[k], exact[k], rtol=1e-9, atol=1e-12) for k in exact
    )


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _loss_terms(task: Task, target: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row, a numerator and a denominator whose sums over any rows give the built-in
    task's loss on them (a class-weighted mean is a ratio); empty for other tasks."""
    from transfuse.tasks import BinaryTask, MulticlassTask, RegressionTask

    if isinstance(task, BinaryTask):  # BCE with pos_weight and smoothing toward 0.5
        eps = float(task.options.label_smoothing)
        t = target * (1.0 - eps) + 0.5 * eps
        z = logits[:, 0]
        num = task.pos_weight() * t * _softplus(-z) + (1.0 - t) * _softplus(z)
        return num, np.ones_like(num)
    if isinstance(task, MulticlassTask):  # weighted cross-entropy with label smoothing
        k = logits.shape[1]
        w = np.asarray(task.weights if task.weights is not None else np.ones(k), np.float64)
        logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        y = target.astype(np.int64)
        eps = float(task.options.label_smoothing)
        rows = np.arange(len(y))
        num = -(1.0 - eps) * w[y] * logp[rows, y] - eps / k * (logp * w).sum(axis=1)
        return num, w[y]
    if isinstance(task, RegressionTask):  # on the standardised scale
        err = np.abs(logits[:, 0] - target)
        if task.options.loss == "huber":
            num = np.where(err < 1.0, 0.5 * err**2, err - 0.5)
        else:
            num = err**2
        return num, np.ones_like(num)
    return ()


def metric_intervals(
    task: Task,
    labels: pd.Series,
    scores: np.ndarray,
    logits: np.ndarray,
    point: Mapping[str, float],
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, Interval]:
    """Each metric of ``point`` (the task's metrics and loss on these rows) with its
    bootstrap 95% interval; ``scores`` are what the metrics were computed from (calibrated)
    and ``logits`` what the loss was."""
    import pandas as pd
    import torch

    n = len(labels)
    if n == 0 or rounds <= 0:
        return {}
    classify = getattr(task, "classes", None) is not None
    target_t = task.encode(labels)
    target = target_t.numpy().astype(np.float64)
    codes = target.astype(np.int64) if classify else None
    truth = codes if codes is not None else pd.to_numeric(labels).to_numpy(np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(n, -1)
    logits = np.asarray(logits, dtype=np.float64).reshape(n, -1)
    fast = _fast_for(task)
    if fast is not None and not _matches(fast(truth, scores), task.metrics(labels, scores)):
        fast = None  # a subclass changed the figures: resample through the task itself
    terms = _loss_terms(task, target, logits) if "loss" in point else ()
    if terms and not np.isclose(terms[0].sum() / terms[1].sum(), point["loss"], rtol=1e-4):
        terms = ()
    logits_t = torch.from_numpy(logits.astype(np.float32))

    def metrics(rows: np.ndarray) -> dict[str, float]:
        if fast is not None:
            out = fast(truth[rows], scores[rows])
        else:
            out = dict(task.metrics(labels.iloc[rows], scores[rows]))
        if terms:
            out["loss"] = float(terms[0][rows].sum() / terms[1][rows].sum())
        elif "loss" in point:
            index = torch.from_numpy(rows)
            with torch.no_grad():
                out["loss"] = float(task.loss(logits_t[index], target_t[index]))
        return out

    positives = None
    if codes is not None and len(getattr(task, "classes", None) or []) == 2:
        positives = int(codes.sum())  # "positives" is a binary figure
    from transfuse.tasks import BinaryTask

    binary = fast is not None and isinstance(task, BinaryTask) and scores.shape[1] == 1
    if binary and codes is not None and 0 < int(codes.sum()) < n and (terms or "loss" not in point):
        found = _counted_intervals(truth, scores[:, 0], terms, n, codes, positives, rounds, seed)
    else:
        found = interval(metrics, n, labels=codes, positives=positives, rounds=rounds, seed=seed)
    # The point is the figure in metrics["test"] exactly (the numpy twin agrees to 1e-9).
    return {k: replace(v, value=float(point[k])) for k, v in found.items() if k in point}


def _counted_intervals(
    truth: np.ndarray,
    p: np.ndarray,
    terms: tuple[np.ndarray, ...],
    n: int,
    codes: np.ndarray,
    positives: int | None,
    rounds: int,
    seed: int,
) -> dict[str, Interval]:
    """:func:`transfuse.intervals.interval` over the same stratified resamples, with the
    binary metrics (and the loss's per-row terms) of all rounds computed at once."""
    from transfuse.intervals import _quantiles, resamples

    rows = resamples(n, rounds, strata=codes, seed=seed)
    flat = (rows + (np.arange(rounds) * n)[:, None]).ravel()
    counts = np.bincount(flat, minlength=rounds * n).reshape(rounds, n).astype(np.float64)
    drawn = _binary_rounds(truth, p, counts)
    point = binary_metrics(truth, p)
    if terms:
        drawn["loss"] = (counts @ terms[0]) / (counts @ terms[1])
        point["loss"] = float(terms[0].sum() / terms[1].sum())
    names = list(point)
    draws = [{k: float(drawn[k][i]) for k in names} for i in range(rounds)]
    return {
        name: Interval(value, low, high, n, positives)
        for name, (value, low, high) in _quantiles(point, draws).items()
    }


def intervals_markdown(
    intervals: Mapping[str, Mapping[str, Any]], split: str, rounds: int
) -> list[str]:
    """The report's table of test metrics with their intervals, rows and positives."""
    if not intervals:
        return []
    at_half = {"accuracy", "macro_f1"}
    lines = [
        f"## How sure: {split} metrics with 95% intervals",
        "",
        f"Percentile bootstrap over the {split} rows ({rounds} rounds, stratified by class): "
        "the interval a figure would likely fall in on another sample of the same size. "
        "accuracy and macro_f1 are at a 0.5 threshold on the probability; the cut-off "
        "section below judges the model at the cut-off it would be used with.",
        "",
        "| metric | value | 95% interval | rows | positives |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in sorted(intervals):
        iv = intervals[name]
        label = f"{name} (at 0.5)" if name in at_half else name
        lines.append(
            f"| {label} | {iv['value']:.4f} | [{iv['low']:.4f}, {iv['high']:.4f}] | "
            f"{iv['rows']} | {iv.get('positives', '')} |"
        )
    return [*lines, ""]
