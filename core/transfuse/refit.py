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
    from transfuse.bases import Task
    from transfuse.data import FrameBatches
    from transfuse.device import DeviceManager
    from transfuse.model import FusionModel

__all__ = ["PENALTIES", "HeldOut", "choose_combination", "refit_fusion"]

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
    labels = data.labels()
    sign = 1.0 if task.greater_is_better(metric) else -1.0

    def batches() -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:
        model.eval()
        with device.inference():
            for batch in data.batches():
                yield model.embeddings(batch), batch["present"]

    def score(logits: Tensor, rows: np.ndarray) -> float:
        found = task.metrics(labels.iloc[rows], task.scores(logits))
        return sign * float(found.get(metric, float("nan")))

    held = HeldOut(batches, task.encode(labels), task.loss, score, metric, seed)
    record: dict[str, Any] | None = refit(held)
    return record


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


def _folds(target: Tensor, k: int, seed: int) -> np.ndarray:
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
) -> dict[str, Any]:
    """Pick the combination of per-input logits (``[N, M, K]``; ``observed`` bool
    ``[N, M]``; the interaction's ``[N, K]`` or ``None``) that scores best by k-fold on
    the held-out rows: the current ``weights``/``bias`` (joint), each input's head alone,
    or weights refit per penalty, with and without the interaction. Returns the choice:
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
    }
    if rows < MIN_ROWS:
        return {**joint, "scores": {}, "note": f"{rows} held-out rows: too few to refit"}
    if m == 1 and k == 1 and interaction is None and held.metric in RANK_METRICS:
        # one logit: a refit rescales it, which leaves a ranking metric as it is
        return {**joint, "scores": {}, "note": "one input: nothing to weigh"}
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
    folds = _folds(target, FOLDS, held.seed)
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
    if best in fixed:
        choice = fixed[best]
    else:
        penalty, use = next((p, u) for p, u in fitted if _label(p, u) == best)
        offset = inter if use else zero
        w, b = _fit(logits, observed, offset, target, held.loss, penalty)
        choice = {"chosen": "refit", "weights": w, "bias": b, "interaction": use,
                  "penalty": penalty}  # fmt: skip
    return {**choice, "scores": {name: round(v, 6) for name, v in means.items()}}


def _label(penalty: float, interaction: bool) -> str:
    return f"refit l2={penalty:g}" + (" + interaction" if interaction else "")


def _mean(values: list[float]) -> float:
    """The mean of the finite fold scores; minus infinity when there is none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else -np.inf
