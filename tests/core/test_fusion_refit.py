"""fusion.stack's refit: the combination refit on held-out rows after training."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

import transfuse
from transfuse import Pipeline, PluginManager
from transfuse.builtin import StackOptions
from transfuse.fusion import StackFusion
from transfuse.refit import HeldOut, refit_fusion
from transfuse.testing import cpu_device

DIMS = {"signal": 4, "noise": 32}


def build(**options: object) -> StackFusion:
    """A ``fusion.stack`` over a 4-wide signal input and a 32-wide noise input."""
    opts = StackOptions.model_validate({"dim": 16, "dropout": 0.0, **options})
    return StackFusion(opts, cpu_device(), input_dims=DIMS, num_outputs=1)


def rows(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The label follows the signal's first feature; the noise input carries nothing."""
    gen = torch.Generator().manual_seed(seed)
    emb = {k: torch.randn(n, d, generator=gen) for k, d in DIMS.items()}
    target = (emb["signal"][:, 0] + 0.5 * torch.randn(n, generator=gen) > 0).float()
    return emb, target


def present(n: int) -> dict[str, torch.Tensor]:
    return {k: torch.ones(n, dtype=torch.bool) for k in DIMS}


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target)


def held_out(emb: dict[str, torch.Tensor], target: torch.Tensor) -> HeldOut:
    def batches() -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        with torch.no_grad():
            for start in range(0, len(target), 64):
                part = {k: v[start : start + 64] for k, v in emb.items()}
                yield part, present(len(part["signal"]))

    def score(logits: torch.Tensor, idx: np.ndarray) -> float:
        return float(roc_auc_score(target[idx].numpy(), logits.reshape(-1).numpy()))

    return HeldOut(batches, target, bce, score, "roc_auc", seed=0)


def overfit(fusion: torch.nn.Module) -> torch.nn.Module:
    """Train jointly on 60 rows, few enough that the 32-wide noise input is memorised."""
    torch.manual_seed(0)
    emb, target = rows(60, seed=1)
    opt = torch.optim.Adam(fusion.parameters(), lr=0.01)
    fusion.train()
    for _ in range(300):
        opt.zero_grad()
        loss = bce(fusion(emb, present(60)), target) + fusion.auxiliary_loss(target, bce)
        loss.backward()
        opt.step()
    return fusion.eval()


@pytest.fixture(scope="module")
def overfitted() -> torch.nn.Module:
    return overfit(build())


@pytest.fixture
def fusion(overfitted: torch.nn.Module) -> torch.nn.Module:
    """A fresh copy of the jointly trained stack (its refit changes it in place)."""
    return copy.deepcopy(overfitted)


def auc(fusion: torch.nn.Module, emb: dict[str, torch.Tensor], target: torch.Tensor) -> float:
    with torch.no_grad():
        out = fusion(emb, present(len(target)))
    return float(roc_auc_score(target.numpy(), out.reshape(-1).numpy()))


def head_auc(fusion, name: str, emb: dict[str, torch.Tensor], target: torch.Tensor) -> float:
    with torch.no_grad():
        logits, _, _ = fusion.head_logits(emb, present(len(target)))
    i = fusion.names.index(name)
    return float(roc_auc_score(target.numpy(), logits[:, i, 0].numpy()))


def test_after_refit_a_pure_noise_input_weighs_about_nothing(fusion):
    emb, target = rows(400, seed=2)
    before = fusion.weights.detach().clone()
    record = fusion.refit(held_out(emb, target))
    weights = {n: float(fusion.weights.detach()[i, 0]) for i, n in enumerate(fusion.names)}
    assert before[fusion.names.index("noise"), 0] > 0.5  # trained jointly, noise was trusted
    assert weights["noise"] < 0.05 * weights["signal"]
    assert record["weights"]["noise"] == [pytest.approx(weights["noise"])]
    assert record["chosen"] != "joint" and "joint" in record["scores"]


def test_after_refit_the_held_out_auc_is_at_least_the_informative_head_alone(fusion):
    emb, target = rows(400, seed=2)
    joint = auc(fusion, emb, target)
    fusion.refit(held_out(emb, target))
    refit = auc(fusion, emb, target)
    assert refit >= head_auc(fusion, "signal", emb, target)
    assert refit > joint
    fresh_emb, fresh_target = rows(1000, seed=3)  # and on rows the refit never saw
    assert (
        auc(fusion, fresh_emb, fresh_target)
        >= head_auc(fusion, "signal", fresh_emb, fresh_target) - 0.005
    )


def test_with_refit_off_the_fusion_is_left_as_trained(fusion):
    fusion.options = fusion.options.model_copy(update={"refit": False})
    state = {k: v.clone() for k, v in fusion.state_dict().items()}
    emb, target = rows(400, seed=2)
    assert fusion.refit(held_out(emb, target)) is None
    assert all(torch.equal(state[k], v) for k, v in fusion.state_dict().items())


def test_a_dropped_interaction_outputs_zero_and_kept_weights_stay_non_negative(fusion):
    emb, target = rows(400, seed=2)
    record = fusion.refit(held_out(emb, target))
    assert (fusion.weights >= 0).all()
    if not record["interaction"]:
        last = fusion.interaction[-1]
        assert not last.weight.any() and not last.bias.any()


def test_too_few_held_out_rows_keep_the_joint_combination(fusion):
    before = fusion.weights.detach().clone()
    emb, target = rows(20, seed=2)
    record = fusion.refit(held_out(emb, target))
    assert record["chosen"] == "joint" and "too few" in record["note"]
    assert torch.equal(fusion.weights.detach(), before)


def stack_config(**options: object) -> dict[str, object]:
    return kit.config(
        inputs={
            "signal": {"encoder": "test.numeric", "columns": ["a", "b"]},
            "noise": {"encoder": "test.numeric", "column": "noise"},
        },
        fusion={"method": "fusion.stack", "options": {"dim": 16, "dropout": 0.0, **options}},
        train={"epochs": 4},
    )


@pytest.fixture(scope="module")
def kit_manager() -> PluginManager:
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    return manager


def test_a_trained_pipeline_logs_the_refit_and_a_saved_run_keeps_its_weights(kit_manager, tmp_path):
    pipeline = Pipeline.from_config(stack_config(), manager=kit_manager).fit(kit.frame(400))
    path = pipeline.save(tmp_path / "run")
    log = json.loads((path / "log.json").read_text())
    refit = log["fusion_refit"]
    assert refit["metric"] == "roc_auc" and set(refit["weights"]) == {"signal", "noise"}
    fusion = pipeline.model.fusion
    assert [fusion.weights[i].tolist() for i in range(2)] == [
        refit["weights"][n] for n in fusion.names
    ]
    loaded = transfuse.load(path, manager=kit_manager)
    assert torch.equal(loaded.model.fusion.weights, fusion.weights)
    assert torch.equal(loaded.model.fusion.bias, fusion.bias)
    frame = kit.frame(60, seed=11)
    assert np.array_equal(pipeline.predict(frame).to_numpy(), loaded.predict(frame).to_numpy())


def test_a_pipeline_with_refit_off_logs_no_refit(kit_manager, tmp_path):
    pipeline = Pipeline.from_config(stack_config(refit=False), manager=kit_manager)
    pipeline.fit(kit.frame(400))
    assert pipeline.result.refit is None
    assert "fusion_refit" not in pipeline.metrics.get("log", {})


def test_any_fusion_with_a_refit_method_gets_the_validation_rows(kit_manager):
    pipeline = Pipeline.from_config(kit.config(), manager=kit_manager).fit(kit.frame(300))
    seen: list[HeldOut] = []

    def refit(held: HeldOut) -> dict[str, object]:
        seen.append(held)
        return {"rows": len(held.target)}

    pipeline.model.fusion.refit = refit  # what a third-party fusion would define
    validation = pipeline.splits.validation
    data = pipeline.frame_batches(validation, labelled=True)
    record = refit_fusion(pipeline.model, data, pipeline.task, pipeline.device, "roc_auc")
    assert record == {"rows": len(validation)}
    held = seen[0]
    embeddings, present = zip(*held.batches())
    assert sum(len(e["a"]) for e in embeddings) == len(validation)
    assert set(present[0]) == {"a", "b"}
    everyone = np.arange(len(validation))
    perfect = held.target.reshape(-1, 1) * 20 - 10  # logits that rank every row right
    assert held.score(perfect, everyone) == pytest.approx(1.0)
    assert held.score(-perfect, everyone) == pytest.approx(0.0)
