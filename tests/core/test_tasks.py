"""The built-in tasks: conformance, metrics against scikit-learn, labels, weights, state."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp
from sklearn import metrics as skm
from sklearn.utils.class_weight import compute_class_weight

from transfuse import ConfigError, DataError
from transfuse.plugins import PluginManager
from transfuse.tasks import ks_statistic
from transfuse.testing import check_task, cpu_device


def build(manager: PluginManager, name: str, **options: object):
    entry = manager.get("task", name)
    return entry.load()(entry.validate_options(options), cpu_device())


Y = pd.Series([0, 1, 0, 1, 1, 0, 0, 1], name="bad_loan")
P = np.array([0.1, 0.8, 0.3, 0.35, 0.9, 0.6, 0.2, 0.7])


# -- conformance ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("binary", pd.Series([0, 1, 1, 0, 1])),
        ("binary", pd.Series(["good", "bad", "good", "good"])),
        ("binary", pd.Series([True, False, True])),
        ("multiclass", pd.Series(["a", "b", "c", "a", "c"])),
        ("regression", pd.Series([1.5, 2.0, -3.0, 10.0])),
    ],
)
def test_builtin_tasks_pass_the_conformance_check(transfuse_manager, name, labels):
    task = check_task(transfuse_manager.get("task", name), labels)
    assert json.loads(json.dumps(task.state())) == task.state()


# -- ks ---------------------------------------------------------------------------------


def test_ks_statistic_of_a_known_case():
    # Thresholds 0.35/0.4: TPR 1/2 against FPR 0, then 1 against 1/2.
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx(1.0)


def test_ks_statistic_equals_the_two_sample_ks_of_the_score_distributions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = rng.normal(y * 0.8, 1.0)
    expected = ks_2samp(scores[y == 1], scores[y == 0]).statistic
    assert ks_statistic(y, scores) == pytest.approx(expected)


def test_ks_statistic_refuses_a_single_class():
    with pytest.raises(ValueError, match="both classes"):
        ks_statistic([1, 1, 1], [0.2, 0.5, 0.9])


# -- binary -----------------------------------------------------------------------------


def test_binary_metrics_match_scikit_learn(transfuse_manager):
    task = build(transfuse_manager, "binary")
    task.fit(Y)
    got = task.metrics(Y, P[:, None])
    hard = (P >= 0.5).astype(int)
    assert got == pytest.approx(
        {
            "roc_auc": skm.roc_auc_score(Y, P),
            "ks": ks_statistic(Y, P),
            "pr_auc": skm.average_precision_score(Y, P),
            "brier": skm.brier_score_loss(Y, P),
            "log_loss": skm.log_loss(Y, P),
            "accuracy": skm.accuracy_score(Y, hard),
            "macro_f1": skm.f1_score(Y, hard, average="macro"),
        }
    )
    assert task.default_metric == "roc_auc"
    assert task.greater_is_better("roc_auc") and not task.greater_is_better("brier")


def test_binary_metrics_leave_out_what_one_class_cannot_define(transfuse_manager):
    task = build(transfuse_manager, "binary")
    task.fit(Y)
    got = task.metrics(pd.Series([1, 1, 1]), np.array([[0.9], [0.2], [0.6]]))
    assert not {"roc_auc", "ks", "pr_auc"} & set(got)
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert all(math.isfinite(v) for v in got.values())


def test_binary_string_labels_round_trip_through_the_state(transfuse_manager):
    labels = pd.Series(["good", "bad", "good", "bad", "good"], name="status")
    task = build(transfuse_manager, "binary", positive="bad")
    task.fit(labels)
    assert task.score_columns() == ["p_bad"]
    assert task.encode(labels).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    restored = build(transfuse_manager, "binary", positive="bad")
    restored.load_state(json.loads(json.dumps(task.state())))
    assert restored.classes == ["good", "bad"]
    assert torch.equal(restored.encode(labels), task.encode(labels))
    assert restored.score_columns() == ["p_bad"]


def test_binary_positive_defaults_to_the_larger_label(transfuse_manager):
    for labels, positive in [
        (pd.Series(["bad", "good", "bad"]), "good"),
        (pd.Series([1, 0, 0]), 1),
        (pd.Series([True, False]), True),
        (pd.Series([1.0, 0.0, 1.0]), 1),
    ]:
        task = build(transfuse_manager, "binary")
        task.fit(labels)
        assert task.positive == positive
        assert type(task.positive) is type(positive)


def test_binary_positive_matches_a_label_given_as_text(transfuse_manager):
    task = build(transfuse_manager, "binary", positive="0")
    task.fit(pd.Series([0, 1, 1]))
    assert task.positive == 0
    assert task.encode(pd.Series([0, 1])).tolist() == [1.0, 0.0]


def test_binary_unknown_positive_is_a_config_error(transfuse_manager):
    task = build(transfuse_manager, "binary", positive="default")
    with pytest.raises(ConfigError, match="task.options.positive"):
        task.fit(pd.Series(["good", "bad"]))


def test_binary_refuses_three_classes(transfuse_manager):
    task = build(transfuse_manager, "binary")
    with pytest.raises(DataError, match="multiclass"):
        task.fit(pd.Series(["a", "b", "c"], name="grade"))


def test_binary_balanced_weights_make_pos_weight_the_class_ratio(transfuse_manager):
    labels = pd.Series([0, 0, 0, 0, 0, 0, 1, 1])
    task = build(transfuse_manager, "binary", class_weights="balanced")
    task.fit(labels)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    assert task.weights == pytest.approx(list(expected))
    assert task.pos_weight() == pytest.approx(3.0)


def test_class_weights_change_the_binary_loss(transfuse_manager):
    labels = pd.Series(["good", "good", "good", "bad"])
    logits = torch.tensor([[0.3], [-0.2], [1.0], [0.5]])
    losses = {}
    for weights in ["none", "balanced", {"bad": 1.0, "good": 4.0}]:
        task = build(transfuse_manager, "binary", positive="bad", class_weights=weights)
        task.fit(labels)
        losses[str(weights)] = task.loss(logits, task.encode(labels)).item()
    target = torch.tensor([0.0, 0.0, 0.0, 1.0])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target)
    assert losses["none"] == pytest.approx(plain.item())
    assert losses["balanced"] > losses["none"]  # the rare 'bad' row counts three times
    assert losses[str({"bad": 1.0, "good": 4.0})] < losses["none"]


def test_label_smoothing_pulls_targets_toward_one_half(transfuse_manager):
    labels = pd.Series([0, 1])
    task = build(transfuse_manager, "binary", label_smoothing=0.2)
    task.fit(labels)
    logits = torch.tensor([[-2.0], [3.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], torch.tensor([0.1, 0.9])
    )
    assert task.loss(logits, task.encode(labels)).item() == pytest.approx(expected.item())


def test_unknown_class_weight_key_is_a_config_error(transfuse_manager):
    task = build(transfuse_manager, "binary", class_weights={"defaulted": 2.0})
    with pytest.raises(ConfigError, match="class_weights"):
        task.fit(pd.Series(["good", "bad"]))


def test_missing_training_labels_are_a_data_error_naming_column_and_count(transfuse_manager):
    task = build(transfuse_manager, "binary")
    with pytest.raises(DataError, match=r"column 'bad_loan': 2 of 5 labels are missing"):
        task.fit(pd.Series([0, 1, None, np.nan, 1], name="bad_loan"))


def test_an_unseen_label_at_metric_time_is_a_data_error(transfuse_manager):
    task = build(transfuse_manager, "binary")
    task.fit(pd.Series(["bad", "good"], name="status"))
    with pytest.raises(DataError, match="'unknown' were not seen in training"):
        task.metrics(pd.Series(["bad", "unknown"], name="status"), np.array([[0.2], [0.7]]))


def test_binary_scores_are_the_sigmoid_of_the_logit(transfuse_manager):
    task = build(transfuse_manager, "binary")
    task.fit(Y)
    logits = torch.tensor([[0.0], [2.0], [-1.0]])
    assert task.scores(logits)[:, 0] == pytest.approx(torch.sigmoid(logits[:, 0]).tolist())


# -- multiclass -------------------------------------------------------------------------


def test_multiclass_metrics_match_scikit_learn(transfuse_manager):
    labels = pd.Series(["A", "B", "C", "A", "C", "B", "A"])
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=len(labels))
    task = build(transfuse_manager, "multiclass")
    task.fit(labels)
    assert task.classes == ["A", "B", "C"]
    assert task.score_columns() == ["p_A", "p_B", "p_C"]
    got = task.metrics(labels, probs)
    y = labels.map({"A": 0, "B": 1, "C": 2})
    assert got == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, probs.argmax(1)),
            "macro_f1": skm.f1_score(y, probs.argmax(1), average="macro"),
            "log_loss": skm.log_loss(y, probs),
            "roc_auc": skm.roc_auc_score(y, probs, multi_class="ovr"),
        }
    )
    assert task.default_metric == "macro_f1"


def test_multiclass_log_loss_of_a_near_certain_row_needs_no_warning(transfuse_manager):
    # a probability under the 1e-7 floor: floored, then summing to one again
    task = build(transfuse_manager, "multiclass")
    task.fit(pd.Series([0, 1, 2]))
    probs = np.array([[1.0 - 2e-9, 1e-9, 1e-9], [0.2, 0.7, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = task.metrics(pd.Series([0, 1]), probs)
    assert got["log_loss"] == pytest.approx((-np.log(1 - 2e-7) - np.log(0.7)) / 2, rel=1e-3)


def test_multiclass_leaves_out_roc_auc_when_a_class_is_absent(transfuse_manager):
    task = build(transfuse_manager, "multiclass")
    task.fit(pd.Series([0, 1, 2]))
    got = task.metrics(pd.Series([0, 1]), np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]))
    assert "roc_auc" not in got
    assert got["accuracy"] == 1.0


def test_class_weights_change_the_multiclass_loss(transfuse_manager):
    labels = pd.Series(["x", "x", "x", "y", "z"])
    logits = torch.tensor(
        [[1.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.3, 0.1], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    )
    plain, balanced = (
        build(transfuse_manager, "multiclass", class_weights=w) for w in ("none", "balanced")
    )
    plain.fit(labels)
    balanced.fit(labels)
    target = plain.encode(labels)
    assert plain.loss(logits, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target).item()
    )
    weights = torch.tensor(
        compute_class_weight("balanced", classes=np.arange(3), y=target.numpy()),
        dtype=torch.float32,
    )
    assert balanced.loss(logits, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target, weight=weights).item()
    )
    assert balanced.loss(logits, target).item() != pytest.approx(plain.loss(logits, target).item())


def test_multiclass_state_round_trips_int_classes(transfuse_manager):
    task = build(transfuse_manager, "multiclass", class_weights="balanced")
    task.fit(pd.Series([3, 1, 2, 2]))
    restored = build(transfuse_manager, "multiclass")
    restored.load_state(json.loads(json.dumps(task.state())))
    assert restored.classes == [1, 2, 3]
    assert restored.weights == pytest.approx(task.weights)
    assert restored.encode(pd.Series([2, 3])).tolist() == [1, 2]


# -- regression -------------------------------------------------------------------------


def test_regression_standardizes_targets_and_destandardizes_scores(transfuse_manager):
    labels = pd.Series([10.0, 20.0, 30.0, 40.0])
    task = build(transfuse_manager, "regression")
    task.fit(labels)
    encoded = task.encode(labels)
    assert encoded.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert encoded.std(correction=0).item() == pytest.approx(1.0, abs=1e-6)
    assert task.scores(encoded[:, None])[:, 0] == pytest.approx(labels.tolist(), rel=1e-5)
    assert task.score_columns() == ["prediction"]


def test_regression_metrics_match_scikit_learn(transfuse_manager):
    labels = pd.Series([1.0, 2.5, 3.0, 7.0])
    pred = np.array([[1.2], [2.0], [3.5], [6.0]])
    task = build(transfuse_manager, "regression")
    task.fit(labels)
    got = task.metrics(labels, pred)
    assert got == pytest.approx(
        {
            "rmse": math.sqrt(skm.mean_squared_error(labels, pred[:, 0])),
            "mae": skm.mean_absolute_error(labels, pred[:, 0]),
            "r2": skm.r2_score(labels, pred[:, 0]),
        }
    )
    assert not task.greater_is_better("rmse") and task.greater_is_better("r2")


def test_regression_huber_loss_is_gentler_on_outliers(transfuse_manager):
    labels = pd.Series([0.0, 1.0, 2.0, 3.0])
    logits = torch.tensor([[5.0], [0.0], [0.0], [0.0]])
    mse, huber = (build(transfuse_manager, "regression", loss=name) for name in ("mse", "huber"))
    for task in (mse, huber):
        task.fit(labels)
    target = mse.encode(labels)
    assert huber.loss(logits, target).item() < mse.loss(logits, target).item()


def test_regression_refuses_text_labels(transfuse_manager):
    task = build(transfuse_manager, "regression")
    with pytest.raises(DataError, match="column 'income'.*not finite numbers"):
        task.fit(pd.Series([1.0, "high", 3.0], name="income"))


def test_nan_scores_are_a_data_error_not_a_missing_metric(transfuse_manager):
    task = build(transfuse_manager, "binary")
    task.fit(Y)
    with pytest.raises(DataError, match="1 of 2 rows have NaN"):
        task.metrics(pd.Series([0, 1]), np.array([[0.3], [np.nan]]))


def test_binary_fits_on_one_class_when_the_positive_one_is_named(transfuse_manager):
    task = build(transfuse_manager, "binary", positive="bad")
    task.fit(pd.Series(["good", "good"]))
    assert task.classes == ["good", "bad"]
    with pytest.raises(DataError, match="exactly two classes"):
        build(transfuse_manager, "binary").fit(pd.Series(["good", "good"]))
