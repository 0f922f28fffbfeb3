"""Options of the image encoders (pydantic only, so listing plugins stays light)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from transfuse import Options

__all__ = ["TimmOptions"]


class TimmOptions(Options):
    """Options of ``image.timm``."""

    model: str = Field(
        default="efficientnet_lite0",
        description="A timm architecture name (see timm.list_models()).",
    )
    weights: str = Field(
        default="default",
        description="'default' (the ImageNet weights packaged for efficientnet_lite0), "
        "'none' (random initialisation) or a local .safetensors/.pth file.",
    )
    frozen: bool = Field(
        default=True,
        description="Keep the network fixed (its outputs are cached); false fine-tunes it.",
    )
    image_size: int | None = Field(
        default=None,
        ge=16,
        description="Square input size in pixels; unset uses the model's data config.",
    )
    pool: str = Field(
        default="avg",
        description="timm global pooling: avg, max, avgmax, catavgmax (CNNs); token, avg "
        "(vision transformers).",
    )
    on_bad_file: Literal["error", "skip"] = Field(
        default="error",
        description="A path (or bytes) that is no readable image: error (a DataError naming "
        "column, row and file) or skip (the row has no image; log.json counts the rows and "
        "names the first few files).",
    )
