"""Silence trimming with silero-vad, whose model the PyPI package carries (no download).

The package's own reader needs torchaudio's torchcodec back end, so audio is read by
:mod:`transfuse_audio.waveform` and only the model and its timestamp logic are used here.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from transfuse_audio.waveform import resample

__all__ = ["load_vad_model", "speech_only"]

# silero-vad runs at 8 or 16 kHz; other rates are resampled to 16 kHz for it.
_VAD_RATES = (8000, 16000)


@functools.cache
def load_vad_model() -> Any:
    """The packaged silero-vad TorchScript model, loaded once per process from disk."""
    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # its importlib.resources.path call is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad(onnx=False)


def speech_only(wave: np.ndarray, sample_rate: int, threshold: float = 0.5) -> np.ndarray:
    """The speech in ``wave``, its segments joined; ``wave`` itself when none is found."""
    import torch
    from silero_vad import get_speech_timestamps

    vad_rate = sample_rate if sample_rate in _VAD_RATES else 16000
    probe = resample(wave, sample_rate, vad_rate)
    if probe.size == 0:
        return wave
    spans = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(probe)),
        load_vad_model(),
        threshold=threshold,
        sampling_rate=vad_rate,
    )
    if not spans:
        return wave
    scale = sample_rate / vad_rate
    parts = [wave[round(s["start"] * scale) : round(s["end"] * scale)] for s in spans]
    return np.concatenate(parts)
