"""Explaining an image by region, with a saliency map."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from transfuse.testing import check_explanation, cpu_device
from transfuse_image import TimmOptions
from transfuse_image.encoder import TimmEncoder
from transfuse_image.explain import REGIONS


def test_regions_and_a_saliency_map_obey_the_contract(
    draw, png_bytes, small: dict[str, Any]
) -> None:
    encoder = TimmEncoder(TimmOptions(**small), cpu_device())
    values = pd.Series([png_bytes(draw("square")), None, png_bytes(draw("circle"))])
    encoder.fit(values)
    parts = check_explanation(encoder, values)
    assert parts.labels[1] == [] and parts.maps[1] is None
    assert parts.labels[0] == REGIONS and REGIONS[4] == "centre"
    assert parts.maps[0].shape == (small["image_size"], small["image_size"])
    # the regions split the map: their scores add up to the whole map's
    assert np.isclose(parts.scores[0].sum(), parts.maps[0].sum())


def test_the_regions_add_up_to_the_image_minus_grey(draw, png_bytes, small) -> None:
    encoder = TimmEncoder(TimmOptions(**small), cpu_device()).eval()
    values = pd.Series([png_bytes(draw("square"))])
    encoder.fit(values)
    weight = torch.randn(encoder.output_dim, generator=torch.Generator().manual_seed(0))
    parts = encoder.attribute(values, lambda e, rows: e @ weight)
    with torch.no_grad():
        image = encoder.prepare(values)["image"]
        gap = encoder.model(image) @ weight - encoder.model(torch.zeros_like(image)) @ weight
    assert abs(parts.scores[0].sum() - float(gap[0])) <= parts.delta[0] + 1e-4
