"""Per-column embedding modules: each turns one column into ``[B, d]``.

A column's parameters live in its own module so that they are named by column
(``columns.annual_income.weight``) and a layer-mapping strategy can move them between
models with different column sets. A missing value takes a learned vector (``missing``),
the column's missing indicator; categories use rows 0 (missing) and 1 (unknown).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CategoricalEmbedding", "NumericEmbedding", "categorical_tokens", "numeric_tokens"]


def _uniform(*shape: int, dim: int) -> nn.Parameter:
    """rtdl's initialisation for embeddings: U(-1/sqrt(d), 1/sqrt(d))."""
    bound = 1 / math.sqrt(dim)
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class NumericEmbedding(nn.Module):
    """One numeric column: linear (``x*w+b``), ple (linear map of the piecewise-linear
    encoding) or periodic (``ReLU(linear([cos 2πfx, sin 2πfx]))``, learned ``f``)."""

    def __init__(
        self, kind: str, dim: int, *, bins: int = 0, frequencies: int = 0, sigma: float = 1.0
    ) -> None:
        super().__init__()
        self.kind = kind
        self.bins = bins
        if kind == "linear":
            self.weight = _uniform(dim, dim=dim)
            self.bias = _uniform(dim, dim=dim)
        elif kind == "ple":
            self.linear = nn.Linear(bins, dim)
        elif kind == "periodic":
            self.frequencies = nn.Parameter(torch.randn(frequencies) * sigma)
            self.linear = nn.Linear(2 * frequencies, dim)
        else:
            raise ValueError(f"unknown numeric embedding {kind!r}")
        self.missing = _uniform(dim, dim=dim)

    def forward(self, x: Tensor, missing: Tensor, encoded: Tensor | None = None) -> Tensor:
        """``x``: ``[B]`` scaled values (0 where missing); ``encoded``: ``[B, bins]`` (ple)."""
        if self.kind == "linear":
            out = x[:, None] * self.weight + self.bias
        elif self.kind == "ple":
            assert encoded is not None, "ple needs the encoded values"
            out = self.linear(encoded[:, : self.bins])
        else:
            angle = 2 * math.pi * x[:, None] * self.frequencies
            out = torch.relu(self.linear(torch.cat([torch.cos(angle), torch.sin(angle)], -1)))
        return torch.where(missing[:, None], self.missing.to(out.dtype), out)


class CategoricalEmbedding(nn.Module):
    """One categorical (or boolean) column: a row per category, plus missing and unknown."""

    def __init__(self, cardinality: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cardinality, dim)
        bound = 1 / math.sqrt(dim)
        nn.init.uniform_(self.embedding.weight, -bound, bound)

    def forward(self, codes: Tensor) -> Tensor:
        """``codes``: ``[B]`` long, 0 missing, 1 unknown, 2.. vocabulary."""
        return self.embedding(codes)


def numeric_tokens(
    modules: list[NumericEmbedding], x: Tensor, missing: Tensor, encoded: Tensor | None
) -> Tensor:
    """All numeric columns at once: ``[B, C, d]``, the same as calling each module.

    The per-column parameters are stacked (ple weights zero-padded to the most bins), so a
    forward pass costs a few batched operations instead of a few per column.
    """
    kind = modules[0].kind
    if kind == "linear":
        weight = torch.stack([m.weight for m in modules])
        out = x[:, :, None] * weight + torch.stack([m.bias for m in modules])
    elif kind == "ple":
        assert encoded is not None, "ple needs the encoded values"
        most = encoded.shape[-1]
        weight = torch.stack(
            [nn.functional.pad(m.linear.weight, (0, most - m.bins)) for m in modules]
        )
        bias = torch.stack([m.linear.bias for m in modules])
        out = torch.einsum("bct,cdt->bcd", encoded.to(weight.dtype), weight) + bias
    else:
        freq = torch.stack([m.frequencies for m in modules])
        angle = 2 * math.pi * x[:, :, None] * freq
        periodic = torch.cat([torch.cos(angle), torch.sin(angle)], -1)
        weight = torch.stack([m.linear.weight for m in modules])
        bias = torch.stack([m.linear.bias for m in modules])
        out = torch.relu(torch.einsum("bck,cdk->bcd", periodic, weight) + bias)
    vectors = torch.stack([m.missing for m in modules]).to(out.dtype)
    return torch.where(missing[:, :, None], vectors, out)


def categorical_tokens(modules: list[CategoricalEmbedding], codes: Tensor) -> Tensor:
    """All categorical columns at once: ``[B, C, d]`` from one lookup in the joined tables."""
    tables = [m.embedding.weight for m in modules]
    sizes = torch.tensor([0] + [t.shape[0] for t in tables[:-1]], device=codes.device)
    return nn.functional.embedding(codes + sizes.cumsum(0), torch.cat(tables))
