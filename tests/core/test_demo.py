"""The demo's verdict: what the target labels changed, and the transfer against each arm."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from transfuse.demo import Arms, table, what_changed
from transfuse.intervals import Interval


def _arms(source_auc: float, source_brier: float) -> Arms:
    def diff(value: float, low: float, high: float) -> Interval:
        return Interval(value, low, high, 474, 78)

    return Arms(
        y=np.array([0, 1, 0, 1]),
        scores={k: np.array([0.1, 0.8, 0.3, 0.6]) for k in ("source", "pooled", "transfer")},
        metrics={k: {"roc_auc": diff(0.79, 0.73, 0.85)} for k in ("source", "pooled", "transfer")},
        differences={
            "source": {
                "roc_auc": diff(source_auc, -0.0002, 0.0003),
                "brier": diff(source_brier, 0.002, 0.015),
            },
            "pooled": {"roc_auc": diff(-0.011, -0.046, 0.021)},
        },
        notes=[],
    )


def _result(best_epoch: int) -> SimpleNamespace:
    metrics = {"best_epoch": best_epoch, "splits": {"train": 160, "validation": 40}}
    return SimpleNamespace(pipeline=SimpleNamespace(metrics=metrics))


def test_kept_source_weights_are_said_plainly_with_what_still_differs() -> None:
    first, *rest = what_changed(_result(-1), _arms(0.00001, 0.0091))
    assert first.startswith("The 200 target labels did not change the model")
    assert "did not beat the source weights on the other 40" in first
    assert "ranks the held-out rows as the unchanged source model does" in first
    assert "calibration, refit on the 40 validation rows, differs (Brier +0.0091" in first
    assert rest[1] == (
        "Transfer against the pooled LightGBM (source + target rows): ROC-AUC -0.0110 "
        "[-0.0460, +0.0210] (not distinguishable on 474 test rows)."
    )


def test_a_kept_source_calibrator_is_said_instead_of_a_brier_gap() -> None:
    result = _result(-1)
    result.pipeline.calibration = SimpleNamespace(note="the source run's calibrator: ...")
    first, *_ = what_changed(result, _arms(0.00001, 0.0))
    assert first.endswith(
        "and it keeps the source's probability calibration too (the 40 validation rows do "
        "not reject it)."
    )


def test_a_kept_epoch_says_the_labels_changed_the_model() -> None:
    first, source, _ = what_changed(_result(2), _arms(0.03, 0.0))
    assert first == (
        "Fine-tuning on 160 target labels changed the model: epoch 3 was kept by "
        "validation on 40 rows."
    )
    assert "ROC-AUC +0.0300" in source
    assert "source model, unchanged" in table(_arms(0.03, 0.0))
