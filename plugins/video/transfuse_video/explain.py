"""Explaining a video frame by frame (``docs/explain.md``).

Frame occlusion: a sampled frame's score is the logit of the row minus the logit with that
frame left out of the pooling over time (marked not valid, as a frame that could not be
decoded is). Not complete by itself; the core completes the scores to the input's share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transfuse.bases import Parts

if TYPE_CHECKING:
    from transfuse.bases import Logit
    from transfuse_video.encoder import VideoFramesEncoder

__all__ = ["frame_occlusion"]


def frame_occlusion(
    encoder: VideoFramesEncoder, values: pd.Series | pd.DataFrame, logit: Logit
) -> Parts:
    """Each valid frame's score: ``logit(video) - logit(video without the frame)``."""
    import torch

    batch = encoder.prepare(values)
    frames, valid = batch["frames"], batch["valid"]
    device = encoder.device_manager
    labels: list[list[str]] = []
    scores: list[np.ndarray] = []
    with torch.no_grad():
        for row in range(len(frames)):
            kept = torch.nonzero(valid[row]).flatten()
            labels.append([f"frame {int(t) + 1}" for t in kept])
            if not len(kept):
                scores.append(np.zeros(0))
                continue
            mask = valid[row : row + 1].repeat(len(kept) + 1, 1)
            mask[torch.arange(1, len(kept) + 1), kept] = False
            variants = {"frames": frames[row : row + 1].repeat(len(kept) + 1, 1, 1), "valid": mask}
            at = torch.full((len(kept) + 1,), row, dtype=torch.long)
            out = logit(encoder(device.move(variants)).float(), at).cpu().numpy()
            scores.append(out[0] - out[1:])
    return Parts(
        labels=labels,
        scores=scores,
        method="frame occlusion (each sampled frame left out of the pooling)",
        baseline="the video without the frame",
    )
