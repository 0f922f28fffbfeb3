"""fusion.linear: concatenation and one linear map, so the logit is affine in every
input's embedding."""

from __future__ import annotations

import pytest
import torch

from transfuse.plugins import PluginManager
from transfuse.testing import check_fusion, cpu_device

DIMS = {"table": 5, "text": 7}


def build(manager: PluginManager, **options: object):
    entry = manager.get("fusion", "fusion.linear")
    return entry.load()(
        entry.validate_options({"dim": 8, **options}),
        cpu_device(),
        input_dims=DIMS,
        num_outputs=1,
    )


def everything(rows: int) -> dict[str, torch.Tensor]:
    return {k: torch.ones(rows, dtype=torch.bool) for k in DIMS}


@pytest.mark.parametrize("options", [{}, {"modality_dropout": 0.5}, {"dropout": 0.2}])
def test_it_passes_the_conformance_check(transfuse_manager, options):
    check_fusion(transfuse_manager.get("fusion", "fusion.linear"), options=options)


def test_it_maps_the_concatenation_and_the_presence_flags(transfuse_manager):
    fusion = build(transfuse_manager).eval()
    emb = {k: torch.randn(3, d) for k, d in DIMS.items()}
    present = everything(3)
    present["text"][2] = False
    with torch.no_grad():
        out = fusion(emb, present)
        joined = torch.cat([emb["table"][2], torch.zeros(7), torch.tensor([1.0, 0.0])])
        assert torch.allclose(out[2], fusion.map(joined), atol=1e-6)
    assert fusion.output_dim == 8 and fusion.map.in_features == 5 + 7 + 2


def test_the_output_is_affine_in_each_embedding(transfuse_manager):
    torch.manual_seed(0)
    fusion = build(transfuse_manager).eval()
    a, b = ({k: torch.randn(4, d) for k, d in DIMS.items()} for _ in range(2))
    mid = {k: 0.3 * a[k] + 0.7 * b[k] for k in DIMS}
    with torch.no_grad():
        ends = 0.3 * fusion(a, everything(4)) + 0.7 * fusion(b, everything(4))
        assert torch.allclose(fusion(mid, everything(4)), ends, atol=1e-5)
