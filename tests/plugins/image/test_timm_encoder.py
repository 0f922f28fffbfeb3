"""image.timm: conformance, inputs of every kind, missing and unreadable values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from transfuse import DataError
from transfuse.testing import check_encoder, cpu_device
from transfuse_image import TimmOptions
from transfuse_image.encoder import TimmEncoder

Draw = Callable[..., Image.Image]
Png = Callable[[Image.Image], bytes]
Build = Callable[..., TimmEncoder]


@pytest.fixture
def build(small: dict[str, Any]) -> Build:
    """Build a small image.timm with some options changed."""

    def build(**options: Any) -> TimmEncoder:
        return TimmEncoder(TimmOptions(**{**small, **options}), cpu_device())

    return build


def test_conforms_when_frozen(
    image_manager: Any, image_files: list[Path], small: dict[str, Any], draw: Draw, png_bytes: Png
) -> None:
    entry = image_manager.get("encoder", "image.timm")
    values = pd.Series([str(image_files[0]), png_bytes(draw("square")), None], name="scan")
    encoder = check_encoder(entry, values, options=small)
    assert encoder.frozen and encoder.output_dim == 512


def test_conforms_when_fine_tuned(image_manager: Any, draw: Draw, png_bytes: Png) -> None:
    # ConvNeXt has no batch norm: check_encoder compares eval outputs from before its
    # training-mode step with a copy made after it, which batch-norm statistics would move.
    entry = image_manager.get("encoder", "image.timm")
    values = pd.Series([png_bytes(draw("circle")), png_bytes(draw("square")), None])
    options = {"model": "convnext_atto", "weights": "none", "image_size": 32, "frozen": False}
    encoder = check_encoder(entry, values, options=options)
    assert encoder.output_dim == 320
    assert encoder.param_groups()["backbone"] == list(encoder.model.parameters())


def test_a_fine_tuned_batch_norm_network_trains_and_round_trips(
    build: Build, draw: Draw, png_bytes: Png
) -> None:
    encoder = build(model="efficientnet_lite0", frozen=False)
    batch = encoder.prepare(pd.Series([png_bytes(draw("circle")), png_bytes(draw("square"))]))
    encoder.train()
    encoder(batch).pow(2).mean().backward()
    assert all(p.grad is not None for p in encoder.param_groups()["backbone"])
    fresh = build(model="efficientnet_lite0", frozen=False)
    fresh.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(batch), encoder.eval()(batch), atol=1e-5)


def test_every_kind_of_value_reads_the_same_picture(
    build: Build, image_files: list[Path], draw: Draw, png_bytes: Png
) -> None:
    picture = draw("circle")
    pixels = np.asarray(picture)
    values = pd.Series(
        [
            str(image_files[0]),
            image_files[0],
            png_bytes(picture),
            picture,
            pixels,
            pixels.transpose(2, 0, 1).copy(),  # channels first
            pixels.astype(np.float32) / 255.0,  # floats in [0, 1]
        ]
    )
    batch = build().prepare(values)["image"]
    assert batch.shape == (7, 3, 32, 32)
    for row in batch[1:]:
        assert torch.allclose(row, batch[0], atol=1e-5)


def test_grayscale_and_transparent_images_become_rgb(
    build: Build, draw: Draw, png_bytes: Png
) -> None:
    gray = draw("square", mode="L")
    clear = draw("circle", mode="RGBA")
    clear.putalpha(0)  # fully transparent: shows the white background
    white = Image.new("RGB", clear.size, "white")
    values = pd.Series([png_bytes(gray), np.asarray(gray), png_bytes(clear), white])
    encoder = build()
    batch = encoder.prepare(values)["image"]
    mean = torch.tensor(encoder.data_config["mean"]).view(3, 1, 1)
    std = torch.tensor(encoder.data_config["std"]).view(3, 1, 1)
    pixels = batch * std + mean  # undo the normalisation
    assert batch.shape[1] == 3
    assert torch.allclose(pixels[0, 0], pixels[0, 1], atol=1e-5)  # gray: R == G == B
    assert torch.allclose(pixels[0, 1], pixels[0, 2], atol=1e-5)
    assert torch.allclose(batch[0], batch[1], atol=1e-5)
    assert torch.allclose(batch[2], batch[3], atol=1e-5)  # transparent is put on white


def test_missing_values_are_zero_rows_marked_missing(
    build: Build, draw: Draw, png_bytes: Png
) -> None:
    encoder = build()
    values = pd.Series([None, float("nan"), "", b"", png_bytes(draw("square"))])
    assert encoder.missing(values).tolist() == [True, True, True, True, False]
    batch = encoder.prepare(values)["image"]
    assert batch[:4].abs().sum() == 0 and batch[4].abs().sum() > 0


def test_corrupt_bytes_are_a_data_error_naming_the_row(
    build: Build, draw: Draw, png_bytes: Png
) -> None:
    values = pd.Series([png_bytes(draw("circle")), b"\x89PNG not really"], index=[10, 11])
    values.name = "statement_png"
    with pytest.raises(DataError, match="row 11: cannot read the image") as err:
        build().prepare(values)
    assert "statement_png" in str(err.value) and err.value.fix


def test_a_missing_or_truncated_file_is_a_data_error(
    build: Build, tmp_path: Path, draw: Draw, png_bytes: Png
) -> None:
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png_bytes(draw("circle"))[:60])
    with pytest.raises(DataError, match="no image file"):
        build().prepare(pd.Series([str(tmp_path / "absent.png")]))
    with pytest.raises(DataError, match=r"cannot read the image \(.*cut.png\)"):
        build().prepare(pd.Series([str(truncated)]))


def test_values_that_are_not_images_are_data_errors(build: Build) -> None:
    with pytest.raises(DataError, match="a int is not an image"):
        build().prepare(pd.Series([3], dtype=object))
    with pytest.raises(DataError, match=r"shape \(5,\) is not an image"):
        build().prepare(pd.Series([np.zeros(5)]))


def test_a_frozen_network_keeps_its_batch_norm_statistics(
    build: Build, draw: Draw, png_bytes: Png
) -> None:
    encoder = build(model="efficientnet_lite0")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.train()
    assert not encoder.model.training
    encoder(encoder.prepare(pd.Series([png_bytes(draw("circle"))] * 2)))
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert encoder.param_groups() == {}


def test_pool_and_image_size_options_shape_the_features(build: Build, draw: Draw) -> None:
    encoder = build(pool="catavgmax", image_size=48)
    assert encoder.output_dim == 1024
    assert encoder.prepare(pd.Series([draw("circle")]))["image"].shape == (1, 3, 48, 48)
