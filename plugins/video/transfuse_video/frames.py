"""Reading sampled frames of one video with PyAV (FFmpeg's decoders ship in its wheel).

A video is never loaded whole: the wanted timestamps are computed from the stream's
duration, then the frames are taken while streaming through the file, or, when the
timestamps lie far apart (a long recording), by seeking to the key frame before each one
and decoding forward from there. Memory holds only the sampled frames.

A missing value (None, NaN, an empty string or empty bytes) is a missing modality for
its row; a value that is there but unreadable raises :class:`VideoReadError`, which the
encoder turns into a missing row or a :class:`~transfuse.DataError` (``on_bad_file``).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "VIDEO_SUFFIXES",
    "SampledVideo",
    "VideoReadError",
    "is_missing_video",
    "looks_like_videos",
    "read_frames",
    "sample_times",
]

#: File name endings read as video.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm")

#: Seek instead of streaming when consecutive sampled frames are this many seconds apart.
SEEK_GAP_S = 4.0


class VideoReadError(Exception):
    """A value that should be a video cannot be read; the message says why."""


@dataclass
class SampledVideo:
    """The sampled frames (RGB images, in time order), their times, and how many frames
    were decoded to get them (the cost)."""

    frames: list[Image.Image]
    times: list[float]
    decoded: int


def is_missing_video(value: Any) -> bool:
    """None, NaN, pd.NA, an empty string and empty bytes are a missing video."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value) == 0
    return False


def sample_times(start: float, duration: float, num_frames: int, fps: float | None) -> list[float]:
    """Timestamps to take: the middle of ``num_frames`` equal segments, or every ``1/fps``
    seconds from the start (at most ``num_frames``, none past the end)."""
    if fps is None:
        step = duration / num_frames
        return [start + (i + 0.5) * step for i in range(num_frames)]
    count = max(1, min(num_frames, math.ceil(duration * fps - 1e-9)))
    return [start + i / fps for i in range(count)]


def _source(value: Any) -> Any:
    """What ``av.open`` reads: a path or an in-memory file."""
    if isinstance(value, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(value))
    if isinstance(value, str | os.PathLike):
        path = Path(value).expanduser()
        if not path.is_file():
            raise VideoReadError(f"no video file at {str(value)!r}")
        return str(path)
    raise TypeError(f"a {type(value).__name__} is not a video (give a file path or bytes)")


def _duration(container: Any, stream: Any) -> tuple[float, float]:
    """The stream's start time and duration in seconds; demuxes (no decoding) when the
    container does not say."""
    base = float(stream.time_base) if stream.time_base else 0.0
    start = stream.start_time * base if stream.start_time is not None else 0.0
    if stream.duration and base:
        return start, stream.duration * base
    if container.duration:
        return start, container.duration / 1_000_000
    end = start
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = max(end, (packet.pts + (packet.duration or 0)) * base)
    container.seek(0)
    return start, end - start


def _frame_time(frame: Any, index: int, rate: float) -> float:
    return float(frame.time) if frame.time is not None else index / rate


def _stream_frames(container: Any, stream: Any, times: list[float], rate: float) -> SampledVideo:
    """Decode forward once, keeping the frame at (or just after) each wanted time."""
    half = 0.5 / rate
    frames: list[Image.Image] = []
    taken: list[float] = []
    decoded = 0
    for decoded, frame in enumerate(container.decode(stream), start=1):
        t = _frame_time(frame, decoded - 1, rate)
        while len(frames) < len(times) and t + half >= times[len(frames)]:
            frames.append(frame.to_image())
            taken.append(t)
        if len(frames) == len(times):
            break
    return SampledVideo(frames, taken, decoded)


def _seek_frames(container: Any, stream: Any, times: list[float], rate: float) -> SampledVideo:
    """Per wanted time: seek to the key frame before it, decode forward to it."""
    base = float(stream.time_base)
    half = 0.5 / rate
    frames: list[Image.Image] = []
    taken: list[float] = []
    decoded = 0
    for want in times:
        container.seek(int(want / base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            decoded += 1
            t = _frame_time(frame, 0, rate)
            if t + half >= want:
                frames.append(frame.to_image())
                taken.append(t)
                break
    return SampledVideo(frames, taken, decoded)


def read_frames(value: Any, num_frames: int, fps: float | None = None) -> SampledVideo:
    """The sampled frames of a video file (or its bytes); a :class:`VideoReadError` when it
    is not a readable video. A video shorter than the samples repeats frames (even
    sampling) or gives fewer (``fps``)."""
    import av

    source = _source(value)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise VideoReadError("the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            start, duration = _duration(container, stream)
            times = sample_times(start, max(duration, 1.0 / rate), num_frames, fps)
            spread = times[-1] - times[0] if len(times) > 1 else 0.0
            far_apart = len(times) > 1 and spread / (len(times) - 1) > SEEK_GAP_S
            if far_apart and stream.time_base:
                sampled = _seek_frames(container, stream, times, rate)
            else:
                sampled = _stream_frames(container, stream, times, rate)
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise VideoReadError(f"{type(exc).__name__}: {exc}") from None
    if not sampled.frames:
        raise VideoReadError("no frame could be decoded")
    while fps is None and len(sampled.frames) < num_frames:  # ran out early: repeat the last
        sampled.frames.append(sampled.frames[-1])
        sampled.times.append(sampled.times[-1])
    return sampled


def looks_like_videos(column: pd.Series, sample: int = 1000) -> bool:
    """True when every one of the first non-missing values is a path with a video suffix."""
    values = [v for v in column.head(sample * 2).tolist() if not is_missing_video(v)][:sample]
    if not values or not all(isinstance(v, str | os.PathLike) for v in values):
        return False
    names = (os.fspath(v).strip().lower() for v in values)
    return all("://" not in n and n.endswith(VIDEO_SUFFIXES) for n in names)
