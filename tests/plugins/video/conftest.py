"""Fixtures for the video plugin's tests: short videos written from numpy frames with PyAV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import transfuse_video

#: A small random backbone on tiny frames: fast on a 2-core CPU.
SMALL = {"model": "resnet10t", "weights": "none", "image_size": 32, "num_frames": 4, "dim": 16}


def write_video(
    path: Path, frames: np.ndarray, fps: int = 10, codec: str = "libx264", gop: int = 12
) -> Path:
    """Encode ``frames`` (uint8 ``[T, H, W, 3]``, even H and W) as a video file."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def square_clip(
    moving: bool, rng: np.random.Generator, frames: int = 8, size: int = 32
) -> np.ndarray:
    """A white square on a dark background, still or sliding across the frame."""
    clip = np.full((frames, size, size, 3), 30, dtype=np.uint8)
    side = size // 4
    x, y = rng.integers(0, size - side, 2)
    step = rng.choice([-1, 1]) * (size - side) / max(frames - 1, 1)
    for t in range(frames):
        left = round(float(t * step) % (size - side)) if moving else int(x)
        clip[t, y : y + side, left : left + side] = 230
    return clip


@pytest.fixture(name="write_video")
def write_video_fixture() -> Callable[..., Path]:
    """:func:`write_video`, for tests (conftest is not importable under importlib mode)."""
    return write_video


@pytest.fixture(name="square_clip")
def square_clip_fixture() -> Callable[..., np.ndarray]:
    """:func:`square_clip`, for tests."""
    return square_clip


@pytest.fixture
def small() -> dict[str, Any]:
    """Options of a small random video.frames (see :data:`SMALL`)."""
    return dict(SMALL)


@pytest.fixture
def video_files(tmp_path: Path) -> list[Path]:
    """Three short clips on disk: .mp4, .avi (MPEG-4 part 2) and .webm (VP9)."""
    rng = np.random.default_rng(0)
    return [
        write_video(tmp_path / "still.mp4", square_clip(False, rng)),
        write_video(tmp_path / "moving.avi", square_clip(True, rng), codec="mpeg4"),
        write_video(tmp_path / "moving.webm", square_clip(True, rng), codec="libvpx-vp9"),
    ]


@pytest.fixture
def video_manager(transfuse_manager: Any, register_plugin: Any) -> Any:
    """A plugin manager with the core and the video plugin registered."""
    register_plugin(transfuse_video, name="video")
    return transfuse_manager


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's embedding cache in its own folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRANSFUSE_CACHE", str(folder))
    return folder
