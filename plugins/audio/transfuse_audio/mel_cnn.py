"""``audio.mel-cnn``: audio -> fixed-length log-mel spectrogram -> a small trainable CNN.

``prepare`` (host side, deterministic, cacheable) reads each value, mixes it to mono,
resamples it, optionally keeps only its speech (silero-vad), crops or zero-pads it to
``duration`` seconds and returns its normalised log-mel spectrogram
``{"mel": [B, 1, n_mels, frames]}``. ``forward`` runs conv blocks, pools over time (mean
and max, keeping the frequency bands apart) and projects to ``[B, dim]``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import ConfigError, DataError
from transfuse.badfiles import BadFiles, is_file_value, row_where
from transfuse.bases import Batch, Encoder
from transfuse.device import DeviceManager
from transfuse_audio.options import MelCnnOptions
from transfuse_audio.vad import speech_only
from transfuse_audio.waveform import fix_length, load_waveform

__all__ = ["MelCnnEncoder"]

#: Added to mel power before the log, so digital silence stays finite.
LOG_EPS = 1e-6
#: ``fit`` estimates the global statistics on at most this many training rows.
FIT_MAX_ROWS = 2000
_FIT_CHUNK = 128


class MelCnnEncoder(Encoder):
    """Log-mel spectrogram front end and a small CNN; see :class:`MelCnnOptions`."""

    options: MelCnnOptions

    def __init__(self, options: MelCnnOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.frozen = options.frozen
        self.num_samples = round(options.sample_rate * options.duration)
        self.num_frames = 1 + self.num_samples // options.hop_length
        # Per-band log-mel statistics (normalize="global"), learnt by fit.
        self.band_mean: np.ndarray | None = None
        self.band_std: np.ndarray | None = None
        self.bad_files = BadFiles(options.on_bad_file, "audio")

        layers: list[nn.Module] = []
        height, width, in_channels = options.n_mels, self.num_frames, 1
        for out_channels in options.channels:
            pool = (2 if height >= 2 else 1, 2 if width >= 2 else 1)
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.GroupNorm(math.gcd(out_channels, 8), out_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(pool),
            ]
            height, width, in_channels = height // pool[0], width // pool[1], out_channels
        self.cnn = nn.Sequential(*layers)
        self.dropout = nn.Dropout(options.dropout)
        # Frequency keeps its position (a low tone is not a high one); time is pooled.
        self.proj = nn.Linear(2 * in_channels * height, options.dim)
        if self.frozen:
            self.requires_grad_(False)

    # -- host side -----------------------------------------------------------------
    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        """Learn per-band log-mel mean and std from (at most 2000) training rows."""
        if self.options.normalize != "global":
            return
        column = _one_column(values)
        rows = np.flatnonzero(~self.missing(column))
        if len(rows) > FIT_MAX_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, FIT_MAX_ROWS, replace=False))
        total = np.zeros(self.options.n_mels)
        squares = np.zeros(self.options.n_mels)
        count = 0
        for start in range(0, len(rows), _FIT_CHUNK):
            chunk = column.iloc[rows[start : start + _FIT_CHUNK]]
            mel = self._log_mel(chunk).double()  # [b, n_mels, frames]
            total += mel.sum(dim=(0, 2)).numpy()
            squares += mel.pow(2).sum(dim=(0, 2)).numpy()
            count += mel.shape[0] * mel.shape[2]
        if count == 0:
            self.band_mean = np.zeros(self.options.n_mels)
            self.band_std = np.ones(self.options.n_mels)
            return
        mean = total / count
        self.band_mean = mean
        self.band_std = np.sqrt(np.maximum(squares / count - mean**2, 0.0)).clip(min=1e-3)

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing where the value is None/NaN or an empty string; with ``on_bad_file:
        skip`` also a file that is absent or cannot be decoded (each file decoded once here)."""
        column = _one_column(values)
        blank = column.map(lambda v: isinstance(v, str) and not v.strip())
        out: np.ndarray = column.isna().to_numpy() | blank.to_numpy(dtype=bool)
        return self.bad_files.mark_unreadable(column, out, self._wave)

    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """Under ``on_bad_file: skip``: how many rows' files were skipped, the first paths."""
        if not self.bad_files.skipping:
            return {}
        self.missing(values)  # judges every file not judged yet
        return self.bad_files.report(_one_column(values).tolist())

    def _wave(self, value: Any, where: str) -> np.ndarray:
        o = self.options
        return load_waveform(
            value, sample_rate=o.sample_rate, array_sample_rate=o.array_sample_rate, where=where
        )

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """``{"mel": [B, 1, n_mels, frames]}``; missing rows are zeros."""
        column = _one_column(values)
        present = np.flatnonzero(~self.missing(column))
        mel = torch.zeros(len(column), 1, self.options.n_mels, self.num_frames)
        if len(present):
            mel[torch.as_tensor(present), 0] = self._normalise(self._log_mel(column.iloc[present]))
        return {"mel": mel}

    def _log_mel(self, column: pd.Series) -> Tensor:
        """Read, trim, crop or pad and transform present values: ``[b, n_mels, frames]``."""
        o = self.options
        waves = np.empty((len(column), self.num_samples), dtype=np.float32)
        for i, (label, value) in enumerate(column.items()):
            if self.bad_files.is_bad(value):  # skipped: zeros (the row is masked out)
                waves[i] = 0.0
                continue
            try:
                wave = self._wave(value, row_where(column, label))
            except DataError as exc:
                if not is_file_value(value):
                    raise
                self.bad_files.failed(value, exc)  # raises under on_bad_file: error
                waves[i] = 0.0
                continue
            if o.trim_silence:
                wave = speech_only(wave, o.sample_rate, o.vad_threshold)
            waves[i] = fix_length(wave, self.num_samples, o.crop)
        with torch.no_grad():
            power = _mel_transform(o.sample_rate, o.n_fft, o.hop_length, o.n_mels)(
                torch.from_numpy(waves)
            )
        return torch.log(power + LOG_EPS)

    def _normalise(self, mel: Tensor) -> Tensor:
        mode = self.options.normalize
        if mode == "example":
            mean = mel.mean(dim=(1, 2), keepdim=True)
            return (mel - mean) / mel.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
        if mode == "global":
            if self.band_mean is None or self.band_std is None:
                raise RuntimeError("audio.mel-cnn: call fit() or load_fitted() before prepare()")
            mean = torch.as_tensor(self.band_mean, dtype=mel.dtype)[:, None]
            return (mel - mean) / torch.as_tensor(self.band_std, dtype=mel.dtype)[:, None]
        return mel

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Any) -> Any:
        """Time-segment occlusion (see :mod:`transfuse_audio.explain`)."""
        from transfuse_audio.explain import segment_occlusion

        return segment_occlusion(self, values, logit)

    # -- device side ---------------------------------------------------------------
    def forward(self, batch: Batch) -> Tensor:
        """Conv blocks, then mean and max over time of each (channel, band), then a linear layer."""
        x = self.cnn(batch["mel"]).flatten(1, 2)  # [B, channels * bands', frames']
        x = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.proj(self.dropout(x))

    def train(self, mode: bool = True) -> MelCnnEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its cached outputs hold."""
        return super().train(mode and not self.frozen)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The conv blocks as ``backbone``; the projection falls in the default group."""
        return {"backbone": list(self.cnn.parameters())}

    # -- fitted state --------------------------------------------------------------
    def fitted_state(self) -> dict[str, Any]:
        """The global per-band statistics, when fitted."""
        if self.band_mean is None or self.band_std is None:
            return {}
        return {"band_mean": self.band_mean.tolist(), "band_std": self.band_std.tolist()}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state` (the parameters already have their final shapes)."""
        if "band_mean" in state:
            self.band_mean = np.asarray(state["band_mean"], dtype=np.float64)
            self.band_std = np.asarray(state["band_std"], dtype=np.float64)

    def cache_key(self) -> str:
        """Options plus the fitted statistics, which change every prepared value."""
        stats = json.dumps(self.fitted_state(), sort_keys=True).encode()
        return f"{super().cache_key()}:{hashlib.sha256(stats).hexdigest()[:16]}"


@functools.cache
def _mel_transform(sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> nn.Module:
    """The (stateless) torchaudio mel transform, kept apart from the encoder's state_dict."""
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
    )


def _one_column(values: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if values.shape[1] != 1:
        raise ConfigError(
            f"audio.mel-cnn reads one column, got {values.shape[1]}: {list(values.columns)}",
            fix="give the input a single `column:`",
        )
    return values.iloc[:, 0]
