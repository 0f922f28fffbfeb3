"""The built-in fusion modules: concat, gated, attention, low-rank, late fusion and stacking.

Each takes the inputs' embeddings and a per-input presence mask and returns one vector
per row. A modality a row lacks never influences that row's output (its embedding is
zeroed or masked), and a row that lacks every modality still gets a finite output.
In training mode ``modality_dropout`` hides present modalities at random, never all of
a row's, so the model learns to cope with missing inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from transfuse.bases import Fusion
from transfuse.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from transfuse.builtin import (
        AttentionOptions,
        FusionOptions,
        LinearOptions,
        LowRankOptions,
        StackOptions,
    )
    from transfuse.device import DeviceManager
    from transfuse.refit import HeldOut

__all__ = [
    "AttentionFusion",
    "ConcatFusion",
    "GatedFusion",
    "LateFusion",
    "LinearFusion",
    "LowRankFusion",
    "StackFusion",
    "drop_modalities",
    "projection",
]


def projection(in_dim: int, dim: int, dropout: float) -> nn.Sequential:
    """One modality's projection to the shared width: linear, layer norm, GELU, dropout."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim), nn.GELU(), nn.Dropout(dropout))


def drop_modalities(mask: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Hide each present modality of a row (``mask``: bool ``[B, M]``) with probability ``p``.

    A row keeps at least one of its present modalities: where all would be dropped, one
    of them, chosen at random, is kept. Missing modalities stay missing.
    """
    if p <= 0 or mask.shape[1] < 2:
        return mask
    noise = torch.rand(mask.shape, device=mask.device, generator=generator)
    keep = mask & (noise >= p)
    lost = mask.any(dim=1) & ~keep.any(dim=1)
    if lost.any():
        pick = torch.rand(mask.shape, device=mask.device, generator=generator)
        pick = pick.masked_fill(~mask, -1.0).argmax(dim=1)
        rescue = torch.zeros_like(mask)
        rescue[torch.arange(len(mask), device=mask.device), pick] = True
        keep = keep | (rescue & lost[:, None])
    return keep


class _MaskedFusion(Fusion):
    """Shared plumbing: a fixed input order, the presence matrix, modality dropout."""

    options: FusionOptions
    proj: nn.ModuleDict  # input name -> projection to ``dim`` (built by the subclass)

    def __init__(
        self,
        options: FusionOptions,
        device: DeviceManager,
        *,
        input_dims: Mapping[str, int],
        num_outputs: int,
    ) -> None:
        super().__init__(options, device, input_dims=input_dims, num_outputs=num_outputs)
        if not self.input_dims:
            raise ConfigError(
                "a fusion module needs at least one input", where="inputs", fix="add an input"
            )
        self.names = list(self.input_dims)
        self.output_dim = options.dim

    def presence(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Bool ``[B, M]`` in input order, after modality dropout when training.

        An input absent from ``present`` counts as present in every row.
        """
        mask = self.observed(embeddings, present)
        if self.training:
            mask = drop_modalities(mask, self.options.modality_dropout)
        return mask

    def observed(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Bool ``[B, M]``: which rows have which input (no modality dropout)."""
        first = embeddings[self.names[0]]
        rows = first.shape[0]
        columns = [
            present[name].to(device=first.device, dtype=torch.bool).reshape(rows)
            if name in present
            else torch.ones(rows, dtype=torch.bool, device=first.device)
            for name in self.names
        ]
        return torch.stack(columns, dim=1)

    def masked(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> list[Tensor]:
        """Each input's embedding with the rows that lack it set to zero (in input order)."""
        return [
            torch.where(mask[:, i, None], embeddings[name], embeddings[name].new_zeros(()))
            for i, name in enumerate(self.names)
        ]

    def projected(self, embeddings: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Each input projected to ``dim``, zero where missing: ``[B, M, dim]``."""
        out = [self.proj[name](x) for name, x in zip(self.names, self.masked(embeddings, mask))]
        stacked = torch.stack(out, dim=1)
        return stacked * mask[:, :, None].to(stacked.dtype)


class ConcatFusion(_MaskedFusion):
    """Concatenate the projected embeddings (zeros where missing) and the presence flags,
    then an MLP to ``dim``."""

    def __init__(self, options: FusionOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, m = options.dim, options.dropout, len(self.names)
        self.proj = nn.ModuleDict({n: projection(d, dim, p) for n, d in self.input_dims.items()})
        self.mlp = nn.Sequential(
            nn.Linear(m * dim + m, dim), nn.GELU(), nn.Dropout(p), nn.Linear(dim, dim)
        )

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, dim]``."""
        mask = self.presence(embeddings, present)
        h = self.projected(embeddings, mask)
        flags = mask.to(h.dtype)
        return self.mlp(torch.cat([h.flatten(1), flags], dim=1))


class GatedFusion(_MaskedFusion):
    """Projected embeddings weighed by gates computed from all of them (a gated multimodal
    unit): per feature, a softmax over the row's present modalities."""

    def __init__(self, options: FusionOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, m = options.dim, options.dropout, len(self.names)
        self.proj = nn.ModuleDict({n: projection(d, dim, p) for n, d in self.input_dims.items()})
        self.gate = nn.Linear(m * dim + m, m * dim)

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, dim]``: the gate-weighted sum of the present modalities."""
        mask = self.presence(embeddings, present)
        h = self.projected(embeddings, mask)
        rows, m, dim = h.shape
        scores = self.gate(torch.cat([h.flatten(1), mask.to(h.dtype)], dim=1)).view(rows, m, dim)
        # Rows with no modality at all get uniform gates over zeros: a zero vector.
        allowed = (mask | ~mask.any(dim=1, keepdim=True))[:, :, None]
        scores = scores.float().masked_fill(~allowed, float("-inf"))
        gates = torch.softmax(scores, dim=1).to(h.dtype)
        return (gates * h).sum(dim=1)


class AttentionFusion(_MaskedFusion):
    """A transformer over one token per modality (projection + learned modality embedding)
    and a learned summary token; missing modalities are padding, the output is the
    summary token."""

    options: AttentionOptions

    def __init__(self, options: AttentionOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, m = options.dim, options.dropout, len(self.names)
        if dim % options.heads:
            raise ConfigError(
                f"dim {dim} is not divisible by heads {options.heads}",
                where="fusion.options",
                fix="pick a dim that is a multiple of heads",
            )
        self.proj = nn.ModuleDict({n: projection(d, dim, p) for n, d in self.input_dims.items()})
        self.modality = nn.Parameter(torch.randn(m, dim) * 0.02)
        self.summary = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            options.heads,
            dim_feedforward=2 * dim,
            dropout=p,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, options.layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, dim]``: the summary token after attending to the present modalities."""
        mask = self.presence(embeddings, present)
        tokens = self.projected(embeddings, mask) + self.modality
        summary = self.summary.expand(len(tokens), -1, -1).to(tokens.dtype)
        sequence = torch.cat([summary, tokens], dim=1)
        padding = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        return self.encoder(sequence, src_key_padding_mask=padding)[:, 0]


class LowRankFusion(_MaskedFusion):
    """Low-rank multimodal fusion (Liu et al. 2018): per modality, ``[h, 1]`` times rank-r
    factors; the factors' outputs are multiplied across modalities and summed over rank.

    A missing modality is ``[0, 1]``, so it contributes only its factors' last ("1") row.
    That row starts at one, which makes a missing modality a neutral factor at first.
    """

    options: LowRankOptions

    def __init__(self, options: LowRankOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, r = options.dim, options.dropout, options.rank
        self.proj = nn.ModuleDict({n: projection(d, dim, p) for n, d in self.input_dims.items()})
        factors = torch.randn(len(self.names), r, dim + 1, dim) / (dim + 1) ** 0.5
        factors[:, :, -1, :] = 1.0 + 0.1 * torch.randn(len(self.names), r, dim)
        self.factors = nn.Parameter(factors)
        self.rank_weights = nn.Parameter(torch.full((1, r), 1.0 / r))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, dim]``: ``sum_r w_r * prod_m ([h_m, 1] @ W_m,r) + b``."""
        mask = self.presence(embeddings, present)
        h = self.projected(embeddings, mask)
        ones = torch.ones_like(h[:, :, :1])
        z = torch.cat([h, ones], dim=2)  # [B, M, dim + 1]
        per_modality = torch.einsum("bmi,mrio->bmro", z, self.factors.to(z.dtype))
        product = per_modality.prod(dim=1)  # [B, r, dim]
        return torch.einsum("xr,bro->bo", self.rank_weights.to(z.dtype), product) + self.bias


class LateFusion(_MaskedFusion):
    """A small head per modality; their logits are averaged over the row's present
    modalities (a learned bias alone for a row with none). Produces the logits itself."""

    produces_logits = True

    def __init__(self, options: FusionOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, k = options.dim, options.dropout, self.num_outputs
        self.heads = nn.ModuleDict(
            {
                n: nn.Sequential(projection(d, dim, p), nn.Linear(dim, k))
                for n, d in self.input_dims.items()
            }
        )
        self.bias = nn.Parameter(torch.zeros(k))
        self.output_dim = k

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, num_outputs]`` logits."""
        mask = self.presence(embeddings, present)
        x = self.masked(embeddings, mask)
        logits = torch.stack([self.heads[n](v) for n, v in zip(self.names, x)], dim=1)
        weights = mask.to(logits.dtype)[:, :, None]
        count = weights.sum(dim=1).clamp(min=1.0)
        return (logits * weights).sum(dim=1) / count + self.bias


class StackFusion(_MaskedFusion):
    """Stacking with per-modality heads that are trained on their own (residual late fusion).

    Each input has a head (projection + linear) whose logits are trained with an auxiliary
    loss of their own (``aux_weight``), so a weak modality's head learns what it can even
    when a strong one would win the joint loss alone (the "greedy learner" / modality
    competition effect, Wu et al. 2022; Du et al. 2023). The fused logits are a learned
    weighted sum of the present heads' logits plus a small interaction MLP over the
    projected embeddings that starts at zero (a residual on top of the sum). With
    ``detach`` the fused loss trains only the combination, not the heads (pure stacking).
    Modality dropout applies to the combination, never to the heads' own losses.

    With ``linear_heads`` a head is one linear map of the input's raw embedding (zero where
    missing), starting at the identity on the first ``num_outputs`` columns: an encoder that
    fits a model of its own and puts that model's logit there (``text.tfidf``'s warm start,
    ``tabular.gbdt``'s ``leaf_value_init``) gives a head that starts as that model, and the
    stack starts as the sum of those models (then trains, and refits the weights).
    """

    options: StackOptions
    produces_logits = True

    def __init__(self, options: StackOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        dim, p, k, m = options.dim, options.dropout, self.num_outputs, len(self.names)
        interacts = options.interaction and m > 1
        self.proj = nn.ModuleDict(
            {n: projection(d, dim, p) for n, d in self.input_dims.items()}
            if interacts or not options.linear_heads
            else {}
        )
        if options.linear_heads:
            self.heads = nn.ModuleDict({n: _reading_head(d, k) for n, d in self.input_dims.items()})
        else:
            self.heads = nn.ModuleDict({n: nn.Linear(dim, k) for n in self.input_dims})
        self.weights = nn.Parameter(torch.ones(m, k))
        self.bias = nn.Parameter(torch.zeros(k))
        self.interaction: nn.Sequential | None = None
        if interacts:
            last = nn.Linear(dim, k)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.interaction = nn.Sequential(
                nn.Linear(m * dim + m, dim), nn.GELU(), nn.Dropout(p), last
            )
        self.output_dim = k
        self._unimodal: tuple[Tensor, Tensor] | None = None

    def head_logits(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Each input's head logits ``[B, M, K]``, the presence ``[B, M]`` (no modality
        dropout) and the projected embeddings ``[B, M, dim]`` (zero where missing; ``[B, M,
        0]`` when nothing uses them: linear heads without the interaction)."""
        observed = self.observed(embeddings, present)
        if self.options.linear_heads:
            raw = self.masked(embeddings, observed)
            logits = torch.stack([self.heads[n](x) for n, x in zip(self.names, raw)], dim=1)
            if self.interaction is None:
                return logits, observed, logits.new_zeros(logits.shape[0], len(self.names), 0)
            return logits, observed, self.projected(embeddings, observed)
        h = self.projected(embeddings, observed)
        logits = torch.stack([self.heads[n](x) for n, x in zip(self.names, h.unbind(1))], dim=1)
        return logits, observed, h

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, num_outputs]`` logits: weighted sum of the present heads' logits + interaction."""
        logits, observed, h = self.head_logits(embeddings, present)
        if self.training:
            self._unimodal = (logits, observed)
        mask = (
            drop_modalities(observed, self.options.modality_dropout) if self.training else observed
        )
        if self.options.detach:
            logits, h = logits.detach(), h.detach()
        weights = mask.to(logits.dtype)[:, :, None]
        fused = (logits * self.weights.to(logits.dtype) * weights).sum(dim=1) + self.bias
        if self.interaction is not None:
            kept = h * weights
            fused = fused + self.interaction(torch.cat([kept.flatten(1), weights[:, :, 0]], dim=1))
        return fused

    def auxiliary_loss(
        self, target: Tensor, loss: Callable[[Tensor, Tensor], Tensor]
    ) -> Tensor | None:
        """``aux_weight`` x the sum over inputs of each head's own loss on the rows that
        have that input (from the last training forward pass); ``None`` when there is none."""
        if self._unimodal is None or self.options.aux_weight <= 0:
            return None
        logits, observed = self._unimodal
        self._unimodal = None
        terms = [
            loss(logits[observed[:, i], i], target[observed[:, i]])
            for i in range(len(self.names))
            if bool(observed[:, i].any())
        ]
        if not terms:
            return None
        return self.options.aux_weight * torch.stack(terms).sum()

    def refit(self, held: HeldOut) -> dict[str, Any] | None:
        """With ``refit`` on, refit the per-input weights and the bias on held-out rows
        (:func:`transfuse.refit.choose_combination`), and drop the interaction (its last
        layer zeroed) unless it helps there; returns what was chosen (``None``: off)."""
        from transfuse.refit import choose_combination

        if not self.options.refit:
            return None
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        for embeddings, present in held.batches():
            logits, observed, h = self.head_logits(embeddings, present)
            inter = logits.new_zeros(logits.shape[0], logits.shape[2])
            if self.interaction is not None:
                kept = h * observed[:, :, None].to(h.dtype)
                flags = observed.to(h.dtype)
                inter = self.interaction(torch.cat([kept.flatten(1), flags], dim=1))
            parts.append((logits.float().cpu(), observed.cpu(), inter.float().cpu()))
        logits, observed, inter = (torch.cat([p[i] for p in parts]).clone() for i in range(3))
        choice = choose_combination(
            logits,
            observed,
            inter if self.interaction is not None else None,
            self.weights.detach().cpu(),
            self.bias.detach().cpu(),
            self.names,
            held,
            rule=self.options.refit_choice,
        )
        with torch.no_grad():
            self.weights.copy_(choice["weights"].to(self.weights))
            self.bias.copy_(choice["bias"].to(self.bias))
            if self.interaction is not None and not choice["interaction"]:
                last = self.interaction[-1]
                assert isinstance(last, nn.Linear)
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        weights = choice["weights"]
        return {
            **choice,
            "metric": held.metric,
            "rows": len(logits),
            "weights": {n: weights[i].tolist() for i, n in enumerate(self.names)},
            "bias": choice["bias"].tolist(),
        }


def _reading_head(in_dim: int, outputs: int) -> nn.Linear:
    """A linear head that starts reading output k from input column k (the rest zero)."""
    head = nn.Linear(in_dim, outputs)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for k in range(min(in_dim, outputs)):
            head.weight[k, k] = 1.0
    return head


class LinearFusion(_MaskedFusion):
    """The embeddings concatenated (zeros where missing) with the presence flags, then one
    linear map to ``dim``: no non-linearity, so the logit is affine in every input's
    embedding.

    Weaker than ``fusion.concat`` on its own, but a strategy can then write a change of
    one input's embedding into the head exactly (``strategy.pool`` with ``exact: true``
    adds a pooled booster to a ``tabular.gbdt`` input's logit, not a distilled copy).
    """

    options: LinearOptions

    def __init__(self, options: LinearOptions, device: DeviceManager, **kw: Any) -> None:
        super().__init__(options, device, **kw)
        width = sum(self.input_dims.values()) + len(self.names)
        self.dropout = nn.Dropout(options.dropout)
        self.map = nn.Linear(width, options.dim)

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """``[B, dim]``: a linear map of the zero-filled embeddings and the flags."""
        mask = self.presence(embeddings, present)
        parts = self.masked(embeddings, mask)
        return self.map(self.dropout(torch.cat([*parts, mask.to(parts[0].dtype)], dim=1)))
