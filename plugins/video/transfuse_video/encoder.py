"""``video.frames``: sampled frames through a frozen timm backbone, pooled over time.

``prepare`` decodes ``num_frames`` frames per video (PyAV; see :mod:`transfuse_video.frames`),
applies the backbone's eval transform and runs the frozen backbone on them, so it returns
frame features ``{"frames": [B, T, F], "valid": bool [B, T]}``; ``forward`` pools them over
time. The backbone never trains, so its frame features are stored in the core's embedding
cache (keyed by the file's path, size and modification time and by the backbone and
sampling options, not by the pooling): a trainable pooling reads each video once, and
every later epoch, run or pooling choice reuses the features. With ``pooling: mean`` the
whole encoder is frozen, and the core caches its output instead.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import DataError
from transfuse.badfiles import FIRST_PATHS
from transfuse.bases import Batch, Encoder
from transfuse.cache import EmbeddingCache, row_keys
from transfuse.timm_weights import load_timm_model, resolve_weights
from transfuse_video.frames import VideoReadError, is_missing_video, read_frames
from transfuse_video.options import VideoFramesOptions
from transfuse_video.pooling import build_pooling

if TYPE_CHECKING:
    from transfuse.device import DeviceManager

__all__ = ["VideoFramesEncoder"]

_WHERE = "video.frames options"
_FIX = "give a readable video file (.mp4, .avi, .mov, .mkv, .webm) or leave the value empty"
#: Frames per backbone forward pass.
_FRAME_BATCH = 64


def _column(values: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise DataError(
                f"a video encoder reads one column, got {values.shape[1]}: {list(values.columns)}",
                where="inputs",
                fix="give the input a single `column:`, or one input per video column",
            )
        return values.iloc[:, 0]
    return values


def _file_id(value: Any) -> str:
    """What identifies a value's content for the bad-file memo: path, size and mtime."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes:" + hashlib.blake2b(bytes(value), digest_size=16).hexdigest()
    path = os.path.abspath(os.fspath(value))
    try:
        stat = os.stat(path)
    except OSError:
        return f"absent:{path}"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


class VideoFramesEncoder(Encoder):
    """A video as its frames' backbone features pooled over time: ``[B, output_dim]``."""

    options: VideoFramesOptions

    def __init__(self, options: VideoFramesOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        from timm.data import create_transform, resolve_data_config

        self.backbone = load_timm_model(options.model, options.weights, 0, "avg", where=_WHERE)
        self.backbone.requires_grad_(False).eval()
        self.weights_path = resolve_weights(options.model, options.weights, where=_WHERE)
        size = options.image_size
        overrides = {"input_size": (3, size, size)} if size else {}
        config = resolve_data_config(overrides, model=self.backbone)
        self.transform = create_transform(**config, is_training=False)
        self.frame_shape: tuple[int, int, int] = tuple(config["input_size"])
        with torch.no_grad():
            self.features = int(self.backbone(torch.zeros(1, *self.frame_shape)).shape[-1])
        self.num_frames = options.num_frames
        self.pool, self.output_dim = build_pooling(
            options.pooling,
            self.features,
            options.dim,
            options.num_frames,
            options.dropout,
            options.layers,
            options.heads,
        )
        self.frozen = options.pooling == "mean"
        self._cache: EmbeddingCache | None = None
        self._bad: dict[str, str] = {}  # file id -> why it cannot be read
        self._good: set[str] = set()  # file ids that decoded

    def train(self, mode: bool = True) -> VideoFramesEncoder:
        """Training mode for the pooling; the backbone stays in eval mode (fixed batch norm)."""
        super().train(mode)
        self.backbone.eval()
        return self

    # -- missing and unreadable values -------------------------------------------------

    def _unreadable(self, value: Any, where: str) -> str | None:
        """Why ``value`` is no readable video (remembered per file), or None when it is."""
        if not isinstance(value, str | os.PathLike | bytes | bytearray | memoryview):
            raise DataError(
                f"a {type(value).__name__} is not a video",
                where=where,
                fix="give a video file path (or its bytes), or leave the value empty",
            )
        key = _file_id(value)
        if key not in self._bad:
            return None
        return self._bad[key]

    def _bad_file(self, value: Any, reason: str, where: str) -> None:
        """Record a file that failed; raise or warn as ``on_bad_file`` says."""
        self._bad[_file_id(value)] = reason
        name = f" {os.fspath(value)!r}" if isinstance(value, str | os.PathLike) else ""
        what = f"cannot read the video{name}: {reason}"
        if self.options.on_bad_file == "error":
            raise DataError(what, where=where, fix=_FIX + " (or set on_bad_file: skip)")
        warnings.warn(f"{where}: {what}; the row counts as having no video", stacklevel=3)

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing: None/NaN, an empty string or empty bytes; with ``on_bad_file: skip`` also
        a file that is absent or cannot be decoded (each file is probed once)."""
        column = _column(values)
        out = np.array([is_missing_video(v) for v in column.tolist()], dtype=bool)
        if self.options.on_bad_file == "skip":
            name = column.name if column.name is not None else "video column"
            for i, (label, value) in enumerate(column.items()):
                if not out[i]:
                    where = f"column {name!r}, row {label!r}"
                    out[i] = self._probe(value, where) is not None
        return out

    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """Under ``on_bad_file: skip``: how many rows' videos were skipped and the first
        paths, for the run's log (the shape image and audio report, see transfuse.badfiles)."""
        if self.options.on_bad_file != "skip":
            return {}
        column = _column(values)
        self.missing(column)  # probes every file not judged yet
        bad = [v for v in column.tolist() if not is_missing_video(v) and _file_id(v) in self._bad]
        if not bad:
            return {}
        shown = [os.fspath(v) if isinstance(v, str | os.PathLike) else "<bytes>" for v in bad]
        return {"skipped_files": len(bad), "first": list(dict.fromkeys(shown))[:FIRST_PATHS]}

    def _probe(self, value: Any, where: str) -> str | None:
        """Open the file and decode one frame, once per file; the reason when that fails."""
        known = self._unreadable(value, where)
        if known is not None or _file_id(value) in self._good:
            return known
        try:
            read_frames(value, 1, fps=1e6)  # the first frame only
        except VideoReadError as exc:
            self._bad_file(value, str(exc), where)
            return str(exc)
        self._good.add(_file_id(value))
        return None

    # -- frame features ------------------------------------------------------------------

    def _frame_cache(self) -> EmbeddingCache:
        """The cache of frame features ``T × F`` plus the ``T`` validity flags per video."""
        if self._cache is None:
            o = self.options
            key = (
                f"video.frames/features|{o.model}|{o.image_size}|{o.num_frames}|{o.fps}|"
                f"{self._weights_id()}|precision={self.device_manager.precision}"
            )
            self._cache = EmbeddingCache(key, self.num_frames * (self.features + 1))
        return self._cache

    def _backbone_here(self) -> nn.Module:
        """The backbone, or a CPU copy of it inside a data-loader worker (no CUDA there)."""
        device = next(self.backbone.parameters()).device
        if device.type == "cpu" or torch.utils.data.get_worker_info() is None:
            return self.backbone
        cpu: nn.Module | None = self.__dict__.get("_cpu_backbone")
        if cpu is None:  # kept out of the submodules, so it is never saved or moved
            cpu = self.__dict__["_cpu_backbone"] = copy.deepcopy(self.backbone).cpu()
        return cpu

    def _run_backbone(self, pixels: list[Tensor]) -> np.ndarray:
        backbone = self._backbone_here()
        device = next(backbone.parameters()).device
        autocast = device.type == self.device_manager.device.type
        precision = self.device_manager.autocast() if autocast else contextlib.nullcontext()
        with torch.inference_mode(), precision:
            out = backbone(torch.stack(pixels).to(device))
        return out.float().cpu().numpy()

    def _compute(
        self, column: pd.Series, rows: list[int], frames: np.ndarray, valid: np.ndarray
    ) -> list[int]:
        """Decode and embed the videos at ``rows`` into ``frames``/``valid``; returns the
        rows that were readable."""
        name = column.name if column.name is not None else "video column"
        done: list[int] = []
        labels = column.index.tolist()
        pixels: list[Tensor] = []
        owners: list[tuple[int, int]] = []  # (row, frame position) of each pending frame

        def flush() -> None:
            if pixels:
                for (row, t), feature in zip(owners, self._run_backbone(pixels)):
                    frames[row, t] = feature
                pixels.clear()
                owners.clear()

        for row in rows:
            value = column.iloc[row]
            where = f"column {name!r}, row {labels[row]!r}"
            if self._unreadable(value, where) is not None:
                continue
            try:
                sampled = read_frames(value, self.num_frames, self.options.fps)
            except VideoReadError as exc:
                self._bad_file(value, str(exc), where)
                continue
            for t, image in enumerate(sampled.frames):
                pixels.append(self.transform(image))
                owners.append((row, t))
            valid[row, : len(sampled.frames)] = True
            done.append(row)
            if len(pixels) >= _FRAME_BATCH:
                flush()
        flush()
        return done

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Frame features ``{"frames": [B, T, F], "valid": bool [B, T]}``; zeros (no valid
        frame) where the video is missing or skipped."""
        column = _column(values)
        n, t, f = len(column), self.num_frames, self.features
        frames = np.zeros((n, t, f), dtype=np.float32)
        valid = np.zeros((n, t), dtype=bool)
        todo = [i for i, v in enumerate(column.tolist()) if not is_missing_video(v)]
        cache = None if self.frozen else self._frame_cache()  # the core caches a frozen one
        if cache is not None and todo:
            keys = row_keys(column.iloc[todo])
            stored, hit = cache.fetch(keys)
            for i, row in enumerate(todo):
                if hit[i]:
                    frames[row] = stored[i, : t * f].reshape(t, f)
                    valid[row] = stored[i, t * f :] > 0.5
            todo = [row for i, row in enumerate(todo) if not hit[i]]
        done = self._compute(column, todo, frames, valid)
        if cache is not None and done:
            rows = np.concatenate(
                [frames[done].reshape(len(done), t * f), valid[done].astype(np.float32)], axis=1
            )
            cache.put(row_keys(column.iloc[done]), rows)
            cache.flush()
        return {"frames": torch.from_numpy(frames), "valid": torch.from_numpy(valid)}

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Any) -> Any:
        """Frame occlusion (see :mod:`transfuse_video.explain`)."""
        from transfuse_video.explain import frame_occlusion

        return frame_occlusion(self, values, logit)

    def forward(self, batch: Batch) -> Tensor:
        """Pool the frame features over time."""
        pooled: Tensor = self.pool(batch["frames"], batch["valid"])
        return pooled

    # -- identity ------------------------------------------------------------------------

    def _weights_id(self) -> str:
        """The backbone weights' file (path, size, mtime), or a digest of random weights."""
        if self.weights_path is not None:
            stat = self.weights_path.stat()
            return f"{self.weights_path}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256()
        for name, tensor in self.backbone.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        return f"random:{digest.hexdigest()[:32]}"

    def cache_key(self) -> str:
        """Options plus the backbone weights' identity (used by the core for mean pooling)."""
        return f"{super().cache_key()}|{self._weights_id()}"
