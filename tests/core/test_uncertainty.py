"""Per-run intervals: the numpy twins of the tasks' metrics and losses equal the tasks' own
(scikit-learn's, torch's) figures, ties included, so a thousand rounds stay fast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse.builtin import ClassificationOptions, RegressionOptions
from transfuse.tasks import BinaryTask, MulticlassTask, RegressionTask
from transfuse.uncertainty import (
    _loss_terms,
    binary_metrics,
    metric_intervals,
    multiclass_metrics,
    regression_metrics,
)

RNG = np.random.default_rng(0)


def _binary(**options) -> BinaryTask:
    task = BinaryTask(ClassificationOptions(**options), None)
    task.fit(pd.Series([0, 1, 1, 0]))
    return task


def _loss_of(task, labels: pd.Series, logits: np.ndarray) -> float:
    with torch.no_grad():
        return float(task.loss(torch.from_numpy(logits.astype(np.float32)), task.encode(labels)))


@pytest.mark.parametrize("n", [12, 300])
def test_binary_twins_equal_scikit_learn_with_ties(n):
    y = (RNG.random(n) < 0.3).astype(int)
    p = np.round(np.clip(0.3 + 0.3 * (y - 0.3) + 0.2 * RNG.normal(size=n), 0, 1), 1)
    exact = _binary().metrics(pd.Series(y), p.reshape(-1, 1))
    fast = binary_metrics(y, p)
    assert set(fast) == set(exact)
    for name in exact:
        assert fast[name] == pytest.approx(exact[name], abs=1e-12), name


def test_multiclass_and_regression_twins_equal_the_tasks():
    y = RNG.integers(0, 3, 200)
    p = RNG.dirichlet(np.ones(3), 200)
    p[:4] = [1.0, 0.0, 0.0]  # certain rows: log-loss clips them
    task = MulticlassTask(ClassificationOptions(), None)
    task.fit(pd.Series(y))
    exact = task.metrics(pd.Series(y), p)
    assert multiclass_metrics(y, p) == pytest.approx(exact, abs=1e-12)
    values = RNG.normal(size=50)
    pred = (values + RNG.normal(size=50)).reshape(-1, 1)
    reg = RegressionTask(RegressionOptions(), None)
    reg.fit(pd.Series(values))
    assert regression_metrics(values, pred) == pytest.approx(
        reg.metrics(pd.Series(values), pred), abs=1e-12
    )


@pytest.mark.parametrize(
    "task",
    [
        _binary(),
        _binary(label_smoothing=0.2, class_weights={"0": 1.0, "1": 3.0}),
    ],
)
def test_binary_loss_terms_sum_to_the_training_loss(task):
    labels = pd.Series(RNG.integers(0, 2, 80))
    logits = RNG.normal(0, 2, (80, 1))
    num, den = _loss_terms(task, task.encode(labels).numpy().astype(float), logits)
    assert num.sum() / den.sum() == pytest.approx(_loss_of(task, labels, logits), rel=1e-5)


@pytest.mark.parametrize("options", [{}, {"class_weights": "balanced", "label_smoothing": 0.1}])
def test_multiclass_loss_terms_sum_to_the_weighted_cross_entropy(options):
    labels = pd.Series(RNG.choice(["a", "b", "c"], 90, p=[0.6, 0.3, 0.1]))
    task = MulticlassTask(ClassificationOptions(**options), None)
    task.fit(labels)
    logits = RNG.normal(0, 2, (90, 3))
    num, den = _loss_terms(task, task.encode(labels).numpy().astype(float), logits)
    assert num.sum() / den.sum() == pytest.approx(_loss_of(task, labels, logits), rel=1e-5)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_regression_loss_terms_sum_to_the_loss(loss):
    values = pd.Series(RNG.normal(5, 3, 60))
    task = RegressionTask(RegressionOptions(loss=loss), None)
    task.fit(values)
    logits = RNG.normal(0, 2, (60, 1))
    num, den = _loss_terms(task, task.encode(values).numpy().astype(float), logits)
    assert num.sum() / den.sum() == pytest.approx(_loss_of(task, values, logits), rel=1e-5)


def test_every_metric_and_the_loss_get_an_interval_around_their_value():
    task = _binary()
    y = (RNG.random(400) < 0.25).astype(int)
    logits = (2 * y - 0.5 + RNG.normal(0, 1.5, 400)).reshape(-1, 1)
    p = 1 / (1 + np.exp(-logits))
    labels = pd.Series(y)
    point = {**task.metrics(labels, p), "loss": _loss_of(task, labels, logits)}
    found = metric_intervals(task, labels, p, logits, point, rounds=300, seed=1)
    assert set(found) == set(point)
    for name, iv in found.items():
        assert iv.value == point[name] and iv.low <= iv.value <= iv.high, name
        assert (iv.rows, iv.positives) == (400, int(y.sum()))
    assert 0.0 < found["roc_auc"].high - found["roc_auc"].low < 0.2
    assert metric_intervals(task, labels, p, logits, point, rounds=0) == {}


def test_a_task_whose_figures_differ_is_resampled_through_its_own_metrics():
    class Shifted(BinaryTask):
        def metrics(self, labels, scores):
            return {"brier": float(np.mean((scores[:, 0] - self.encode(labels).numpy()) ** 2)) + 1}

    task = Shifted(ClassificationOptions(), None)
    task.fit(pd.Series([0, 1]))
    y = np.array([0, 1] * 30)
    p = np.clip(y * 0.6 + 0.2 + RNG.normal(0, 0.1, 60), 0, 1).reshape(-1, 1)
    point = task.metrics(pd.Series(y), p)
    found = metric_intervals(task, pd.Series(y), p, np.zeros((60, 1)), point, rounds=50)
    assert found["brier"].low > 1.0  # the task's own figure, not the numpy twin's


def test_binary_intervals_counted_over_all_rounds_equal_resampling_round_by_round():
    from transfuse.intervals import interval

    task = _binary(label_smoothing=0.1)
    y = (RNG.random(500) < 0.3).astype(int)
    logits = np.round(2 * y - 0.7 + RNG.normal(0, 1.5, 500), 1).reshape(-1, 1)  # ties
    p = 1 / (1 + np.exp(-logits))
    labels = pd.Series(y)
    point = {**task.metrics(labels, p), "loss": _loss_of(task, labels, logits)}
    found = metric_intervals(task, labels, p, logits, point, rounds=200, seed=3)
    num, den = _loss_terms(task, y.astype(np.float64), logits.astype(np.float64))

    def one_round(rows: np.ndarray) -> dict[str, float]:
        return {**binary_metrics(y[rows], p[rows, 0]), "loss": num[rows].sum() / den[rows].sum()}

    expected = interval(one_round, 500, labels=y, positives=int(y.sum()), rounds=200, seed=3)
    assert set(found) == set(expected)
    for name, iv in found.items():
        assert iv.low == pytest.approx(expected[name].low, abs=1e-9), name
        assert iv.high == pytest.approx(expected[name].high, abs=1e-9), name
