"""text.bag-of-words: hashed word n-grams into a trainable EmbeddingBag."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from transfuse.testing import check_encoder, cpu_device
from transfuse_text import BagOfWordsOptions
from transfuse_text.bow import BagOfWordsEncoder

TEXTS = pd.Series(["paid on time", "late payment again", None, "", "PAID on time"], name="notes")


def _encoder(**options: Any) -> BagOfWordsEncoder:
    return BagOfWordsEncoder(BagOfWordsOptions(**options), cpu_device())


def test_conforms(text_manager: Any) -> None:
    entry = text_manager.get("encoder", "text.bag-of-words")
    encoder = check_encoder(entry, TEXTS, options={"dim": 8, "buckets": 256, "ngrams": 2})
    assert encoder.output_dim == 8 and not encoder.frozen


def test_missing_rows_embed_as_zeros() -> None:
    encoder = _encoder(dim=4, buckets=64)
    assert encoder.missing(TEXTS).tolist() == [False, False, True, True, False]
    out = encoder(encoder.prepare(TEXTS))
    assert torch.equal(out[2], torch.zeros(4)) and torch.equal(out[3], torch.zeros(4))
    assert out[0].abs().sum() > 0


def test_hashing_is_stable_across_instances_and_lowercases() -> None:
    a, b = _encoder(buckets=1024), _encoder(buckets=1024)
    batch_a, batch_b = a.prepare(TEXTS), b.prepare(TEXTS)
    assert torch.equal(batch_a["tokens"], batch_b["tokens"])
    assert torch.equal(batch_a["tokens"][0], batch_a["tokens"][4])  # "PAID" == "paid"


def test_unigrams_ignore_word_order_and_bigrams_do_not() -> None:
    texts = pd.Series(["loan default risk", "risk default loan"])
    uni = _encoder(buckets=4096, ngrams=1)
    bi = _encoder(buckets=4096, ngrams=2)
    with torch.no_grad():
        u, b = uni(uni.prepare(texts)), bi(bi.prepare(texts))
    assert torch.allclose(u[0], u[1])
    assert not torch.allclose(b[0], b[1])


def test_max_tokens_keeps_the_most_frequent_tokens() -> None:
    encoder = _encoder(buckets=4096, max_tokens=2)
    batch = encoder.prepare(pd.Series(["fee fee fee late late card"]))
    assert batch["tokens"].shape == (1, 2)
    assert batch["counts"].tolist() == [[3.0, 2.0]]


def test_it_learns_to_separate_two_kinds_of_notes() -> None:
    torch.manual_seed(0)
    good = [f"paid on time month {i}" for i in range(20)]
    bad = [f"missed payment collections month {i}" for i in range(20)]
    texts = pd.Series(good + bad)
    labels = torch.tensor([0.0] * 20 + [1.0] * 20)
    encoder = _encoder(dim=8, buckets=512)
    head = torch.nn.Linear(8, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=0.05)
    batch = encoder.prepare(texts)
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(encoder(batch)).squeeze(1), labels
        )
        loss.backward()
        optimizer.step()
    accuracy = ((head(encoder(batch)).squeeze(1) > 0).float() == labels).float().mean()
    assert accuracy == 1.0
