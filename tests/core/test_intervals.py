"""Bootstrap intervals: stratified resampling, intervals that contain the point, paired
differences."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from transfuse.intervals import interval, paired, resamples


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    good = y + rng.normal(0, 0.8, n)  # a strong model
    weak = y + rng.normal(0, 3.0, n)  # a weak one, on the same rows
    return y, good, weak


def test_stratified_resamples_keep_each_class_count() -> None:
    y = np.array([0] * 90 + [1] * 10)
    draws = resamples(len(y), 50, strata=y, seed=1)
    assert draws.shape == (50, 100)
    assert (y[draws].sum(axis=1) == 10).all()


def test_an_interval_contains_its_point_and_reports_rows_and_positives() -> None:
    y, good, _ = _data()
    found = interval(
        lambda r: {"roc_auc": roc_auc_score(y[r], good[r])},
        len(y),
        labels=y,
        positives=int(y.sum()),
        rounds=200,
    )["roc_auc"]
    assert found.low < found.value < found.high
    assert found.high - found.low < 0.2
    assert found.to_dict()["rows"] == 400 and found.to_dict()["positives"] == int(y.sum())


def test_a_paired_difference_between_a_strong_and_a_weak_model_excludes_zero() -> None:
    y, good, weak = _data()
    diff = paired(
        lambda r: {"roc_auc": roc_auc_score(y[r], good[r])},
        lambda r: {"roc_auc": roc_auc_score(y[r], weak[r])},
        len(y),
        labels=y,
        rounds=200,
    )["roc_auc"]
    assert diff.value > 0 and diff.excludes_zero()
    same = paired(
        lambda r: {"roc_auc": roc_auc_score(y[r], good[r])},
        lambda r: {"roc_auc": roc_auc_score(y[r], good[r])},
        len(y),
        labels=y,
        rounds=50,
    )["roc_auc"]
    assert same.value == 0 and not same.excludes_zero()


def test_the_vectorised_binary_metrics_match_scikit_learn_with_ties() -> None:
    from sklearn import metrics as skm

    from transfuse.intervals import binary_metrics

    rng = np.random.default_rng(3)
    for decimals in (1, 2, 6):
        y = (rng.random(150) < 0.3).astype(int)
        p = np.round(rng.random(150), decimals)  # few decimals: many tied scores
        found = {k: float(v[0]) for k, v in binary_metrics(y, p).items()}
        fpr, tpr, _ = skm.roc_curve(y, p)
        assert found["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
        assert found["ks"] == pytest.approx(max(tpr - fpr))
        assert found["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
        assert found["brier"] == pytest.approx(skm.brier_score_loss(y, p))
        assert found["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))


def test_binary_intervals_and_paired_differences_cover_every_metric() -> None:
    from transfuse.intervals import BINARY, binary_interval, binary_paired

    y, good, weak = _data()
    p_good, p_weak = 1 / (1 + np.exp(-good)), 1 / (1 + np.exp(-weak))
    single = binary_interval(y, p_good, rounds=300)
    assert set(single) == set(BINARY)
    assert all(i.low <= i.value <= i.high for i in single.values())
    diff = binary_paired(y, p_good, p_weak, rounds=300)
    assert diff["roc_auc"].excludes_zero() and diff["roc_auc"].value > 0
    assert binary_interval(np.zeros(5), np.full(5, 0.5)) == {}  # one class: no interval
