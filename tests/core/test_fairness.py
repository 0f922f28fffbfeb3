"""Group fairness at the cut-off (``report.groups``): per-group figures with intervals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import Pipeline
from transfuse.errors import DataError
from transfuse.fairness import (
    FEW_ROWS,
    FOUR_FIFTHS,
    _by_group_fast,
    _metric_frame,
    fairness,
    fairness_markdown,
    group_labels,
)


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def scored(
    n: int = 600, seed: int = 0, *, penalty: float = 1.5
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Groups ``A`` and ``B`` with the same bad rate, but ``B``'s bad probability is raised
    by ``penalty`` on the logit (so ``B`` is approved less at any cut-off)."""
    rng = np.random.default_rng(seed)
    group = pd.Series(rng.choice(["A", "B"], size=n), name="group")
    risk = rng.normal(size=n)
    y = (risk + rng.normal(size=n) > 1.0).astype(int)
    logit = risk - 1.0 + penalty * (group == "B").to_numpy()
    return group, y, 1 / (1 + np.exp(-logit))


def test_a_group_approved_less_is_flagged_under_four_fifths():
    group, y, p = scored()
    found = fairness(group, y, p, cutoff=float(np.quantile(p, 0.6)), rounds=200)
    b = found["groups"]["B"]
    assert found["most_approved"] == "A"
    assert b["adverse_impact_ratio"]["value"] < FOUR_FIFTHS
    assert b["adverse_impact_ratio"]["high"] < FOUR_FIFTHS  # the whole interval
    assert b["equal_opportunity_difference"]["value"] < 0
    assert len(found["warnings"]) == 1 and "`group` = `B`" in found["warnings"][0]
    assert found["groups"]["A"]["adverse_impact_ratio"]["value"] == 1.0
    markdown = fairness_markdown({"split": "test", "cutoff": 0.3, "columns": {"group": found}})
    assert "## Fairness" in markdown and "**Warning:** `group` = `B`" in markdown


def test_groups_scored_alike_raise_no_warning():
    group, y, p = scored(penalty=0.0)
    found = fairness(group, y, p, cutoff=float(np.quantile(p, 0.6)), rounds=200)
    assert found["warnings"] == []
    assert found["groups"]["B"]["adverse_impact_ratio"]["value"] > FOUR_FIFTHS
    gaps = [found["groups"][g]["calibration_gap"]["value"] for g in ("A", "B")]
    assert abs(gaps[0] - gaps[1]) < 0.05  # miscalibrated alike


def test_each_figure_follows_its_definition_on_rows_counted_by_hand():
    group = pd.Series(["A", "A", "A", "A", "B", "B", "B", "B"], name="g")
    y = np.array([0, 0, 0, 1, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.3, 0.8, 0.4, 0.9])
    found = fairness(group, y, p, cutoff=0.5, rounds=50)
    a, b = found["groups"]["A"], found["groups"]["B"]
    assert (a["rows"], a["bads"], b["rows"], b["bads"]) == (4, 1, 4, 2)
    assert a["approval_rate"]["value"] == 0.5  # 0.1, 0.2 approved (p <= 0.5)
    assert b["approval_rate"]["value"] == 0.5  # 0.3, 0.4
    assert a["good_approval_rate"]["value"] == pytest.approx(2 / 3)  # goods 0.1 0.2 0.6
    assert b["good_approval_rate"]["value"] == 0.5  # goods 0.3 0.8
    assert b["equal_opportunity_difference"]["value"] == pytest.approx(0.5 - 2 / 3)
    assert b["adverse_impact_ratio"]["value"] == 1.0
    assert a["mean_predicted"]["value"] == pytest.approx(0.4)
    assert a["observed_bad_rate"]["value"] == 0.25
    assert a["calibration_gap"]["value"] == pytest.approx(0.15)
    assert a["auc"]["value"] == 1.0  # the bad (0.7) above every good
    assert b["auc"]["value"] == 0.75  # bads 0.4, 0.9 above goods 0.3, 0.8 in 3 pairs of 4


def test_a_group_with_few_rows_is_marked_in_the_report():
    group = pd.Series(["A"] * 40 + ["B"] * 6, name="g")
    y = np.array([0, 1] * 23)
    p = np.linspace(0.05, 0.95, 46)
    found = fairness(group, y, p, cutoff=0.5, rounds=50)
    text = fairness_markdown({"split": "test", "cutoff": 0.5, "columns": {"g": found}})
    assert "| B \\* | 6 |" in text and "| A | 40 |" in text
    assert f"fewer than {FEW_ROWS} rows" in text


def test_the_bootstrap_recomputes_what_the_metric_frame_reports():
    group, y, p = scored(300)
    labels = group_labels(group)
    names = sorted(set(labels))
    codes = np.searchsorted(np.asarray(names, dtype=object), labels)
    frame = _metric_frame(y, p, labels, 0.3).by_group
    fast = _by_group_fast(y, p, codes, names, 0.3)
    for name in names:
        for metric, value in fast[name].items():
            assert frame.loc[name, metric] == pytest.approx(value)


def test_a_numeric_group_column_with_many_values_is_cut_into_quartiles():
    values = pd.Series(np.r_[np.arange(40, dtype=float), np.nan], name="age")
    labels = group_labels(values)
    assert len(set(labels)) == 5 and "(missing)" in set(labels)


def test_a_run_reports_fairness_for_a_column_that_is_not_an_input(kit_manager, tmp_path):
    frame = kit.frame(400)
    # applicants with a high `a` default more and are scored as riskier; half of group
    # "older" is drawn from them, so the model approves "older" less
    frame["age_band"] = np.where(frame["a"] > 0.3, "older", "younger")
    config = kit.config(report={"groups": ["age_band"]})
    pipeline = Pipeline.from_config(config).fit(frame)
    path = pipeline.save(tmp_path / "run")
    metrics = json.loads((path / "metrics.json").read_text())
    result = metrics["fairness"]["columns"]["age_band"]
    older = result["groups"]["older"]
    assert older["adverse_impact_ratio"]["value"] < FOUR_FIFTHS
    assert older["adverse_impact_ratio"]["low"] <= older["adverse_impact_ratio"]["value"]
    if "cutoff" in metrics:  # the run's own cut-off (chosen on the validation rows)
        assert metrics["fairness"]["cutoff"] == metrics["cutoff"]["value"]
    report = (path / "report.md").read_text()
    assert "## Fairness" in report and "**Warning:** `age_band` = `older`" in report


def test_a_group_column_missing_from_the_rows_is_a_data_error(kit_manager):
    config = kit.config(report={"groups": ["sex"]})
    with pytest.raises(DataError, match=r"report\.groups.*'sex'"):
        Pipeline.from_config(config).fit(kit.frame(100))
