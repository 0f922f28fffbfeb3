"""The derived statement charts and call clips: real files, deterministic, cached."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from transfuse import DataError
from transfuse_finance import assets
from transfuse_finance.assets import AssetSpec, cache_root, enrich
from transfuse_finance.lending import LendingClub
from transfuse_finance.options import FinanceSourceOptions
from transfuse_finance.render import (
    CLIP_SECONDS,
    IMAGE_SIZE,
    SAMPLE_RATE,
    Figure,
    call_wav,
    statement_png,
)

SPEC = AssetSpec(
    "test-loans",
    "loan_id",
    (Figure("income", 0, 100), Figure("ratio", 0, 1), Figure("late", 0, 6, count=True)),
)


def _rows(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.uniform(0, 100, n)
    income[3] = np.nan
    return pd.DataFrame({
        "loan_id": np.arange(1, n + 1),
        "income": income,
        "ratio": rng.uniform(0, 1, n),
        "late": rng.integers(0, 5, n),
    })  # fmt: skip


def _bytes(paths: pd.Series) -> list[bytes]:
    return [Path(p).read_bytes() for p in paths]


def test_enrich_is_deterministic_across_cache_folders(tmp_path):
    first, _ = enrich(_rows(), SPEC, cache_dir=tmp_path / "a", progress=False)
    second, _ = enrich(_rows(), SPEC, cache_dir=tmp_path / "b", progress=False)
    assert _bytes(first["statement_png"]) == _bytes(second["statement_png"])
    assert _bytes(first["call_wav"]) == _bytes(second["call_wav"])
    assert len(set(_bytes(first["statement_png"]))) == 20  # every row draws its own chart


def test_a_second_call_generates_nothing(tmp_path):
    _, first = enrich(_rows(), SPEC, cache_dir=tmp_path, progress=False)
    frame, second = enrich(_rows(), SPEC, cache_dir=tmp_path, progress=False)
    assert (first.generated, first.reused) == (40, 0)
    assert (second.generated, second.reused) == (0, 40)
    assert frame["statement_png"].map(lambda p: Path(p).is_file()).all()


def test_a_changed_generator_or_row_gets_a_new_file(tmp_path):
    frame, _ = enrich(_rows(), SPEC, cache_dir=tmp_path, progress=False)
    rescaled = AssetSpec(SPEC.name, SPEC.key, (Figure("income", 0, 200), *SPEC.figures[1:]))
    again, report = enrich(_rows(), rescaled, cache_dir=tmp_path, progress=False)
    assert report.generated == 40
    assert not set(frame["statement_png"]) & set(again["statement_png"])
    changed = _rows()
    changed.loc[0, "ratio"] = 0.5
    _, report = enrich(changed, SPEC, cache_dir=tmp_path, progress=False)
    assert report.generated == 2


def test_no_temporary_files_are_left_behind(tmp_path):
    enrich(_rows(), SPEC, cache_dir=tmp_path, progress=False)
    names = [p.name for p in (tmp_path / SPEC.name).iterdir()]
    assert len(names) == 40 and not [n for n in names if n.endswith(".tmp")]


def test_the_process_pool_draws_the_same_bytes(tmp_path, monkeypatch):
    serial, _ = enrich(_rows(), SPEC, cache_dir=tmp_path / "serial", progress=False)
    monkeypatch.setattr(assets, "PARALLEL_MIN", 1)
    monkeypatch.setattr(assets, "_CHUNK", 5)
    pooled, report = enrich(_rows(), SPEC, cache_dir=tmp_path / "pool", progress=False, workers=2)
    assert report.generated == 40
    assert _bytes(serial["call_wav"]) == _bytes(pooled["call_wav"])


def test_missing_assets_leaves_rows_without_image_or_audio_by_key(tmp_path):
    rows = _rows(80)
    frame, report = enrich(rows, SPEC, cache_dir=tmp_path, missing=0.3, progress=False)
    no_image = frame["statement_png"].isna()
    no_audio = frame["call_wav"].isna()
    assert 0.2 < no_image.mean() < 0.4 and 0.2 < no_audio.mean() < 0.4
    assert (no_image != no_audio).any()  # chosen independently per modality
    assert report.generated == int((~no_image).sum() + (~no_audio).sum())
    again, _ = enrich(rows.iloc[::-1], SPEC, cache_dir=tmp_path, missing=0.3, progress=False)
    assert again["statement_png"].isna().sort_index().equals(no_image)


def test_the_chart_is_a_small_rgb_png_whose_bars_follow_the_values():
    low = Image.open(io.BytesIO(statement_png(SPEC.figures, [10.0, 0.1, 1])))
    high = Image.open(io.BytesIO(statement_png(SPEC.figures, [90.0, 0.1, 1])))
    assert low.size == (IMAGE_SIZE, IMAGE_SIZE) and low.mode == "RGB"
    white = np.array([255, 255, 255])

    def bar_height(image: Image.Image) -> int:
        column = np.asarray(image)[:, 10]  # through the first bar
        return int((np.abs(column.astype(int) - white).sum(axis=1) > 100).sum())

    assert bar_height(high) > bar_height(low) + 20


def test_the_clip_is_16k_mono_and_its_pitch_rises_with_the_value():
    def first_tone_pitch(value: float) -> float:
        data, rate = soundfile.read(io.BytesIO(call_wav(SPEC.figures, [value, 0.5, 0])))
        assert rate == SAMPLE_RATE and data.shape == (round(CLIP_SECONDS * SAMPLE_RATE),)
        tone = data[: SAMPLE_RATE // 4]
        spectrum = np.abs(np.fft.rfft(tone))
        return float(np.fft.rfftfreq(len(tone), 1 / SAMPLE_RATE)[spectrum.argmax()])

    assert first_tone_pitch(80.0) > first_tone_pitch(20.0) * 2


def test_the_clip_has_one_pulse_per_count():
    def pulses(count: int) -> int:
        data, _ = soundfile.read(io.BytesIO(call_wav(SPEC.figures, [50.0, 0.5, count])))
        tail = np.abs(data[round(0.7 * SAMPLE_RATE) :])
        loud = np.convolve(tail, np.ones(80) / 80, mode="same") > 0.05  # 5 ms envelope
        return int((np.diff(loud.astype(int)) == 1).sum())

    assert [pulses(n) for n in (0, 1, 3, 6, 9)] == [0, 1, 3, 6, 6]


def test_a_missing_figure_is_drawn_apart_and_silent():
    figure = SPEC.figures[0]
    assert figure.level(float("nan")) is None
    assert figure.level(150.0) == 1.0 and figure.level(-5.0) == 0.0
    data, _ = soundfile.read(io.BytesIO(call_wav(SPEC.figures, [np.nan, 0.5, 0])))
    assert np.abs(data[: SAMPLE_RATE // 4]).max() == 0.0


def test_enrich_names_the_missing_columns():
    with pytest.raises(DataError, match="'ratio'"):
        enrich(_rows().drop(columns=["ratio"]), SPEC, progress=False)


def test_cache_root_prefers_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFUSE_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "opt") == tmp_path / "opt"
    assert cache_root() == tmp_path / "env" / "finance"
    monkeypatch.delenv("TRANSFUSE_CACHE")
    assert cache_root().parts[-2:] == ("transfuse", "finance")


def test_a_multimodal_source_sample_gets_files_for_its_rows_only(tmp_path):
    options = FinanceSourceOptions(
        multimodal=True, sample=20, cache_dir=str(tmp_path), progress=False
    )
    source = LendingClub(options)
    frame = source.load()
    assert len(frame) == 20 and source.enrichment is not None
    assert source.enrichment.generated == 40
    assert frame["call_wav"].map(lambda p: Path(p).is_file()).all()
    assert frame["statement_png"].str.startswith(str(tmp_path / "lending-club")).all()
    assert LendingClub(options).load()["statement_png"].tolist() == frame["statement_png"].tolist()
