"""Explaining a text input word by word (occlusion) for every text encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import transfuse_text
from transfuse.testing import check_explanation, cpu_device
from transfuse_text.bow import BagOfWordsEncoder
from transfuse_text.explain import word_occlusion, words
from transfuse_text.tfidf import TfidfEncoder

TEXTS = pd.Series(["Self employed", "nurse at the city hospital", None, "owner, owner of a cafe"])


def test_words_are_distinct_and_in_order() -> None:
    assert words("Owner, owner of a Cafe") == ["Owner", "of", "a", "Cafe"]
    assert words("a b c", limit=2) == ["a", "b"]


@pytest.mark.parametrize(
    ("factory", "options"),
    [
        (BagOfWordsEncoder, transfuse_text.BagOfWordsOptions(buckets=256)),
        (TfidfEncoder, transfuse_text.TfidfOptions(char_ngrams=3, min_df=1)),
    ],
)
def test_bags_obey_the_contract(factory, options) -> None:
    encoder = factory(options, cpu_device())
    encoder.fit(TEXTS)
    parts = check_explanation(encoder, TEXTS)
    assert parts.labels == [["Self", "employed"], ["nurse", "at", "the", "city", "hospital"], [],
                            ["owner", "of", "a", "cafe"]]  # fmt: skip
    assert not parts.complete and parts.method.startswith("word occlusion")


def test_a_frozen_sentence_transformer_is_explained_by_words(minilm) -> None:
    parts = check_explanation(minilm, TEXTS.iloc[:2])
    assert parts.labels[0] == ["Self", "employed"]
    assert all(np.abs(s).sum() > 0 for s in parts.scores)


def test_the_word_the_label_depends_on_ranks_first() -> None:
    rng = np.random.default_rng(0)
    vocabulary = ["paid", "loan", "card", "home", "car", "rent", "job", "bank"]
    flag = rng.random(200) < 0.5
    texts = pd.Series(
        [" ".join([*rng.choice(vocabulary, 4, replace=False), *(["default"] if f else [])])
         for f in flag]
    )  # fmt: skip
    options = transfuse_text.TfidfOptions(char_ngrams=0, dim=8, min_df=1)
    encoder = TfidfEncoder(options, cpu_device())
    encoder.fit(texts)
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=0.05)
    batch, y = encoder.prepare(texts), torch.tensor(flag, dtype=torch.float32)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(encoder(batch))[:, 0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    parts = encoder.attribute(texts, lambda e, rows: head(e)[:, 0])
    first = [labels[int(np.argmax(s))] for labels, s in zip(parts.labels, parts.scores)]
    assert np.mean([f == "default" for f, has in zip(first, flag) if has]) >= 0.9


REPEATED = pd.Series(
    ["registered nurse", "nurse", "Registered Nurse", None, "teacher", "nurse",
     "owner, owner of a cafe", "teacher", ""]
)  # fmt: skip


def _one_by_one(encoder, texts: pd.Series, logit) -> list[np.ndarray]:
    """Occlusion by hand, one text per forward pass: the scores before any batching."""
    import re

    def _without(text: str, word: str) -> str:  # the word blanked wherever it stands whole
        return re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", " ", text, flags=re.I).strip()

    def score(text: str, row: int) -> float:
        batch = encoder.prepare(pd.Series([text], dtype=object))
        with torch.no_grad():
            return float(logit(encoder(batch).float(), torch.tensor([row]))[0])

    out = []
    for i, text in enumerate(texts):
        found = [] if not isinstance(text, str) or not text.strip() else words(text)
        full = score(text, i) if found else 0.0
        out.append(np.array([full - score(_without(text, w), i) for w in found]))
    return out


@pytest.mark.parametrize("kind", ["bag-of-words", "tfidf", "minilm"])
def test_encoding_each_distinct_text_once_keeps_the_scores(kind, minilm) -> None:
    if kind == "bag-of-words":
        encoder = BagOfWordsEncoder(transfuse_text.BagOfWordsOptions(buckets=256), cpu_device())
    elif kind == "tfidf":
        encoder = TfidfEncoder(transfuse_text.TfidfOptions(char_ngrams=3, min_df=1), cpu_device())
    else:
        encoder = minilm
    encoder.fit(REPEATED)
    encoder.eval()
    weight = torch.randn(encoder.output_dim, generator=torch.Generator().manual_seed(1))
    row_shift = torch.arange(len(REPEATED), dtype=torch.float32)  # the rows differ

    def logit(embedding, rows):
        return embedding @ weight + row_shift[rows]

    seen: list[int] = []
    prepare = encoder.prepare

    def counting(values):
        seen.append(len(values))
        return prepare(values)

    encoder.prepare = counting
    try:
        cached = word_occlusion(encoder, REPEATED, logit)
        cached_texts, seen[:] = sum(seen), []
        plain = word_occlusion(encoder, REPEATED, logit, dedupe=False)  # as before caching
        plain_texts = sum(seen)
    finally:
        del encoder.prepare
    small = word_occlusion(encoder, REPEATED, logit, batch_size=4)  # several batches
    by_hand = _one_by_one(encoder, REPEATED, logit)
    assert cached.labels == plain.labels == small.labels
    for a, b, c, d in zip(cached.scores, plain.scores, small.scores, by_hand, strict=True):
        assert np.allclose(a, b, rtol=0, atol=1e-6)
        # other batches: float32 noise in a transformer (~2e-6 for MiniLM), none in a bag
        assert np.allclose(c, d, rtol=0, atol=1e-5)
    # 7 texts with words give 19 (row, text) pairs, 13 distinct texts: "nurse", "teacher",
    # "" and their rows come up again; "Registered Nurse" (and "Nurse") differ as texts
    assert plain_texts == 19 and cached_texts == 13


@pytest.mark.parametrize(
    "text",
    [
        "senior Manager, manager of managers",
        "self-employed (owner) / OWNER",
        "naïve café: Café au lait!",
        "a a a b",
        "   ",
    ],
)
def test_each_variant_blanks_every_occurrence_of_its_word_as_a_whole_word_regex(text):
    import re

    from transfuse_text.explain import _variants, words

    found = words(text)
    expected = [
        re.sub(rf"(?<!\w){re.escape(w)}(?!\w)", " ", text, flags=re.IGNORECASE).strip()
        for w in found
    ]
    assert list(_variants(text, found)) == expected
