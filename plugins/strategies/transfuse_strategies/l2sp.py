"""``strategy.l2sp``: keep transferred weights near where the transfer put them.

Li, Grandvalet and Davoine (2018), "Explicit inductive bias for transfer learning with
convolutional networks": ``alpha/2 * ||w - w0||^2`` over the transferred weights and
``beta/2 * ||w||^2`` over the new ones, added to the task loss at every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import L2SPOptions
from transfuse_strategies.names import compile_patterns, frozen_inputs, matches_any, unwrap

__all__ = ["L2SP"]


class L2SP(TransferStrategy):
    """Penalise the distance to the starting point (transferred) and the norm (new).

    What counts as transferred comes from ``ctx.extra["loaded"]``, which
    ``strategy.layer-map`` writes, so put l2sp after it: rows of a partly loaded tensor
    (a resized table) are pulled to their start, the other rows only shrink. Without it,
    a tensor counts as transferred when the source has one of the same name and shape,
    and its source value is the anchor.
    """

    options: L2SPOptions

    def __init__(self, options: L2SPOptions, device: Any) -> None:
        super().__init__(options, device)
        self.anchored: list[tuple[nn.Parameter, Tensor, Tensor | None]] = []
        self.fresh: list[nn.Parameter] = []

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Record the anchors ``w0`` (copies of the transferred weights as they are now)."""
        self.context = ctx
        model = unwrap(ctx.target_model)
        exclude = compile_patterns(self.options.exclude, "strategy.l2sp.exclude")
        frozen = tuple(f"inputs.{n}." for n in frozen_inputs(model))
        loaded: dict[str, Tensor | None] | None = ctx.extra.get("loaded")
        sources = dict(unwrap(ctx.source_model).named_parameters())
        self.anchored, self.fresh = [], []
        for name, param in model.named_parameters():
            if matches_any(name, exclude) or (frozen and name.startswith(frozen)):
                continue
            if loaded is not None and name in loaded:
                rows = loaded[name]
                anchor = param.detach().clone()
                self.anchored.append(
                    (param, anchor, None if rows is None else rows.to(anchor.device))
                )
            elif loaded is None and name in sources and sources[name].shape == param.shape:
                anchor = sources[name].detach().to(param.device, param.dtype).clone()
                self.anchored.append((param, anchor, None))
            else:
                self.fresh.append(param)
        return None

    def penalty(self) -> Tensor:
        """``alpha/2 * sum ||w - w0||^2 + beta/2 * sum ||w||^2`` over trainable weights."""
        near = self._zero()
        norm = self._zero()
        for param, anchor, rows in self.anchored:
            if not param.requires_grad:
                continue
            w = param.float()
            if rows is None:
                near = near + (w - anchor.float()).pow(2).sum()
            else:
                near = near + (w[rows] - anchor[rows].float()).pow(2).sum()
                norm = norm + w[~rows].pow(2).sum()
        for param in self.fresh:
            if param.requires_grad:
                norm = norm + param.float().pow(2).sum()
        return 0.5 * self.options.alpha * near + 0.5 * self.options.beta * norm

    def _zero(self) -> Tensor:
        return torch.zeros((), device=self.device_manager.device)

    def extra_loss(self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int) -> Tensor:
        """The penalty (it does not depend on the batch)."""
        return self.penalty()

    def finalize(self, model: nn.Module) -> None:
        """Drop the anchors."""
        self.anchored, self.fresh = [], []
