"""strategy.layer-map: cross-schema mapping, rules, shape policies, the min_loaded guard."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from transfuse import ConfigError, TransferError
from transfuse_strategies import LayerMapOptions
from transfuse_strategies.layermap import LayerMap


def layer_map(kit, **options):
    return LayerMap(LayerMapOptions.model_validate(options), kit.device())


def fates(report) -> dict[str, str]:
    return {t.name: t.fate for t in report.tensors}


@pytest.fixture(scope="module")
def trained_once(kit):
    """A source trained on columns a, b, c (label from b + c) and a fresh target on b, c, d."""
    source_rows = kit.toy_frame(400, seed=0, columns="abc")
    source = kit.table_model(source_rows, ["a", "b", "c"], seed=0)
    kit.train(source, source_rows, "y")
    target_rows = kit.toy_frame(400, seed=1, columns="bcd")
    target = kit.table_model(target_rows, ["b", "c", "d"], seed=1)
    return source, target, target_rows


@pytest.fixture
def trained(trained_once):
    """Fresh copies of the trained source and the untouched target, for one test."""
    source, target, rows = trained_once
    return copy.deepcopy(source), copy.deepcopy(target), rows


def test_cross_schema_copies_shared_columns_and_initialises_new_ones(kit, trained):
    source, target, rows = trained
    report = layer_map(kit).prepare(kit.context(source, target, rows))
    fate = fates(report)
    for column in "bc":
        assert fate[f"inputs.t.columns.{column}.weight"] == "copied"
        assert fate[f"inputs.t.columns.{column}.bias"] == "copied"
    assert fate["inputs.t.columns.d.weight"] == "reinitialised"
    assert fate["inputs.t.columns.d.bias"] == "reinitialised"
    assert not any(".columns.a." in name for name in fate)
    assert any("inputs.t.columns.a.weight" in note for note in report.notes)
    assert fate["inputs.t.shared.weight"] == fate["fusion.proj.weight"] == "copied"
    assert 0.5 < report.loaded_fraction < 1.0
    table = report.to_markdown()  # counts per module; the per-tensor list is in transfer.json
    assert "| module | copied | reinitialised |" in table
    assert "| `inputs.t` | 6 | 2 |" in table and "inputs.t.columns.d.weight" not in table


def test_cross_schema_predictions_use_the_copied_columns(kit, trained):
    source, target, rows = trained
    untouched = copy.deepcopy(target)
    layer_map(kit).prepare(kit.context(source, target, rows))
    batch = kit.batch_of(target, rows)
    enc_s, enc_t = source.inputs["t"], target.inputs["t"]
    x = batch["inputs"]["t"]
    total = enc_s.columns["b"](x["b"]) + enc_s.columns["c"](x["c"]) + enc_t.columns["d"](x["d"])
    expected = source.head(torch.tanh(source.fusion.proj(torch.relu(enc_s.shared(total)))))
    with torch.no_grad():
        got = target(batch)["logits"]
        assert torch.allclose(got, expected, atol=1e-6)
        auc = roc_auc_score(rows["y"], got.squeeze(1).numpy())
        fresh_auc = roc_auc_score(rows["y"], untouched(batch)["logits"].squeeze(1).numpy())
    # The label depends on b and c: the copied columns carry the source's skill untrained.
    assert auc > 0.9, auc
    assert abs(fresh_auc - 0.5) < 0.25 and auc - fresh_auc > 0.2, (auc, fresh_auc)


def test_new_tensors_are_explicitly_initialised_not_left_alone(kit, trained):
    source, target, rows = trained
    before = target.inputs["t"].columns["d"].weight.detach().clone()
    layer_map(kit).prepare(kit.context(source, target, rows))
    after = target.inputs["t"].columns["d"].weight.detach()
    assert not torch.equal(before, after)
    bound = 1 / 8**0.5  # vectors of a module without reset_parameters: U(-1/sqrt(d), 1/sqrt(d))
    assert after.abs().max() <= bound and after.std() > 0
    again = kit.table_model(rows, ["b", "c", "d"], seed=1)
    layer_map(kit).prepare(kit.context(source, again, rows))
    assert torch.equal(again.inputs["t"].columns["d"].weight, after), "seeded: reproducible"


def test_init_keep_leaves_the_targets_own_values(kit, trained):
    source, target, rows = trained
    before = target.inputs["t"].columns["d"].weight.detach().clone()
    report = layer_map(kit, init="keep").prepare(kit.context(source, target, rows))
    assert torch.equal(target.inputs["t"].columns["d"].weight, before)
    assert fates(report)["inputs.t.columns.d.weight"] == "reinitialised"


def test_column_rename_maps_a_column_under_another_name(kit, trained):
    source, _, _ = trained
    rows = kit.toy_frame(50, seed=2, columns="bcd").rename(columns={"d": "a_renamed"})
    target = kit.table_model(rows, ["b", "c", "a_renamed"], seed=1)
    report = layer_map(kit, columns={"a": "a_renamed"}).prepare(kit.context(source, target, rows))
    assert fates(report)["inputs.t.columns.a_renamed.weight"] == "copied"
    assert torch.equal(
        target.inputs["t"].columns["a_renamed"].weight, source.inputs["t"].columns["a"].weight
    )


def _category_models(kit):
    source_rows = pd.DataFrame(
        {"term": ["term_36", "term_60", "term_36", "other"], "x": [1.0, 2, 3, 4]}
    )
    target_rows = pd.DataFrame({"term": ["36", "60", "new", "36"], "x": [1.0, 2, 3, 4]})
    source = kit.table_model(source_rows, ["term", "x"], seed=0)
    target = kit.table_model(target_rows, ["term", "x"], seed=1)
    return source, target, target_rows


def test_categories_map_by_value_with_a_value_map(kit):
    source, target, rows = _category_models(kit)
    options = {"values": {"term": {"term_36": 36, "term_60": "60"}}}
    report = layer_map(kit, **options).prepare(kit.context(source, target, rows))
    s_enc, t_enc = source.inputs["t"], target.inputs["t"]
    s_w = s_enc.columns["term"].embedding.weight
    t_w = t_enc.columns["term"].embedding.weight
    s_index, t_index = s_enc.category_index("term"), t_enc.category_index("term")
    assert torch.equal(t_w[t_index["36"]], s_w[s_index["term_36"]])
    assert torch.equal(t_w[t_index["60"]], s_w[s_index["term_60"]])
    assert torch.equal(t_w[0], s_w[0]), "the unknown row pairs by position"
    loaded = torch.stack([s_w[0], s_w[s_index["term_36"]], s_w[s_index["term_60"]]])
    assert torch.allclose(t_w[t_index["new"]], loaded.mean(0)), "a new category starts at the mean"
    entry = next(t for t in report.tensors if t.name == "inputs.t.columns.term.embedding.weight")
    assert entry.fate == "reshaped" and "3 of 4 rows" in entry.note


def test_categories_without_a_value_map_share_nothing(kit):
    source, target, rows = _category_models(kit)
    ctx = kit.context(source, target, rows)
    report = layer_map(kit, min_loaded=0.0).prepare(ctx)
    entry = next(t for t in report.tensors if t.name == "inputs.t.columns.term.embedding.weight")
    assert entry.fate == "reshaped" and "1 of 4 rows" in entry.note  # only the unknown row
    assert ctx.extra["loaded"][entry.name].tolist() == [True, False, False, False]


def _linear_models(out_source: int, out_target: int):
    def model(k: int) -> nn.Module:
        m = nn.Module()
        m.inputs = nn.ModuleDict({"x": nn.Linear(4, 8)})
        m.fusion = nn.Linear(8, 8)
        m.head = nn.Linear(8, k)
        return m

    torch.manual_seed(0)
    return model(out_source), model(out_target)


def test_a_different_head_width_is_reinitialised_by_default_and_sliced_on_request(kit):
    source, target = _linear_models(3, 2)
    report = layer_map(kit).prepare(kit.context(source, target, pd.DataFrame()))
    assert fates(report)["head.weight"] == "reinitialised"
    assert "shape (3, 8) -> (2, 8)" in next(
        t.note for t in report.tensors if t.name == "head.weight"
    )
    source, target = _linear_models(3, 5)
    rules = [{"from": "head.*", "shape": "slice"}]
    ctx = kit.context(source, target, pd.DataFrame())
    report = layer_map(kit, rules=rules).prepare(ctx)
    assert fates(report)["head.weight"] == "reshaped"
    assert torch.equal(target.head.weight[:3], source.head.weight)
    assert ctx.extra["loaded"]["head.weight"].tolist() == [True, True, True, False, False]


def test_reinit_and_skip_policies(kit):
    source, target = _linear_models(1, 1)
    before = target.fusion.weight.detach().clone()
    rules = [{"from": "fusion.*", "shape": "skip"}, {"from": "head.*", "shape": "reinit"}]
    report = layer_map(kit, rules=rules, min_loaded=0).prepare(
        kit.context(source, target, pd.DataFrame())
    )
    fate = fates(report)
    assert fate["fusion.weight"] == "skipped" and torch.equal(target.fusion.weight, before)
    assert fate["head.weight"] == "reinitialised"
    assert not torch.equal(target.head.weight, source.head.weight)
    assert fate["inputs.x.weight"] == "copied"


def test_glob_and_regex_rules_rename_inputs(kit):
    source, _ = _linear_models(1, 1)
    target = nn.Module()
    target.inputs = nn.ModuleDict({"borrower": nn.Linear(4, 8)})
    target.fusion, target.head = nn.Linear(8, 8), nn.Linear(8, 1)
    for rule in (
        {"from": "inputs.x.*", "to": "inputs.borrower.*"},
        {"from": r"re:inputs\.x\.(\w+)", "to": r"re:inputs.borrower.\1"},
    ):
        report = layer_map(kit, rules=[rule]).prepare(kit.context(source, target, pd.DataFrame()))
        assert fates(report)["inputs.borrower.weight"] == "copied"
        assert torch.equal(target.inputs["borrower"].weight, source.inputs["x"].weight)


def test_min_loaded_failure_says_what_and_how_to_fix(kit):
    source, target = _linear_models(1, 1)
    wrapped = nn.Module()
    wrapped.model = source  # a key prefix: the classic silent load_state_dict(strict=False)
    with pytest.raises(TransferError) as caught:
        layer_map(kit).prepare(kit.context(wrapped, target, pd.DataFrame()))
    message = str(caught.value)
    assert "only 0.0% of the target's parameters were loaded" in message
    assert "min_loaded 0.5" in message and "model.inputs.x.weight" in message
    assert "add rules mapping source names to target names" in message
    report = layer_map(kit, rules=[{"from": "model.*", "to": "*"}]).prepare(
        kit.context(wrapped, target, pd.DataFrame())
    )
    assert report.loaded_fraction == 1.0


def test_buffers_such_as_batch_norm_statistics_are_copied(kit):
    def model() -> nn.Module:
        m = nn.Module()
        m.inputs = nn.ModuleDict({"x": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))})
        m.fusion, m.head = nn.Linear(8, 8), nn.Linear(8, 1)
        return m

    source, target = model(), model()
    source.inputs["x"](torch.randn(32, 4) * 5)  # move the running statistics
    report = layer_map(kit).prepare(kit.context(source, target, pd.DataFrame()))
    assert torch.equal(target.inputs["x"][1].running_mean, source.inputs["x"][1].running_mean)
    assert "buffers: 3 of 3 copied" in " ".join(report.notes)


def test_rule_validation_errors(kit):
    with pytest.raises(ConfigError, match="more wildcards"):
        layer_map(kit, rules=[{"from": "head.weight", "to": "head.*"}])
    with pytest.raises(ValueError, match="both be globs"):
        LayerMapOptions.model_validate({"rules": [{"from": "re:a", "to": "b"}]})
