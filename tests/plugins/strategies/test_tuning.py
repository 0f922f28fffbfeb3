"""finetune, freeze, lp-ft and gradual-unfreeze: who trains, when, and at which LR."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from transfuse import TransferError
from transfuse_strategies import (
    FineTuneOptions,
    FreezeOptions,
    GradualUnfreezeOptions,
    LpFtOptions,
)
from transfuse_strategies.tuning import FineTune, Freeze, GradualUnfreeze, LinearProbeFineTune


class GroupedEncoder(nn.Module):
    """An encoder declaring param_groups: embeddings (bottom) then trunk (top), plus a top proj."""

    frozen = False

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.trunk = nn.Linear(8, 8)
        self.proj = nn.Linear(8, 8)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"embed": list(self.embed.parameters()), "trunk": list(self.trunk.parameters())}


class FrozenEncoder(nn.Linear):
    frozen = True


def model(**inputs: nn.Module) -> nn.Module:
    m = nn.Module()
    m.inputs = nn.ModuleDict(inputs or {"x": nn.Linear(4, 8)})
    m.fusion = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
    m.head = nn.Linear(8, 1)
    return m


def prepared(strategy, target: nn.Module, kit):
    strategy.prepare(kit.context(model(), target, pd.DataFrame()))
    return strategy


def trainable(target: nn.Module) -> set[str]:
    return {n for n, p in target.named_parameters() if p.requires_grad}


def test_freeze_defaults_are_a_linear_probe(kit):
    target = model()
    strategy = prepared(Freeze(FreezeOptions(), kit.device()), target, kit)
    assert trainable(target) == {"head.weight", "head.bias"}
    strategy.finalize(target)
    assert trainable(target) == {n for n, _ in target.named_parameters()}


def test_frozen_batch_norm_keeps_its_statistics(kit):
    target = model()
    strategy = prepared(Freeze(FreezeOptions(), kit.device()), target, kit)
    norm = target.fusion[1]
    before = norm.running_mean.clone()
    target.train()
    target.fusion(torch.randn(16, 8) * 3 + 1)
    assert torch.equal(norm.running_mean, before)
    strategy.finalize(target)
    target.train()
    target.fusion(torch.randn(16, 8) * 3 + 1)
    assert not torch.equal(norm.running_mean, before)


def test_freeze_update_lets_frozen_batch_norm_learn_statistics(kit):
    target = model()
    prepared(Freeze(FreezeOptions(norm_stats="update"), kit.device()), target, kit)
    before = target.fusion[1].running_mean.clone()
    target.train()
    target.fusion(torch.randn(16, 8) + 1)
    assert not torch.equal(target.fusion[1].running_mean, before)


def test_freeze_patterns_and_errors(kit):
    target = model()
    prepared(
        Freeze(FreezeOptions(include=["inputs.*"], exclude=["*.bias"]), kit.device()), target, kit
    )
    assert "inputs.x.weight" not in trainable(target) and "inputs.x.bias" in trainable(target)
    with pytest.raises(
        TransferError, match=r"'encoder\.\*' matches no trainable parameter.*inputs\.x\.weight"
    ):
        prepared(Freeze(FreezeOptions(include=["encoder.*"]), kit.device()), model(), kit)
    with pytest.raises(TransferError, match="nothing would train"):
        prepared(Freeze(FreezeOptions(exclude=[]), kit.device()), model(), kit)


def test_a_frozen_encoder_is_never_unfrozen(kit):
    target = model(x=nn.Linear(4, 8), cached=FrozenEncoder(4, 8))
    target.inputs["cached"].requires_grad_(False)
    strategy = prepared(LinearProbeFineTune(LpFtOptions(), kit.device()), target, kit)
    strategy.on_epoch_start(1)
    strategy.finalize(target)
    assert not any(p.requires_grad for p in target.inputs["cached"].parameters())
    assert "inputs.x.weight" in trainable(target)


def test_lp_ft_probes_then_fine_tunes(kit):
    target = model()
    strategy = prepared(LinearProbeFineTune(LpFtOptions(probe_epochs=2), kit.device()), target, kit)
    for epoch in (0, 1):
        strategy.on_epoch_start(epoch)
        assert trainable(target) == {"head.weight", "head.bias"}
    strategy.on_epoch_start(2)
    assert trainable(target) == {n for n, _ in target.named_parameters()}


def test_gradual_unfreeze_goes_top_down_one_group_per_epoch(kit):
    target = model(x=GroupedEncoder())
    strategy = prepared(GradualUnfreeze(GradualUnfreezeOptions(), kit.device()), target, kit)
    order = [sorted(stage) for stage in strategy.stages]
    assert order == [
        ["head.bias", "head.weight"],
        ["fusion.0.bias", "fusion.0.weight", "fusion.1.bias", "fusion.1.weight"],
        ["inputs.x.proj.bias", "inputs.x.proj.weight"],
        ["inputs.x.trunk.bias", "inputs.x.trunk.weight"],
        ["inputs.x.embed.bias", "inputs.x.embed.weight"],
    ]
    seen = []
    for epoch in range(6):
        strategy.on_epoch_start(epoch)
        seen.append(len(trainable(target)))
    assert seen == [2, 6, 8, 10, 12, 12]
    assert all(p.grad is None for n, p in target.named_parameters() if not p.requires_grad)


def test_gradual_unfreeze_every_epochs_and_custom_groups(kit):
    target = model()
    options = GradualUnfreezeOptions(every_epochs=2, groups=[["head.*"], ["inputs.*"]])
    strategy = prepared(GradualUnfreeze(options, kit.device()), target, kit)
    strategy.on_epoch_start(1)
    assert trainable(target) == {"head.weight", "head.bias"}
    strategy.on_epoch_start(2)
    assert "inputs.x.weight" in trainable(target) and "fusion.0.weight" in trainable(target)


def groups_of(target: nn.Module) -> list[dict]:
    named = list(target.named_parameters())
    return [
        {
            "name": "default",
            "params": [p for _, p in named],
            "param_names": [n for n, _ in named],
            "lr": 1e-3,
            "weight_decay": 0.01,
        }
    ]


def lr_of(groups: list[dict], name: str) -> float:
    (lr,) = [g["lr"] for g in groups for n in g["param_names"] if n == name]
    return lr


def test_finetune_discriminative_learning_rates(kit):
    target = model()
    strategy = prepared(
        FineTune(FineTuneOptions(backbone_lr_mult=0.1, head_lr_mult=2.0), kit.device()), target, kit
    )
    groups = strategy.param_groups(target, groups_of(target))
    assert lr_of(groups, "inputs.x.weight") == pytest.approx(1e-4)
    assert lr_of(groups, "fusion.0.weight") == pytest.approx(1e-3)
    assert lr_of(groups, "head.weight") == pytest.approx(2e-3)
    assert all(g["weight_decay"] == 0.01 for g in groups)
    for group in groups:  # param_names follow their parameters
        names = dict((id(p), n) for n, p in target.named_parameters())
        assert [names[id(p)] for p in group["params"]] == group["param_names"]


def test_finetune_layer_decay_shrinks_with_depth(kit):
    target = model(x=GroupedEncoder())
    options = FineTuneOptions(layer_decay=0.5, lr_mults={"inputs.x.embed.*": 0.1})
    strategy = prepared(FineTune(options, kit.device()), target, kit)
    groups = strategy.param_groups(target, groups_of(target))
    assert lr_of(groups, "head.weight") == pytest.approx(1e-3)
    assert lr_of(groups, "fusion.0.weight") == pytest.approx(5e-4)
    assert lr_of(groups, "inputs.x.proj.weight") == pytest.approx(2.5e-4)
    assert lr_of(groups, "inputs.x.trunk.weight") == pytest.approx(1.25e-4)
    assert lr_of(groups, "inputs.x.embed.weight") == pytest.approx(6.25e-5 * 0.1)


def test_finetune_pattern_that_matches_nothing_is_an_error(kit):
    strategy = FineTune(FineTuneOptions(lr_mults={"backbone.*": 0.1}), kit.device())
    with pytest.raises(TransferError, match="matches no parameter"):
        prepared(strategy, model(), kit)
