"""Very long texts are truncated, never fatal: every text encoder embeds a ~150 kB text
(20,000 words) beside short ones into a finite row of the usual width."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import transfuse_text
from transfuse.testing import cpu_device
from transfuse_text.bow import BagOfWordsEncoder
from transfuse_text.tfidf import TfidfEncoder

WORDS = ["late", "payment", "loan", "paid", "on", "time", "income", "verified", "débito", "🙂"]
LONG = " ".join(WORDS[i % len(WORDS)] + str(i % 997) for i in range(20_000))
ROWS = pd.Series(["paid on time", LONG, "late payment twice", None], name="note")


def _embed(encoder: Any) -> torch.Tensor:
    encoder.eval()
    with torch.no_grad():
        out: torch.Tensor = encoder(encoder.prepare(ROWS))
    return out


def test_the_long_text_is_far_beyond_any_token_limit() -> None:
    assert len(LONG.encode("utf-8")) > 150_000 and len(LONG.split()) == 20_000


def test_bag_of_words_keeps_its_max_tokens_of_a_long_text() -> None:
    encoder = BagOfWordsEncoder(transfuse_text.BagOfWordsOptions(max_tokens=64), cpu_device())
    tokens = encoder.prepare(ROWS)["tokens"]
    assert tokens.shape == (4, 64)
    out = _embed(encoder)
    assert out.shape == (4, encoder.output_dim) and torch.isfinite(out).all()


def test_tfidf_embeds_a_long_text_with_the_fitted_vocabulary() -> None:
    encoder = TfidfEncoder(transfuse_text.TfidfOptions(), cpu_device())
    encoder.fit(pd.Series(["paid on time", "late payment", "income verified"] * 4))
    out = _embed(encoder)
    assert out.shape == (4, encoder.output_dim) and torch.isfinite(out).all()


@pytest.mark.slow
def test_the_sentence_transformer_truncates_to_max_length(minilm: Any) -> None:
    prepared = minilm.prepare(ROWS)
    assert max(v.shape[1] for v in prepared.values() if v.ndim == 2) == minilm.max_length
    assert minilm.lengths(ROWS).max() == minilm.max_length
    out = _embed(minilm)
    assert out.shape == (4, 384) and torch.isfinite(out).all()
    alone = _embed_one(minilm, LONG[: len(LONG) // 2])
    assert np.allclose(out[1].numpy(), alone, atol=1e-5)  # only the first tokens count


def _embed_one(encoder: Any, text: str) -> np.ndarray:
    with torch.no_grad():
        return encoder(encoder.prepare(pd.Series([text], name="note")))[0].numpy()
