"""transfuse-image: image encoders (any timm architecture as a feature extractor).

Importing this module is light: it registers entries whose factories are lazy strings, so
torch, timm and Pillow load only when an encoder is built or a column is inspected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfuse import EncoderEntry, hookimpl
from transfuse_image.options import TimmOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TimmOptions", "transfuse_encoders", "transfuse_infer_modality"]

__version__ = "0.1.0"


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The image encoders."""
    return [
        EncoderEntry(
            name="image.timm",
            modality="image",
            factory="transfuse_image.encoder:TimmEncoder",
            options=TimmOptions,
            description="Any timm architecture as a feature extractor (default: "
            "efficientnet_lite0 with the packaged ImageNet weights, 1280 dims).",
        )
    ]


@hookimpl(tryfirst=True)
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Image file paths, encoded image bytes, PIL images and pixel arrays are images.

    Asked first, so a column of file names is not mistaken for text.
    """
    from transfuse_image.images import looks_like_images

    try:
        return "image" if looks_like_images(column) else None
    except ImportError:  # Pillow missing (installed with --no-deps): cannot read images
        return None
