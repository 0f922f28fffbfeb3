"""text.sentence-transformer's fast paths: token lengths, length-sorted and cached embedding
give the same vectors as row-order batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from transfuse.cache import EmbeddingCache, FrozenEmbedder, row_keys
from transfuse.testing import cpu_device

TEXTS = pd.Series(
    [
        "ok",
        "Self-employed carpenter with ten years of steady income and no missed payments.",
        None,
        "Registered nurse",
        "ok",
        "The applicant asks for a small business loan to buy a second delivery van.",
    ]
)


def test_lengths_are_token_counts_capped_at_max_length(minilm: Any) -> None:
    lengths = minilm.lengths(TEXTS)
    tokens = minilm.transformer.tokenizer(["ok", "Registered nurse"])["input_ids"]
    assert lengths[0] == len(tokens[0]) == 3, "[CLS] ok [SEP]"
    assert lengths[3] == len(tokens[1])
    assert lengths[2] == 2, "a missing text is the empty string"
    assert lengths[1] > lengths[3] and lengths.max() <= minilm.max_length


def test_length_sorted_cached_embedding_equals_row_order_batches(minilm: Any, tmp_path) -> None:
    row_order = torch.cat([minilm(minilm.prepare(TEXTS.iloc[i : i + 2])) for i in range(0, 6, 2)])
    cache = EmbeddingCache("minilm", minilm.output_dim, root=tmp_path)
    embedder = FrozenEmbedder(minilm, cpu_device(), cache, batch_size=2)
    keys = row_keys(TEXTS)
    computed = embedder.embed(TEXTS, keys)
    assert torch.allclose(computed, row_order, atol=1e-5)
    assert torch.allclose(minilm.embed(TEXTS), row_order, atol=1e-5)
    cache.flush()
    reopened = EmbeddingCache("minilm", minilm.output_dim, root=tmp_path)
    rows, hit = reopened.fetch(keys)
    assert hit.all() and np.array_equal(rows, computed.numpy())
    assert len(reopened) == 5, "the repeated 'ok' is stored once"
