"""transfuse_infer_modality: image paths, bytes, PIL images and pixel arrays are images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

Draw = Callable[..., Image.Image]


def test_image_file_paths_are_images(image_manager: Any, image_files: list[Any]) -> None:
    paths = pd.Series([str(p) for p in image_files] + [None, "scans/x.JPG", "a b/c.webp"])
    assert image_manager.infer_modality(paths) == "image"


def test_encoded_bytes_pil_images_and_arrays_are_images(
    image_manager: Any, draw: Draw, png_bytes: Callable[[Image.Image], bytes]
) -> None:
    assert image_manager.infer_modality(pd.Series([png_bytes(draw("circle")), None])) == "image"
    assert image_manager.infer_modality(pd.Series([draw("circle"), draw("square")])) == "image"
    arrays = pd.Series([np.zeros((16, 16, 3)), np.ones((20, 10))])
    assert image_manager.infer_modality(arrays) == "image"


@pytest.mark.parametrize(
    "values",
    [
        ["The applicant repaid early.", "Two late payments in 2020.", "New job in March."],
        ["statement.pdf", "statement2.pdf"],
        ["https://example.com/a.png", "https://example.com/b.png"],
        [b"not an image", b"nor this"],
        [np.zeros(8), np.zeros(8)],  # vectors, not pictures
        [None, None],
    ],
    ids=["sentences", "pdf-paths", "urls", "plain-bytes", "vectors", "all-missing"],
)
def test_other_columns_are_not_images(image_manager: Any, values: list[Any]) -> None:
    assert image_manager.infer_modality(pd.Series(values, dtype=object)) != "image"


def test_numbers_are_left_to_the_core(image_manager: Any) -> None:
    assert image_manager.infer_modality(pd.Series([1.0, 2.0, 3.0])) == "tabular"
