"""Fixtures for the audio plugin's tests: sounds made with numpy, written with soundfile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import transfuse_audio

# Small, fast settings: half-second clips at 8 kHz and a two-block CNN.
_SMALL = {
    "sample_rate": 8000,
    "duration": 0.5,
    "n_mels": 32,
    "n_fft": 256,
    "hop_length": 64,
    "channels": [8, 16],
    "dim": 16,
}


def _tone(
    freq: float, seconds: float, rate: int, amp: float = 0.3, phase: float = 0.0
) -> np.ndarray:
    """A sine tone, float32."""
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _vowel(seconds: float, rate: int = 16000) -> np.ndarray:
    """A speech-like sound: a glottal pulse train at a wavering pitch through three
    formant resonators, in syllables of 4 per second (silero-vad hears it as speech)."""
    from scipy.signal import lfilter

    t = np.arange(round(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / rate
    out = sum(np.sin(k * phase) / k for k in range(1, 40))
    for formant, bandwidth in [(700, 130), (1220, 70), (2600, 160)]:
        r = np.exp(-np.pi * bandwidth / rate)
        out = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * formant / rate), r * r], out)
    out = out * 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture
def small() -> dict[str, object]:
    """Options of ``audio.mel-cnn`` small enough for tests: 0.5 s at 8 kHz, two conv blocks."""
    return dict(_SMALL)


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    """``tone(freq, seconds, rate, amp=0.3, phase=0.0)``: a sine tone."""
    return _tone


@pytest.fixture
def vowel() -> Callable[..., np.ndarray]:
    """``vowel(seconds, rate=16000)``: a synthetic voiced, syllabic sound."""
    return _vowel


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., str]:
    """Write samples to ``tmp_path/name`` (format from the suffix, soundfile's keywords
    such as ``subtype``); returns the path."""

    def write(name: str, samples: np.ndarray, rate: int, **kwargs: object) -> str:
        path = tmp_path / name
        sf.write(path, samples, rate, **kwargs)
        return str(path)

    return write


@pytest.fixture
def audio_plugin(register_plugin: Callable[..., object]) -> object:
    """The audio plugin registered on the test's plugin manager."""
    return register_plugin(transfuse_audio, name="audio")
