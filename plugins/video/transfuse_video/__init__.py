"""transfuse-video: video encoders (sampled frames through a timm backbone, pooled over time).

Importing this module is light: it registers entries whose factories are lazy strings, so
torch, timm and PyAV load only when an encoder is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfuse import EncoderEntry, hookimpl
from transfuse_video.options import VideoFramesOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VideoFramesOptions", "transfuse_encoders", "transfuse_infer_modality"]

__version__ = "0.1.0"


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The video encoders."""
    return [
        EncoderEntry(
            name="video.frames",
            modality="video",
            factory="transfuse_video.encoder:VideoFramesEncoder",
            options=VideoFramesOptions,
            description="Sampled frames (PyAV) through a frozen timm backbone (default: "
            "efficientnet_lite0 with the packaged ImageNet weights), pooled over time.",
        )
    ]


@hookimpl(tryfirst=True)
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Paths ending in .mp4, .m4v, .avi, .mov, .mkv or .webm are videos.

    Asked first, so a column of file names is not mistaken for text.
    """
    from transfuse_video.frames import looks_like_videos

    return "video" if looks_like_videos(column) else None
