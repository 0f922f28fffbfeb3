"""video.frames against the encoder contract, with missing, corrupt and absent videos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse import ConfigError, DataError
from transfuse.testing import check_encoder, cpu_device
from transfuse_video import VideoFramesOptions
from transfuse_video.encoder import VideoFramesEncoder

WriteVideo = Callable[..., Path]


def build(**options: Any) -> VideoFramesEncoder:
    return VideoFramesEncoder(VideoFramesOptions(**options), cpu_device())


@pytest.mark.parametrize("pooling", ["transformer", "attention", "mean"])
def test_each_pooling_passes_the_conformance_checks(
    video_manager: Any, video_files: list[Path], small: dict[str, Any], pooling: str
) -> None:
    entry = video_manager.get("encoder", "video.frames")
    values = pd.Series([str(p) for p in video_files] + [None, ""], name="interview")
    encoder = check_encoder(entry, values, options={**small, "pooling": pooling})
    assert encoder.frozen == (pooling == "mean")
    assert encoder.output_dim == (encoder.features if pooling == "mean" else small["dim"])


def test_missing_values_get_rows_without_valid_frames(
    video_files: list[Path], small: dict[str, Any]
) -> None:
    encoder = build(**small)
    values = pd.Series([str(video_files[0]), None, "  "])
    assert encoder.missing(values).tolist() == [False, True, True]
    batch = encoder.prepare(values)
    assert batch["valid"].tolist() == [[True] * 4, [False] * 4, [False] * 4]
    assert batch["frames"][1:].abs().sum() == 0 and batch["frames"][0].abs().sum() > 0


def test_a_corrupt_or_absent_file_is_a_missing_video_with_a_warning(
    tmp_path: Path, video_files: list[Path], small: dict[str, Any]
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    values = pd.Series([str(video_files[0]), str(corrupt), str(tmp_path / "absent.mov")], name="id")
    encoder = build(**small)
    with pytest.warns(UserWarning, match=r"column 'id', row 1: cannot read the video .*corrupt"):
        missing = encoder.missing(values)
    assert missing.tolist() == [False, True, True]
    batch = encoder.prepare(values)
    assert batch["valid"][:, 0].tolist() == [True, False, False]


def test_with_on_bad_file_error_a_corrupt_file_is_a_one_line_error_naming_it(
    tmp_path: Path, video_files: list[Path], small: dict[str, Any]
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    encoder = build(**small, on_bad_file="error")
    values = pd.Series([str(video_files[0]), str(corrupt)], index=[10, 11], name="id_check")
    assert encoder.missing(values).tolist() == [False, False]
    with pytest.raises(DataError, match=r"column 'id_check', row 11: cannot read the video") as err:
        encoder.prepare(values)
    assert "corrupt.mp4" in str(err.value) and "\n" not in str(err.value) and err.value.fix


def test_an_empty_path_is_missing_even_with_on_bad_file_error(small: dict[str, Any]) -> None:
    encoder = build(**small, on_bad_file="error")
    assert encoder.missing(pd.Series(["", None])).tolist() == [True, True]
    assert not encoder.prepare(pd.Series([""]))["valid"].any()


def test_a_value_that_is_no_path_is_a_data_error(small: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="a int is not a video"):
        build(**small).missing(pd.Series([7], name="clip"))


def test_frame_features_come_from_the_cache_the_second_time(
    video_files: list[Path], small: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = pd.Series([str(p) for p in video_files])
    torch.manual_seed(0)  # the same random backbone twice
    first = build(**small, pooling="attention").prepare(values)

    def no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("decoded a video whose features were cached")

    monkeypatch.setattr("transfuse_video.encoder.read_frames", no_decoding)
    torch.manual_seed(0)
    again = build(**small, pooling="transformer").prepare(values)  # another pooling
    assert torch.equal(first["frames"], again["frames"])
    assert torch.equal(first["valid"], again["valid"])


def test_sampling_options_change_the_cached_features(
    video_files: list[Path], small: dict[str, Any]
) -> None:
    values = pd.Series([str(video_files[1])])
    every = build(**small).prepare(values)["frames"]
    at_rate = build(**small, fps=20.0).prepare(values)["frames"]
    assert not torch.allclose(every, at_rate)


def test_fixed_rate_sampling_masks_frames_past_the_end(
    tmp_path: Path, write_video: WriteVideo, square_clip: Callable[..., np.ndarray]
) -> None:
    clip = square_clip(True, np.random.default_rng(1), frames=4)  # 0.4 s at 10 fps
    path = write_video(tmp_path / "short.mp4", clip)
    encoder = build(model="resnet10t", weights="none", image_size=32, num_frames=8, fps=5.0)
    assert encoder.prepare(pd.Series([str(path)]))["valid"].tolist() == [[True] * 2 + [False] * 6]


def test_the_default_backbone_is_efficientnet_lite0_with_the_packaged_weights() -> None:
    encoder = build(image_size=32, num_frames=2)
    assert encoder.features == 1280 and encoder.weights_path is not None
    assert encoder.weights_path.name.endswith(".pth")
    assert not any(p.requires_grad for p in encoder.backbone.parameters())


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ConfigError, match="video.frames options.weights: there are no packaged"):
        build(model="resnet10t")
    with pytest.raises(ValueError, match=r"heads \(3\) must divide dim \(16\)"):
        VideoFramesOptions(dim=16, heads=3)
