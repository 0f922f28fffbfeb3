"""video.frames reports skipped videos for the run's log the way image and audio do."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from transfuse.testing import cpu_device
from transfuse_video import VideoFramesOptions
from transfuse_video.encoder import VideoFramesEncoder


def test_skipped_videos_are_counted_with_the_first_paths(
    tmp_path: Path, video_files: list[Path], small: dict[str, Any]
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    absent = tmp_path / "absent.mov"
    values = pd.Series([str(video_files[0]), str(corrupt), None, str(corrupt), str(absent)])
    encoder = VideoFramesEncoder(VideoFramesOptions(**small), cpu_device())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = encoder.data_report(values)
    assert report == {"skipped_files": 3, "first": [str(corrupt), str(absent)]}
    assert encoder.data_report(pd.Series([str(video_files[0])])) == {}
    error = VideoFramesEncoder(VideoFramesOptions(**small, on_bad_file="error"), cpu_device())
    assert error.data_report(pd.Series([str(video_files[0])])) == {}
