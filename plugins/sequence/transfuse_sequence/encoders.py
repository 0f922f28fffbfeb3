"""``sequence.gru`` and ``sequence.transformer``: an entity's event history -> ``[B, dim]``.

Each event becomes a vector (its scaled numeric fields, missing flags and categorical
embeddings, projected to ``hidden``); a GRU or a transformer reads the events in order;
a masked pool (mean, last or max) summarises them; a linear layer gives ``dim``. An entity
without events is a missing row.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import ConfigError
from transfuse.badfiles import row_where
from transfuse.bases import Batch, Encoder
from transfuse.device import DeviceManager
from transfuse_sequence.events import PAD, Event, EventSchema, parse_history
from transfuse_sequence.options import GruOptions, SequenceOptions, TransformerOptions

__all__ = ["GruEncoder", "SequenceEncoder", "TransformerSequenceEncoder"]


class SequenceEncoder(Encoder):
    """What both event-sequence encoders share: fitting, preparing, event embedding, pooling.

    Subclasses build ``body`` in :meth:`_build_body` and run it in :meth:`_contextualise`.
    """

    options: SequenceOptions

    def __init__(self, options: SequenceOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.frozen = options.frozen
        self.schema: EventSchema | None = None

    # -- host side -----------------------------------------------------------------
    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        """Learn the fields' scalers and vocabularies from training rows; build the layers."""
        histories, _ = self._parse(_one_column(values))
        self.schema = EventSchema.fit((h for h in histories if h), self.options)
        self._build()

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing where the history is None/NaN, empty, or blank text."""
        histories, _ = self._parse(_one_column(values))
        return np.array([h is None for h in histories], dtype=bool)

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """``numeric [B, L, F]``, ``categorical [B, L, C]`` and ``mask [B, L]`` tensors."""
        if self.schema is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() or load_fitted() first")
        histories, where = self._parse(_one_column(values))
        numeric, categorical, mask = self.schema.encode(histories, self.options, where)
        return {
            "numeric": torch.from_numpy(numeric),
            "categorical": torch.from_numpy(categorical),
            "mask": torch.from_numpy(mask),
        }

    def _parse(self, column: pd.Series) -> tuple[list[list[Event] | None], list[str]]:
        """Each row's events (``None`` when missing) and its name for errors."""
        where = [row_where(column, label) for label in column.index]
        return [parse_history(v, w) for v, w in zip(column, where)], where

    # -- layers --------------------------------------------------------------------
    def _build(self) -> None:
        assert self.schema is not None
        o = self.options
        self.embeddings = nn.ModuleList(
            nn.Embedding(len(tokens) + 2, o.embedding_dim, padding_idx=PAD)
            for tokens in self.schema.vocab.values()
        )
        width = self.schema.numeric_width + o.embedding_dim * len(self.schema.vocab)
        self.event = nn.Sequential(nn.Linear(width, o.hidden), nn.GELU(), nn.Dropout(o.dropout))
        self.body = self._build_body()
        self.out = nn.Sequential(nn.Dropout(o.dropout), nn.Linear(self._body_width(), o.dim))
        if self.frozen:
            self.requires_grad_(False)

    def _build_body(self) -> nn.Module:
        raise NotImplementedError

    def _body_width(self) -> int:
        return self.options.hidden

    def _contextualise(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-event states ``[B, L, W]`` and, if the body has one, a final state ``[B, W]``."""
        raise NotImplementedError

    # -- device side ---------------------------------------------------------------
    def forward(self, batch: Batch) -> Tensor:
        """Embed events, run the body, pool over present events, project to ``dim``."""
        mask = batch["mask"]
        parts = [batch["numeric"]]
        parts += [emb(batch["categorical"][..., i]) for i, emb in enumerate(self.embeddings)]
        states, final = self._contextualise(self.event(torch.cat(parts, dim=-1)), mask)
        return self.out(_pool(states, mask, self.options.pool, final))

    def train(self, mode: bool = True) -> SequenceEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its cached outputs hold."""
        return super().train(mode and not self.frozen)

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Any) -> Any:
        """Event occlusion (see :mod:`transfuse_sequence.explain`)."""
        from transfuse_sequence.explain import event_occlusion

        return event_occlusion(self, values, logit)

    # -- fitted state --------------------------------------------------------------
    def fitted_state(self) -> dict[str, Any]:
        """The schema: fields, scalers and vocabularies."""
        return self.schema.to_state() if self.schema is not None else {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore the schema and build the layers with their final shapes."""
        self.schema = EventSchema.from_state(state)
        self._build()

    def cache_key(self) -> str:
        """Options plus the fitted schema, which changes every prepared value."""
        schema = json.dumps(self.fitted_state(), sort_keys=True).encode()
        return f"{super().cache_key()}:{hashlib.sha256(schema).hexdigest()[:16]}"


class GruEncoder(SequenceEncoder):
    """``sequence.gru``: a (bi)directional GRU over the events, in their order."""

    options: GruOptions

    def _build_body(self) -> nn.Module:
        o = self.options
        return nn.GRU(
            o.hidden,
            o.hidden,
            num_layers=o.layers,
            batch_first=True,
            dropout=o.dropout if o.layers > 1 else 0.0,
            bidirectional=o.bidirectional,
        )

    def _body_width(self) -> int:
        return self.options.hidden * (2 if self.options.bidirectional else 1)

    def _contextualise(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        lengths = mask.sum(dim=1).clamp_min(1).cpu()  # an empty row runs on one padded event
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, h_n = self.body(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        directions = 2 if self.options.bidirectional else 1
        final = h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)
        return states, final


class TransformerSequenceEncoder(SequenceEncoder):
    """``sequence.transformer``: a transformer encoder over the events plus learnt positions."""

    options: TransformerOptions

    def _build_body(self) -> nn.Module:
        o = self.options
        self.positions = nn.Embedding(o.max_events, o.hidden)
        nn.init.normal_(self.positions.weight, std=0.02)  # small: events first, order second
        layer = nn.TransformerEncoderLayer(
            o.hidden,
            o.heads,
            dim_feedforward=2 * o.hidden,
            dropout=o.dropout,
            batch_first=True,
            norm_first=True,
        )
        return nn.TransformerEncoder(layer, o.layers, enable_nested_tensor=False)

    def _contextualise(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        x = x + self.positions.weight[: x.shape[1]]
        padding = ~mask
        padding[:, 0] &= mask.any(dim=1)  # an empty row attends to one padded event, not none
        return self.body(x, src_key_padding_mask=padding), None


def _pool(states: Tensor, mask: Tensor, how: str, final: Tensor | None) -> Tensor:
    """Summarise ``[B, L, W]`` over present events; rows without events give zeros."""
    present = mask.unsqueeze(-1)
    any_event = mask.any(dim=1, keepdim=True)
    if how == "last":
        if final is None:
            last = (mask.sum(dim=1) - 1).clamp_min(0)
            final = states[torch.arange(states.shape[0], device=states.device), last]
        pooled = final
    elif how == "max":
        pooled = states.masked_fill(~present, torch.finfo(states.dtype).min).amax(dim=1)
    else:
        pooled = (states * present).sum(dim=1) / present.sum(dim=1).clamp_min(1)
    return torch.where(any_event, pooled, torch.zeros_like(pooled))


def _one_column(values: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if values.shape[1] != 1:
        raise ConfigError(
            f"a sequence encoder reads one column, got {values.shape[1]}: {list(values.columns)}",
            fix="give the input a single `column:` of event lists",
        )
    return values.iloc[:, 0]
