"""Options of the video encoders (pydantic only, so listing plugins stays light)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from transfuse import Options

__all__ = ["VideoFramesOptions"]


class VideoFramesOptions(Options):
    """Options of ``video.frames``."""

    model: str = Field(
        default="efficientnet_lite0",
        description="The frame backbone: a timm architecture name (see timm.list_models()).",
    )
    weights: str = Field(
        default="default",
        description="'default' (the ImageNet weights packaged for efficientnet_lite0), "
        "'none' (random initialisation) or a local .safetensors/.pth file.",
    )
    image_size: int | None = Field(
        default=None,
        ge=16,
        description="Square frame size in pixels; unset uses the backbone's data config "
        "(224 for efficientnet_lite0).",
    )
    num_frames: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Frames sampled per video: evenly over its length (the middle of each "
        "of num_frames equal segments), or the first ones at `fps` when that is set.",
    )
    fps: float | None = Field(
        default=None,
        gt=0,
        description="Sample at this rate from the start instead (at most num_frames frames; "
        "a shorter video gives fewer, the rest are masked).",
    )
    pooling: Literal["mean", "attention", "transformer"] = Field(
        default="transformer",
        description="Pooling over time: mean (no parameters; the whole encoder is frozen and "
        "its output cached), attention (a learned weighting of frames) or transformer "
        "(a small temporal transformer with a summary token).",
    )
    dim: int = Field(
        default=128,
        ge=8,
        description="Width of the trainable pooling and of the output (attention, "
        "transformer); mean pooling outputs the backbone's width.",
    )
    layers: int = Field(default=1, ge=1, le=12, description="Temporal transformer layers.")
    heads: int = Field(default=4, ge=1, description="Attention heads (divides dim).")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout in the pooling.")
    on_bad_file: Literal["skip", "error"] = Field(
        default="skip",
        description="A path that is not a readable video: skip (a missing modality for its "
        "row, with a warning naming the file) or error (a DataError naming file and row).",
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> VideoFramesOptions:
        if self.pooling != "mean" and self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self
