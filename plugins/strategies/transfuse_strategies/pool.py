"""``strategy.pool``: the source network averaged with a gradient-boosted model fitted on
the source rows and the labelled target rows pooled, distilled into the network or, when
the gbdt input reaches the logit linearly (``fusion.linear``), written into it exactly.

With a few hundred target labels, neither the unchanged source network nor a pooled
model wins alone: on the development splits (purpose shift, split seeds 0-2) the labels
carried no ranking a correction could find (``strategy.stack`` kept the source every
time), while averaging two model families fitted on the same rows did. So this strategy,
after ``layer-map`` has put the source trees and leaf vectors in:

1. fits ``trees`` new LightGBM trees on the source rows (their label: the target's label
   column if they have it, else the source run's label) plus every labelled target row,
   in the ``tabular.gbdt`` input's own feature space, from a constant start (the pooled
   rows' log-odds): an independent pooled model ``p``;
2. rescales ``p`` to the spread of the source logit ``s`` on the labelled target rows
   (``k = sd(s) / sd(p)``; no label is used for it) and averages,
   ``t = (1 - mix) * s + mix * k * p + c``, the intercept ``c`` refitted on the labelled
   target rows;
3. appends the new trees to the input's booster (their leaves' vectors start at 0 and the
   old ones are rescaled, so the network starts exactly at ``s``) and trains the network
   for ``distill_epochs`` to reproduce ``t`` on the pooled rows (mean squared error on the
   logit). The fusion between the encoder and the head is not linear, so this is a fit,
   not an identity: the report gives its correlation with ``t`` on the target rows.
3'. With ``exact: true`` (the network's logit is affine in the gbdt input's embedding,
   ``g . e + r``; checked: the gradient ``g`` is the same on every row), nothing is
   trained: the head is scaled by ``1 - mix`` and shifted by ``c + mix k base``, and each
   new tree's leaf vectors are set to ``T mix k value g' / |g'|^2`` (``T`` trees in all,
   ``g' = (1 - mix) g``), so the network's logit is ``t`` on every row, up to float error
   (the report gives the largest error on the labelled target rows).

With ``then: keep`` nothing trains afterwards. Every choice is fixed in advance (no test
rows, no search on the budget). Needs one ``tabular.gbdt`` input and a binary task's
linear head.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import PoolOptions
from transfuse_strategies.names import unwrap
from transfuse_strategies.stack import fit_offset_logistic

__all__ = ["Pool"]

WHERE = "strategy.pool"


def _gbdt_input(model: nn.Module) -> tuple[str, Any]:
    """The one ``tabular.gbdt`` input (duck-typed: a booster, a leaf table and its leaf values)."""
    inputs = getattr(unwrap(model), "inputs", None)
    found = [
        (name, enc)
        for name, enc in (inputs.items() if isinstance(inputs, nn.ModuleDict) else [])
        if getattr(enc, "booster", None) is not None and hasattr(enc, "leaf_values")
    ]
    if len(found) != 1:
        raise TransferError(
            f"pool needs exactly one tabular.gbdt input with fitted trees, found {len(found)}",
            where=WHERE,
            fix="use one tabular.gbdt input and put layer-map before pool",
        )
    return found[0]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Pool(TransferStrategy):
    """Average the source logit with a pooled booster's; distil it into the network."""

    options: PoolOptions
    #: The transfer workflow loads the source run's rows for strategies that say so.
    needs_source_data = True

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Fit the pooled trees, append them to the gbdt input, distil the average."""
        import lightgbm as lgb

        self.context = ctx
        o = self.options
        head = getattr(unwrap(ctx.target_model), "head", None)
        if not isinstance(head, nn.Linear) or head.out_features != 1:
            raise TransferError(
                "pool needs a binary task's linear head (one logit)",
                where=WHERE,
                fix="use it with task type binary and fusion.concat (or another fusion that "
                "leaves the head to the model)",
            )
        if ctx.batches is None:
            raise TransferError(
                "the transfer context has no batches() to score the target rows with",
                where=WHERE,
                fix="run it through `transfuse transfer` (or give batches=)",
            )
        name, encoder = _gbdt_input(ctx.target_model)
        rows = ctx.target_data
        if o.use_validation and ctx.validation_data is not None and len(ctx.validation_data):
            rows = pd.concat([rows, ctx.validation_data], ignore_index=True)
        direction = self._direction(ctx, name, rows) if o.exact else None
        source_rows = self._source_rows(ctx)
        columns = [c["name"] for c in encoder.fitted_state()["columns"]]
        source_label = source_rows.attrs["label"]
        target_label = ctx.extra["label"]
        try:
            y_source = encoder._labels(source_rows[source_label], learn=False)
            y_target = encoder._labels(rows[target_label], learn=False)
        except Exception as exc:  # the classes of the two labels differ
            raise TransferError(
                f"the source label {source_label!r} and the target label {target_label!r} "
                f"cannot be pooled: {exc}",
                where=WHERE,
                fix="give source rows whose label has the target's two classes",
            ) from None
        x = np.vstack([encoder._matrix(source_rows[columns]), encoder._matrix(rows[columns])])
        y = np.concatenate([y_source, y_target])
        w = np.concatenate([np.full(len(y_source), o.source_weight), np.full(len(y_target), 1.0)])
        keep = ~np.isnan(y)
        x, y, w = x[keep], y[keep], w[keep]
        start = np.asarray(encoder.booster.predict(x, raw_score=True), np.float64)
        mean = float(np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6))
        base = math.log(mean / (1 - mean))

        def objective(preds: np.ndarray, _data: Any) -> tuple[np.ndarray, np.ndarray]:
            p = _sigmoid(preds - start + base)  # the new trees alone, from the constant
            return w * (p - y), w * p * (1.0 - p)

        params = {
            "objective": objective,
            "learning_rate": o.learning_rate,
            "num_leaves": o.leaves,
            "min_data_in_leaf": o.min_rows_per_leaf,
            "min_data_per_group": o.min_rows_per_leaf,
            "bagging_fraction": o.row_subsample,
            "bagging_freq": 1 if o.row_subsample < 1 else 0,
            "feature_fraction": o.column_subsample,
            "lambda_l2": o.l2,
            "seed": o.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "num_threads": o.threads,
        }
        data = lgb.Dataset(x, y, weight=w, categorical_feature=encoder._categorical_features())
        old_trees, old_rows = len(encoder.leaves_per_tree), sum(encoder.leaves_per_tree)
        booster = lgb.train(params, data, num_boost_round=o.trees, init_model=encoder.booster)
        booster = lgb.Booster(model_str=booster.model_to_string())

        # The two logits: the source's (the network as layer-map left it) and the pooled.
        p_all = base + (np.asarray(booster.predict(x, raw_score=True), np.float64) - start)
        target_part = np.arange(len(y)) >= len(y) - int(keep[len(y_source) :].sum())
        labelled = rows[keep[len(y_source) :]].reset_index(drop=True)
        s, p_rows, y_rows = self._logits(ctx, labelled), p_all[target_part], y[target_part]
        k = float(np.std(s) / max(float(np.std(p_rows)), 1e-12))
        offset = (1.0 - o.mix) * s + o.mix * k * p_rows
        c = float(fit_offset_logistic(np.zeros((len(y_rows), 0)), y_rows, offset, math.inf, 0)[0])
        if direction is not None:
            self._append(encoder, booster, old_trees, old_rows)
            self._write(ctx, encoder, direction, old_trees, k, c + o.mix * k * base)
            error = float(np.max(np.abs(self._logits(ctx, labelled) - (offset + c))))
            if error > 1e-3 * (1.0 + float(np.max(np.abs(offset + c)))):
                raise TransferError(
                    f"the network's logit misses the average by up to {error:.3g} after the "
                    f"exact write: inputs.{name} does not reach the logit linearly",
                    where=WHERE,
                    fix="use fusion.linear in the source and target pipelines, or exact: false",
                )
            written = f"written into the network exactly: max |logit - average| {error:.1e}"
            fidelity = 1.0
        else:
            pooled_rows = pd.concat([source_rows[columns], rows[columns]], ignore_index=True)
            pooled_rows = pooled_rows[keep].reset_index(drop=True)
            s_all = self._logits(ctx, pooled_rows)
            teacher = (1.0 - o.mix) * s_all + o.mix * k * p_all + c
            self._append(encoder, booster, old_trees, old_rows)
            fidelity = self._distill(ctx, pooled_rows, teacher, target_part)
            written = (
                f"distilled into the network in {o.distill_epochs} epochs: correlation "
                f"{fidelity:.4f} with the average on the labelled target rows"
            )
            error = math.nan
        added = len(encoder.leaves_per_tree) - old_trees
        report = TransferReport(strategy=WHERE)
        report.notes.append(
            f"inputs.{name}: {added} trees fitted on {len(source_rows)} source + {len(rows)} "
            f"target rows pooled (source label {source_label!r}, weight {o.source_weight:g})"
        )
        report.notes.append(
            f"logit = {1 - o.mix:g} * source + {o.mix:g} * {k:.3g} * pooled + {c:.3g} "
            "(scale from the labelled target rows' spread, intercept refitted)"
        )
        report.notes.append(written)
        ctx.extra["pool"] = {
            "trees": added, "first_tree": old_trees, "scale": k, "base": base,
            "intercept": c, "rows": len(y_rows), "fidelity": fidelity, "max_error": error,
        }  # fmt: skip
        return report

    def _source_rows(self, ctx: TransferContext) -> pd.DataFrame:
        """Labelled source rows; ``attrs["label"]`` names the label column they use."""
        label = ctx.extra.get("label")
        source_config = ctx.extra.get("source_config")
        data = ctx.source_data
        if data is None or label is None:
            raise TransferError(
                "pool needs the source rows and the target's label column",
                where=WHERE,
                fix="run it through `transfuse transfer` (it loads the source run's rows) "
                "or pass source_data=",
            )
        if label not in data.columns:
            label = getattr(getattr(source_config, "task", None), "target", None)
        if label is None or label not in data.columns:
            raise TransferError(
                "the source rows have neither the target's label column nor the source run's",
                where=WHERE,
                fix="pass source_data= with a label column",
            )
        rows = data[data[label].notna()]
        if rows[label].nunique() < 2:
            raise TransferError(
                f"the source rows' label {label!r} has fewer than two classes",
                where=WHERE,
                fix="give labelled source rows of both classes",
            )
        rows = rows.copy()
        rows.attrs["label"] = label
        return rows

    @staticmethod
    def _append(encoder: Any, booster: Any, old_trees: int, old_rows: int) -> None:
        """Append the new trees: their leaf vectors 0, the old ones scaled by
        ``trees / old_trees``, so the mean over all trees is the old mean."""
        old = encoder.leaf_embedding.weight.detach()
        encoder._set_booster(booster)
        total, trees = sum(encoder.leaves_per_tree), len(encoder.leaves_per_tree)
        table = nn.EmbeddingBag(total, old.shape[1], mode="mean").to(old.device, old.dtype)
        with torch.no_grad():
            table.weight.zero_()
            table.weight[:old_rows] = old[:old_rows] * (trees / old_trees)
        encoder.leaf_embedding = table

    def _direction(self, ctx: TransferContext, name: str, frame: pd.DataFrame) -> Tensor:
        """``g``: the gradient of the logit with respect to input ``name``'s embedding, the
        same on every row when the path to the logit is linear (else an error)."""
        model: Any = unwrap(ctx.target_model)
        was_training = model.training
        model.eval()
        batch = next(iter(self._batches(ctx, frame.iloc[:256].reset_index(drop=True), 256)))
        embeddings = {k: v.detach() for k, v in model.embeddings(batch).items()}
        embeddings[name] = embeddings[name].float().requires_grad_(True)
        logits = model.head(model.fusion(embeddings, batch["present"]))
        (grad,) = torch.autograd.grad(logits.sum(), embeddings[name])
        model.train(was_training)
        present = batch["present"].get(name)
        if present is not None:  # a row without the input does not depend on it
            grad = grad[present.to(grad.device, torch.bool).reshape(-1)]
        g = grad[0] if len(grad) else grad.new_zeros(grad.shape[1:])
        scale = float(g.abs().max())
        if scale == 0 or not torch.allclose(grad, g.expand_as(grad), atol=1e-4 * scale, rtol=0):
            raise TransferError(
                f"exact needs inputs.{name} to reach the logit linearly, but through "
                f"{type(model.fusion).__name__} the logit's gradient differs between rows"
                + (" (it is zero)" if scale == 0 else ""),
                where=WHERE,
                fix="use fusion: {method: fusion.linear} in the source and target pipelines, "
                "or exact: false (distil the average)",
            )
        return g.detach()

    def _write(
        self, ctx: TransferContext, encoder: Any, g: Tensor, first: int, k: float, shift: float
    ) -> None:
        """Head times ``1 - mix``, plus ``shift``; the leaf vectors of the trees from
        ``first`` on set so that each adds ``mix * k * its leaf value`` to the logit."""
        mix = self.options.mix
        head: Any = unwrap(ctx.target_model).head
        weight = encoder.leaf_embedding.weight
        trees, offsets = len(encoder.leaves_per_tree), encoder.leaf_offsets()
        unit = ((1.0 - mix) * g.double()) / float(((1.0 - mix) * g.double()).pow(2).sum())
        with torch.no_grad():
            head.weight.mul_(1.0 - mix)
            head.bias.mul_(1.0 - mix).add_(shift)
            for t, values in enumerate(encoder.leaf_values(first), start=first):
                rows = torch.tensor([offsets[t] + i for i in values], dtype=torch.long)
                vals = torch.tensor(list(values.values()), dtype=torch.float64) * (trees * mix * k)
                weight[rows.to(weight.device)] = (vals[:, None] * unit[None, :]).to(weight)

    def _batches(self, ctx: TransferContext, frame: pd.DataFrame, size: int) -> Any:
        assert ctx.batches is not None
        for batch in ctx.batches(frame, size, shuffle=False):
            yield ctx.device.move(batch)

    def _logits(self, ctx: TransferContext, frame: pd.DataFrame) -> np.ndarray:
        """The target model's logits on ``frame`` (no labels needed; eval mode, no grad)."""
        model = ctx.target_model
        was_training = model.training
        model.eval()
        out = []
        with torch.no_grad():
            for batch in self._batches(ctx, frame, 1024):
                out.append(model(batch)["logits"].float().reshape(-1).cpu().numpy())
        model.train(was_training)
        return np.concatenate(out).astype(np.float64)

    def _distill(
        self, ctx: TransferContext, frame: pd.DataFrame, teacher: np.ndarray, report: np.ndarray
    ) -> float:
        """Train the network's logit towards ``teacher`` (MSE); correlation on ``report`` rows."""
        o = self.options
        model = ctx.target_model
        was_training = model.training
        model.eval()  # no dropout: the teacher is a deterministic function of the row
        params = [q for q in model.parameters() if q.requires_grad]
        optimizer = torch.optim.Adam(params, lr=o.distill_lr)
        rng = np.random.default_rng(o.seed)
        order = rng.permutation(len(frame))  # mixed source and target rows in every batch
        goal = torch.as_tensor(teacher[order], dtype=torch.float32)
        batches, at = [], 0
        for batch in self._batches(
            ctx, frame.iloc[order].reset_index(drop=True), o.distill_batch_size
        ):
            rows = len(next(iter(batch["present"].values())))
            batches.append((batch, goal[at : at + rows]))
            at += rows
        self.losses: list[float] = []
        for _ in range(o.distill_epochs):
            total = 0.0
            for i in rng.permutation(len(batches)):
                batch, want = batches[i]
                logits = model(batch)["logits"].float().reshape(-1)
                loss = torch.mean((logits - want.to(logits.device)) ** 2)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(want)
            self.losses.append(total / len(frame))
        model.train(was_training)
        got = self._logits(ctx, frame[report].reset_index(drop=True))
        return float(np.corrcoef(got, teacher[report])[0, 1])

    def param_groups(self, model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``then: keep``: every learning rate 0, so training leaves the average as it is."""
        if self.options.then == "keep":
            for group in groups:
                group["lr"], group["weight_decay"] = 0.0, 0.0
        return groups
