"""One value (a file path, encoded bytes or a numpy array) to a mono waveform at a fixed rate.

Files are decoded with soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3, aiff):
torchaudio 2.9+ loads files only through torchcodec and ffmpeg, which this plugin avoids.
Resampling uses :func:`torchaudio.functional.resample`.
"""

from __future__ import annotations

import io
import os
from typing import Any, Literal

import numpy as np
import soundfile as sf

from transfuse import DataError

__all__ = ["fix_length", "load_waveform", "resample", "to_mono"]

_FIX = (
    "give a wav, flac, ogg or mp3 file that soundfile can decode (re-encode it, e.g. with "
    "ffmpeg or sox), or leave the value empty to mark the row's audio as missing"
)
# Arrays this short in their first dimension, and shorter than in their second, are read
# as [channels, frames] (torchaudio's layout) rather than soundfile's [frames, channels].
_MAX_CHANNELS = 8


def load_waveform(
    value: Any, *, sample_rate: int, array_sample_rate: int | None = None, where: str = "value"
) -> np.ndarray:
    """Decode ``value`` into a float32 mono waveform at ``sample_rate``.

    ``array_sample_rate`` is the rate of raw numpy arrays (``sample_rate`` when unset);
    ``where`` names the value in errors (a row). Raises :class:`~transfuse.DataError` for
    a file that is missing, unreadable or holds non-finite samples.
    """
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise DataError(f"audio file {path!r} does not exist", where=where, fix=_FIX)
        data, rate = _decode(path, f"audio file {path!r}", where)
        origin = f"audio file {path!r}"
    elif isinstance(value, bytes | bytearray | memoryview):
        data, rate = _decode(io.BytesIO(bytes(value)), "audio bytes", where)
        origin = "audio bytes"
    elif isinstance(value, np.ndarray):
        data, rate = _as_float(value, where), array_sample_rate or sample_rate
        origin = "audio array"
    else:
        raise DataError(
            f"cannot read a {type(value).__name__} as audio",
            where=where,
            fix="give a file path, the file's bytes or a numpy array of samples",
        )
    mono = to_mono(data, where)
    if not np.isfinite(mono).all():
        raise DataError(f"{origin} holds NaN or infinite samples", where=where, fix=_FIX)
    return resample(mono, rate, sample_rate)


def _decode(source: str | io.BytesIO, what: str, where: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"cannot decode {what}: {exc}", where=where, fix=_FIX) from None
    return data, int(rate)


def _as_float(array: np.ndarray, where: str) -> np.ndarray:
    """Samples as float32 in [-1, 1]; integer PCM is scaled by its type's range."""
    if np.issubdtype(array.dtype, np.unsignedinteger):  # unsigned PCM is centred on half range
        half = (np.iinfo(array.dtype).max + 1) / 2
        return ((array.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(array.dtype, np.signedinteger):
        return (array.astype(np.float64) / -np.iinfo(array.dtype).min).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise DataError(
        f"an audio array of dtype {array.dtype} is not samples",
        where=where,
        fix="give float samples in [-1, 1] or integer PCM",
    )


def to_mono(data: np.ndarray, where: str = "value") -> np.ndarray:
    """Average the channels of ``[frames, channels]`` (or a short ``[channels, frames]``)."""
    if data.ndim == 1:
        return np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim == 2:
        frames_first = not (data.shape[0] <= _MAX_CHANNELS and data.shape[0] < data.shape[1])
        return np.ascontiguousarray(data.mean(axis=1 if frames_first else 0), dtype=np.float32)
    raise DataError(
        f"an audio array must have 1 or 2 dimensions, not shape {data.shape}",
        where=where,
        fix="give [frames] or [frames, channels]",
    )


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample a mono waveform from ``rate`` to ``target`` Hz (band-limited sinc)."""
    if rate == target or wave.size == 0:
        return wave
    import torch
    import torchaudio.functional as F

    out = F.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, target)
    return out.numpy()


def fix_length(wave: np.ndarray, length: int, crop: Literal["start", "center"]) -> np.ndarray:
    """Crop a longer waveform (its start or its centre) or zero-pad a shorter one at the end."""
    if wave.size >= length:
        start = 0 if crop == "start" else (wave.size - length) // 2
        return wave[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    out[: wave.size] = wave
    return out
