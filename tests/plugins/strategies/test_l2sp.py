"""strategy.l2sp: alpha/2 ||w - w0||^2 on transferred weights, beta/2 ||w||^2 on new ones."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from transfuse_strategies import L2SPOptions, LayerMapOptions
from transfuse_strategies.l2sp import L2SP
from transfuse_strategies.layermap import LayerMap


def pair(head_out: int = 1) -> tuple[nn.Module, nn.Module]:
    def model(k: int) -> nn.Module:
        m = nn.Module()
        m.inputs = nn.ModuleDict({"x": nn.Linear(4, 8)})
        m.fusion = nn.Linear(8, 8)
        m.head = nn.Linear(8, k)
        return m

    torch.manual_seed(0)
    return model(1), model(head_out)


def mapped(kit, source, target, **layer_map):
    ctx = kit.context(source, target, pd.DataFrame())
    LayerMap(LayerMapOptions.model_validate({"min_loaded": 0, **layer_map}), kit.device()).prepare(
        ctx
    )
    return ctx


def test_penalty_is_zero_at_the_start_and_grows_with_distance(kit):
    source, target = pair()
    ctx = mapped(kit, source, target)
    l2sp = L2SP(L2SPOptions(alpha=0.5, beta=0.0), kit.device())
    l2sp.prepare(ctx)
    assert l2sp.extra_loss({}, {}, 0).item() == 0.0
    with torch.no_grad():
        target.fusion.weight[0, 0] += 2.0
    assert l2sp.extra_loss({}, {}, 0).item() == pytest.approx(0.5 / 2 * 4.0)
    penalty = l2sp.extra_loss({}, {}, 0)
    penalty.backward()
    assert target.fusion.weight.grad[0, 0].item() == pytest.approx(0.5 * 2.0)


def test_new_weights_get_plain_l2_and_partly_loaded_rows_both(kit):
    source, target = pair(head_out=3)
    ctx = mapped(kit, source, target, rules=[{"from": "head.*", "shape": "slice"}])
    l2sp = L2SP(L2SPOptions(alpha=0.0, beta=1.0), kit.device())
    l2sp.prepare(ctx)
    new_rows = target.head.weight[1:].pow(2).sum() + target.head.bias[1:].pow(2).sum()
    assert l2sp.extra_loss({}, {}, 0).item() == pytest.approx(0.5 * new_rows.item(), rel=1e-5)
    alpha_only = L2SP(L2SPOptions(alpha=1.0, beta=0.0), kit.device())
    alpha_only.prepare(ctx)
    with torch.no_grad():
        target.head.weight[0, 0] += 1.0  # a loaded row moves
        target.head.weight[2, 0] += 5.0  # a new row moves: no alpha penalty
    assert alpha_only.extra_loss({}, {}, 0).item() == pytest.approx(0.5)


def test_frozen_and_excluded_parameters_are_not_penalised(kit):
    source, target = pair()
    ctx = mapped(kit, source, target)
    l2sp = L2SP(L2SPOptions(alpha=1.0, beta=0.0, exclude=["fusion.*"]), kit.device())
    l2sp.prepare(ctx)
    with torch.no_grad():
        target.fusion.weight += 1.0
        target.head.weight += 1.0
    target.head.requires_grad_(False)
    assert l2sp.extra_loss({}, {}, 0).item() == 0.0


def test_without_layer_map_the_source_weights_are_the_anchor(kit):
    source, target = pair()
    l2sp = L2SP(L2SPOptions(alpha=2.0, beta=0.0), kit.device())
    l2sp.prepare(kit.context(source, target, pd.DataFrame()))
    expected = sum((p - q).pow(2).sum() for p, q in zip(target.parameters(), source.parameters()))
    assert l2sp.extra_loss({}, {}, 0).item() == pytest.approx(expected.item(), rel=1e-5)
