"""Strategies compose in order, as the trainer calls them: [layer-map, gradual-unfreeze, l2sp]."""

from __future__ import annotations

import copy

import torch
from torch import nn

from transfuse_strategies import (
    FineTuneOptions,
    GradualUnfreezeOptions,
    L2SPOptions,
    LayerMapOptions,
)
from transfuse_strategies.l2sp import L2SP
from transfuse_strategies.layermap import LayerMap
from transfuse_strategies.tuning import FineTune, GradualUnfreeze


def run(strategies, ctx, kit, rows, epochs: int = 3, steps: int = 5) -> list[float]:
    """What the trainer does: prepare in order, chain param_groups, hooks around each step.
    Returns each step's summed extra loss."""
    for strategy in strategies:
        strategy.prepare(ctx)
    model = ctx.target_model
    named = list(model.named_parameters())
    groups = [{"name": "default", "params": [p for _, p in named], "lr": 0.01}]
    for strategy in strategies:
        groups = strategy.param_groups(model, groups)
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    batch = kit.batch_of(model, rows, "y")
    extras, step = [], 0
    for epoch in range(epochs):
        for strategy in strategies:
            strategy.on_epoch_start(epoch)
        for _ in range(steps):
            outputs = model(batch)
            loss = nn.functional.binary_cross_entropy_with_logits(
                outputs["logits"].squeeze(1), batch["target"]
            )
            extra = [s.extra_loss(batch, outputs, step) for s in strategies]
            extra = [e for e in extra if e is not None]
            extras.append(float(sum(e.detach() for e in extra)) if extra else 0.0)
            (loss + sum(extra)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for strategy in strategies:
                strategy.on_step_end(step)
            step += 1
    for strategy in strategies:
        strategy.finalize(model)
    return extras


def models(kit):
    source_rows = kit.toy_frame(200, seed=0, columns="abc")
    source = kit.table_model(source_rows, ["a", "b", "c"], seed=0)
    rows = kit.toy_frame(200, seed=1, columns="bcd")
    target = kit.table_model(rows, ["b", "c", "d"], seed=1)
    return source, target, rows


def test_layer_map_then_gradual_unfreeze_then_l2sp(kit):
    source, target, rows = models(kit)
    start = copy.deepcopy(target)
    device = kit.device()
    strategies = [
        LayerMap(LayerMapOptions(), device),
        GradualUnfreeze(GradualUnfreezeOptions(), device),
        L2SP(L2SPOptions(alpha=1.0, beta=0.0), device),
    ]
    ctx = kit.context(source, target, rows)
    extras = run(strategies, ctx, kit, rows, epochs=1)
    # Epoch 0: only the head trains; everything else is exactly the copied source.
    assert torch.equal(target.fusion.proj.weight, source.fusion.proj.weight)
    assert torch.equal(
        target.inputs["t"].columns["b"].weight, source.inputs["t"].columns["b"].weight
    )
    assert not torch.equal(target.head.weight, source.head.weight)
    # l2sp anchored the copied weights: no penalty before the first step, then a growing pull.
    assert extras[0] == 0.0 and extras[-1] > 0.0
    assert not torch.equal(start.head.weight, source.head.weight)  # the copy did happen


def test_three_epochs_unfreeze_everything(kit):
    source, target, rows = models(kit)
    device = kit.device()
    strategies = [
        LayerMap(LayerMapOptions(), device),
        GradualUnfreeze(GradualUnfreezeOptions(), device),
        L2SP(L2SPOptions(), device),
    ]
    run(strategies, kit.context(source, target, rows), kit, rows, epochs=3)
    assert not torch.equal(target.fusion.proj.weight, source.fusion.proj.weight)
    assert not torch.equal(target.inputs["t"].shared.weight, source.inputs["t"].shared.weight)


def test_order_matters_l2sp_must_follow_the_copy(kit):
    """Before layer-map ran, l2sp cannot know a resized head was partly transferred."""
    device = kit.device()
    source, target, rows = models(kit)
    target.head = nn.Linear(8, 3)  # a wider head: only its first row can come from the source
    rules = {"rules": [{"from": "head.*", "shape": "slice"}]}
    after = [LayerMap(LayerMapOptions.model_validate(rules), device), L2SP(L2SPOptions(), device)]
    ctx = kit.context(source, target, rows)
    for s in after:
        s.prepare(ctx)
    anchored = {id(p) for p, _, _ in after[1].anchored}
    assert id(target.head.weight) in anchored
    source, target, rows = models(kit)
    target.head = nn.Linear(8, 3)
    before = [L2SP(L2SPOptions(), device), LayerMap(LayerMapOptions.model_validate(rules), device)]
    ctx = kit.context(source, target, rows)
    for s in before:
        s.prepare(ctx)
    assert id(target.head.weight) not in {id(p) for p, _, _ in before[0].anchored}


def test_param_groups_chain_through_each_strategy(kit):
    source, target, rows = models(kit)
    device = kit.device()
    first = FineTune(FineTuneOptions(backbone_lr_mult=0.1), device)
    second = FineTune(FineTuneOptions(lr_mults={"inputs.t.columns.*": 0.5}), device)
    ctx = kit.context(source, target, rows)
    for s in (first, second):
        s.prepare(ctx)
    groups = [{"name": "default", "params": list(target.parameters()), "lr": 1.0}]
    groups = second.param_groups(target, first.param_groups(target, groups))
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    column = target.inputs["t"].columns["b"].weight
    assert lr[id(column)] == 0.05 and lr[id(target.inputs["t"].shared.weight)] == 0.1
    assert lr[id(target.head.weight)] == 1.0
    assert sorted(g["name"] for g in groups) == [
        "default",
        "default/ftx0.1",
        "default/ftx0.1/ftx0.5",
    ]
