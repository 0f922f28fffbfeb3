"""Fixtures for the image plugin's tests: tiny images drawn with PIL, small random models."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import transfuse_image

#: A small random network at a small size: fast on a 2-core CPU.
SMALL = {"model": "resnet10t", "weights": "none", "image_size": 32}


def draw(kind: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """A tiny picture: a coloured shape on a plain background."""
    image = Image.new("RGB", size, "white")
    pen = ImageDraw.Draw(image)
    if kind == "circle":
        pen.ellipse((5, 5, size[0] - 5, size[1] - 5), fill="red")
    else:
        pen.rectangle((8, 4, size[0] - 8, size[1] - 4), fill="blue")
    return image.convert(mode)


def png_bytes(image: Image.Image) -> bytes:
    """The image encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(name="draw")
def draw_fixture() -> Callable[..., Image.Image]:
    """:func:`draw`, for tests (conftest is not importable under importlib mode)."""
    return draw


@pytest.fixture(name="png_bytes")
def png_bytes_fixture() -> Callable[[Image.Image], bytes]:
    """:func:`png_bytes`, for tests."""
    return png_bytes


@pytest.fixture
def small() -> dict[str, Any]:
    """Options of a small random image.timm (see :data:`SMALL`)."""
    return dict(SMALL)


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    """Three PNG files on disk."""
    paths = []
    for i, kind in enumerate(["circle", "square", "circle"]):
        path = tmp_path / f"scan_{i}.png"
        draw(kind).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_manager(transfuse_manager: Any, register_plugin: Any) -> Any:
    """A plugin manager with the core and the image plugin registered."""
    register_plugin(transfuse_image, name="image")
    return transfuse_manager
