"""From a probability to a decision: scorecard points, cut-offs and their tables.

The positive class of a binary task is the bad outcome (default), so ``p`` is ``P(bad)``
and a row is **approved when its p is at or under the cut-off** (:func:`approved`).

- Points (the points-to-double-the-odds scaling): ``points = offset + factor * ln(odds)``
  with ``odds = (1 - p) / p`` (the odds of good), ``factor = pdo / ln 2`` and
  ``offset = base_score - factor * ln(base_odds)``: ``base_score`` points at odds of
  ``base_odds`` to one, and every ``pdo`` more points double the odds of good.
- :func:`choose_cutoff`: the highest cut-off whose bad rate among approved rows meets a
  target (or, without one, the cut-off that approves as many rows as there are goods).
- :func:`cutoff_table`: approval rate, bad rate among the approved and the share of bads
  caught (declined) at each cut-off; :func:`decile_cutoffs` gives the score deciles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transfuse.config import ScorecardConfig

__all__ = [
    "CutoffRow",
    "approved",
    "choose_cutoff",
    "confusion",
    "cutoff_table",
    "decile_cutoffs",
    "gains_plot",
    "points",
    "scaling",
    "score_bands",
]

#: Probabilities are clipped to [P_EPS, 1 - P_EPS] before the odds (a calibrated 0 or 1).
P_EPS = 1e-6


def scaling(card: ScorecardConfig) -> tuple[float, float]:
    """``(factor, offset)`` of the scaling: ``pdo / ln 2`` and
    ``base_score - factor * ln(base_odds)``."""
    factor = card.pdo / math.log(2.0)
    return factor, card.base_score - factor * math.log(card.base_odds)


def points(p_bad: np.ndarray, card: ScorecardConfig) -> np.ndarray:
    """Scorecard points for probabilities of bad: ``offset + factor * ln((1 - p) / p)``."""
    factor, offset = scaling(card)
    p = np.clip(np.asarray(p_bad, dtype=np.float64), P_EPS, 1.0 - P_EPS)
    return offset + factor * (np.log1p(-p) - np.log(p))


def approved(p_bad: np.ndarray, cutoff: float) -> np.ndarray:
    """Which rows a cut-off approves: ``p <= cutoff``."""
    return np.asarray(p_bad, dtype=np.float64) <= cutoff


def choose_cutoff(y: np.ndarray, p: np.ndarray, target_bad_rate: float | None) -> float:
    """The cut-off on ``p`` (``P(bad)``; ``y`` is 1 for bad) for a stated bad rate.

    With ``target_bad_rate``: the highest observed score whose approved rows
    (``p <= cutoff``) have a bad rate at or under the target (approving the most rows
    that meet it). Without: the ``k``-th lowest score, ``k`` the rows' number of goods
    (approve as many rows as there are goods). When no cut-off meets the target, a value
    just under the lowest score (approving nobody).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if not len(p):
        raise ValueError("choose_cutoff needs at least one row")
    order = np.argsort(p, kind="mergesort")
    s, bad = p[order], y[order]
    nobody = float(np.nextafter(s[0], -np.inf))
    if target_bad_rate is None:
        goods = len(y) - int(bad.sum())
        return float(s[goods - 1]) if goods > 0 else nobody
    count = np.arange(1, len(s) + 1)
    rate = np.cumsum(bad) / count
    ends = np.append(s[1:] != s[:-1], True)  # a cut-off approves a whole group of ties
    meets = np.flatnonzero(ends & (rate <= target_bad_rate + 1e-12))
    return float(s[meets[-1]]) if len(meets) else nobody


@dataclass(frozen=True)
class CutoffRow:
    """What one cut-off does to a set of rows."""

    label: str
    cutoff: float
    approved: int
    rows: int
    approval_rate: float
    bad_rate: float  # among the approved (NaN when none is approved)
    bads_caught: float  # share of all bads declined (NaN when there is no bad)


def cutoff_table(
    y: np.ndarray, p: np.ndarray, cutoffs: Sequence[tuple[str, float]]
) -> list[CutoffRow]:
    """One :class:`CutoffRow` per ``(label, cutoff)``, on rows ``y`` (1 bad) and ``p``."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    bads = y.sum()
    out = []
    for label, cut in cutoffs:
        ok = approved(p, cut)
        n_ok = int(ok.sum())
        out.append(
            CutoffRow(
                label=label,
                cutoff=float(cut),
                approved=n_ok,
                rows=len(y),
                approval_rate=n_ok / len(y) if len(y) else float("nan"),
                bad_rate=float(y[ok].mean()) if n_ok else float("nan"),
                bads_caught=float(y[~ok].sum() / bads) if bads else float("nan"),
            )
        )
    return out


def decile_cutoffs(p: np.ndarray) -> list[tuple[str, float]]:
    """Cut-offs that approve the lowest-scored 10%, 20%, ..., 100% of rows: the score of
    the ``ceil(k * n / 10)``-th lowest row (ties approve more)."""
    s = np.sort(np.asarray(p, dtype=np.float64).reshape(-1))
    if not len(s):
        return []
    return [(f"{10 * k}%", float(s[max(math.ceil(k * len(s) / 10), 1) - 1])) for k in range(1, 11)]


def confusion(y: np.ndarray, p: np.ndarray, cutoff: float) -> np.ndarray:
    """Counts ``[[good approved, good declined], [bad approved, bad declined]]``."""
    from sklearn.metrics import confusion_matrix

    declined = (~approved(p, cutoff)).astype(np.int64)
    return np.asarray(
        confusion_matrix(np.asarray(y, dtype=np.int64), declined, labels=[0, 1]), dtype=np.int64
    )


def score_bands(
    pts: np.ndarray, y: np.ndarray, card: ScorecardConfig, max_bands: int = 12
) -> list[tuple[float, float, int, int]]:
    """Bands of points ``[low, high)`` aligned on ``base_score``, ``pdo`` wide (a multiple
    of it when more than ``max_bands`` would be needed): ``(low, high, rows, bads)``."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if not len(pts):
        return []
    lo_k = math.floor((pts.min() - card.base_score) / card.pdo)
    hi_k = math.floor((pts.max() - card.base_score) / card.pdo) + 1
    step = max(1, math.ceil((hi_k - lo_k) / max_bands))
    edges = card.base_score + card.pdo * np.arange(lo_k, hi_k + step, step, dtype=np.float64)
    which = np.clip(np.searchsorted(edges, pts, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        members = which == b
        if members.any():
            out.append(
                (float(edges[b]), float(edges[b + 1]), int(members.sum()), int(y[members].sum()))
            )
    return out


def gains_plot(path: Path, y: np.ndarray, p: np.ndarray, cutoff: float, split: str) -> str:
    """Draw the cumulative gains chart (share of bads caught against share of rows
    declined, worst scores first) with the chosen cut-off marked; returns its caption."""
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="mergesort")
    share = np.concatenate([[0.0], np.arange(1, len(y) + 1) / len(y)])
    caught = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1.0)])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(share, caught, label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="random")
    rate = y.mean() if len(y) else 1.0
    ax.plot([0, rate, 1], [0, 1, 1], linestyle=":", color="black", linewidth=1, label="perfect")
    ok = approved(p, cutoff)
    declined = 1.0 - ok.mean()
    hit = y[~ok].sum() / max(y.sum(), 1.0)
    ax.scatter([declined], [hit], color="tab:red", zorder=3, label="chosen cut-off")
    ax.set_xlabel("share of rows declined (highest P(bad) first)")
    ax.set_ylabel("share of bads caught")
    ax.set_title(f"Cumulative gains on the {split} rows")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"cumulative gains on the {split} rows: bads caught against rows declined"
