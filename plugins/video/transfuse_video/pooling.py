"""Pooling a video's frame features over time: ``[B, T, F]`` (+ a ``[B, T]`` mask) -> ``[B, D]``.

``mean`` averages the valid frames (no parameters). ``attention`` projects each frame,
adds a learned embedding of its position in time and takes a learned softmax weighting
of the frames. ``transformer`` runs a small transformer over the projected frames and a
summary token, whose output is the embedding; the summary token is never masked, so a
row without valid frames still gets a finite output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AttentionPool", "MeanPool", "TemporalTransformer", "build_pooling"]


class MeanPool(nn.Module):
    """The mean of the valid frames' features (zeros when none is valid)."""

    def forward(self, frames: Tensor, valid: Tensor) -> Tensor:
        weights = valid.to(frames.dtype).unsqueeze(-1)
        return (frames * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class _Frames(nn.Module):
    """Frame features to ``dim``-wide tokens: layer norm, linear, plus a time embedding."""

    def __init__(self, features: int, dim: int, num_frames: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features)
        self.proj = nn.Linear(features, dim)
        self.time = nn.Parameter(torch.randn(num_frames, dim) * 0.02)
        self.drop = nn.Dropout(dropout)

    def forward(self, frames: Tensor) -> Tensor:
        return self.drop(self.proj(self.norm(frames)) + self.time[: frames.shape[1]])


class AttentionPool(nn.Module):
    """A learned softmax weighting of the projected frames (masked frames weigh nothing)."""

    def __init__(self, features: int, dim: int, num_frames: int, dropout: float) -> None:
        super().__init__()
        self.tokens = _Frames(features, dim, num_frames, dropout)
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))
        self.out = nn.LayerNorm(dim)

    def forward(self, frames: Tensor, valid: Tensor) -> Tensor:
        tokens = self.tokens(frames)
        scores = self.score(tokens).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # no valid frame: all zero
        return self.out((weights.unsqueeze(-1) * tokens).sum(1))


class TemporalTransformer(nn.Module):
    """A small pre-norm transformer over a summary token and the projected frames."""

    def __init__(
        self, features: int, dim: int, num_frames: int, dropout: float, layers: int, heads: int
    ) -> None:
        super().__init__()
        self.tokens = _Frames(features, dim, num_frames, dropout)
        self.summary = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.LayerNorm(dim)

    def forward(self, frames: Tensor, valid: Tensor) -> Tensor:
        tokens = self.tokens(frames)
        summary = self.summary.expand(len(tokens), -1, -1).to(tokens.dtype)
        keep = torch.ones(len(tokens), 1, dtype=torch.bool, device=valid.device)
        padding = ~torch.cat([keep, valid], dim=1)
        out = self.encoder(torch.cat([summary, tokens], dim=1), src_key_padding_mask=padding)
        return self.out(out[:, 0])


def build_pooling(
    kind: str, features: int, dim: int, num_frames: int, dropout: float, layers: int, heads: int
) -> tuple[nn.Module, int]:
    """The pooling module for ``kind`` and its output width."""
    if kind == "mean":
        return MeanPool(), features
    if kind == "attention":
        return AttentionPool(features, dim, num_frames, dropout), dim
    return TemporalTransformer(features, dim, num_frames, dropout, layers, heads), dim
