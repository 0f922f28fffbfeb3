"""strategy.pool with ``exact: true``: through fusion.linear the average of the source
logit and the pooled booster's is written into the network, not distilled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import transfuse
import transfuse_strategies
from transfuse import TransferError
from transfuse.bases import TransferContext
from transfuse.testing import cpu_device
from transfuse_strategies import LayerMapOptions
from transfuse_strategies.layermap import LayerMap

tabular = pytest.importorskip("transfuse_tabular")
COLUMNS = ["a", "b", "c"]


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


def network(manager, rows: pd.DataFrame, fusion_name: str):
    from transfuse.model import FusionModel

    device = cpu_device()
    entry = manager.get("encoder", "tabular.gbdt")
    enc = entry.load()(entry.validate_options({"dim": 8, "trees": 30, "threads": 1}), device)
    enc.fit(rows[COLUMNS], target=rows["bad"])
    fusion_entry = manager.get("fusion", fusion_name)
    fusion = fusion_entry.load()(
        fusion_entry.validate_options({"dim": 8, "dropout": 0.0}),
        device,
        input_dims={"applicant": 8},
        num_outputs=1,
    )
    return FusionModel({"applicant": enc}, fusion, 1)


def batch(model, rows: pd.DataFrame) -> dict:
    return {
        "inputs": {"applicant": model.inputs["applicant"].prepare(rows[COLUMNS])},
        "present": {"applicant": torch.ones(len(rows), dtype=torch.bool)},
    }


def logits(model, rows: pd.DataFrame) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(batch(model, rows))["logits"].reshape(-1).double().numpy()


def train(model, rows: pd.DataFrame, steps: int = 60) -> None:
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


def moved(manager, fusion_name: str, **options):
    """A trained source network, and a target network after [layer-map, pool]."""
    source_rows, target_rows = frame(400, 0), frame(150, 1, shift=1.0)
    source = network(manager, source_rows, fusion_name)
    train(source, source_rows)
    target = network(manager, target_rows, fusion_name)

    def batches(rows, size, shuffle=False):
        for start in range(0, len(rows), size):
            yield batch(target, rows.iloc[start : start + size])

    ctx = TransferContext(
        source, target, cpu_device(), target_rows, source_data=source_rows, batches=batches,
        extra={"label": "bad"},
    )  # fmt: skip
    LayerMap(LayerMapOptions(), cpu_device()).prepare(ctx)
    entry = manager.get("strategy", "pool")
    strategy = entry.load()(entry.validate_options({"trees": 20, **options}), cpu_device())
    return source, target, ctx, strategy.prepare(ctx)


def average(source, target, info: dict, rows: pd.DataFrame, mix: float) -> np.ndarray:
    """``(1 - mix) s + mix k p + c``, computed outside the network."""
    enc = target.inputs["applicant"]
    pooled = info["base"] + enc.booster.predict(
        enc._matrix(rows[COLUMNS]), raw_score=True, start_iteration=info["first_tree"]
    )
    return (1 - mix) * logits(source, rows) + mix * info["scale"] * pooled + info["intercept"]


def test_through_fusion_linear_the_logit_is_the_average_exactly(manager):
    source, target, ctx, report = moved(manager, "fusion.linear", exact=True, mix=0.4)
    info = ctx.extra["pool"]
    assert info["trees"] == 20 and info["max_error"] < 1e-4, info["max_error"]
    assert "written into the network exactly" in report.notes[2]
    for rows in (ctx.target_data, frame(300, 2, shift=1.0)):  # labelled and fresh rows
        want = average(source, target, info, rows, 0.4)
        np.testing.assert_allclose(logits(target, rows), want, atol=1e-4)


def test_exact_is_refused_when_the_fusion_is_not_linear(manager):
    with pytest.raises(TransferError, match=r"reach the logit linearly.*ConcatFusion"):
        moved(manager, "fusion.concat", exact=True)


def test_the_default_still_distils_through_fusion_linear(manager):
    _, _, ctx, report = moved(manager, "fusion.linear", distill_epochs=1)
    assert "distilled into the network in 1 epochs" in report.notes[2]
    assert np.isnan(ctx.extra["pool"]["max_error"])


def config(name: str) -> dict:
    return {
        "name": name,
        "task": {"type": "binary", "target": "bad"},
        "data": {"test_size": 0.0, "validation_size": 0.2},
        "inputs": {
            "applicant": {
                "encoder": "tabular.gbdt",
                "columns": COLUMNS,
                "options": {"dim": 8, "trees": 20, "threads": 1},
            }
        },
        "fusion": {"method": "fusion.linear", "options": {"dim": 8}},
        "train": {"epochs": 3, "batch_size": 64, "seed": 0, "device": "cpu", "progress": False},
    }


@pytest.mark.slow  # two runs through the whole workflow, saved and loaded
def test_the_exact_average_survives_the_workflow_and_a_save_and_load(tmp_path):
    from transfuse.pipeline import Pipeline, load

    source_rows, target_rows, fresh = frame(400, 0), frame(150, 1, 1.0), frame(200, 2, 1.0)
    Pipeline.from_config(config("source")).fit(source_rows).save(tmp_path / "source")
    steps = [("layer-map", {}), ("pool", {"exact": True, "trees": 10})]
    result = transfuse.transfer(config("target"), tmp_path / "source", steps, data=target_rows,
                                source_data=source_rows, shift=False)  # fmt: skip
    notes = [n for r in result.reports for n in r.notes]
    assert any("written into the network exactly" in n for n in notes), notes
    before = result.pipeline.predict_scores(fresh)
    result.pipeline.save(tmp_path / "target")
    after = load(tmp_path / "target").predict_scores(fresh)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert not np.allclose(before, load(tmp_path / "source").predict_scores(fresh), atol=1e-3)
