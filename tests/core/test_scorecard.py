"""Scorecard points, cut-offs and their tables, checked against hand computations; the
report's risk sections and the intervals in metrics.json."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import ConfigError, Pipeline, PluginManager
from transfuse.config import ScorecardConfig
from transfuse.scorecard import (
    approved,
    choose_cutoff,
    confusion,
    cutoff_table,
    decile_cutoffs,
    points,
    scaling,
    score_bands,
)

CARD = ScorecardConfig(base_score=600, base_odds=50, pdo=20)


def _manager() -> PluginManager:
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    return manager


@pytest.fixture(scope="module")
def card_run() -> Pipeline:
    config = kit.config(
        train={"epochs": 3},
        scorecard={"base_score": 600, "base_odds": 50, "pdo": 20},
        report={"target_bad_rate": 0.2, "bootstrap_rounds": 200},
    )
    return Pipeline.from_config(config, manager=_manager()).fit(kit.frame(400))


def test_points_follow_the_points_to_double_the_odds_formula():
    factor, offset = scaling(CARD)
    assert factor == pytest.approx(20 / math.log(2))
    assert offset == pytest.approx(600 - factor * math.log(50))
    # odds of good 50:1 -> base score; 100:1 -> one pdo more; 25:1 -> one pdo less
    p_bad = np.array([1 / 51, 1 / 101, 1 / 26])
    assert np.allclose(points(p_bad, CARD), [600, 620, 580])
    p = np.array([0.01, 0.2, 0.5, 0.9])
    assert np.allclose(points(p, CARD), offset + factor * np.log((1 - p) / p), atol=1e-9)


def test_predict_writes_points_from_the_calibrated_probability(card_run):
    rows = kit.frame(30, seed=8)
    out = card_run.predict(rows)
    assert list(out.columns) == ["p_0", "p_1", "points"]
    assert np.allclose(out["points"].to_numpy(), points(out["p_1"].to_numpy(), CARD))
    assert (np.diff(out.sort_values("p_1")["points"].to_numpy()) <= 0).all()


def test_a_scorecard_on_a_multiclass_task_is_a_config_error():
    df = kit.frame(60)
    df["grade"] = np.where(df["a"] > 0, "hi", np.where(df["b"] > 0, "mid", "lo"))
    config = kit.config(task={"type": "multiclass", "target": "grade"}, scorecard={})
    with pytest.raises(ConfigError, match="scorecard"):
        Pipeline.from_config(config, manager=_manager()).fit(df)


# y: 1 bad. Scores sorted: 0.1 g, 0.2 g, 0.3 b, 0.4 g, 0.5 g, 0.6 b, 0.7 g, 0.8 b, 0.9 b, 0.9 g
Y = np.array([0, 0, 1, 0, 0, 1, 0, 1, 1, 0])
P = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9])


def test_choose_cutoff_approves_the_most_rows_that_meet_the_bad_rate():
    # bad rate among p <= cut: 0.1:0, 0.2:0, 0.3:1/3, 0.4:1/4, 0.5:1/5, 0.6:2/6, 0.7:2/7 ...
    assert choose_cutoff(Y, P, 0.25) == 0.5  # 1/5 = 0.2; 0.6 gives 1/3, 0.7 gives 2/7
    assert choose_cutoff(Y, P, 0.30) == 0.7  # 2/7 = 0.286; 0.8 gives 3/8
    assert choose_cutoff(Y, P, 0.40) == 0.9  # all ten: 4/10, the tie at 0.9 together
    assert choose_cutoff(Y, P, 0.10) == 0.2
    below = choose_cutoff(np.array([1, 0]), np.array([0.3, 0.6]), 0.1)
    assert below < 0.3 and not approved(np.array([0.3, 0.6]), below).any()


def test_without_a_target_the_cutoff_approves_as_many_rows_as_there_are_goods():
    assert choose_cutoff(Y, P, None) == 0.6  # six goods: the sixth lowest score


def test_cutoff_table_matches_a_hand_computation():
    (row,) = cutoff_table(Y, P, [("x", 0.5)])
    assert (row.approved, row.rows) == (5, 10)
    assert row.approval_rate == 0.5
    assert row.bad_rate == pytest.approx(1 / 5)
    assert row.bads_caught == pytest.approx(3 / 4)  # bads at 0.6, 0.8, 0.9 declined
    (none,) = cutoff_table(Y, P, [("none", 0.0)])
    assert none.approved == 0 and math.isnan(none.bad_rate) and none.bads_caught == 1.0


def test_decile_cutoffs_approve_each_tenth_of_the_rows():
    cuts = decile_cutoffs(P)
    assert [label for label, _ in cuts][:2] == ["10%", "20%"]
    assert [c for _, c in cuts] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9]


def test_confusion_counts_approved_and_declined_by_outcome():
    matrix = confusion(Y, P, 0.5)
    assert matrix.tolist() == [[4, 2], [1, 3]]  # goods 4 approved, 2 declined; bads 1, 3


def test_score_bands_are_pdo_wide_and_aligned_on_the_base_score():
    pts = np.array([575.0, 590.0, 600.0, 610.0, 645.0])
    y = np.array([1, 1, 0, 0, 0])
    bands = score_bands(pts, y, CARD)
    assert bands == [(560.0, 580.0, 1, 1), (580.0, 600.0, 1, 1), (600.0, 620.0, 2, 0),
                     (640.0, 660.0, 1, 0)]  # fmt: skip


def test_metrics_json_holds_an_interval_for_every_test_metric(card_run, tmp_path):
    run = card_run.save(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    test, found = metrics["test"], metrics["intervals"]["test"]
    assert set(found) == set(test)
    n = metrics["splits"]["test"]
    positives = int(card_run.splits.test["y"].sum())
    for name, iv in found.items():
        assert iv["value"] == test[name]
        assert iv["low"] <= iv["value"] <= iv["high"], name
        assert (iv["rows"], iv["positives"]) == (n, positives)
    assert found["roc_auc"]["high"] > found["roc_auc"]["low"]


def test_the_cutoff_is_chosen_on_the_validation_rows_and_kept_in_metrics(card_run):
    cut = card_run.metrics["cutoff"]
    assert cut["chosen_on"] == "validation" and cut["target_bad_rate"] == 0.2
    val = card_run.splits.validation
    p = card_run.predict_scores(val)[:, 0]
    assert cut["value"] == choose_cutoff(val["y"].to_numpy(), p, 0.2)
    test = card_run.splits.test
    (row,) = cutoff_table(test["y"].to_numpy(), card_run.predict_scores(test)[:, 0],
                          [("c", cut["value"])])  # fmt: skip
    assert cut["test"]["approval_rate"] == row.approval_rate


def test_the_report_shows_cutoffs_bands_gains_and_intervals(card_run, tmp_path):
    run = card_run.save(tmp_path / "run")
    report = (run / "report.md").read_text()
    for heading in ("## How sure", "## Cut-offs", "## Score bands", "## Calibration"):
        assert heading in report, heading
    assert "| **chosen** |" in report and "| 10% |" in report
    assert "| accuracy (at 0.5) |" in report
    assert "| good |" in report and "| bad |" in report
    assert (run / "gains.png").stat().st_size > 0
    assert "(gains.png)" in report


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def test_the_commands_predict_points_and_evaluate_calibrated_scores(tmp_path, kit_manager, capsys):
    from transfuse.cli import main

    kit.frame(200).to_csv(tmp_path / "rows.csv", index=False)
    kit.frame(30, seed=4).to_csv(tmp_path / "new.csv", index=False)
    config = kit.config(
        data={"path": "rows.csv"},
        train={"epochs": 2},
        scorecard={"base_score": 500, "base_odds": 20, "pdo": 40},
        report={"bootstrap_rounds": 100},
    )
    (tmp_path / "pipeline.yaml").write_text(json.dumps(config))
    run, out = tmp_path / "run", tmp_path / "scores.csv"
    assert main(["train", str(tmp_path / "pipeline.yaml"), "--out", str(run)]) == 0
    assert (run / "calibration.json").is_file()
    assert main(["predict", str(run), "--data", str(tmp_path / "new.csv"), "--out", str(out)]) == 0
    scores = pd.read_csv(out)
    card = ScorecardConfig(base_score=500, base_odds=20, pdo=40)
    assert np.allclose(scores["points"], points(scores["p_1"].to_numpy(), card), atol=1e-6)
    loaded = transfuse.load(run)
    assert np.allclose(scores["p_1"], loaded.predict(kit.frame(30, seed=4))["p_1"], atol=1e-9)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "new.csv"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["brier"] == pytest.approx(
        np.mean((scores["p_1"].to_numpy() - kit.frame(30, seed=4)["y"].to_numpy()) ** 2)
    )
