"""The statistics of bench/transfer.py: rank AUC and the paired bootstrap interval."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # transfer.py imports its sibling baselines.py
    try:
        spec = importlib.util.spec_from_file_location("bench_transfer", BENCH / "transfer.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("bench_transfer", None)


def data(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    good = [y + rng.normal(0, 1.0, n) for _ in range(5)]
    weak = [y + rng.normal(0, 3.0, n) for _ in range(5)]
    return y, good, weak


def test_rank_auc_matches_scikit_learn_with_ties(bench):
    y, good, _ = data()
    scores = np.stack([np.round(s, 1) for s in good])  # rounding makes ties
    expected = [roc_auc_score(y, s) for s in scores]
    np.testing.assert_allclose(bench._aucs(y, scores), expected, rtol=1e-12)


def test_paired_difference_of_an_arm_with_itself_is_zero(bench):
    y, good, _ = data()
    arm = bench.Arm("a", "transfer", good)
    assert bench.paired_difference(y, arm, arm, rounds=200) == (0.0, 0.0, 0.0)


def test_a_clearly_better_arm_has_an_interval_above_zero(bench):
    y, good, weak = data()
    point, low, high = bench.paired_difference(
        y, bench.Arm("good", "transfer", good), bench.Arm("weak", "baseline", weak), rounds=300
    )
    expected = np.mean([roc_auc_score(y, g) - roc_auc_score(y, w) for g, w in zip(good, weak)])
    assert point == pytest.approx(expected)
    assert 0 < low < point < high


def test_one_score_vector_pairs_with_every_seed(bench):
    y, good, _ = data()
    one = bench.Arm("source unchanged", "baseline", [good[0]])
    point, _, _ = bench.paired_difference(y, bench.Arm("t", "transfer", good), one, rounds=50)
    expected = np.mean([roc_auc_score(y, g) for g in good]) - roc_auc_score(y, good[0])
    assert point == pytest.approx(expected)
