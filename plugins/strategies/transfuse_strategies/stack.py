"""``strategy.stack``: the source model's score plus a target correction, shrunk by
cross-validation on the labelled target rows.

After the source weights are in (layer-map), every labelled target row (training and
validation) goes through the model once: its source logit ``s`` and its fused features
``f``. A correction is fitted with ``s`` as an offset,

    logit = s + a * z(s) + w . z(f) + c        (z: standardised on these rows)

with ``a`` and ``c`` free (a recalibration of the source's score, which keeps its ranking)
and an L2 penalty ``lam / 2 * |w|^2`` on the correction. ``lam`` is picked from a grid by
repeated stratified k-fold on the labelled rows (out-of-fold AUC, one-standard-error
rule towards the larger penalty); the grid always
holds ``inf`` (no correction: the source's ranking, recalibrated), so the choice falls
back to the source when the labels do not pay. A linear head makes the result
exact: ``head.weight <- (1 + a/sd_s) W0 + w/sd_f`` and the bias to match. With
``then: keep`` nothing trains afterwards (every learning rate is set to 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import StackOptions

__all__ = ["Stack", "choose_penalty", "fit_offset_logistic", "score_rows"]


def _loss_grad(
    beta: np.ndarray, x: np.ndarray, y: np.ndarray, offset: np.ndarray, lam: float, free: int
) -> tuple[float, np.ndarray]:
    """Mean log-loss of ``offset + x @ beta[1:] + beta[0]`` plus ``lam/2 |w|^2 / n``, where
    ``w`` is ``beta`` past the intercept and the first ``free`` columns (unpenalised)."""
    z = offset + beta[0] + x @ beta[1:]
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    p = 1.0 / (1.0 + np.exp(-z))
    grad = np.empty_like(beta)
    grad[0] = np.mean(p - y)
    grad[1:] = x.T @ (p - y) / len(y)
    w = beta[1 + free :]
    grad[1 + free :] += lam * w / len(y)
    return float(loss + 0.5 * lam * float(w @ w) / len(y)), grad


def fit_offset_logistic(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray, lam: float, free: int = 1
) -> np.ndarray:
    """``[c, beta...]`` of a logistic regression with a fixed offset: the intercept and
    the first ``free`` columns unpenalised, the rest L2-penalised by ``lam``; ``lam = inf``
    holds the rest at 0."""
    from scipy.optimize import minimize

    out = np.zeros(x.shape[1] + 1)
    if math.isinf(lam):
        x, out = x[:, :free], np.zeros(x.shape[1] + 1)
        lam = 0.0
    result = minimize(
        _loss_grad, np.zeros(x.shape[1] + 1), args=(x, y, offset, lam, free), jac=True,
        method="L-BFGS-B", options={"maxiter": 500},
    )  # fmt: skip
    out[: x.shape[1] + 1] = result.x
    return out


def _log_loss(beta: np.ndarray, x: np.ndarray, y: np.ndarray, offset: np.ndarray) -> float:
    z = offset + beta[0] + x @ beta[1:]
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def choose_penalty(
    x: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray,
    grid: list[float],
    *,
    folds: int,
    repeats: int,
    seed: int,
    criterion: str = "auc",
) -> tuple[float, dict[float, float]]:
    """The largest penalty whose mean out-of-fold score is within one standard error of
    the best (the one-standard-error rule: prefer the source when the folds cannot tell),
    and every candidate's mean score. ``criterion``: ``auc`` (ranking, higher is better)
    or ``log-loss`` (lower is better, negated inside). Features are standardised per fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    scores: dict[float, list[float]] = {lam: [] for lam in grid}
    for train, test in splitter.split(x, y):
        mean, sd = x[train].mean(0), x[train].std(0)
        sd[sd < 1e-12] = 1.0
        xt, xv = (x[train] - mean) / sd, (x[test] - mean) / sd
        for lam in grid:
            beta = fit_offset_logistic(xt, y[train], offset[train], lam)
            if criterion == "auc":
                z = offset[test] + beta[0] + xv @ beta[1:]
                scores[lam].append(float(roc_auc_score(y[test], z)))
            else:
                scores[lam].append(-_log_loss(beta, xv, y[test], offset[test]))
    mean_score = {lam: float(np.mean(v)) for lam, v in scores.items()}
    best = max(grid, key=lambda lam: mean_score[lam])
    se = float(np.std(scores[best]) / np.sqrt(len(scores[best])))
    chosen = max(lam for lam in grid if mean_score[lam] >= mean_score[best] - se)
    return chosen, mean_score


class Stack(TransferStrategy):
    """Source logit as an offset, plus a CV-shrunk linear correction written into the head."""

    options: StackOptions

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Score the labelled rows, choose the penalty by k-fold, rewrite the head."""
        self.context = ctx
        where = "strategy.stack"
        head = getattr(ctx.target_model, "head", None)
        if not isinstance(head, nn.Linear) or head.out_features != 1:
            raise TransferError(
                "stack needs a binary task's linear head (one logit)",
                where=where,
                fix="use it with task type binary and a fusion that leaves the head to the "
                "model (not fusion.late / fusion.stack)",
            )
        if ctx.batches is None:
            raise TransferError(
                "the transfer context has no batches() to score the target rows with",
                where=where,
                fix="run it through `transfuse transfer` (or give batches=)",
            )
        rows = ctx.target_data
        validation = ctx.validation_data
        if self.options.use_validation and validation is not None and len(validation):
            rows = pd.concat([rows, validation], ignore_index=True)
        offset, feats, y = self._score(ctx, rows)
        report = TransferReport(strategy="strategy.stack")
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        folds = min(self.options.folds, positives, negatives)
        few = folds < 2 or min(positives, negatives) < self.options.min_class_rows
        if few:
            report.notes.append(
                f"{positives} positive / {negatives} negative labelled rows: fewer than "
                f"min_class_rows={self.options.min_class_rows} of a class, the source "
                "ranking is kept (too few for k-fold; intercept refitted)"
            )
            losses: dict[float, float] = {}
            grid, chosen = [math.inf], math.inf
        else:
            grid = [*self.options.penalties, math.inf]
            x = np.column_stack([offset, feats]) if self.options.features else offset[:, None]
            chosen, losses = choose_penalty(
                x, y, offset, grid, folds=folds, repeats=self.options.repeats,
                seed=self.options.seed, criterion=self.options.criterion,
            )  # fmt: skip
        x = np.column_stack([offset, feats]) if self.options.features else offset[:, None]
        mean, sd = x.mean(0), x.std(0)
        sd[sd < 1e-12] = 1.0
        beta = fit_offset_logistic((x - mean) / sd, y, offset, chosen)
        if few:
            # Too few of a class to trust even a slope: the source logit as it is, with the
            # intercept refitted (a free slope can reverse the ranking on ten positives).
            beta = np.zeros_like(beta)
            beta[0] = fit_offset_logistic(np.zeros((len(y), 0)), y, offset, math.inf, free=0)[0]
        self._rewrite_head(head, beta, mean, sd)
        self.chosen, self.losses = chosen, losses
        ctx.extra["stack"] = {"penalty": chosen, "cv_log_loss": losses, "rows": len(y)}
        table = ", ".join(f"{_fmt(lam)}: {loss:.4f}" for lam, loss in losses.items())
        report.notes.append(
            f"penalty chosen by {self.options.repeats}x{folds}-fold CV on {len(y)} labelled "
            f"rows: {_fmt(chosen)}"
            + (f" (out-of-fold {self.options.criterion} {table})" if table else "")
        )
        report.notes.append(
            "inf keeps the source's ranking; a finite penalty adds a correction of the "
            f"source logit and {feats.shape[1] if self.options.features else 0} features"
        )
        return report

    def _score(self, ctx: TransferContext, rows: Any) -> tuple[Any, Any, Any]:
        """Source logits, fused features and 0/1 labels of ``rows`` (see :func:`score_rows`)."""
        return score_rows(ctx, rows)

    @staticmethod
    def _rewrite_head(head: nn.Linear, beta: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> None:
        """``logit = s + beta . (x - mean)/sd + c`` with ``x = [s, f]`` (or ``[s]``) and
        ``s = W0 f + b0``, folded into the linear head."""
        c, coef = float(beta[0]), beta[1:] / sd
        with torch.no_grad():
            w0 = head.weight.detach().double().cpu().numpy().reshape(-1)
            b0 = float(head.bias.detach().double().cpu().item()) if head.bias is not None else 0.0
            a = float(coef[0])
            w = (1.0 + a) * w0
            if len(coef) > 1:
                w = w + coef[1:]
            b = (1.0 + a) * b0 + c - float(coef @ mean)
            head.weight.copy_(torch.as_tensor(w, dtype=head.weight.dtype).reshape(1, -1))
            if head.bias is not None:
                head.bias.fill_(b)

    def param_groups(self, model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``then: keep``: every learning rate 0, so training leaves the stacked model as it is."""
        if self.options.then == "keep":
            for group in groups:
                group["lr"], group["weight_decay"] = 0.0, 0.0
        return groups


def score_rows(ctx: TransferContext, rows: Any) -> tuple[Any, Any, Any]:
    """Logits, fused features and 0/1 labels of ``rows`` under the target model (eval
    mode, no grad)."""
    assert ctx.batches is not None
    model = ctx.target_model
    was_training = model.training
    model.eval()
    logits, feats, labels = [], [], []
    with torch.no_grad():
        for batch in ctx.batches(rows, 512, shuffle=False):
            batch = ctx.device.move(batch)
            out = model(batch)
            logits.append(out["logits"].float().reshape(-1).cpu().numpy())
            feats.append(out["features"].float().cpu().numpy())
            labels.append(batch["target"].float().reshape(-1).cpu().numpy())
    model.train(was_training)
    return (np.concatenate(logits).astype(np.float64),
            np.concatenate(feats).astype(np.float64),
            np.concatenate(labels).astype(np.float64))  # fmt: skip


def _fmt(lam: float) -> str:
    return "inf" if math.isinf(lam) else f"{lam:g}"
