"""``on_bad_file``: a missing or corrupt image file stops the run (``error``, the default)
with one line naming column, row and path, or (``skip``) makes the row's image missing and
is counted, with the first paths, in the run's ``log.json``."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transfuse import DataError, Pipeline
from transfuse.testing import cpu_device
from transfuse_image import TimmOptions
from transfuse_image.encoder import TimmEncoder

Draw = Callable[..., Image.Image]
Png = Callable[[Image.Image], bytes]


@pytest.fixture
def files(tmp_path: Path, draw: Draw, png_bytes: Png) -> dict[str, str]:
    """A good PNG, a corrupt one (a real PNG cut after its header) and an absent path."""
    good, corrupt = tmp_path / "good.png", tmp_path / "corrupt.png"
    draw("circle").save(good)
    corrupt.write_bytes(png_bytes(draw("square"))[:60])
    return {"good": str(good), "corrupt": str(corrupt), "absent": str(tmp_path / "absent.png")}


def build(small: dict[str, Any], **options: Any) -> TimmEncoder:
    return TimmEncoder(TimmOptions(**{**small, **options}), cpu_device())


def column(*paths: str) -> pd.Series:
    return pd.Series(list(paths), index=range(100, 100 + len(paths)), name="statement_png")


def test_on_bad_file_is_error_by_default() -> None:
    assert TimmOptions().on_bad_file == "error"


@pytest.mark.parametrize("bad", ["corrupt", "absent"])
def test_with_error_a_bad_file_is_one_line_naming_column_row_path_and_the_way_out(
    small: dict[str, Any], files: dict[str, str], bad: str
) -> None:
    with pytest.raises(DataError) as err:
        build(small).prepare(column(files["good"], files[bad]))
    message = str(err.value)
    assert "\n" not in message
    assert "column 'statement_png', row 101" in message
    assert files[bad] in message
    assert "on_bad_file: skip" in message


def test_with_skip_bad_files_are_missing_rows_of_zeros_with_a_warning(
    small: dict[str, Any], files: dict[str, str]
) -> None:
    encoder = build(small, on_bad_file="skip")
    values = column(files["good"], files["corrupt"], files["absent"], "")
    with pytest.warns(UserWarning, match="corrupt.png.*the row has no image"):
        assert encoder.missing(values).tolist() == [False, True, True, True]
    image = encoder.prepare(values)["image"]
    assert image[0].abs().sum() > 0
    assert image[1:].abs().sum() == 0


def test_with_skip_the_report_counts_rows_and_names_the_first_paths(
    small: dict[str, Any], files: dict[str, str]
) -> None:
    encoder = build(small, on_bad_file="skip")
    values = column(files["corrupt"], files["good"], files["corrupt"], files["absent"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = encoder.data_report(values)
    assert report == {"skipped_files": 3, "first": [files["corrupt"], files["absent"]]}
    assert build(small).data_report(column(files["good"])) == {}


def test_a_skipped_file_that_is_fixed_is_read_again(
    small: dict[str, Any], files: dict[str, str], draw: Draw
) -> None:
    encoder = build(small, on_bad_file="skip")
    with pytest.warns(UserWarning):
        assert encoder.missing(column(files["absent"])).tolist() == [True]
    draw("square").save(files["absent"])
    assert encoder.missing(column(files["absent"])).tolist() == [False]


@pytest.mark.slow
def test_a_pipeline_with_skip_trains_and_logs_the_skipped_files(
    image_manager: Any, small: dict[str, Any], files: dict[str, str], tmp_path: Path
) -> None:
    n = 16
    paths = [files["good"]] * n
    paths[3], paths[9] = files["corrupt"], files["absent"]
    frame = pd.DataFrame({"scan": paths, "y": np.arange(n) % 2})
    config = {
        "name": "scans",
        "task": {"type": "binary", "target": "y"},
        "data": {"test_size": 0.25},
        "inputs": {"scan": {"encoder": "image.timm", "column": "scan", "options": {
            **small, "on_bad_file": "skip"}}},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False},
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = Pipeline.from_config(config, manager=image_manager).fit(frame)
        run = pipeline.save(tmp_path / "run")
    log = json.loads((run / "log.json").read_text("utf-8"))
    skipped = [report["scan"] for report in log["data"].values()]
    assert sum(r["skipped_files"] for r in skipped) == 2
    assert {p for r in skipped for p in r["first"]} == {files["corrupt"], files["absent"]}
    assert "data" not in json.loads((run / "metrics.json").read_text("utf-8"))
    report = (run / "report.md").read_text("utf-8")
    assert "## Data notes" in report and "rows without their file" in report
    scores = pipeline.predict(frame.drop(columns="y"))
    assert np.isfinite(scores.to_numpy()).all()
    assert pipeline.predict_report == {
        "scan": {"skipped_files": 2, "first": [files["corrupt"], files["absent"]]}
    }
