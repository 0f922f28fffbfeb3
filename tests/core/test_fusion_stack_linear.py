"""fusion.stack with linear_heads: each head reads its input's own logit column at first."""

from __future__ import annotations

import pytest
import torch

from transfuse.plugins import PluginManager
from transfuse.testing import check_fusion, cpu_device

DIMS = {"table": 5, "text": 7}


def build(manager: PluginManager, num_outputs: int = 1, **options: object):
    entry = manager.get("fusion", "fusion.stack")
    return entry.load()(
        entry.validate_options({"dim": 8, "dropout": 0.0, "linear_heads": True, **options}),
        cpu_device(),
        input_dims=DIMS,
        num_outputs=num_outputs,
    )


@pytest.mark.parametrize("num_outputs", [1, 3])
@pytest.mark.parametrize("interaction", [True, False])
def test_it_passes_the_conformance_check(transfuse_manager, num_outputs, interaction):
    check_fusion(
        transfuse_manager.get("fusion", "fusion.stack"),
        num_outputs=num_outputs,
        options={"linear_heads": True, "interaction": interaction},
    )


@pytest.mark.parametrize("num_outputs", [1, 3])
def test_each_head_starts_at_its_inputs_first_columns(transfuse_manager, num_outputs):
    fusion = build(transfuse_manager, num_outputs=num_outputs).eval()
    gen = torch.Generator().manual_seed(0)
    emb = {k: torch.randn(6, d, generator=gen) for k, d in DIMS.items()}
    present = {"table": torch.tensor([True] * 5 + [False]), "text": torch.ones(6, dtype=torch.bool)}
    with torch.no_grad():
        logits, observed, _ = fusion.head_logits(emb, present)
        out = fusion(emb, present)
    for m, name in enumerate(DIMS):
        expected = emb[name][:, :num_outputs] * observed[:, m, None]
        assert torch.allclose(logits[:, m], expected)
    # weights start at one and the interaction's last layer at zero: the sum of the present ones
    assert torch.allclose(out, logits.sum(dim=1))
    assert torch.allclose(out[5], emb["text"][5, :num_outputs])  # its table is missing


def test_without_the_interaction_no_projection_is_built(transfuse_manager):
    fusion = build(transfuse_manager, interaction=False)
    assert len(fusion.proj) == 0 and fusion.interaction is None
    names = {n for n, _ in fusion.named_parameters()}
    assert names == {
        "weights",
        "bias",
        *(f"heads.{k}.{p}" for k in DIMS for p in ("weight", "bias")),
    }
