"""fusion.stack's refit rules (issue 27): one input's bias refit, the one-standard-error
choice of the simplest combination, and training with no joint epochs (``epochs: 0``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import Pipeline, PluginManager
from transfuse.refit import HeldOut, choose_combination


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target)


def held(target: torch.Tensor) -> HeldOut:
    def score(logits: torch.Tensor, rows: np.ndarray) -> float:
        return float(roc_auc_score(target[rows].numpy(), logits.reshape(-1).numpy()))

    return HeldOut(lambda: iter(()), target, bce, score, "roc_auc", seed=0)


def labels(z: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(len(z), generator=gen) < torch.sigmoid(z)).float()


def test_one_input_keeps_its_weight_and_refits_only_the_bias() -> None:
    z = torch.randn(600, generator=torch.Generator().manual_seed(0)) * 2
    target = labels(z + 1.5, seed=1)  # the labels' scale sits 1.5 above the logit
    logits, observed = z[:, None, None], torch.ones(600, 1, dtype=torch.bool)
    choice = choose_combination(
        logits, observed, None, torch.ones(1, 1), torch.zeros(1), ["text"], held(target)
    )
    assert choice["chosen"] == "joint" and torch.equal(choice["weights"], torch.ones(1, 1))
    assert choice["bias"].item() == pytest.approx(1.5, abs=0.3)
    assert "only the bias" in choice["note"]


def two_inputs(noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A signal logit and a second one: pure noise of scale ``noise`` (0: informative)."""
    gen = torch.Generator().manual_seed(seed)
    signal, other = torch.randn(800, generator=gen), torch.randn(800, generator=gen)
    if noise:
        target = labels(3 * signal, seed + 1)
        return torch.stack([3 * signal, noise * other], 1)[:, :, None], target
    return torch.stack([2 * signal, 2 * other], 1)[:, :, None], labels(2 * (signal + other), seed)


def test_the_simplest_rule_drops_an_input_that_only_adds_noise() -> None:
    observed = torch.ones(800, 2, dtype=torch.bool)
    for seed in range(3):
        logits, target = two_inputs(noise=0.3, seed=seed)
        args = (logits, observed, None, torch.ones(2, 1), torch.zeros(1), ["text", "table"])
        choice = choose_combination(*args, held(target), rule="simplest")
        assert choice["chosen"] == "text alone" and choice["rule"] == "simplest"
        assert choice["weights"][:, 0].tolist() == [1.0, 0.0]


def test_the_simplest_rule_keeps_both_inputs_when_both_carry_signal() -> None:
    observed = torch.ones(800, 2, dtype=torch.bool)
    logits, target = two_inputs(noise=0.0, seed=5)
    args = (logits, observed, None, torch.ones(2, 1), torch.zeros(1), ["text", "table"])
    simplest = choose_combination(*args, held(target), rule="simplest")
    assert "alone" not in simplest["chosen"]
    assert (simplest["weights"] > 0).all()


@pytest.fixture(scope="module")
def kit_manager() -> PluginManager:
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    return manager


def test_no_epochs_trains_nothing_yet_refits_scores_and_calibrates(kit_manager) -> None:
    config = kit.config(
        fusion={"method": "fusion.stack", "options": {"dim": 16, "refit_choice": "simplest"}},
        train={"epochs": 0},
    )
    pipeline = Pipeline.from_config(config, manager=kit_manager)
    pipeline.fit(kit.frame(300))
    assert pipeline.metrics["history"] == [] and pipeline.metrics["best_epoch"] == -1
    assert pipeline.result.refit is not None and pipeline.result.refit["rule"] == "simplest"
    assert "roc_auc" in pipeline.metrics["validation"] and pipeline.calibration is not None
    assert pipeline.predict_scores(kit.frame(20, seed=3)).shape == (20, 1)
