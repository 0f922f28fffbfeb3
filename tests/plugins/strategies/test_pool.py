"""strategy.pool: the source logit averaged with a booster fitted on source + target rows
pooled, written exactly into a real tabular.gbdt network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import transfuse_strategies
from transfuse import TransferError
from transfuse.bases import TransferContext
from transfuse.testing import cpu_device
from transfuse_strategies import LayerMapOptions
from transfuse_strategies.layermap import LayerMap

tabular = pytest.importorskip("transfuse_tabular")


@pytest.fixture
def manager(transfuse_manager, register_plugin):
    register_plugin(tabular, name="transfuse-tabular")
    register_plugin(transfuse_strategies, name="transfuse-strategies")
    return transfuse_manager


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """a, b numeric, c categorical; bad when b (+ a, in the shifted domain) is large."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"a": rng.standard_normal(n), "b": rng.standard_normal(n)})
    out["c"] = np.where(rng.random(n) < 0.5, "x", "y")
    noise = 0.5 * rng.standard_normal(n)
    out["bad"] = (out["b"] + shift * out["a"] + noise > 0.5).astype("float32")
    return out


def network(manager, rows: pd.DataFrame):
    from transfuse.model import FusionModel

    device = cpu_device()
    entry = manager.get("encoder", "tabular.gbdt")
    enc = entry.load()(entry.validate_options({"dim": 8, "trees": 30, "threads": 1}), device)
    enc.fit(rows[["a", "b", "c"]], target=rows["bad"])
    fusion_entry = manager.get("fusion", "fusion.concat")
    fusion = fusion_entry.load()(
        fusion_entry.validate_options({"dim": 8, "dropout": 0.0}),
        device,
        input_dims={"applicant": 8},
        num_outputs=1,
    )
    return FusionModel({"applicant": enc}, fusion, 1)


def batch(model, rows: pd.DataFrame) -> dict:
    enc = model.inputs["applicant"]
    out = {
        "inputs": {"applicant": enc.prepare(rows[["a", "b", "c"]])},
        "present": {"applicant": torch.ones(len(rows), dtype=torch.bool)},
    }
    if "bad" in rows:  # labelled rows, as the workflow's batches give them
        out["target"] = torch.tensor(rows["bad"].to_numpy(), dtype=torch.float32)
    return out


def logits(model, rows: pd.DataFrame) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(batch(model, rows))["logits"].reshape(-1).double().numpy()


def train(model, rows: pd.DataFrame, steps: int = 150) -> None:
    data, target = batch(model, rows), torch.tensor(rows["bad"].to_numpy(), dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(data)["logits"].reshape(-1), target
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def transferred(manager, source_rows, target_rows, **options):
    """A source network, and a target network moved by [layer-map, pool]."""
    source = network(manager, source_rows)
    train(source, source_rows)
    target = network(manager, target_rows)

    def batches(rows, size, shuffle=False):
        for start in range(0, len(rows), size):
            yield batch(target, rows.iloc[start : start + size])

    ctx = TransferContext(
        source, target, cpu_device(), target_rows, source_data=source_rows, batches=batches,
        extra={"label": "bad"},
    )  # fmt: skip
    LayerMap(LayerMapOptions(), cpu_device()).prepare(ctx)
    before = logits(target, target_rows)
    np.testing.assert_allclose(before, logits(source, target_rows), atol=1e-5)
    entry = manager.get("strategy", "pool")
    strategy = entry.load()(entry.validate_options({"trees": 20, **options}), cpu_device())
    report = strategy.prepare(ctx)
    return source, target, ctx, report


@pytest.mark.slow  # a real gbdt network trained, then distilled
def test_the_network_is_distilled_to_the_average_of_the_two_logits(manager):
    source_rows, target_rows = frame(600, 0), frame(150, 1, shift=1.0)
    source, target, ctx, report = transferred(
        manager, source_rows, target_rows, mix=0.4, distill_epochs=30, distill_lr=0.01
    )
    info = ctx.extra["pool"]
    assert info["trees"] == 20 and "20 trees fitted on 600 source + 150 target" in report.notes[0]
    assert "distilled into the network" in report.notes[2]
    enc = target.inputs["applicant"]
    assert len(enc.leaves_per_tree) == info["first_tree"] + 20
    fresh = frame(300, 2, shift=1.0)
    pooled = info["base"] + enc.booster.predict(
        enc._matrix(fresh[["a", "b", "c"]]), raw_score=True, start_iteration=info["first_tree"]
    )
    average = 0.6 * logits(source, fresh) + 0.4 * info["scale"] * pooled + info["intercept"]
    assert np.corrcoef(logits(target, fresh), average)[0, 1] > 0.95
    assert info["fidelity"] > 0.95


@pytest.mark.slow  # a real gbdt network trained, then distilled
def test_the_pooled_rows_teach_what_the_source_missed(manager):
    from sklearn.metrics import roc_auc_score

    source_rows, target_rows = frame(600, 0), frame(300, 1, shift=1.5)
    source, target, _, _ = transferred(manager, source_rows, target_rows, source_weight=0.2)
    fresh = frame(500, 3, shift=1.5)
    gain = roc_auc_score(fresh["bad"], logits(target, fresh)) - roc_auc_score(
        fresh["bad"], logits(source, fresh)
    )
    assert gain > 0.01, gain


def test_keep_sets_every_learning_rate_to_zero(manager):
    entry = manager.get("strategy", "pool")
    strategy = entry.load()(entry.validate_options({}), cpu_device())
    groups = strategy.param_groups(torch.nn.Linear(2, 1), [{"lr": 0.1, "weight_decay": 0.1}])
    assert groups == [{"lr": 0.0, "weight_decay": 0.0}]


def test_a_network_without_a_gbdt_input_is_refused(manager):
    entry = manager.get("strategy", "pool")
    strategy = entry.load()(entry.validate_options({}), cpu_device())
    model = torch.nn.Module()
    model.head = torch.nn.Linear(4, 1)
    model.inputs = torch.nn.ModuleDict({"applicant": torch.nn.Linear(2, 4)})
    rows = frame(20, 0)
    ctx = TransferContext(model, model, cpu_device(), rows, source_data=rows,
                          batches=lambda *a, **k: iter(()), extra={"label": "bad"})  # fmt: skip
    with pytest.raises(TransferError, match="exactly one tabular.gbdt input"):
        strategy.prepare(ctx)


def test_mix_must_lie_strictly_between_0_and_1(manager):
    entry = manager.get("strategy", "pool")
    with pytest.raises(Exception, match="mix"):
        entry.validate_options({"mix": 1.0})
