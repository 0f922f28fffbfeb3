"""Options of ``audio.mel-cnn`` (pydantic only, so listing plugins imports no torch)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from transfuse import Options

__all__ = ["MelCnnOptions"]


class MelCnnOptions(Options):
    """Options of ``audio.mel-cnn``: reading, the log-mel front end and the CNN."""

    sample_rate: int = Field(
        default=16000, ge=4000, le=192000, description="Rate every clip is resampled to (Hz)."
    )
    array_sample_rate: int | None = Field(
        default=None,
        ge=1,
        description="Rate of raw numpy-array values (Hz); sample_rate when unset.",
    )
    duration: float = Field(
        default=4.0,
        gt=0.0,
        le=600.0,
        description="Clip length in seconds: longer is cropped, shorter is zero-padded at the end.",
    )
    crop: Literal["start", "center"] = Field(
        default="center", description="Which part of a longer clip is kept."
    )
    trim_silence: bool = Field(
        default=False,
        description="Keep only the speech that silero-vad finds (before cropping); a clip "
        "with no speech is kept whole.",
    )
    vad_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="silero-vad speech probability threshold."
    )
    n_mels: int = Field(default=64, ge=8, le=256, description="Mel bands.")
    n_fft: int = Field(default=400, ge=16, description="FFT window in samples (25 ms at 16 kHz).")
    hop_length: int = Field(default=160, ge=1, description="Hop in samples (10 ms at 16 kHz).")
    normalize: Literal["global", "example", "none"] = Field(
        default="global",
        description="Standardise the log-mel per band with statistics fitted on training rows "
        "('global'), per clip ('example'), or not at all.",
    )
    channels: list[Annotated[int, Field(ge=1)]] = Field(
        default=[16, 32, 64, 128],
        min_length=1,
        max_length=6,
        description="Output channels of the conv blocks (3x3 conv, group norm, ReLU, 2x2 pool).",
    )
    dim: int = Field(default=128, ge=1, description="Width of the embedding.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout before the output.")
    frozen: bool = Field(
        default=False, description="Never train the CNN (its outputs are then cached)."
    )
    on_bad_file: Literal["error", "skip"] = Field(
        default="error",
        description="A path (or bytes) that is no readable audio: error (a DataError naming "
        "column, row and file) or skip (the row has no audio; log.json counts the rows and "
        "names the first few files).",
    )

    @model_validator(mode="after")
    def _check_frames(self) -> MelCnnOptions:
        if self.n_fft > self.sample_rate * self.duration:
            raise ValueError("n_fft is longer than the clip (sample_rate * duration)")
        return self
