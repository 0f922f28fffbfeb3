"""transfuse-sequence: event-sequence encoders (transaction histories) for transfuse.

Registers ``sequence.gru`` and ``sequence.transformer`` and recognises columns of event
lists. Importing this module is light: torch loads only when an encoder is built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transfuse import EncoderEntry, hookimpl
from transfuse_sequence.options import GruOptions, SequenceOptions, TransformerOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GruOptions",
    "SequenceOptions",
    "TransformerOptions",
    "transfuse_encoders",
    "transfuse_infer_modality",
]

# Enough rows to be sure of a column's kind without parsing a large table.
_SAMPLE_ROWS = 200


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The event-sequence encoders."""
    return [
        EncoderEntry(
            name="sequence.gru",
            modality="sequence",
            factory="transfuse_sequence.encoders:GruEncoder",
            options=GruOptions,
            description="Event lists (e.g. transactions) -> field embeddings -> GRU -> pool.",
        ),
        EncoderEntry(
            name="sequence.transformer",
            modality="sequence",
            factory="transfuse_sequence.encoders:TransformerSequenceEncoder",
            options=TransformerOptions,
            description="Event lists -> field embeddings -> transformer encoder -> pool.",
        ),
    ]


@hookimpl
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """``"sequence"`` when every non-missing value is a list of records (or its JSON text)."""
    values = [v for v in column.head(_SAMPLE_ROWS * 5) if _present(v)][:_SAMPLE_ROWS]
    events = [_as_event_list(v) for v in values]
    if any(e is None for e in events) or not any(events):  # all empty lists: not sure
        return None
    return "sequence"


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float):
        return value == value  # NaN is missing
    return not (isinstance(value, str) and not value.strip())


def _as_event_list(value: Any) -> list[Any] | None:
    """The value as a list of records, or ``None`` when it is something else."""
    if isinstance(value, str):
        if not value.lstrip().startswith("["):
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if hasattr(value, "tolist") and not isinstance(value, Mapping):  # numpy arrays (parquet)
        value = value.tolist()
    if isinstance(value, list | tuple) and all(isinstance(e, Mapping) for e in value):
        return list(value)
    return None
