"""Explaining a text input word by word (``docs/explain.md``).

Every text encoder (``text.tfidf``, ``text.bag-of-words``, ``text.sentence-transformer``)
uses word occlusion: a word's score is the logit of the row minus the logit with every
occurrence of that word removed from the text (case-insensitive). It needs only the
encoder's own ``prepare`` and ``forward``, so it works the same for the linear bags and
for a frozen or fine-tuned transformer, and a part is a word a person can read (not a
sub-word token or a character n-gram). It is not complete by itself (words interact); the
core completes the scores to the input's Shapley value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transfuse.bases import Parts
from transfuse_text.values import missing_texts, to_texts

if TYPE_CHECKING:
    from transfuse.bases import Encoder, Logit

__all__ = ["MAX_WORDS", "word_occlusion", "words"]

#: At most this many distinct words per text are scored (the first ones).
MAX_WORDS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_CHUNK = 512


def words(text: str, limit: int = MAX_WORDS) -> list[str]:
    """The distinct words of ``text`` in order of first appearance (case-insensitive)."""
    seen: dict[str, str] = {}
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word.lower() not in seen:
            seen[word.lower()] = word
            if len(seen) >= limit:
                break
    return list(seen.values())


def _without(text: str, word: str) -> str:
    return re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", " ", text, flags=re.IGNORECASE).strip()


def word_occlusion(encoder: Encoder, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
    """Each word's score: ``logit(text) - logit(text without the word)``."""
    import torch

    texts = to_texts(values)
    missing = missing_texts(values)
    labels = [[] if gone else words(t) for t, gone in zip(texts, missing, strict=True)]
    variants: list[str] = []
    owner: list[int] = []
    for i, (text, found) in enumerate(zip(texts, labels, strict=True)):
        if not found:
            continue
        variants += [text, *(_without(text, w) for w in found)]
        owner += [i] * (1 + len(found))
    device = encoder.device_manager
    out = np.zeros(len(variants))
    with torch.no_grad():
        for start in range(0, len(variants), _CHUNK):
            chunk = pd.Series(variants[start : start + _CHUNK], dtype=object)
            embedding = encoder(device.move(encoder.prepare(chunk))).float()
            rows = torch.tensor(owner[start : start + _CHUNK], dtype=torch.long)
            out[start : start + len(chunk)] = logit(embedding, rows).cpu().numpy()
    scores: list[np.ndarray] = []
    at = 0
    for found in labels:
        if not found:
            scores.append(np.zeros(0))
            continue
        full = out[at]
        scores.append(full - out[at + 1 : at + 1 + len(found)])
        at += 1 + len(found)
    return Parts(
        labels=labels,
        scores=scores,
        method="word occlusion (each word removed from the text)",
        baseline="the text without the word",
        complete=False,
    )
