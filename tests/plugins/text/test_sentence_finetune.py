"""Fine-tuning text.sentence-transformer: its own learning rate, top layers only, LP-FT."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from transfuse import ConfigError
from transfuse.builtin import FusionOptions
from transfuse.fusion import LateFusion
from transfuse.model import FusionModel
from transfuse.testing import cpu_device
from transfuse.train import default_param_groups
from transfuse_text import SentenceTransformerOptions
from transfuse_text.sentence import SentenceTransformerEncoder

TEXTS = pd.Series(["Paid on time every month.", "Two missed payments.", "ok", None])


def encoder(**options: Any) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(
        SentenceTransformerOptions(frozen=False, max_length=16, **options), cpu_device()
    )


def layer_of(name: str) -> int | None:
    """The block index in a parameter name (``...encoder.layer.3.attention...``)."""
    parts = name.split(".")
    return int(parts[parts.index("layer") + 1]) if "layer" in parts else None


def test_the_backbone_group_trains_at_the_encoders_own_lr() -> None:
    text = encoder(lr=2e-5)
    fusion = LateFusion(
        FusionOptions(dim=8), cpu_device(), input_dims={"notes": 384}, num_outputs=1
    )
    groups = default_param_groups(FusionModel({"notes": text}, fusion, 1), 1e-3, 0.01)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["inputs.notes.backbone"] == lrs["inputs.notes.backbone.no_decay"] == 2e-5
    assert lrs["default"] == 1e-3


def test_train_layers_leaves_embeddings_and_lower_layers_fixed() -> None:
    text = encoder(train_layers=2)
    trainable = {n for n, p in text.named_parameters() if p.requires_grad}
    assert trainable and not any("embeddings" in n for n in trainable)
    assert {layer_of(n) for n in trainable} - {None} == {4, 5}  # MiniLM-L6: the top two
    assert len(text.param_groups()["backbone"]) == len(trainable)


def test_a_step_with_train_layers_reaches_only_the_top_layers() -> None:
    text = encoder(train_layers=1).train()
    text(text.prepare(TEXTS)).sum().backward()
    got_grad = {n for n, p in text.named_parameters() if p.grad is not None}
    assert got_grad and {layer_of(n) for n in got_grad} - {None} == {5}


def test_train_layers_beyond_the_models_layers_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="exceeds the model's 6 layers"):
        encoder(train_layers=7)


def test_fine_tuning_options_need_frozen_false() -> None:
    with pytest.raises(ValidationError, match="frozen: false"):
        SentenceTransformerOptions(probe_epochs=1)


def test_probe_epochs_serve_the_pretrained_embeddings_computed_in_fit() -> None:
    text = encoder(probe_epochs=1)
    train, valid = TEXTS.iloc[:2], TEXTS.iloc[2:]
    text.fit(train, target=pd.Series([1, 0]), valid=(valid, pd.Series([1, 0])))
    reference = text.embed(TEXTS)
    text.on_epoch_start(0)
    text.train()
    batch = text.prepare(TEXTS)
    assert batch["probe_row"].tolist() == [0, 1, 2, 3]
    out = text(batch)
    assert torch.allclose(out, reference, atol=1e-5)
    assert not out.requires_grad  # the transformer gets no gradient while probing


def test_after_the_probe_epochs_the_transformer_fine_tunes() -> None:
    text = encoder(probe_epochs=1)
    text.fit(TEXTS.iloc[:2])
    text.on_epoch_start(1)
    batch = text.prepare(TEXTS)
    assert "probe_row" not in batch
    assert text.train()(batch).requires_grad


@pytest.mark.slow
def test_lp_ft_trains_end_to_end_in_a_pipeline() -> None:
    import transfuse

    rows = 24
    frame = pd.DataFrame(
        {
            "note": ["paid on time, no problems"] * (rows // 2)
            + ["missed payments, account in default"] * (rows // 2),
            "bad": [0] * (rows // 2) + [1] * (rows // 2),
        }
    )
    config = {
        "name": "lp-ft",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {
            "note": {
                "encoder": "text.sentence-transformer",
                "column": "note",
                "options": {"frozen": False, "train_layers": 1, "probe_epochs": 1},
            }
        },
        "fusion": {"method": "fusion.late", "options": {"dim": 8}},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "progress": False},
    }
    pipeline = transfuse.Pipeline.from_config(config).fit(frame)
    assert len(pipeline.metrics["history"]) == 2
    assert pipeline.metrics["validation"]["roc_auc"] == pytest.approx(1.0)
