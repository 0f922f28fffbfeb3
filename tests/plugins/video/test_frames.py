"""Reading sampled frames with PyAV: even and fixed-rate sampling, seeking, bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from transfuse_video.frames import VideoReadError, is_missing_video, read_frames, sample_times

WriteVideo = Callable[..., Path]


def counting_clip(frames: int, size: int = 16) -> np.ndarray:
    """Frame ``t`` is a flat grey of brightness ``8 * t`` (readable back after lossy coding)."""
    clip = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        clip[t] = 8 * t
    return clip


def brightness(image: object) -> int:
    return round(float(np.asarray(image).mean()) / 8)


def test_even_sampling_takes_the_middle_of_equal_segments(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    path = write_video(tmp_path / "count.mp4", counting_clip(16))
    sampled = read_frames(path, 4)
    assert [brightness(f) for f in sampled.frames] == [2, 6, 10, 14]
    assert sampled.times == pytest.approx([0.2, 0.6, 1.0, 1.4])


def test_fixed_rate_sampling_takes_frames_from_the_start(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    path = write_video(tmp_path / "count.avi", counting_clip(16), codec="mpeg4")
    assert [brightness(f) for f in read_frames(path, 3, fps=5.0).frames] == [0, 2, 4]
    assert len(read_frames(path, 50, fps=5.0).frames) == 8  # 1.6 s at 5 fps, no more


def test_a_video_shorter_than_the_samples_repeats_frames(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    path = write_video(tmp_path / "short.webm", counting_clip(3), codec="libvpx-vp9")
    frames = [brightness(f) for f in read_frames(path, 6).frames]
    assert len(frames) == 6 and sorted(frames) == frames and set(frames) == {0, 1, 2}


def test_a_long_video_is_sampled_by_seeking_not_decoded_whole(
    tmp_path: Path, write_video: WriteVideo
) -> None:
    clip = np.repeat(counting_clip(30), 20, axis=0)  # 600 frames, 60 s; brightness per 2 s
    path = write_video(tmp_path / "long.mp4", clip, gop=10)
    sampled = read_frames(path, 4)
    assert [brightness(f) for f in sampled.frames] == [3, 11, 18, 26]  # at 7.5, 22.5, ... s
    assert sampled.decoded <= 4 * 10  # at most a key-frame interval per sample, of 600


def test_a_corrupt_file_and_an_absent_one_are_read_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 50)
    with pytest.raises(VideoReadError, match="Invalid data"):
        read_frames(corrupt, 4)
    with pytest.raises(VideoReadError, match="no video file at"):
        read_frames(tmp_path / "absent.mp4", 4)


def test_bytes_of_a_video_read_like_its_file(tmp_path: Path, write_video: WriteVideo) -> None:
    path = write_video(tmp_path / "count.mkv", counting_clip(8))
    from_bytes = read_frames(path.read_bytes(), 2)
    assert [brightness(f) for f in from_bytes.frames] == [
        brightness(f) for f in read_frames(path, 2).frames
    ]


@pytest.mark.parametrize("value", [None, float("nan"), "", "   ", b""])
def test_empty_values_are_missing_videos(value: object) -> None:
    assert is_missing_video(value)
    assert not is_missing_video("clip.mp4")


def test_sample_times_never_passes_the_end() -> None:
    assert sample_times(0.0, 1.0, 4, None) == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert sample_times(0.5, 1.0, 10, 4.0) == pytest.approx([0.5, 0.75, 1.0, 1.25])
