"""FusionModel: layout, forward, cached inputs, and building from a config."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import ConfigError
from transfuse.config import parse_config
from transfuse.model import (
    FusionModel,
    build_encoder,
    build_fusion,
    build_task,
    infer_encoders,
)
from transfuse.testing import cpu_device


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def build(kit_manager, **overrides):
    config = parse_config(kit.config(**overrides))
    device = cpu_device()
    df = kit.frame(20)
    task = build_task(config, kit_manager, device)
    task.fit(df["y"])
    encoders = {}
    for name, spec in config.inputs.items():
        encoders[name] = build_encoder(config, name, kit_manager, device)
        encoders[name].fit(df[spec.column_list[0]])
    fusion = build_fusion(config, encoders, task.num_outputs, kit_manager, device)
    return FusionModel(encoders, fusion, task.num_outputs), encoders


def batch(encoders, n=4):
    df = kit.frame(n)
    return {
        "inputs": {name: enc.prepare(df[name]) for name, enc in encoders.items()},
        "present": {name: torch.ones(n, dtype=torch.bool) for name in encoders},
    }


def test_parameters_follow_the_inputs_fusion_head_layout(kit_manager):
    model, _ = build(kit_manager)
    names = [n for n, _ in model.named_parameters()]
    assert "inputs.a.proj.0.weight" in names and "head.weight" in names
    assert {n.split(".")[0] for n in names} == {"inputs", "fusion", "head"}


def test_forward_gives_logits_and_features(kit_manager):
    model, encoders = build(kit_manager)
    out = model(batch(encoders))
    assert out["logits"].shape == (4, 1)
    assert out["features"].shape == (4, model.fusion.output_dim)


def test_late_fusion_gets_no_extra_head(kit_manager):
    model, encoders = build(kit_manager, fusion={"method": "fusion.late", "options": {}})
    assert isinstance(model.head, torch.nn.Identity)
    assert model(batch(encoders))["logits"].shape == (4, 1)


def test_a_frozen_input_takes_its_embedding_from_the_batch_and_never_trains(kit_manager):
    inputs = {
        "a": {"encoder": "test.numeric", "column": "a"},
        "b": {"encoder": "test.frozen", "column": "b", "options": {"dim": 3}},
    }
    model, encoders = build(kit_manager, inputs=inputs)
    assert all(not p.requires_grad for p in model.inputs["b"].parameters())
    b = batch(encoders)
    b["inputs"]["b"] = {"embedding": torch.full((4, 3), 2.0)}
    kit.Frozen.calls.clear()
    emb = model.embeddings(b)
    assert kit.Frozen.calls == [] and torch.equal(emb["b"], torch.full((4, 3), 2.0))
    model.train()
    assert model.inputs["a"].training and not model.inputs["b"].training


def test_an_omitted_encoder_is_inferred_from_the_column(kit_manager):
    config = parse_config(
        kit.config(inputs={"a": {"columns": ["a", "b"]}, "n": {"column": "noise"}})
    )
    resolved = infer_encoders(config, kit.frame(10), kit_manager)
    # tabular.mlp is not installed here, so the installed tabular encoder stands in.
    assert resolved.inputs["a"].encoder == "test.frozen"
    assert resolved.inputs["n"].encoder == "test.frozen"
    assert config.inputs["a"].encoder is None


def test_a_column_of_unknown_kind_is_a_config_error_naming_the_input(kit_manager):
    config = parse_config(kit.config(inputs={"doc": {"column": "doc"}}))
    df = pd.DataFrame({"doc": [f"a long unique sentence number {i}" for i in range(100)]})
    with pytest.raises(ConfigError, match=r"inputs\.doc\.encoder: cannot tell"):
        infer_encoders(config, df, kit_manager)
