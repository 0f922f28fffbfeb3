"""Calibration: fitted on the validation rows, stored as JSON, applied by predict and
evaluate, and lowering the expected calibration error of a model miscalibrated on purpose."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import CheckpointError, Pipeline, PluginManager
from transfuse.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    load_calibration,
)


def _manager() -> PluginManager:
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    return manager


@pytest.fixture(scope="module")
def smoothed() -> Pipeline:
    """A run made miscalibrated on purpose: heavy label smoothing pulls every probability
    toward 0.5, so the network is underconfident; calibrated by isotonic regression."""
    config = kit.config(
        task={"type": "binary", "target": "y", "options": {"label_smoothing": 0.6}},
        train={"epochs": 3, "calibrate": "isotonic"},
        data={"test_size": 0.3, "validation_size": 0.3},
        report={"bootstrap_rounds": 200},
    )
    return Pipeline.from_config(config, manager=_manager()).fit(kit.frame(500))


@pytest.fixture(scope="module")
def platt() -> Pipeline:
    """A run with the default calibration (Platt)."""
    config = kit.config(train={"epochs": 3}, report={"bootstrap_rounds": 200})
    return Pipeline.from_config(config, manager=_manager()).fit(kit.frame(300))


def _test_rows(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    assert pipeline.splits is not None and pipeline.splits.test is not None
    rows = pipeline.splits.test
    y = rows["y"].to_numpy()
    return y, pipeline.predict_scores(rows, raw=True)[:, 0], pipeline.predict_scores(rows)[:, 0]


def test_isotonic_lowers_the_test_ece_of_a_run_miscalibrated_on_purpose(smoothed):
    y, raw, calibrated = _test_rows(smoothed)
    before, after = expected_calibration_error(y, raw), expected_calibration_error(y, calibrated)
    assert before > 0.1  # smoothing 0.6 keeps the raw scores within [0.3, 0.7]
    assert after < before / 2
    assert smoothed.calibration is not None and smoothed.calibration.method == "isotonic"


def test_the_report_shows_ece_and_brier_before_and_after_with_a_reliability_diagram(
    smoothed, tmp_path
):
    run = smoothed.save(tmp_path / "run")
    report = (run / "report.md").read_text()
    assert "## Calibration" in report and "(reliability.png)" in report
    assert (run / "reliability.png").stat().st_size > 0
    y, raw, calibrated = _test_rows(smoothed)
    before = f"| before (raw) | {expected_calibration_error(y, raw):.4f} |"
    after = f"| after (isotonic) | {expected_calibration_error(y, calibrated):.4f} |"
    assert before in report and after in report


def test_platt_keeps_the_ranking_and_is_the_default(platt):
    y, raw, calibrated = _test_rows(platt)
    assert platt.config.train.calibrate == "platt"
    assert platt.calibration is not None and platt.calibration.method == "platt"
    assert platt.calibration.slope > 0
    assert roc_auc_score(y, calibrated) == pytest.approx(roc_auc_score(y, raw), abs=1e-12)
    assert not np.allclose(raw, calibrated)


def test_metrics_json_and_evaluate_use_the_calibrated_scores(platt):
    assert platt.splits is not None and platt.splits.test is not None
    again = platt.evaluate(platt.splits.test)
    for name, value in platt.metrics["test"].items():
        assert again[name] == pytest.approx(value, rel=1e-9), name
    y, _, calibrated = _test_rows(platt)
    assert platt.metrics["test"]["brier"] == pytest.approx(np.mean((calibrated - y) ** 2))


def test_calibration_json_round_trips_and_a_loaded_run_applies_it(platt, tmp_path):
    run = platt.save(tmp_path / "run")
    stored = json.loads((run / "calibration.json").read_text())
    assert stored["method"] == "platt" and stored["fitted_on"]["split"] == "validation"
    assert stored["fitted_on"]["rows"] == platt.metrics["splits"]["validation"]
    assert load_calibration(run) == platt.calibration
    loaded = transfuse.load(run, manager=platt.manager)
    rows = kit.frame(40, seed=9)
    raw = loaded.predict_scores(rows, raw=True)[:, 0]
    logit = np.log(raw / (1 - raw))
    want = 1 / (1 + np.exp(-(stored["slope"] * logit + stored["intercept"])))
    assert np.allclose(loaded.predict(rows)["p_1"].to_numpy(), want, atol=1e-9)
    assert np.array_equal(loaded.predict(rows).to_numpy(), platt.predict(rows).to_numpy())


def test_a_run_without_calibration_json_loads_and_scores_uncalibrated(platt, tmp_path):
    run = platt.save(tmp_path / "run")
    (run / "calibration.json").unlink()  # a run written before calibration existed
    loaded = transfuse.load(run, manager=platt.manager)
    rows = kit.frame(20, seed=4)
    assert loaded.calibration is None
    assert np.array_equal(loaded.predict_scores(rows), loaded.predict_scores(rows, raw=True))


def test_a_malformed_calibration_json_is_a_checkpoint_error(platt, tmp_path):
    run = platt.save(tmp_path / "run")
    (run / "calibration.json").write_text(json.dumps({"method": "platt", "slope": -1}))
    with pytest.raises(CheckpointError, match="calibration.json"):
        transfuse.load(run, manager=platt.manager)


def test_isotonic_thresholds_are_stored_as_arrays_and_applied_by_interpolation(smoothed):
    cal = smoothed.calibration
    assert cal is not None
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    p = np.linspace(0, 1, 101)
    assert np.array_equal(again.apply(p), np.interp(p, cal.x, cal.y))


def test_validation_rows_of_one_class_leave_the_scores_uncalibrated():
    cal = fit_calibration("platt", np.zeros(10), np.linspace(0.1, 0.9, 10))
    assert cal.method == "none" and "one class" in cal.note
    assert np.array_equal(cal.apply(np.array([0.2, 0.7])), [0.2, 0.7])


def test_platt_fits_the_slope_that_undoes_a_shrunk_logit():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    raw = 1 / (1 + np.exp(-z / 3))  # the true logit shrunk three times
    cal = fit_calibration("platt", y, raw)
    assert cal.slope == pytest.approx(3.0, rel=0.15) and abs(cal.intercept) < 0.15


def test_ece_is_the_row_weighted_gap_per_bin():
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.95, 0.95, 0.95])
    # bin 0: mean 0.05 vs 0 (1 row); bin 1: 0.15 vs 1 (1 row); bin 9: 0.95 vs 2/3 (3 rows)
    want = (1 * 0.05 + 1 * 0.85 + 3 * abs(2 / 3 - 0.95)) / 5
    assert expected_calibration_error(y, p) == pytest.approx(want)


def test_a_multiclass_run_is_not_calibrated(tmp_path):
    df = kit.frame(200)
    df["grade"] = np.select([df["a"] < -0.5, df["a"] < 0.5], ["low", "mid"], "high")
    config = kit.config(
        task={"type": "multiclass", "target": "grade"},
        train={"epochs": 1},
        report={"bootstrap_rounds": 100},
    )
    pipeline = Pipeline.from_config(config, manager=_manager()).fit(df)
    assert pipeline.calibration is None
    run = pipeline.save(tmp_path / "run")
    assert not (run / "calibration.json").exists()
    assert set(pipeline.metrics["intervals"]["test"]) == set(pipeline.metrics["test"])
