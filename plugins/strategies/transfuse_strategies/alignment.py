"""Domain alignment with unlabeled target rows: ``strategy.coral`` and ``strategy.dann``.

At each step both draw a batch of source rows and one of unlabeled target rows (through
``ctx.batches``, which prepares them for the target model), embed them in one forward pass
(concatenated, so batch statistics see both domains) and add a loss that makes the two
domains' fused features alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import CoralOptions, DannOptions
from transfuse_strategies.names import unwrap

__all__ = ["Coral", "Dann", "coral_loss", "grad_reverse", "merge_batches"]


def coral_loss(source: Tensor, target: Tensor) -> Tensor:
    """Deep CORAL: ``||C_s - C_t||_F^2 / (4 d^2)`` between feature covariances."""
    d = source.shape[1]
    cs, ct = torch.cov(source.float().T), torch.cov(target.float().T)
    return (cs - ct).pow(2).sum() / (4 * d * d)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, lam: float) -> Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: Tensor, lam: float) -> Tensor:
    """Identity forward; the gradient comes back multiplied by ``-lam``."""
    out: Tensor = _GradReverse.apply(x, lam)
    return out


def merge_batches(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """One batch of the rows of ``a`` then ``b`` (inputs and present masks), or None when
    a tensor's shape differs beyond the row dimension (e.g. token padding)."""
    merged: dict[str, Any] = {"inputs": {}, "present": {}}
    for name, part in a["inputs"].items():
        other = b["inputs"][name]
        if any(part[k].shape[1:] != other[k].shape[1:] for k in part):
            return None
        merged["inputs"][name] = {k: torch.cat([part[k], other[k]]) for k in part}
    for name, mask in a.get("present", {}).items():
        merged["present"][name] = torch.cat([mask, b["present"][name]])
    return merged


class _Stream:
    """Endless shuffled batches of one frame, through ``ctx.batches``."""

    def __init__(self, ctx: TransferContext, frame: Any, batch_size: int) -> None:
        self.ctx, self.frame, self.batch_size = ctx, frame, batch_size
        self.iterator: Iterator[dict[str, Any]] | None = None
        self.passes = 0

    def next(self) -> dict[str, Any]:
        for _ in range(2):
            if self.iterator is None:
                self.iterator = self._open()
            try:
                return self.ctx.device.move(next(self.iterator))
            except StopIteration:
                self.iterator = None
        raise TransferError("no rows to draw batches from", where="domain alignment")

    def _open(self) -> Iterator[dict[str, Any]]:
        """A fresh pass, in a new order each time when ``batches`` takes a ``seed``."""
        assert self.ctx.batches is not None
        self.passes += 1
        extra = {"seed": self.passes} if _takes_seed(self.ctx.batches) else {}
        return iter(self.ctx.batches(self.frame, self.batch_size, shuffle=True, **extra))


def _takes_seed(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in parameters)


class _Alignment(TransferStrategy):
    """Shared by CORAL and DANN: the checks and the two-domain forward pass."""

    label = "strategy"
    options: Any
    #: The transfer workflow loads the source run's rows for strategies that say so.
    needs_source_data = True

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Check there are source rows, unlabeled target rows and a way to batch them."""
        self.context = ctx
        if ctx.unlabeled is None or len(ctx.unlabeled) < 2:
            raise TransferError(
                "domain alignment needs unlabeled rows of the target domain",
                where=self.label,
                fix="pass --unlabeled FILE (target rows; no label needed)",
            )
        if ctx.source_data is None or len(ctx.source_data) < 2:
            raise TransferError(
                "domain alignment needs the source rows",
                where=self.label,
                fix="transfer from a run whose training data can still be loaded",
            )
        if ctx.batches is None:
            raise TransferError(
                "the transfer context has no batches() to prepare rows with",
                where=self.label,
                fix="run it through `transfuse transfer` (or give TransferContext batches=)",
            )
        size = self.options.batch_size
        # Source rows lack the columns only the target has: those read as missing values.
        wanted = [c for c in ctx.target_data.columns if c not in ctx.source_data.columns]
        source = ctx.source_data.reindex(columns=[*ctx.source_data.columns, *wanted])
        self.streams = (_Stream(ctx, source, size), _Stream(ctx, ctx.unlabeled, size))
        return None

    def domain_features(self) -> tuple[Tensor, Tensor]:
        """Fused features of a source batch and an unlabeled target batch."""
        assert self.context is not None
        model = self.context.target_model
        source, target = self.streams[0].next(), self.streams[1].next()
        merged = merge_batches(source, target)
        with self.device_manager.autocast():
            if merged is not None:
                features = model(merged)["features"]
                rows = _rows(source)
                return features[:rows], features[rows:]
            return model(source)["features"], model(target)["features"]

    def finalize(self, model: nn.Module) -> None:
        """Let go of the data streams."""
        self.streams = ()  # type: ignore[assignment]


def _rows(batch: dict[str, Any]) -> int:
    for part in batch["inputs"].values():
        for tensor in part.values():
            return int(tensor.shape[0])
    raise TransferError("an empty batch", where="domain alignment")


class Coral(_Alignment):
    """Deep CORAL (Sun & Saenko 2016): match second-order statistics of the two domains."""

    options: CoralOptions
    label = "strategy.coral"

    def extra_loss(self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int) -> Tensor:
        """``weight * CORAL(source features, target features)``."""
        source, target = self.domain_features()
        return self.options.weight * coral_loss(source, target)


class Dann(_Alignment):
    """DANN (Ganin et al. 2016): a discriminator tells the domains apart from the features;
    the gradient reversal layer makes the features fool it. The reversal factor ramps from 0
    to ``max_lambda`` as ``2 / (1 + exp(-gamma * p)) - 1`` over training progress ``p``."""

    options: DannOptions
    label = "strategy.dann"

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Check the data, then build the discriminator for the features' width."""
        super().prepare(ctx)
        width = self._feature_width(ctx)
        hidden = self.options.hidden
        self.discriminator = nn.Sequential(
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        ).to(self.device_manager.device)
        self.total_steps = max(1, ctx.epochs * ctx.steps_per_epoch)
        self.domain_accuracy = float("nan")
        return None

    def _feature_width(self, ctx: TransferContext) -> int:
        width = getattr(getattr(unwrap(ctx.target_model), "fusion", None), "output_dim", None)
        if isinstance(width, int) and not getattr(
            unwrap(ctx.target_model).fusion, "produces_logits", False
        ):
            return width
        model = ctx.target_model
        mode = model.training
        model.eval()
        with torch.no_grad():
            width = int(model(self.streams[0].next())["features"].shape[1])
        model.train(mode)
        return width

    def reversal(self, step: int) -> float:
        """The gradient reversal factor at ``step``."""
        progress = min(1.0, step / self.total_steps)
        return self.options.max_lambda * (
            2.0 / (1.0 + math.exp(-self.options.gamma * progress)) - 1.0
        )

    def param_groups(self, model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add the discriminator's group (LR: the default group's times ``lr_mult``)."""
        base = next(
            (g for g in groups if g.get("name") == "default"), groups[0] if groups else None
        )
        lr = (base["lr"] if base else 1e-3) * self.options.lr_mult
        named = list(self.discriminator.named_parameters())
        params = [p for _, p in named]
        group = {
            "name": "dann.discriminator",
            "params": params,
            "param_names": [f"dann.discriminator.{n}" for n, _ in named],
            "lr": lr,
            "weight_decay": 0.0,
        }
        return [*groups, group]

    def extra_loss(self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int) -> Tensor:
        """``weight * BCE(discriminator(reverse(features)), domain)``: source 0, target 1."""
        source, target = self.domain_features()
        features = torch.cat([source, target]).float()
        labels = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(features.device)
        logits = self.discriminator(grad_reverse(features, self.reversal(step))).squeeze(1)
        with torch.no_grad():
            self.domain_accuracy = float(((logits > 0).float() == labels).float().mean())
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return self.options.weight * loss

    def finalize(self, model: nn.Module) -> None:
        """Drop the streams; the discriminator stays for inspection."""
        super().finalize(model)
