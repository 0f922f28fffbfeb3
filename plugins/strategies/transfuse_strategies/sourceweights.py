"""``strategy.source-weights``: several source runs, weighed by how well each alone scores
on the target's labelled rows.

The rule, for a binary task. Each source run k is moved into the target on its own (as
``strategy.layer-map`` would move it) and scores every labelled target row it may see: the
training rows and, with ``use_validation``, the validation rows. Nothing is fitted on
them, so all of them count; test rows are never seen. Its ROC-AUC there is ``AUC_k``, and

    w_k = softmax(AUC_k / temperature)

Then the target is filled from every run as layer-map does with several sources, the
runs ordered by weight (``combine: first``: each tensor from the best-weighted run that
has it; ``combine: average``: the ``w``-weighted mean where shapes agree). While the
target trains, ``distill`` times the binary cross-entropy between its logit and the
sigmoid of ``sum_k w_k s_k`` (``s_k``: run k's logit for that training row) pulls it toward
the weighted ensemble of the sources, which a single set of weights cannot hold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport
from transfuse_strategies import SourceWeightsOptions
from transfuse_strategies.layermap import LayerMap
from transfuse_strategies.names import unwrap

__all__ = ["SourceWeights", "softmax_weights"]


def softmax_weights(scores: list[float], temperature: float) -> list[float]:
    """``softmax(score / temperature)``: the sources' weights from their scores."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    e = np.exp(z - z.max())
    return [float(v) for v in e / e.sum()]


class SourceWeights(LayerMap):
    """Layer-map from several runs, ordered and averaged by their AUC alone on the target's
    labelled rows, plus distillation toward their weighted logits."""

    options: SourceWeightsOptions
    report_name = "strategy.source-weights"

    def __init__(self, options: SourceWeightsOptions, device: Any) -> None:
        super().__init__(options, device)
        self.teacher: Tensor | None = None
        self.weights: dict[str, float] = {}

    def prepare(self, ctx: TransferContext) -> TransferReport:
        """Score each run alone, weigh, fill the target, keep the ensemble's training logits."""
        self.context = ctx
        where = "strategy.source-weights"
        if ctx.batches is None:
            raise TransferError(
                "the transfer context has no batches() to score the target rows with",
                where=where,
                fix="run it through `transfuse transfer` (or give batches=)",
            )
        models = list(ctx.source_models) or [ctx.source_model]
        names = list(ctx.source_names)
        if len(names) != len(models):
            names = [f"source {i}" for i in range(len(models))]
        rows = ctx.target_data
        if self.options.use_validation and ctx.validation_data is not None:
            rows = pd.concat([rows, ctx.validation_data], ignore_index=True)
        target = unwrap(ctx.target_model)
        start = {n: p.detach().clone() for n, p in target.named_parameters()}
        gbdt = "source-trees" if self.options.gbdt == "continue" else self.options.gbdt
        scoring = self.options.model_copy(update={"gbdt": gbdt})  # boost only once, at the end
        final, self.options = self.options, scoring
        logits, aucs, y = [], [], np.zeros(0)
        try:
            for k, model in enumerate(models):
                self.load_sources(ctx, [model], [names[k]], [1.0], check=False)
                ctx.extra["reports"].pop()
                s, y = self._score(ctx, rows)
                if len(np.unique(y)) < 2:
                    raise TransferError(
                        f"the {len(y)} labelled target rows hold one class only; the sources "
                        "cannot be scored",
                        where=where,
                        fix="give labelled rows of both classes (a larger label budget)",
                    )
                logits.append(s)
                aucs.append(_auc(y, s))
                _restore(target, start)
        finally:
            self.options = final
        weights = softmax_weights(aucs, self.options.temperature)
        order = sorted(range(len(models)), key=lambda k: -weights[k])
        report = self.load_sources(
            ctx, [models[k] for k in order], [names[k] for k in order], [weights[k] for k in order]
        )
        seen = "training and validation" if len(rows) > len(ctx.target_data) else "training"
        for k in order:
            report.notes.append(
                f"{names[k]}: AUC {aucs[k]:.4f} alone on the {len(rows)} labelled {seen} rows "
                f"-> weight {weights[k]:.3f} (temperature {self.options.temperature:g})"
            )
        self.weights = {names[k]: weights[k] for k in range(len(models))}
        ensemble = sum(w * s for w, s in zip(weights, logits, strict=True))
        train = np.asarray(ensemble, dtype=np.float64)[: len(ctx.target_data)]
        self.teacher = torch.as_tensor(train, dtype=torch.float32)
        if self.options.distill > 0:
            report.notes.append(
                f"distillation (weight {self.options.distill:g}) toward the weighted sum of "
                f"the {len(models)} sources' logits on the {len(train)} training rows"
            )
        ctx.extra["source_weights"] = {
            names[k]: {"auc": aucs[k], "weight": weights[k]} for k in range(len(models))
        }
        return report

    def _score(self, ctx: TransferContext, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The target model's logits and 0/1 labels of ``rows``, in their order."""
        assert ctx.batches is not None
        model = ctx.target_model
        was_training = model.training
        model.eval()
        logits = np.zeros(len(rows))
        labels = np.zeros(len(rows))
        with torch.no_grad():
            for batch in ctx.batches(rows, 512, shuffle=False):
                batch = ctx.device.move(batch)
                out = model(batch)["logits"].float()
                if out.ndim > 1 and out.shape[1] != 1:
                    model.train(was_training)
                    raise TransferError(
                        f"source-weights needs a binary task (one logit), not {out.shape[1]}",
                        where="strategy.source-weights",
                        fix="use it with task type binary, or use strategy.layer-map",
                    )
                index = batch["index"].cpu().numpy()
                logits[index] = out.reshape(-1).cpu().numpy()
                labels[index] = batch["target"].float().reshape(-1).cpu().numpy()
        model.train(was_training)
        return logits, labels

    def extra_loss(self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int) -> Tensor:
        """``distill`` x BCE(target logit, sigmoid(weighted sources' logit)) on the batch."""
        if self.teacher is None or self.options.distill == 0:
            return outputs["logits"].new_zeros(())
        index = batch["index"].to(self.teacher.device)
        teacher = torch.sigmoid(self.teacher[index]).to(outputs["logits"].device)
        logits = outputs["logits"].float().reshape(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, teacher)
        return self.options.distill * loss

    def finalize(self, model: Any) -> None:
        """Let go of the training rows' ensemble logits."""
        self.teacher = None


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    value = float(roc_auc_score(y, s))
    return 0.5 if math.isnan(value) else value


def _restore(model: torch.nn.Module, start: dict[str, Tensor]) -> None:
    """Put back the parameters the target was built with (those whose shape is unchanged)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in start and start[name].shape == param.shape:
                param.copy_(start[name])
