"""Explaining an event sequence event by event (``docs/explain.md``).

Event occlusion: an event's score is the logit of the row minus the logit with that event
removed from the history (the history is encoded again without it, so a recurrent body
sees a shorter sequence, not a hole). Only the events the encoder keeps (``max_events``)
are parts. Not complete by itself; the core completes the scores to the input's share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transfuse.bases import Parts
from transfuse_sequence.events import _select

if TYPE_CHECKING:
    from transfuse.bases import Logit
    from transfuse_sequence.encoders import SequenceEncoder

__all__ = ["event_occlusion"]

_CHUNK = 256


def _describe(event: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in event.items())


def event_occlusion(
    encoder: SequenceEncoder, values: pd.Series | pd.DataFrame, logit: Logit
) -> Parts:
    """Each kept event's score: ``logit(history) - logit(history without it)``."""
    import torch

    from transfuse_sequence.encoders import _one_column

    column = _one_column(values)
    histories, where = encoder._parse(column)
    kept = [
        list(_select(h, encoder.options, where[i])) if h else [] for i, h in enumerate(histories)
    ]
    variants: list[object] = []
    owner: list[int] = []
    for i, (history, events) in enumerate(zip(histories, kept, strict=True)):
        if not events:
            continue
        variants.append(history)
        owner.append(i)
        for event in events:
            variants.append([e for e in history or [] if e is not event] or None)
            owner.append(i)
    out = np.zeros(len(variants))
    device = encoder.device_manager
    with torch.no_grad():
        for start in range(0, len(variants), _CHUNK):
            chunk = pd.Series(variants[start : start + _CHUNK], dtype=object)
            embedding = encoder(device.move(encoder.prepare(chunk))).float()
            rows = torch.tensor(owner[start : start + _CHUNK], dtype=torch.long)
            out[start : start + len(chunk)] = logit(embedding, rows).cpu().numpy()
    labels, scores, shown = [], [], []
    at = 0
    for events in kept:
        labels.append([f"event {k + 1}" for k in range(len(events))])
        shown.append([_describe(e) for e in events])
        if events:
            scores.append(out[at] - out[at + 1 : at + 1 + len(events)])
            at += 1 + len(events)
        else:
            scores.append(np.zeros(0))
    return Parts(
        labels=labels,
        scores=scores,
        values=shown,
        method="event occlusion (each event removed from the history)",
        baseline="the history without the event",
    )
