"""Refitting a fusion's combination on held-out rows (classic stacking), after training.

A fusion trained jointly learns how much to trust each input on the training rows, where
an input that overfits (a linear layer over every n-gram of a noisy text) looks better
than it is. After training, the trainer hands any fusion with a ``refit(held_out)``
method the validation rows (:class:`HeldOut`); the fusion may refit its combination on
them and returns a JSON-able record of what it chose (``log.json``'s ``fusion_refit``).
:func:`choose_combination` is that refit for fusions whose output is a weighted sum of
per-input logits (``fusion.stack``): candidates are compared by k-fold on the held-out
rows, and the current joint combination and each input's head alone always compete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.bases import Task
    from transfuse.data import FrameBatches
    from transfuse.device import DeviceManager
    from transfuse.model import FusionModel

__all__ = [
    "PENALTIES",
    "HeldOut",
    "choose_combination",
    "held_out",
    "refit_fusion",
    "stratified_folds",
]

#: The L2 penalties on the refit weights that k-fold chooses among (mean loss + p * |W|^2).
PENALTIES = (0.0, 0.001, 0.01, 0.1)
FOLDS = 5
MIN_ROWS = 50  # fewer held-out rows than this: keep the joint combination
#: Metrics that only rank the rows: one input's logit rescaled scores the same.
RANK_METRICS = frozenset({"roc_auc", "gini", "average_precision", "pr_auc", "ks"})


@dataclass
class HeldOut:
    """Held-out (validation) rows a fusion may refit its combination on.

    ``batches()`` yields ``(embeddings, present)`` per batch in row order (eval mode, no
    gradients); ``target`` is the task's encoded target for those rows; ``loss(logits,
    target)`` is the task's loss; ``score(logits, rows)`` the early-stopping metric on
    the rows ``rows`` (greater is better: a lower-is-better metric comes negated).
    """

    batches: Callable[[], Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]]
    target: Tensor
    loss: Callable[[Tensor, Tensor], Tensor]
    score: Callable[[Tensor, np.ndarray], float]
    metric: str
    seed: int = 0


def refit_fusion(
    model: FusionModel,
    data: FrameBatches,
    task: Task,
    device: DeviceManager,
    metric: str,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Call ``model.fusion.refit`` on ``data`` (the validation rows), if the fusion has one.

    Every rank of a distributed run sees every row, so all refit the same way.
    """
    refit = getattr(model.fusion, "refit", None)
    if not callable(refit) or not len(data.frame):
        return None

    def batches() -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:
        model.eval()
        with device.inference():
            for batch in data.batches():
                yield model.embeddings(batch), batch["present"]

    record: dict[str, Any] | None = refit(held_out(batches, data.labels(), task, metric, seed))
    return record


def held_out(
    batches: Callable[[], Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]],
    labels: pd.Series,
    task: Task,
    metric: str,
    seed: int = 0,
) -> HeldOut:
    """The :class:`HeldOut` of rows whose ``batches()`` come in the order of ``labels``."""
    sign = 1.0 if task.greater_is_better(metric) else -1.0

    def score(logits: Tensor, rows: np.ndarray) -> float:
        found = task.metrics(labels.iloc[rows], task.scores(logits))
        return sign * float(found.get(metric, float("nan")))

    return HeldOut(batches, task.encode(labels), task.loss, score, metric, seed)


def _combine(logits: Tensor, observed: Tensor, weights: Tensor, bias: Tensor) -> Tensor:
    """``sum_m W_m * logits_m`` over the present inputs, plus the bias: ``[N, K]``."""
    return (logits * weights * observed[:, :, None].to(logits.dtype)).sum(dim=1) + bias


def _fit(
    logits: Tensor, observed: Tensor, offset: Tensor, target: Tensor, loss: Any, penalty: float
) -> tuple[Tensor, Tensor]:
    """Non-negative weights ``[M, K]`` and a bias minimising the loss + ``penalty`` |W|^2
    (L-BFGS; a weight that comes out negative is fixed at zero and the rest refit)."""
    free = torch.ones(logits.shape[1], logits.shape[2])
    for _ in range(free.numel()):
        weights, bias = _lbfgs(logits, observed, offset, target, loss, penalty, free)
        negative = weights < 0
        if not negative.any():
            break
        free = free * (~negative).float()
    return weights.clamp(min=0), bias


def _fit_bias(
    logits: Tensor, observed: Tensor, weights: Tensor, start: Tensor, target: Tensor, loss: Any
) -> Tensor:
    """The bias minimising the loss with ``weights`` kept: Newton steps on the bias alone
    (its own curvature per output, halved until the loss falls). No torch optimizer: its
    first use imports torch._dynamo, seconds for a fit of one number."""
    fixed = _combine(logits, observed, weights, torch.zeros_like(start, dtype=torch.float32))
    b = start.detach().float().clone()

    def value(bias: Tensor) -> Tensor:
        out: Tensor = loss(fixed + bias, target)
        return out

    current = float(value(b))
    for _ in range(50):
        x = b.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(value(x), x, create_graph=True)
        (curve,) = torch.autograd.grad(grad.sum(), x)
        step = grad.detach() / curve.clamp(min=1e-8)
        for _ in range(30):
            found = float(value(b - step))
            if found <= current:
                break
            step = step / 2
        else:
            break
        b, gain, current = b - step, current - found, found
        if gain < 1e-10:
            break
    return b


def _lbfgs(
    logits: Tensor,
    observed: Tensor,
    offset: Tensor,
    target: Tensor,
    loss: Any,
    penalty: float,
    free: Tensor,
) -> tuple[Tensor, Tensor]:
    """One L-BFGS fit of the weights where ``free`` is 1 (the others stay zero)."""
    w = torch.ones(free.shape, requires_grad=True)
    b = torch.zeros(free.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        weights = w * free
        value = loss(_combine(logits, observed, weights, b) + offset, target)
        value = value + penalty * (weights**2).sum()
        value.backward()
        return value

    opt.step(closure)
    return (w * free).detach(), b.detach()


def stratified_folds(target: Tensor, k: int, seed: int) -> np.ndarray:
    """A fold number per row, stratified by the target (rows sorted by it, dealt in turn)."""
    gen = np.random.default_rng(seed)
    values = target.reshape(len(target), -1)[:, 0].double().numpy()
    order = np.lexsort((gen.random(len(values)), values))
    folds = np.empty(len(values), dtype=np.int64)
    folds[order] = np.arange(len(values)) % k
    return folds


def choose_combination(
    logits: Tensor,
    observed: Tensor,
    interaction: Tensor | None,
    weights: Tensor,
    bias: Tensor,
    names: Sequence[str],
    held: HeldOut,
    penalties: Sequence[float] = PENALTIES,
    rule: str = "best",
) -> dict[str, Any]:
    """Pick the combination of per-input logits (``[N, M, K]``; ``observed`` bool
    ``[N, M]``; the interaction's ``[N, K]`` or ``None``) that scores best by k-fold on
    the held-out rows: the current ``weights``/``bias`` (joint), each input's head alone,
    or weights refit per penalty, with and without the interaction. ``rule`` "simplest":
    the simplest candidate whose mean fold score is within one standard error of the
    best's (paired over the folds; Breiman's one-standard-error rule), in the order: each
    input alone, joint, refit weights from the largest penalty down, then with the
    interaction; so a part that only adds noise is not kept for a lucky fold. Returns the choice:
    ``chosen``, ``weights`` ``[M, K]``, ``bias`` ``[K]``, ``interaction`` (kept or not),
    ``penalty``, and each candidate's mean fold ``scores``."""
    logits, target = logits.float(), held.target
    rows, m, k = logits.shape
    zero = torch.zeros(rows, k)
    inter = zero if interaction is None else interaction.float()
    joint = {
        "chosen": "joint",
        "weights": weights.detach().float().clone(),
        "bias": bias.detach().float().clone(),
        "interaction": interaction is not None,
        "penalty": None,
        "rule": rule,
    }
    if rows < MIN_ROWS:
        return {**joint, "scores": {}, "note": f"{rows} held-out rows: too few to refit"}
    if m == 1 and k == 1 and interaction is None and held.metric in RANK_METRICS:
        # one logit: a refit rescales it, which leaves a ranking metric as it is; only the
        # bias is refit (one number), so that the raw scores are on the labels' scale
        bias = _fit_bias(logits, observed, weights.float(), bias.float(), target, held.loss)
        return {**joint, "bias": bias, "scores": {}, "note": "one input: only the bias refit"}
    fixed: dict[str, dict[str, Any]] = {"joint": joint}
    for i, name in enumerate(names):
        alone = torch.zeros(m, k)
        alone[i] = 1.0
        fixed[f"{name} alone"] = {
            "chosen": f"{name} alone",
            "weights": alone,
            "bias": torch.zeros(k),
            "interaction": False,
            "penalty": None,
        }
    uses = [False, True] if interaction is not None else [False]
    fitted = [(p, use) for use in uses for p in penalties]
    folds = stratified_folds(target, FOLDS, held.seed)
    scores: dict[str, list[float]] = {}
    for fold in range(FOLDS):
        test = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        for name, cand in fixed.items():
            offset = inter if cand["interaction"] else zero
            out = _combine(logits[test], observed[test], cand["weights"], cand["bias"])
            scores.setdefault(name, []).append(held.score(out + offset[test], test))
        for penalty, use in fitted:
            offset = inter if use else zero
            w, b = _fit(
                logits[train], observed[train], offset[train], target[train], held.loss, penalty
            )
            out = _combine(logits[test], observed[test], w, b) + offset[test]
            scores.setdefault(_label(penalty, use), []).append(held.score(out, test))
    means = {name: _mean(v) for name, v in scores.items()}
    best = max(means, key=lambda name: means[name])  # the first of equals: joint first
    if rule == "simplest":
        order = sorted((n for n in fixed if n != "joint"), key=lambda n: -means[n])
        order += ["joint"] + [_label(p, u) for u in uses for p in sorted(penalties, reverse=True)]
        best = next((n for n in order if _within_one_se(scores[n], scores[best])), best)
    if best in fixed:
        choice = fixed[best]
    else:
        penalty, use = next((p, u) for p, u in fitted if _label(p, u) == best)
        offset = inter if use else zero
        w, b = _fit(logits, observed, offset, target, held.loss, penalty)
        choice = {"chosen": "refit", "weights": w, "bias": b, "interaction": use,
                  "penalty": penalty}  # fmt: skip
    return {**choice, "scores": {name: round(v, 6) for name, v in means.items()}, "rule": rule}


def _within_one_se(found: list[float], best: list[float]) -> bool:
    """Whether ``found``'s fold scores trail ``best``'s by at most one standard error of
    the paired differences (folds where both are finite)."""
    diffs = np.array([b - f for f, b in zip(found, best) if np.isfinite(f) and np.isfinite(b)])
    if len(diffs) < 2:
        return len(diffs) == 1 and diffs[0] <= 0
    return float(diffs.mean()) <= float(diffs.std(ddof=1)) / np.sqrt(len(diffs))


def _label(penalty: float, interaction: bool) -> str:
    return f"refit l2={penalty:g}" + (" + interaction" if interaction else "")


def _mean(values: list[float]) -> float:
    """The mean of the finite fold scores; minus infinity when there is none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else -np.inf
