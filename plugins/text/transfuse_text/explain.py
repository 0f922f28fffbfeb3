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
    from collections.abc import Iterator

    from torch import Tensor

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
    """``text`` with every occurrence of the whole word ``word`` (any case) blanked."""
    return next(_variants(text, [word]))


def _variants(text: str, found: list[str]) -> Iterator[str]:
    """``text`` without each of ``found`` in turn: the text's words found once, each
    variant put together from them (a regular expression per word compiled a pattern per
    distinct word: most of a bag-of-words explanation's time)."""
    matches = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    for word in found:
        key, pieces, last = word.lower(), [], 0
        for start, end, token in matches:
            if token == key:
                pieces += [text[last:start], " "]
                last = end
        pieces.append(text[last:])
        yield "".join(pieces).strip()


def word_occlusion(
    encoder: Encoder,
    values: pd.Series | pd.DataFrame,
    logit: Logit,
    *,
    batch_size: int = _CHUNK,
    dedupe: bool = True,
) -> Parts:
    """Each word's score: ``logit(text) - logit(text without the word)``.

    The texts to encode (each row's text and the text without each of its words) are
    encoded once per distinct text across all the rows of the call (job titles and their
    shortened forms repeat), in batches of ``batch_size`` sorted by the encoder's
    :meth:`~transfuse.bases.Encoder.lengths` where it gives them (a batch pads to texts of
    similar length); the logit then runs once per row and text. ``dedupe=False`` encodes
    every text of every row as it comes (the same scores; for tests and timings).
    """
    import torch

    texts = to_texts(values)
    missing = missing_texts(values)
    labels = [[] if gone else words(t) for t, gone in zip(texts, missing, strict=True)]
    distinct: dict[str, int] = {}
    encoded: list[str] = []
    owner: list[int] = []  # per (row, text) pair: the row
    which: list[int] = []  # per (row, text) pair: the text's place in ``encoded``
    for i, (text, found) in enumerate(zip(texts, labels, strict=True)):
        if not found:
            continue
        for variant in (text, *_variants(text, found)):
            at = distinct.setdefault(variant, len(encoded)) if dedupe else len(encoded)
            if at == len(encoded):
                encoded.append(variant)
            owner.append(i)
            which.append(at)
    out = np.zeros(len(owner))
    if owner:
        with torch.no_grad():
            embeddings = _encode(encoder, encoded, batch_size, sort=dedupe)
            rows, places = torch.tensor(owner), torch.tensor(which)
            for start in range(0, len(owner), batch_size):
                take = places[start : start + batch_size].to(embeddings.device)
                chunk = rows[start : start + batch_size]
                out[start : start + len(chunk)] = logit(embeddings[take], chunk).cpu().numpy()
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


def _encode(encoder: Encoder, texts: list[str], batch_size: int, *, sort: bool) -> Tensor:
    """``[len(texts), output_dim]`` float embeddings on the device, in batches of
    ``batch_size`` (longest first when ``sort`` and the encoder gives lengths)."""
    import torch

    device = encoder.device_manager
    lengths = encoder.lengths(pd.Series(texts, dtype=object)) if sort else None
    if lengths is None:
        order = np.arange(len(texts))
    else:
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    parts: list[Tensor] = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = encoder.prepare(pd.Series([texts[j] for j in chunk], dtype=object))
        parts.append(encoder(device.move(batch)).float())
    joined = torch.cat(parts)
    if lengths is None:
        return joined
    back = torch.from_numpy(np.argsort(order, kind="stable")).to(joined.device)
    return joined[back]
