"""``tabular.mlp``: per-column embeddings, concatenated, then an MLP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from transfuse_tabular.table import TableEncoder

if TYPE_CHECKING:
    from transfuse_tabular.options import MLPOptions

__all__ = ["MLPEncoder"]


class _MLP(nn.Module):
    """Flatten the column tokens, ``layers`` x (Linear, ReLU, Dropout), then Linear to dim."""

    def __init__(self, width: int, hidden: int, layers: int, dim: int, dropout: float) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(width, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.out(self.blocks(tokens.flatten(1)))


class MLPEncoder(TableEncoder):
    """The tabular MLP of Gorishniy et al. (2021), with numeric embeddings (2022)."""

    options: MLPOptions

    def column_inputs(self) -> dict[str, int]:
        """The trunk matrix whose input holds the column vectors side by side (in
        ``column_names()`` order), with each block's width: for mapping it by column."""
        first = "trunk.blocks.0.weight" if self.options.layers else "trunk.out.weight"
        return {first: self.options.embedding_dim}

    def build_trunk(self, num_columns: int) -> nn.Module:
        o = self.options
        return _MLP(num_columns * o.embedding_dim, o.hidden, o.layers, o.dim, o.dropout)
