"""``tabular.ft-transformer``: one token per column, a [CLS] token, a transformer
(Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular Data")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from transfuse_tabular.table import TableEncoder

if TYPE_CHECKING:
    from transfuse_tabular.options import FTTransformerOptions

__all__ = ["FTTransformerEncoder"]


class _Transformer(nn.Module):
    """Pre-norm transformer blocks over ``[CLS] + column tokens``; the [CLS] output,
    normalised and passed through ReLU and a linear layer, is the row's embedding."""

    def __init__(
        self,
        d: int,
        heads: int,
        layers: int,
        ffn: int,
        dropout: float,
        attention: float,
        dim: int,
    ) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d)
        self.cls = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        layer = nn.TransformerEncoderLayer(
            d,
            heads,
            ffn,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for module in layer.modules():  # attention weights get their own dropout rate
            if isinstance(module, nn.MultiheadAttention):
                module.dropout = attention
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        cls = self.cls.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = self.blocks(torch.cat([cls, tokens], dim=1))
        return self.out(torch.relu(self.norm(x[:, 0])))


class FTTransformerEncoder(TableEncoder):
    """The FT-Transformer: feature tokenizer + transformer, with numeric embeddings."""

    options: FTTransformerOptions

    def build_trunk(self, num_columns: int) -> nn.Module:
        o = self.options
        ffn = max(1, round(o.embedding_dim * o.ffn_factor))
        return _Transformer(
            o.embedding_dim, o.heads, o.layers, ffn, o.dropout, o.attention_dropout, o.dim
        )
