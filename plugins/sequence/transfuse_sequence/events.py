"""Event histories: parsing raw values and turning them into fixed-size arrays.

A value is one entity's history: a list of events (dicts of field -> value), the JSON text
of such a list, a numpy array of dicts (parquet list columns), or missing (None, NaN, an
empty list or blank text). :class:`EventSchema` learns from training rows which fields are
numeric (scaled) and which categorical (a vocabulary with an unknown bucket), then encodes
histories as ``numeric [B, L, 1 + 2 * n_numeric]``, ``categorical [B, L, n_categorical]``
and ``mask [B, L]``, events left-aligned.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from transfuse import ConfigError, DataError
from transfuse_sequence.options import SequenceOptions

__all__ = ["PAD", "UNKNOWN", "Event", "EventSchema", "parse_history"]

Event = Mapping[str, Any]
#: Categorical index of an absent value (and of padding); never an embedding that trains.
PAD = 0
#: Categorical index of a value not in the training vocabulary.
UNKNOWN = 1

_FIX = (
    'give each value as a list of event records, e.g. [{"amount": 12.5, "mcc": "5411"}], '
    "or its JSON text; leave it empty for an entity without events"
)


def parse_history(value: Any, where: str = "value") -> list[Event] | None:
    """One value as a list of events, or ``None`` when missing or empty."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"event history is not valid JSON ({exc.msg} at character {exc.pos})",
                where=where,
                fix=_FIX,
            ) from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or (not isinstance(value, list | tuple | Mapping) and pd.isna(value)):
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(e, Mapping) for e in value):
        raise DataError(
            f"an event history must be a list of records, not {_describe(value)}",
            where=where,
            fix=_FIX,
        )
    return list(value) or None


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        bad = next(e for e in value if not isinstance(e, Mapping))
        return f"a list holding a {type(bad).__name__}"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _all_numbers(values: np.ndarray) -> bool:
    """Whether every value is a number (booleans are not), judged by pandas in one pass."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in {"integer", "floating", "mixed-integer-float"}:
        return True
    if kind in {"mixed", "decimal", "complex"}:  # rare: judge value by value
        return all(_is_number(v) for v in values)
    return False


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class EventSchema:
    """The fields an encoder reads: numeric ones with their scaling, categorical ones with
    their vocabularies. Built by :meth:`fit` on training histories; JSON round-trips."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (mean, std)
    vocab: dict[str, list[str]] = field(default_factory=dict)  # name: tokens, index 2, 3, ...
    log_numeric: bool = True

    @property
    def numeric_width(self) -> int:
        """Numeric features per event: an is-event flag, then values, then missing flags."""
        return 1 + 2 * len(self.numeric)

    @classmethod
    def fit(cls, histories: Iterable[Sequence[Event]], options: SequenceOptions) -> EventSchema:
        """Infer (or take from ``options.fields``) the fields; learn scalers and vocabularies.

        Each field is gathered once into an object array over all training events and
        judged with pandas (missing values dropped), not event by event."""
        flat = [event for history in histories for event in history]
        seen: dict[str, np.ndarray] = {}
        for key in sorted(set().union(*flat), key=str) if flat else []:
            raw = np.array([e.get(key) for e in flat], dtype=object)
            present = raw[~np.asarray(pd.isna(raw), dtype=bool)]
            if len(present):
                seen[str(key)] = present
        kinds: Mapping[str, str] = {
            key: "numeric" if _all_numbers(values) else "categorical"
            for key, values in seen.items()
        }
        if options.fields is not None:
            kinds = options.fields
        named = [*(options.fields or ()), *([options.sort_by] if options.sort_by else [])]
        unknown = sorted({n for n in named if n not in seen})
        if seen and unknown:
            raise ConfigError(
                f"event field(s) {unknown} do not occur in the training rows' events",
                where="options fields/sort_by",
                fix=f"use the fields the events have: {sorted(seen)}",
            )
        schema = cls(log_numeric=options.log_numeric)
        for key in sorted(kinds):
            values = seen.get(key, np.array([], dtype=object))
            if kinds[key] == "numeric":
                rows = np.zeros(len(values), dtype=np.int64)
                x = schema._transform(_floats(list(values), key, ["training rows"], rows)[0])
                std = float(x.std()) if x.size else 1.0
                schema.numeric[key] = (float(x.mean()) if x.size else 0.0, max(std, 1e-6))
            else:
                counts = Counter(str(v) for v in values)
                common = counts.most_common(options.max_vocab)  # ties keep first-seen order
                schema.vocab[key] = [t for t, n in common if n >= options.min_count]
        return schema

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log1p(np.abs(x)) if self.log_numeric else x

    def encode(
        self,
        histories: Sequence[Sequence[Event] | None],
        options: SequenceOptions,
        where: Sequence[str],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(numeric [B, L, F], categorical [B, L, C], mask [B, L])`` for ``L = max_events``;
        ``where`` names each row in errors.

        Vectorised over the batch's events: each field is gathered once into an array,
        converted and scattered to its ``(row, position)`` slots with numpy.
        """
        size, length = len(histories), options.max_events
        numeric = np.zeros((size, length, self.numeric_width), dtype=np.float32)
        categorical = np.zeros((size, length, len(self.vocab)), dtype=np.int64)
        mask = np.zeros((size, length), dtype=bool)
        kept = [_select(h, options, where[i]) if h else () for i, h in enumerate(histories)]
        counts = np.fromiter((len(k) for k in kept), dtype=np.int64, count=size)
        if not counts.sum():
            return numeric, categorical, mask
        rows = np.repeat(np.arange(size), counts)
        position = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        flat = [event for events in kept for event in events]
        mask[rows, position] = True
        numeric[rows, position, 0] = 1.0
        names = list(self.numeric)
        for j, name in enumerate(names):
            values, absent = _floats([e.get(name) for e in flat], name, where, rows)
            if self.log_numeric:
                values = self._transform(values)
            mean, std = self.numeric[name]
            numeric[rows, position, 1 + j] = np.where(absent, 0.0, (values - mean) / std)
            numeric[rows, position, 1 + len(names) + j] = absent
        for j, (name, tokens) in enumerate(self.vocab.items()):
            raw = pd.Series([e.get(name) for e in flat], dtype=object)
            lookup = {t: i + 2 for i, t in enumerate(tokens)}
            codes = raw.astype(str).map(lookup).fillna(UNKNOWN).to_numpy(np.int64)
            categorical[rows, position, j] = np.where(raw.isna().to_numpy(), PAD, codes)
        return numeric, categorical, mask

    def to_state(self) -> dict[str, Any]:
        """JSON-able form, saved as the encoder's fitted state."""
        return {
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "vocab": self.vocab,
            "log_numeric": self.log_numeric,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EventSchema:
        """Restore :meth:`to_state`."""
        return cls(
            numeric={k: (float(v[0]), float(v[1])) for k, v in state["numeric"].items()},
            vocab={k: list(v) for k, v in state["vocab"].items()},
            log_numeric=bool(state["log_numeric"]),
        )


def _select(history: Sequence[Event], options: SequenceOptions, where: str) -> Sequence[Event]:
    """Sort (when asked) and keep ``max_events`` events, the first or the last ones."""
    if options.sort_by is not None:
        key = options.sort_by

        def order(event: Event) -> float:
            value = event.get(key)
            return -math.inf if _absent(value) else _to_float(value, key, where)

        history = sorted(history, key=order, reverse=options.descending)
    if len(history) <= options.max_events:
        return history
    return (
        history[: options.max_events] if options.keep == "first" else history[-options.max_events :]
    )


def _floats(
    values: list[Any], name: str, where: Sequence[str], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A numeric field's values as float64 (0 where absent) and its absent mask; a value
    that is not a finite number raises :func:`_to_float`'s error for its row."""
    raw = np.array(values, dtype=object)
    absent = np.asarray(pd.isna(raw), dtype=bool)
    out = np.asarray(pd.to_numeric(pd.Series(raw), errors="coerce"), dtype=np.float64)
    bad = np.flatnonzero(~absent & ~np.isfinite(out))
    for i in bad:  # rare: booleans and the like convert, anything else raises
        out[i] = _to_float(raw[i], name, where[rows[i]])
    return np.where(absent, 0.0, out), absent


def _to_float(value: Any, name: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"event field {name!r} is numeric but holds {value!r}",
            where=where,
            fix=f"give numbers, or declare {name!r} categorical in the encoder's `fields` option",
        ) from None
    if not math.isfinite(number):
        raise DataError(
            f"event field {name!r} holds {value!r}",
            where=where,
            fix="give finite numbers; leave the field out (or null) when it is unknown",
        )
    return number
