"""text.tfidf: a fitted TF-IDF vocabulary feeding a trainable sparse linear layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse import ConfigError, DataError
from transfuse.testing import check_encoder, cpu_device
from transfuse_text import TfidfOptions
from transfuse_text.tfidf import TfidfEncoder

TEXTS = pd.Series(
    ["paid on time", "late payment again", None, "", "PAID on time", "late again and again"],
    name="notes",
)


def _encoder(**options: Any) -> TfidfEncoder:
    return TfidfEncoder(TfidfOptions(**{"min_df": 1, **options}), cpu_device())


def test_conforms(text_manager: Any) -> None:
    entry = text_manager.get("encoder", "text.tfidf")
    encoder = check_encoder(entry, TEXTS, options={"dim": 4, "min_df": 1})
    assert encoder.output_dim == 4 and not encoder.frozen


def test_weights_match_scikit_learns_tfidf_vectorizer() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    encoder = _encoder(word_ngrams=2, char_ngrams=0)
    encoder.fit(TEXTS)
    texts = TEXTS.fillna("").tolist()
    expected = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([t for t in texts if t])
    ours = encoder.tfidf(TEXTS).toarray()
    theirs = expected.transform(texts).toarray()
    order = [expected.vocabulary_[t] for t in encoder.vocabulary["word"]]
    assert np.allclose(ours, theirs[:, order], atol=1e-6)


def test_word_and_char_parts_each_count_half() -> None:
    encoder = _encoder(word_ngrams=1, char_ngrams=3)
    encoder.fit(TEXTS)
    matrix = encoder.tfidf(pd.Series(["late payment"])).toarray()[0]
    words = len(encoder.vocabulary["word"])
    assert np.isclose(np.linalg.norm(matrix[:words]) ** 2, 0.5, atol=1e-6)
    assert np.isclose(np.linalg.norm(matrix[words:]) ** 2, 0.5, atol=1e-6)


def test_missing_and_unseen_texts_embed_as_zeros() -> None:
    encoder = _encoder(dim=3, char_ngrams=0)
    encoder.fit(TEXTS)
    out = encoder(encoder.prepare(pd.Series([None, "", "zzz qqq", "paid"])))
    assert torch.equal(out[:3], torch.zeros(3, 3))
    assert out[3].abs().sum() > 0


def test_max_terms_keeps_the_largest_weights() -> None:
    encoder = _encoder(char_ngrams=0, word_ngrams=1, max_terms=2)
    encoder.fit(TEXTS)
    batch = encoder.prepare(pd.Series(["late payment again and again"]))
    full = encoder.tfidf(pd.Series(["late payment again and again"])).toarray()[0]
    assert batch["terms"].shape == (1, 2)
    assert sorted(batch["weights"][0].tolist(), reverse=True) == pytest.approx(
        sorted(full, reverse=True)[:2]
    )


def test_vocabulary_is_saved_as_json_and_safetensors(tmp_path: Path) -> None:
    encoder = _encoder(word_ngrams=1, char_ngrams=2)
    encoder.fit(TEXTS)
    encoder.save_fitted(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idf.safetensors", "vocabulary.json"]
    saved = json.loads((tmp_path / "vocabulary.json").read_text("utf-8"))
    assert saved["vocabulary"]["word"] == encoder.vocabulary["word"]
    fresh = _encoder(word_ngrams=1, char_ngrams=2)
    fresh.load_fitted(tmp_path)
    assert torch.equal(fresh.prepare(TEXTS)["terms"], encoder.prepare(TEXTS)["terms"])


def test_loading_with_other_kinds_is_a_data_error(tmp_path: Path) -> None:
    encoder = _encoder(word_ngrams=1, char_ngrams=0)
    encoder.fit(TEXTS)
    encoder.save_fitted(tmp_path)
    with pytest.raises(DataError, match="kinds"):
        _encoder(word_ngrams=1, char_ngrams=3).load_fitted(tmp_path)


def test_options_that_give_no_terms_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="both 0"):
        _encoder(word_ngrams=0, char_ngrams=0)
    with pytest.raises(ConfigError, match="char_ngrams"):
        _encoder(char_ngrams=1)


def test_fitting_on_no_text_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no training row"):
        _encoder().fit(pd.Series([None, " "]))


def test_it_learns_to_separate_two_kinds_of_notes() -> None:
    torch.manual_seed(0)
    notes = pd.Series(["paid on time", "paid early", "late again", "missed payment late"] * 4)
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0] * 4)
    encoder = _encoder(dim=2, char_ngrams=0)
    encoder.fit(notes)
    head = torch.nn.Linear(2, 1)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.05)
    batch = encoder.prepare(notes)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(encoder(batch)).squeeze(1), labels
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.05
