"""The built-in fusion modules: conformance, missing modalities, modality dropout."""

from __future__ import annotations

import pytest
import torch

from transfuse import ConfigError
from transfuse.fusion import drop_modalities
from transfuse.plugins import PluginManager
from transfuse.testing import check_fusion, cpu_device

NAMES = ["fusion.concat", "fusion.gated", "fusion.attention", "fusion.lowrank", "fusion.late"]
DIMS = {"applicant": 6, "text": 4, "audio": 3}


def build(manager: PluginManager, name: str, num_outputs: int = 2, **options: object):
    entry = manager.get("fusion", name)
    fusion = entry.load()(
        entry.validate_options({"dim": 16, **options}),
        cpu_device(),
        input_dims=DIMS,
        num_outputs=num_outputs,
    )
    return fusion.eval()


def inputs(rows: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(rows, d, generator=gen) for k, d in DIMS.items()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_outputs", [1, 3])
def test_builtin_fusions_pass_the_conformance_check(transfuse_manager, name, num_outputs):
    check_fusion(transfuse_manager.get("fusion", name), num_outputs=num_outputs)


@pytest.mark.parametrize("name", NAMES)
def test_builtin_fusions_pass_the_conformance_check_with_modality_dropout(transfuse_manager, name):
    check_fusion(transfuse_manager.get("fusion", name), options={"modality_dropout": 0.5})


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_modality_does_not_change_the_row_and_all_missing_is_finite(
    transfuse_manager, name
):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, name)
    emb = inputs()
    present = {k: torch.ones(5, dtype=torch.bool) for k in DIMS}
    present["text"][0] = False  # row 0 lacks text
    for k in DIMS:  # row 1 lacks everything
        present[k][1] = False
    with torch.no_grad():
        out = fusion(emb, present)
        changed = {k: v.clone() for k, v in emb.items()}
        changed["text"][0] = float("nan")  # even a NaN must not leak in
        for k in DIMS:
            changed[k][1] = torch.randn(DIMS[k]) * 100
        again = fusion(changed, present)
    assert torch.isfinite(out).all() and torch.isfinite(again).all()
    assert torch.allclose(out[:2], again[:2], atol=1e-5)
    assert torch.allclose(out[2:], again[2:])
    assert not torch.allclose(out[0], out[2])  # but a present modality does matter


@pytest.mark.parametrize("name", NAMES)
def test_a_present_modality_changes_the_output(transfuse_manager, name):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, name)
    emb = inputs()
    present = {k: torch.ones(5, dtype=torch.bool) for k in DIMS}
    with torch.no_grad():
        out = fusion(emb, present)
        emb["audio"] = emb["audio"] + 1.0
        assert not torch.allclose(fusion(emb, present), out, atol=1e-4)


def test_output_widths(transfuse_manager):
    widths = {name: build(transfuse_manager, name, num_outputs=3).output_dim for name in NAMES}
    assert widths == {name: 16 for name in NAMES[:-1]} | {"fusion.late": 3}
    assert build(transfuse_manager, "fusion.late").produces_logits
    assert not build(transfuse_manager, "fusion.concat").produces_logits


def test_late_fusion_averages_only_the_present_modalities(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, "fusion.late", num_outputs=2)
    with torch.no_grad():
        fusion.bias.copy_(torch.tensor([0.5, -0.5]))
    emb = inputs(rows=3)
    present = {
        "applicant": torch.tensor([True, True, False]),
        "text": torch.tensor([True, False, False]),
        "audio": torch.tensor([False, True, False]),
    }
    with torch.no_grad():
        out = fusion(emb, present)
        head = {k: fusion.heads[k](emb[k]) for k in DIMS}
    assert torch.allclose(out[0], (head["applicant"][0] + head["text"][0]) / 2 + fusion.bias)
    assert torch.allclose(out[1], (head["applicant"][1] + head["audio"][1]) / 2 + fusion.bias)
    assert torch.allclose(out[2], fusion.bias)  # nothing present: the learned bias alone


def test_lowrank_missing_modality_contributes_its_bias_row(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, "fusion.lowrank", rank=3)
    emb = inputs(rows=1)
    present = {k: torch.tensor([k != "audio"]) for k in DIMS}
    with torch.no_grad():
        factors = []
        for m, k in enumerate(DIMS):
            h = fusion.proj[k](emb[k])[0] if k != "audio" else torch.zeros(16)
            factors.append(
                torch.einsum("i,rio->ro", torch.cat([h, torch.ones(1)]), fusion.factors[m])
            )
        product = factors[0] * factors[1] * factors[2]
        expected = (fusion.rank_weights[0][:, None] * product).sum(0) + fusion.bias
        assert torch.allclose(factors[2], fusion.factors[2][:, -1])  # the "1" row only
        assert torch.allclose(fusion(emb, present)[0], expected, atol=1e-5)


def test_attention_heads_must_divide_dim(transfuse_manager):
    with pytest.raises(ConfigError, match="divisible by heads"):
        build(transfuse_manager, "fusion.attention", dim=10, heads=4)


def test_modality_dropout_never_drops_all_of_a_rows_present_modalities():
    torch.manual_seed(0)
    mask = torch.rand(2000, 4) < 0.6
    mask[:10] = False  # rows with nothing present stay that way
    dropped = drop_modalities(mask, 0.9)
    assert not (dropped & ~mask).any(), "a missing modality came back"
    assert torch.equal(dropped.any(dim=1), mask.any(dim=1))
    kept = dropped.sum() / mask.sum()
    assert 0.1 < kept < 0.5  # many dropped, but each row keeps one
    assert torch.equal(drop_modalities(mask, 0.0), mask)


def test_modality_dropout_acts_in_training_mode_only(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager, "fusion.gated", modality_dropout=0.5, dropout=0.0)
    emb = inputs(rows=64)
    present = {k: torch.ones(64, dtype=torch.bool) for k in DIMS}
    with torch.no_grad():
        evaluated = [fusion.presence(emb, present) for _ in range(2)]
        fusion.train()
        trained = fusion.presence(emb, present)
        out_train = fusion(emb, present)
        fusion.eval()
        out_eval = fusion(emb, present)
    assert evaluated[0].all() and evaluated[1].all()
    assert not trained.all() and trained.any(dim=1).all()
    assert not torch.allclose(out_train, out_eval)


@pytest.mark.parametrize("name", NAMES)
def test_fusions_train_a_little(transfuse_manager, name):
    """A few optimizer steps fit a signal carried by one modality."""
    torch.manual_seed(0)
    fusion = build(transfuse_manager, name, num_outputs=1, dropout=0.0).train()
    head = torch.nn.Identity() if fusion.produces_logits else torch.nn.Linear(16, 1)
    emb = inputs(rows=64, seed=1)
    target = (emb["applicant"][:, 0] > 0).float()
    present = {k: torch.rand(64) > 0.2 for k in DIMS}
    present["applicant"][:] = True
    params = list(fusion.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=3e-2)
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(fusion(emb, present))[:, 0], target
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
