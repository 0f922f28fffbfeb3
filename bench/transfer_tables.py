"""The statistics and tables of ``bench/transfer.py``: metrics, rank AUCs, paired bootstrap
differences over several test splits, and the Markdown tables.

Results are ``{budget: {split_seed: [Arm, ...]}}`` for one pair of domains. A paired
difference resamples, in every bootstrap round, the test rows and the seeds of each split
(seed i of two arms used the same labelled rows) and averages the splits' differences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

__all__ = ["Arm", "metrics", "paired_difference", "paired_over_splits", "tables"]

Results = Mapping[str, Mapping[int, Sequence["Arm"]]]


@dataclass
class Arm:
    """One method at one budget on one split: test scores per seed (one entry if seeds do
    not matter, such as an unchanged source model)."""

    method: str
    kind: str  # "bar", "baseline" or "transfer"
    scores: list[np.ndarray] = field(default_factory=list)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, KS, PR-AUC and Brier of probabilities ``p`` on labels ``y``."""
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "ks": float(np.max(tpr - fpr)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
    }


def _aucs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of ``scores`` [S, N] (Mann-Whitney with tied ranks averaged)."""
    ranks = rankdata(scores, axis=1)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _stacked(a: Arm, b: Arm) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(a.scores), len(b.scores))
    return (
        np.stack([a.scores[i % len(a.scores)] for i in range(n)]),
        np.stack([b.scores[i % len(b.scores)] for i in range(n)]),
    )


def paired_over_splits(
    pairs: Sequence[tuple[np.ndarray, Arm, Arm]], *, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean over splits of (mean AUC of ``a`` minus ``b`` over seeds), and a bootstrap 95%
    interval: each round resamples every split's test rows and seeds, then averages."""
    stacked = [(y, *_stacked(a, b)) for y, a, b in pairs]
    point = float(np.mean([np.mean(_aucs(y, sa) - _aucs(y, sb)) for y, sa, sb in stacked]))
    rng = np.random.default_rng(seed)
    diffs = np.empty(rounds)
    for r in range(rounds):
        total = 0.0
        for y, sa, sb in stacked:
            rows = rng.integers(0, len(y), len(y))
            while y[rows].min() == y[rows].max():  # pragma: no cover - needs both classes
                rows = rng.integers(0, len(y), len(y))
            seeds = rng.integers(0, len(sa), len(sa))
            ya, a_, b_ = y[rows], sa[seeds][:, rows], sb[seeds][:, rows]
            total += float(np.mean(_aucs(ya, a_) - _aucs(ya, b_)))
        diffs[r] = total / len(stacked)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return point, float(low), float(high)


def paired_difference(
    y: np.ndarray, a: Arm, b: Arm, *, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """:func:`paired_over_splits` on one split."""
    return paired_over_splits([(y, a, b)], rounds=rounds, seed=seed)


def _find(arms: Sequence[Arm], method: str) -> Arm | None:
    return next((a for a in arms if a.method == method), None)


def tables(
    labels: Mapping[int, np.ndarray],
    results: Results,
    *,
    recipe: str,
    bars: Sequence[str],
    rounds: int = 2000,
) -> str:
    """AUC per arm and budget (mean ± std over splits and seeds), KS / PR-AUC / Brier, the
    fixed recipe minus each bar and every transfer arm minus each bar (bootstrap 95%)."""
    budgets = list(results)
    methods = list(dict.fromkeys(a.method for b in budgets for arms in results[b].values()
                                 for a in arms))  # fmt: skip
    kinds = {a.method: a.kind for b in budgets for arms in results[b].values() for a in arms}

    def per_method(budget: str, method: str) -> list[dict[str, float]]:
        out = []
        for split, arms in results[budget].items():
            arm = _find(arms, method)
            if arm is not None:
                out += [metrics(labels[split], s) for s in arm.scores]
        return out

    def grid(title: str, cell: object) -> list[str]:
        lines = [title, "", "| method | " + " | ".join(f"n={b}" for b in budgets) + " |"]
        lines.append("| --- |" + " ---: |" * len(budgets))
        for method in methods:
            cells = []
            for b in budgets:
                rows = per_method(b, method)
                cells.append(cell(rows) if rows else "")  # type: ignore[operator]
            mark = {"transfer": " *", "bar": " (bar)"}.get(kinds[method], "")
            lines.append(f"| {method}{mark} | " + " | ".join(cells) + " |")
        return lines

    def auc_cell(rows: list[dict[str, float]]) -> str:
        aucs = [r["roc_auc"] for r in rows]
        return f"{np.mean(aucs):.3f} ± {np.std(aucs):.3f}"

    def other_cell(rows: list[dict[str, float]]) -> str:
        return " / ".join(f"{np.mean([r[k] for r in rows]):.3f}" for k in ("ks", "pr_auc", "brier"))

    splits = sorted({s for b in budgets for s in results[b]})
    lines = grid(
        f"ROC-AUC on the target test rows, mean ± std over split seeds {splits} and seeds "
        "(* transfer, (bar) the two bars):",
        auc_cell,
    )
    lines += ["", *grid("KS / PR-AUC / Brier, mean:", other_cell)]

    def diff(method: str, bar: str, budget: str) -> str:
        return diff_in(results, method, bar, budget)

    def diff_in(within: Results, method: str, bar: str, budget: str) -> str:
        pairs = []
        for split, arms in within[budget].items():
            a, b = _find(arms, method), _find(arms, bar)
            if a is not None and b is not None:
                pairs.append((labels[split], a, b))
        if not pairs:
            return ""
        d, lo, hi = paired_over_splits(pairs, rounds=rounds)
        return f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    lines += ["", f"The fixed recipe ({recipe}) minus each bar, paired ROC-AUC difference "
              "(bootstrap 95% over test rows and seeds of every split):", ""]  # fmt: skip
    lines += ["| bar | " + " | ".join(f"n={b}" for b in budgets) + " |"]
    lines += ["| --- |" + " ---: |" * len(budgets)]
    for bar in bars:
        lines.append(f"| {bar} | " + " | ".join(diff(recipe, bar, b) for b in budgets) + " |")
    for bar in bars:  # each split on its own: the criterion holds per held-out split?
        for split in splits if len(splits) > 1 else []:
            one = {b: {split: results[b][split]} for b in budgets if split in results[b]}
            cells = [diff_in(one, recipe, bar, b) if b in one else "" for b in budgets]
            lines.append(f"| {bar}, split {split} only | " + " | ".join(cells) + " |")
    others = [m for m in methods if kinds[m] == "transfer" and m != recipe]
    for bar in bars:
        if not others:
            break
        lines += ["", f"Every other transfer arm minus {bar} (same protocol):", ""]
        lines += ["| transfer | " + " | ".join(f"n={b}" for b in budgets) + " |"]
        lines += ["| --- |" + " ---: |" * len(budgets)]
        for method in others:
            lines.append(
                f"| {method} | " + " | ".join(diff(method, bar, b) for b in budgets) + " |"
            )
    return "\n".join(lines)
