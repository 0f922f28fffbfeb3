"""``on_bad_file`` for audio: a missing or corrupt WAV stops the run (``error``, the default)
with one line naming column, row and path, or (``skip``) makes the row's audio missing and
is counted, with the first paths, in the run's ``log.json``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfuse import DataError, Pipeline


@pytest.fixture
def entry(transfuse_manager, audio_plugin):
    return transfuse_manager.get("encoder", "audio.mel-cnn")


def _build(entry, device_manager, **options):
    return entry.load()(entry.validate_options(options), device_manager)


@pytest.fixture
def files(tmp_path: Path, write_audio, tone) -> dict[str, str]:
    """A good WAV, a corrupt one (a real WAV cut inside its header) and an absent path."""
    good = write_audio("good.wav", tone(300, 0.6, 8000), 8000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(Path(good).read_bytes()[:30])
    return {"good": good, "corrupt": str(corrupt), "absent": str(tmp_path / "absent.wav")}


def column(*paths: str) -> pd.Series:
    return pd.Series(list(paths), index=range(100, 100 + len(paths)), name="call_wav")


def test_on_bad_file_is_error_by_default(entry) -> None:
    assert entry.validate_options({}).on_bad_file == "error"


@pytest.mark.parametrize("bad", ["corrupt", "absent"])
def test_with_error_a_bad_file_is_one_line_naming_column_row_path_and_the_way_out(
    entry, device_manager, small, files, bad
) -> None:
    encoder = _build(entry, device_manager, **small, normalize="example")
    with pytest.raises(DataError) as err:
        encoder.prepare(column(files["good"], files[bad]))
    message = str(err.value)
    assert "\n" not in message
    assert "column 'call_wav', row 101" in message
    assert files[bad] in message
    assert "on_bad_file: skip" in message


def test_with_error_fit_stops_at_a_bad_file_too(entry, device_manager, small, files) -> None:
    encoder = _build(entry, device_manager, **small)
    with pytest.raises(DataError, match="corrupt.wav"):
        encoder.fit(column(files["good"], files["corrupt"]))


def test_with_skip_bad_files_are_missing_rows_and_fit_ignores_them(
    entry, device_manager, small, files
) -> None:
    encoder = _build(entry, device_manager, **small, on_bad_file="skip")
    values = column(files["good"], files["corrupt"], files["absent"], None)
    with pytest.warns(UserWarning, match="corrupt.wav.*the row has no audio"):
        encoder.fit(values)
    assert np.isfinite(encoder.band_mean).all()
    assert encoder.missing(values).tolist() == [False, True, True, True]
    mel = encoder.prepare(values)["mel"]
    assert mel[0].abs().sum() > 0
    assert mel[1:].abs().sum() == 0
    assert encoder.data_report(values) == {
        "skipped_files": 2,
        "first": [files["corrupt"], files["absent"]],
    }


@pytest.mark.slow
def test_a_pipeline_with_skip_trains_and_logs_the_skipped_files(
    transfuse_manager, audio_plugin, small, files, tmp_path
) -> None:
    n = 12
    paths = [files["good"]] * n
    paths[2], paths[7] = files["corrupt"], files["absent"]
    frame = pd.DataFrame({"call": paths, "y": np.arange(n) % 2})
    config = {
        "name": "calls",
        "task": {"type": "binary", "target": "y"},
        "data": {"test_size": 0.25},
        "inputs": {"call": {"encoder": "audio.mel-cnn", "column": "call",
                            "options": {**small, "on_bad_file": "skip"}}},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False},
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = Pipeline.from_config(config, manager=transfuse_manager).fit(frame)
        run = pipeline.save(tmp_path / "run")
    log = json.loads((run / "log.json").read_text("utf-8"))
    skipped = [report["call"] for report in log["data"].values()]
    assert sum(r["skipped_files"] for r in skipped) == 2
    assert {p for r in skipped for p in r["first"]} == {files["corrupt"], files["absent"]}
