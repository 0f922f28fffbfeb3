"""Reading one image value (a path, bytes, a PIL image or an array) as an RGB PIL image,
and telling image columns apart from others.

A missing value (None, NaN, an empty string or empty bytes) is a missing modality for
its row; a value that is there but unreadable is a :class:`~transfuse.DataError` that
names the row.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfuse import DataError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["image_extensions", "is_missing_image", "looks_like_images", "to_rgb_image"]

_FIX = "give an image file (PNG, JPEG, ...) or leave the value empty to mark it missing"


def is_missing_image(value: Any) -> bool:
    """None, NaN, pd.NA, an empty string and empty bytes are a missing image."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value) == 0
    return False


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixels as uint8: floats in [0, 1] are scaled, 16-bit values divided by 257."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array // 257).astype(np.uint8)
    floating = np.issubdtype(array.dtype, np.floating)
    array = array.astype(np.float64)
    if floating and np.nanmax(array, initial=0.0) <= 1.0:
        array = array * 255.0
    return np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)


def _from_array(array: np.ndarray) -> Image.Image:
    from PIL import Image

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels first -> channels last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"an array of shape {array.shape} is not an image (H×W, H×W×3 or ×4)")
    return Image.fromarray(np.ascontiguousarray(_to_uint8(array)))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels are put on white, grayscale and 16-bit images converted."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _from_array(np.asarray(image))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_rgb_image(value: Any, where: str) -> Image.Image:
    """Read a path, bytes, a PIL image or an array as an RGB image; ``where`` names the row."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, str | os.PathLike):
            path = Path(value).expanduser()
            if not path.is_file():
                raise DataError(f"no image file at {str(value)!r}", where=where, fix=_FIX)
            with Image.open(path) as opened:
                opened.load()
                image = opened
        elif isinstance(value, bytes | bytearray | memoryview):
            image = Image.open(io.BytesIO(bytes(value)))
            image.load()
        elif isinstance(value, np.ndarray):
            image = _from_array(value)
        else:
            raise DataError(
                f"a {type(value).__name__} is not an image",
                where=where,
                fix="give a file path, image bytes, a PIL image or an H×W(×C) array",
            )
        image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        source = f" ({value})" if isinstance(value, str | os.PathLike) else ""
        raise DataError(
            f"cannot read the image{source}: {type(exc).__name__}: {exc}", where=where, fix=_FIX
        ) from None


def image_extensions() -> set[str]:
    """File suffixes that Pillow can open (``.png``, ``.jpg``, ...)."""
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _is_image_value(value: Any, extensions: set[str]) -> bool:
    from PIL import Image

    if isinstance(value, Image.Image):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim in (2, 3) and min(value.shape[:2]) >= 8
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            with Image.open(io.BytesIO(bytes(value))):  # reads the header only
                return True
        except (OSError, ValueError, SyntaxError):
            return False
    if isinstance(value, str | os.PathLike):
        text = str(value).strip()
        if "://" in text or "\n" in text:
            return False  # URLs are never fetched
        return Path(text).suffix.lower() in extensions
    return False


def looks_like_images(column: pd.Series, sample: int = 20) -> bool:
    """True when the column's first non-missing values are all images."""
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return False
    values = []
    for value in column:
        if not is_missing_image(value):
            values.append(value)
            if len(values) == sample:
                break
    if not values:
        return False
    extensions = image_extensions()
    return all(_is_image_value(v, extensions) for v in values)
