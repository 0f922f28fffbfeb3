"""fusion.stack: per-input heads trained on their own losses, a learned combination on top."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transfuse.plugins import PluginManager
from transfuse.testing import check_fusion, cpu_device

DIMS = {"table": 5, "text": 7}


def build(manager: PluginManager, num_outputs: int = 1, **options: object):
    entry = manager.get("fusion", "fusion.stack")
    fusion = entry.load()(
        entry.validate_options({"dim": 8, "dropout": 0.0, **options}),
        cpu_device(),
        input_dims=DIMS,
        num_outputs=num_outputs,
    )
    return fusion


def data(rows: int = 64, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The label is carried strongly by text and weakly (but on its own) by table."""
    gen = torch.Generator().manual_seed(seed)
    emb = {k: torch.randn(rows, d, generator=gen) for k, d in DIMS.items()}
    target = ((3 * emb["text"][:, 0] + emb["table"][:, 0]) > 0).float()
    return emb, target


def everything(rows: int = 64) -> dict[str, torch.Tensor]:
    return {k: torch.ones(rows, dtype=torch.bool) for k in DIMS}


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target)


@pytest.mark.parametrize("num_outputs", [1, 3])
@pytest.mark.parametrize("options", [{}, {"modality_dropout": 0.5}, {"detach": True}])
def test_it_passes_the_conformance_check(transfuse_manager, num_outputs, options):
    check_fusion(transfuse_manager.get("fusion", "fusion.stack"), num_outputs=num_outputs,
                 options=options)  # fmt: skip


def test_it_starts_as_the_sum_of_the_present_heads_logits(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager).eval()
    emb, _ = data(rows=4)
    present = everything(4)
    present["table"][1] = False
    with torch.no_grad():
        out = fusion(emb, present)
        h = {k: fusion.heads[k](fusion.proj[k](emb[k])) for k in DIMS}
    assert torch.allclose(out[0], h["table"][0] + h["text"][0], atol=1e-5)
    assert torch.allclose(out[1], h["text"][1], atol=1e-5)  # the interaction starts at zero


def test_the_auxiliary_loss_scores_each_head_on_the_rows_that_have_its_input(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, aux_weight=0.5).train()
    emb, target = data(rows=6)
    present = everything(6)
    present["table"][:3] = False
    fusion(emb, present)
    aux = fusion.auxiliary_loss(target, bce)
    with torch.no_grad():
        table = fusion.heads["table"](fusion.proj["table"](emb["table"][3:]))
        text = fusion.heads["text"](fusion.proj["text"](emb["text"]))
    expected = 0.5 * (bce(table, target[3:]) + bce(text, target))
    assert aux is not None and torch.allclose(aux, expected, atol=1e-5)
    assert fusion.auxiliary_loss(target, bce) is None  # used once per forward pass


def test_no_auxiliary_loss_outside_training_or_at_weight_zero(transfuse_manager):
    emb, target = data(rows=8)
    fusion = build(transfuse_manager).eval()
    fusion(emb, everything(8))
    assert fusion.auxiliary_loss(target, bce) is None
    off = build(transfuse_manager, aux_weight=0.0).train()
    off(emb, everything(8))
    assert off.auxiliary_loss(target, bce) is None


def test_detach_keeps_the_fused_loss_out_of_the_heads(transfuse_manager):
    fusion = build(transfuse_manager, detach=True).train()
    emb, target = data()
    bce(fusion(emb, everything()), target).backward()
    assert fusion.heads["text"].weight.grad is None
    assert fusion.weights.grad is not None and fusion.weights.grad.abs().sum() > 0


def _train(fusion, steps: int = 60) -> torch.nn.Module:
    torch.manual_seed(0)
    emb, target = data(rows=256)
    opt = torch.optim.Adam(fusion.parameters(), lr=3e-2)
    for _ in range(steps):
        loss = bce(fusion(emb, everything(256)), target)
        aux = fusion.auxiliary_loss(target, bce)
        loss = loss + aux if aux is not None else loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fusion.eval()


def test_the_weak_inputs_head_learns_its_own_signal(transfuse_manager):
    """With its own loss the table's head predicts from the table alone; with the fused
    loss alone (stacking, detached) it never trains."""
    emb, target = data(rows=256)

    def table_loss(fusion) -> float:
        with torch.no_grad():
            return float(bce(fusion.heads["table"](fusion.proj["table"](emb["table"])), target))

    trained = _train(build(transfuse_manager, detach=True))
    untrained = _train(build(transfuse_manager, detach=True, aux_weight=0.0))
    assert table_loss(trained) < 0.62 < table_loss(untrained)
