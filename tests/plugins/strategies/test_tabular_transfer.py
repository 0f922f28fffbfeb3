"""layer-map on the real tabular encoders (tabular.mlp, tabular.gbdt) inside the real
FusionModel: columns by name, categories by value, GBDT trees kept or boosted further."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from transfuse import TransferError
from transfuse.bases import TransferContext
from transfuse.testing import cpu_device
from transfuse_strategies import LayerMapOptions
from transfuse_strategies.layermap import LayerMap

tabular = pytest.importorskip("transfuse_tabular")


@pytest.fixture
def manager(transfuse_manager, register_plugin):
    register_plugin(tabular, name="transfuse-tabular")
    return transfuse_manager


def frame(n: int, seed: int, columns: list[str], terms: tuple[str, str] = ("t36", "t60")):
    """Numeric a, b, d and categorical c; bad = 1 when b + (c is the second term) is large."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({name: rng.standard_normal(n) for name in ("a", "b", "d")})
    long = rng.random(n) < 0.5
    out["c"] = np.where(long, terms[1], terms[0])
    out["bad"] = ((out["b"] + 2.0 * long + 0.3 * rng.standard_normal(n)) > 1.0).astype("float32")
    return out[[*columns, "bad"]]


def build(
    manager, encoder: str, rows: pd.DataFrame, columns: list[str], label: bool = False, **extra
):
    from transfuse.model import FusionModel

    device = cpu_device()
    entry = manager.get("encoder", encoder)
    gbdt = {"dim": 16, "trees": 40, "threads": 1}
    options = gbdt if encoder == "tabular.gbdt" else {"dim": 16, "hidden": 32, **extra}
    enc = entry.load()(entry.validate_options(options), device)
    if label:
        enc.fit(rows[columns], target=rows["bad"])
    else:
        enc.fit(rows[columns])
    fusion_entry = manager.get("fusion", "fusion.concat")
    fusion = fusion_entry.load()(
        fusion_entry.validate_options({"dim": 16, "dropout": 0.0}),
        device,
        input_dims={"applicant": 16},
        num_outputs=1,
    )
    return FusionModel({"applicant": enc}, fusion, 1)


def columns_of(encoder) -> list[str]:
    return [c["name"] for c in encoder.fitted_state()["columns"]]


def batch(model, rows: pd.DataFrame) -> dict:
    enc = model.inputs["applicant"]
    return {
        "inputs": {"applicant": enc.prepare(rows[columns_of(enc)])},
        "present": {"applicant": torch.ones(len(rows), dtype=torch.bool)},
    }


def fit(model, rows: pd.DataFrame, steps: int = 120) -> None:
    data, target = batch(model, rows), torch.tensor(rows["bad"].to_numpy(), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        logits = model(data)["logits"].squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def auc(model, rows: pd.DataFrame) -> float:
    with torch.no_grad():
        scores = model(batch(model, rows))["logits"].squeeze(1).numpy()
    return float(roc_auc_score(rows["bad"], scores))


def prepare(source, target, rows, **options):
    ctx = TransferContext(source, target, cpu_device(), rows, extra={"label": "bad"})
    report = LayerMap(LayerMapOptions.model_validate(options), cpu_device()).prepare(ctx)
    return {t.name: t for t in report.tensors}, report


def test_mlp_columns_by_name_and_categories_by_value(manager):
    source_rows = frame(400, 0, ["a", "b", "c"])
    source = build(manager, "tabular.mlp", source_rows, ["a", "b", "c"])
    fit(source, source_rows, steps=80)
    target_rows = frame(400, 1, ["b", "c", "d"], terms=("36", "60"))
    target = build(manager, "tabular.mlp", target_rows, ["b", "c", "d"])
    fresh = auc(target, target_rows)
    tensors, _ = prepare(source, target, target_rows, values={"c": {"t36": "36", "t60": "60"}})
    assert tensors["inputs.applicant.columns.b.missing"].fate == "copied"
    assert tensors["inputs.applicant.columns.d.missing"].fate == "reinitialised"
    embedding = tensors["inputs.applicant.columns.c.embedding.weight"]
    assert embedding.fate == "copied" and "by category value" in embedding.note
    first = tensors["inputs.applicant.trunk.blocks.0.weight"]  # sees the columns side by side
    assert first.fate == "reshaped" and "2 of 3 columns" in first.note
    s_enc, t_enc = source.inputs["applicant"], target.inputs["applicant"]
    width = 16  # embedding_dim: b is the first column in both, c the last (numbers first)
    s_first, t_first = s_enc.trunk.blocks[0].weight, t_enc.trunk.blocks[0].weight
    assert s_enc.column_names() == ["a", "b", "c"] and t_enc.column_names() == ["b", "d", "c"]
    assert torch.equal(t_first[:, :width], s_first[:, width : 2 * width])
    assert torch.equal(t_first[:, 2 * width :], s_first[:, 2 * width :])
    s_row = s_enc.category_index("c")["t60"]
    t_row = t_enc.category_index("c")["60"]
    assert torch.equal(
        t_enc.columns["c"].embedding.weight[t_row], s_enc.columns["c"].embedding.weight[s_row]
    )
    transferred = auc(target, target_rows)
    assert transferred > 0.85 and transferred - fresh > 0.2, (fresh, transferred)


def test_gbdt_keeps_the_source_trees_under_renamed_columns(manager):
    source_rows = frame(400, 0, ["a", "b", "c"])
    source = build(manager, "tabular.gbdt", source_rows, ["a", "b", "c"], label=True)
    target_rows = frame(200, 1, ["a", "b", "c"]).rename(columns={"a": "income"})
    target = build(manager, "tabular.gbdt", target_rows, ["income", "b", "c"], label=True)
    tensors, report = prepare(source, target, target_rows, columns={"a": "income"})
    assert tensors["inputs.applicant.leaf_embedding.weight"].fate == "copied"
    assert any("source trees kept" in note for note in report.notes)
    assert sorted(columns_of(target.inputs["applicant"])) == ["b", "c", "income"]
    with torch.no_grad():
        same_rows = target_rows.rename(columns={"income": "a"})
        expected = source(batch(source, same_rows))["logits"]
        assert torch.allclose(target(batch(target, target_rows))["logits"], expected, atol=1e-5)


def test_gbdt_source_trees_need_every_column_they_split_on(manager):
    source_rows = frame(300, 0, ["a", "b", "c"])
    source = build(manager, "tabular.gbdt", source_rows, ["a", "b", "c"], label=True)
    target_rows = frame(200, 1, ["b", "c", "d"])
    target = build(manager, "tabular.gbdt", target_rows, ["b", "c", "d"], label=True)
    with pytest.raises(TransferError, match=r"lacks: \['a'\].*gbdt: target-trees"):
        prepare(source, target, target_rows)
    tensors, _ = prepare(source, target, target_rows, gbdt="target-trees", min_loaded=0)
    assert tensors["inputs.applicant.leaf_embedding.weight"].fate == "reinitialised"


def test_gbdt_continue_boosting_grows_the_leaf_table(manager):
    source_rows = frame(400, 0, ["a", "b", "c"])
    source = build(manager, "tabular.gbdt", source_rows, ["a", "b", "c"], label=True)
    target_rows = frame(300, 1, ["a", "b", "c"])
    target = build(manager, "tabular.gbdt", target_rows, ["a", "b", "c"], label=True)
    old = source.inputs["applicant"].leaf_embedding.weight.detach().clone()
    tensors, _ = prepare(source, target, target_rows, gbdt="continue", boost_trees=5)
    leaves = tensors["inputs.applicant.leaf_embedding.weight"]
    assert leaves.fate == "reshaped" and "trees boosted on the target rows" in leaves.note
    grown = target.inputs["applicant"].leaf_embedding.weight
    assert grown.shape[0] > old.shape[0]
    assert torch.equal(grown[: old.shape[0]], old)


def scores(model, rows: pd.DataFrame) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(batch(model, rows))["logits"].squeeze(1).numpy()


@pytest.mark.parametrize("embedding", ["linear", "ple"])
def test_mlp_takes_the_source_column_statistics_so_it_scores_as_the_source(manager, embedding):
    source_rows = frame(400, 0, ["a", "b", "c"])
    source = build(
        manager, "tabular.mlp", source_rows, ["a", "b", "c"], numeric_embedding=embedding
    )
    fit(source, source_rows, steps=40)
    few = frame(400, 1, ["a", "b", "c"]).iloc[:12].copy()
    few[["a", "b"]] *= 3.0  # another scale
    few["c"] = "t36"  # the target's rows know one category of two
    target = build(manager, "tabular.mlp", few, ["a", "b", "c"], numeric_embedding=embedding)
    t_enc, s_enc = target.inputs["applicant"], source.inputs["applicant"]
    assert t_enc.column_state("b")["quantiles"] != s_enc.column_state("b")["quantiles"]

    _, report = prepare(source, target, few)
    assert t_enc.column_state("b") == s_enc.column_state("b")
    assert t_enc.category_index("c") == s_enc.category_index("c")
    assert any("statistics" in note and "3 of 3 columns" in note for note in report.notes)
    assert report.loaded_fraction == 1.0
    rows = frame(50, 2, ["a", "b", "c"])
    np.testing.assert_allclose(scores(target, rows), scores(source, rows), rtol=1e-5, atol=1e-6)


def test_fitted_columns_target_keeps_the_target_statistics(manager):
    source_rows = frame(400, 0, ["a", "b", "c"])
    source = build(manager, "tabular.mlp", source_rows, ["a", "b", "c"])
    few = frame(400, 1, ["a", "b", "c"]).iloc[:12]
    target = build(manager, "tabular.mlp", few, ["a", "b", "c"])
    own = target.inputs["applicant"].column_state("b")
    _, report = prepare(source, target, few, fitted_columns="target")
    assert target.inputs["applicant"].column_state("b") == own
    assert not any("statistics" in note for note in report.notes)
