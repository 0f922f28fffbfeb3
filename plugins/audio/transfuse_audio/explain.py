"""Explaining an audio clip by time segment (``docs/explain.md``).

Segment occlusion on the log-mel spectrogram: the clip's frames are cut into
``SEGMENTS`` equal time segments, and a segment's score is the logit of the row minus the
logit with that segment's frames set to 0 (the normalised spectrogram's mean level, i.e.
an even background in place of what was said there). Not complete by itself; the core
completes the scores to the input's share.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transfuse.bases import Parts

if TYPE_CHECKING:
    from transfuse.bases import Logit
    from transfuse_audio.mel_cnn import MelCnnEncoder

__all__ = ["SEGMENTS", "segment_occlusion"]

#: Time segments per clip.
SEGMENTS = 8


def segment_occlusion(
    encoder: MelCnnEncoder, values: pd.Series | pd.DataFrame, logit: Logit
) -> Parts:
    """Each time segment's score: ``logit(clip) - logit(clip with the segment blanked)``."""
    import torch

    o = encoder.options
    column = values if isinstance(values, pd.Series) else values.iloc[:, 0]
    missing = np.asarray(encoder.missing(column), dtype=bool)
    mel = encoder.prepare(values)["mel"]
    frames = mel.shape[-1]
    edges = np.linspace(0, frames, min(SEGMENTS, frames) + 1).round().astype(int)
    seconds = o.hop_length / o.sample_rate
    labels = [f"{a * seconds:.2f}-{min(b * seconds, o.duration):.2f} s" for a, b in pairwise(edges)]
    device = encoder.device_manager
    rows = np.flatnonzero(~missing)
    scores: list[np.ndarray] = [np.zeros(0) for _ in range(len(mel))]
    with torch.no_grad():
        for row in rows:
            variants = mel[row : row + 1].repeat(len(labels) + 1, 1, 1, 1)
            for k, (a, b) in enumerate(pairwise(edges)):
                variants[k + 1, ..., a:b] = 0.0
            at = torch.full((len(variants),), int(row), dtype=torch.long)
            out = logit(encoder(device.move({"mel": variants})).float(), at).cpu().numpy()
            scores[row] = out[0] - out[1:]
    return Parts(
        labels=[[] if gone else list(labels) for gone in missing],
        scores=scores,
        method=f"time-segment occlusion ({len(labels)} segments of the log-mel spectrogram)",
        baseline="the clip with the segment blanked (the spectrogram's mean level)",
    )
