"""Options of the event-sequence encoders (pydantic only: listing plugins imports no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from transfuse import Options

__all__ = ["GruOptions", "SequenceOptions", "TransformerOptions"]

FieldKind = Literal["numeric", "categorical"]


class SequenceOptions(Options):
    """What every event-sequence encoder shares: reading events and embedding their fields."""

    max_events: int = Field(
        default=64, ge=1, le=4096, description="Events kept per entity (the rest are dropped)."
    )
    keep: Literal["last", "first"] = Field(
        default="last", description="Keep the last or the first max_events events (after sorting)."
    )
    sort_by: str | None = Field(
        default=None, description="A numeric field to order events by; given order when unset."
    )
    descending: bool = Field(
        default=False, description="Sort by sort_by descending (e.g. for a days_ago field)."
    )
    fields: dict[str, FieldKind] | None = Field(
        default=None,
        description="Event fields to use and their kind; inferred from training rows when "
        "unset (JSON numbers are numeric, anything else categorical).",
    )
    log_numeric: bool = Field(
        default=True,
        description="Apply sign(x) * log1p(|x|) to numeric fields before standardising "
        "(amounts are heavy-tailed).",
    )
    max_vocab: int = Field(
        default=1000, ge=1, description="Most frequent values kept per categorical field."
    )
    min_count: int = Field(
        default=1, ge=1, description="Rarer categorical values go to the unknown bucket."
    )
    embedding_dim: int = Field(default=16, ge=1, description="Width of categorical embeddings.")
    hidden: int = Field(default=64, ge=1, description="Width of the per-event hidden state.")
    layers: int = Field(default=1, ge=1, le=8, description="Recurrent or transformer layers.")
    pool: Literal["mean", "last", "max"] = Field(
        default="mean",
        description="Summarise the events by their masked mean, the last event's state, or "
        "the masked maximum.",
    )
    dim: int = Field(default=64, ge=1, description="Width of the embedding.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout.")
    frozen: bool = Field(default=False, description="Never train the encoder.")


class GruOptions(SequenceOptions):
    """Options of ``sequence.gru``."""

    bidirectional: bool = Field(
        default=False, description="Run a second GRU backwards and concatenate the states."
    )


class TransformerOptions(SequenceOptions):
    """Options of ``sequence.transformer``."""

    heads: int = Field(default=4, ge=1, description="Attention heads (must divide hidden).")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TransformerOptions:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self
