"""Draw a row's statement chart (PNG) and call clip (WAV) from its credit figures.

Both are pure functions of the row's figures, so equal rows give equal bytes and the files
can be cached under a content hash. They are *derived from the table*: they exercise the
image and audio plumbing, they are not independent evidence about an applicant.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLIP_SECONDS",
    "IMAGE_SIZE",
    "SAMPLE_RATE",
    "Figure",
    "call_wav",
    "statement_png",
]

IMAGE_SIZE = 64
SAMPLE_RATE = 16_000
CLIP_SECONDS = 1.0
_TONE_SECONDS = 0.7  # the first 0.7 s carry the level figures as tones
_MAX_PULSES = 6
# One colour per bar (Okabe-Ito, readable by colour-blind people), cycled.
_PALETTE = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
    (0, 0, 0),
]


@dataclass(frozen=True)
class Figure:
    """A numeric column shown in the chart and heard in the clip.

    ``lo``/``hi`` fix the scale (so a row's picture depends on that row alone); ``log``
    scales by ``log1p``; a ``count`` figure (delinquencies, inquiries) is heard as that many
    pulses instead of a tone.
    """

    column: str
    lo: float
    hi: float
    log: bool = False
    count: bool = False

    def level(self, value: float) -> float | None:
        """The value on a 0..1 scale, or None when it is missing."""
        if value is None or not math.isfinite(value):
            return None
        lo, hi, x = self.lo, self.hi, float(value)
        if self.log:
            lo, hi, x = math.log1p(max(lo, 0.0)), math.log1p(hi), math.log1p(max(x, 0.0))
        return min(max((x - lo) / (hi - lo), 0.0), 1.0)


def statement_png(figures: Sequence[Figure], values: Sequence[float]) -> bytes:
    """A ``IMAGE_SIZE`` square RGB bar chart of the figures: one bar each, on a 0..1 scale
    with grid lines at quarters; a missing figure is a grey cross in its slot."""
    from PIL import Image, ImageDraw

    size = IMAGE_SIZE
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    top, bottom, left, right = 4, size - 5, 3, size - 3
    for quarter in range(5):
        y = bottom - round(quarter * (bottom - top) / 4)
        draw.line([(left, y), (right, y)], fill=(215, 215, 215))
    slot = (right - left) / max(len(figures), 1)
    for i, (figure, value) in enumerate(zip(figures, values)):
        x0 = round(left + i * slot + 1)
        x1 = round(left + (i + 1) * slot - 2)
        level = figure.level(value)
        if level is None:
            mid = (top + bottom) // 2
            draw.line([(x0, mid - 3), (x1, mid + 3)], fill=(128, 128, 128), width=2)
            draw.line([(x0, mid + 3), (x1, mid - 3)], fill=(128, 128, 128), width=2)
            continue
        y = bottom - round(level * (bottom - top))
        draw.rectangle([(x0, y), (x1, bottom)], fill=_PALETTE[i % len(_PALETTE)])
    draw.line([(left, bottom + 1), (right, bottom + 1)], fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def call_wav(figures: Sequence[Figure], values: Sequence[float]) -> bytes:
    """A ``CLIP_SECONDS`` mono 16-bit WAV at ``SAMPLE_RATE``: first a tone per level figure
    (pitch 200-1130 Hz rises with the level), then per count figure a burst of that many
    short pulses (at most six). Missing figures are silent."""
    import soundfile

    total = round(CLIP_SECONDS * SAMPLE_RATE)
    clip = np.zeros(total, dtype=np.float64)
    pairs = list(zip(figures, values))
    tones = [(f, v) for f, v in pairs if not f.count]
    counts = [(f, v) for f, v in pairs if f.count]
    tone_span = round(_TONE_SECONDS * SAMPLE_RATE) if counts else total
    if tones:
        width = tone_span // len(tones)
        t = np.arange(width) / SAMPLE_RATE
        envelope = np.hanning(width)
        for i, (figure, value) in enumerate(tones):
            level = figure.level(value)
            if level is not None:
                pitch = 200.0 * 2.0 ** (2.5 * level)
                clip[i * width : (i + 1) * width] = 0.5 * envelope * np.sin(2 * np.pi * pitch * t)
    if counts:
        width = (total - tone_span) // len(counts)
        pulse = round(0.02 * SAMPLE_RATE)
        burst = (
            0.6 * np.hanning(pulse) * np.sin(2 * np.pi * 1500.0 * np.arange(pulse) / SAMPLE_RATE)
        )
        for i, (_, value) in enumerate(counts):
            if value is None or not math.isfinite(value):
                continue
            n = min(max(int(value), 0), _MAX_PULSES)
            start = tone_span + i * width
            for k in range(n):
                at = start + round((k + 0.5) * width / _MAX_PULSES - pulse / 2)
                clip[at : at + pulse] += burst
    buffer = io.BytesIO()
    soundfile.write(buffer, clip.astype(np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
