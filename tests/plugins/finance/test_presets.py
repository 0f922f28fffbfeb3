"""The LendingClub presets: they parse, name real columns and split the purposes cleanly."""

from __future__ import annotations

import pytest

import transfuse_finance
from transfuse import PluginManager
from transfuse.config import PipelineConfig, load_pipeline, parse_config, resolve
from transfuse_finance.histories import applicant_figures, bureau_table, transactions_table
from transfuse_finance.lending import SHARED_FIELDS, LendingClub, LendingClubModeldata
from transfuse_finance.options import FinanceSourceOptions, HistoryOptions

SOURCES = {
    "finance.lending-club": LendingClub,
    "finance.lending-club-modeldata": LendingClubModeldata,
}
DERIVED = {"statement_png", "call_wav"}
JOINED = {
    "finance.lending-club-transactions": lambda: transactions_table(
        applicant_figures().head(20), HistoryOptions()
    ),
    "finance.lending-club-bureau": lambda: bureau_table(
        applicant_figures().head(20), HistoryOptions()
    ),
}


@pytest.fixture
def presets(transfuse_manager, register_plugin) -> dict[str, PipelineConfig]:
    register_plugin(transfuse_finance, name="transfuse-finance")
    return {name: load_pipeline(name, transfuse_manager) for name in transfuse_finance.PRESETS}


def test_every_preset_is_registered_and_parses(presets, transfuse_manager):
    assert set(presets) == {
        "lending-club-source", "lending-club-target",
        "lending-club-grade-2018", "lending-club-bad-2016",
        "demo-source", "demo-target", "lending-club-gbdt-text", "lending-club-histories",
    }  # fmt: skip
    for name, config in presets.items():
        assert config.name == name
        entry = transfuse_manager.get("pipeline", name)
        assert parse_config(config.to_dict()) == config
        assert entry.resource.endswith(".yaml")


@pytest.mark.parametrize("name", list(transfuse_finance.PRESETS))
def test_preset_inputs_name_columns_the_source_returns(presets, name):
    config = presets[name]
    source = SOURCES[config.data.source]
    options = FinanceSourceOptions(**config.data.options)
    columns = set(source(FinanceSourceOptions()).load().columns)
    if options.multimodal:
        columns |= DERIVED
    for join in config.data.join:  # the synthetic histories, joined by loan_id
        table = JOINED[join.source]().columns
        if join.relation == "one-to-many":
            assert set(join.columns or []) <= set(table) and join.order_by in table
            columns.add(join.name)
        else:
            columns |= {f"{join.name}_{c}" for c in table if c != join.key}
    for input_name, spec in config.inputs.items():
        assert set(spec.column_list) <= columns, input_name
        assert config.task.target not in spec.column_list
        assert not set(spec.column_list) & set(source.dropped)
    assert config.task.target == source.target
    assert set(config.data.where) <= columns


def test_purpose_shift_splits_every_purpose_once(presets):
    source, target = presets["lending-club-source"], presets["lending-club-target"]
    purposes = set(LendingClub(FinanceSourceOptions()).load()["loan_purpose"])
    left = set(source.data.where["loan_purpose"])
    right = set(target.data.where["loan_purpose"])
    assert left == {"debt_consolidation", "credit_card"}
    assert not left & right and left | right == purposes
    assert source.inputs == target.inputs
    assert target.data.label_budget == 200 and source.data.label_budget is None
    assert target.transfer is not None and target.transfer.from_ == "runs/lending-club-source"


def test_cross_schema_pair_shares_the_canonical_applicant_input(presets):
    source, target = presets["lending-club-grade-2018"], presets["lending-club-bad-2016"]
    assert source.inputs["applicant"] == target.inputs["applicant"]
    assert source.inputs["applicant"].column_list == list(SHARED_FIELDS)
    assert target.data.label_budget == 200
    assert target.transfer is not None
    assert target.transfer.steps()[0][0] == "strategy.layer-map"
    assert target.transfer.from_ == "runs/lending-club-grade-2018"


def test_presets_resolve_against_the_installed_encoders_and_strategies():
    manager = PluginManager()
    active = {r.name for r in manager.records() if r.status == "active"}
    needed = {"finance", "tabular", "text", "image", "audio", "strategies"}
    if not needed <= active:
        pytest.skip(f"plugins not installed: {sorted(needed - active)}")
    for name in transfuse_finance.PRESETS:
        resolved = resolve(load_pipeline(name, manager), manager)
        assert "data" in resolved and "inputs.applicant" in resolved


def test_the_histories_preset_joins_three_tables_by_loan_and_reads_each(presets):
    config = presets["lending-club-histories"]
    assert config.data.key == "loan_id"
    assert [(j.name, j.source, j.relation) for j in config.data.join] == [
        ("bureau", "finance.lending-club-bureau", "one-to-one"),
        ("transactions", "finance.lending-club-transactions", "one-to-many"),
    ]
    encoders = {name: spec.encoder for name, spec in config.inputs.items()}
    assert encoders == {
        "applicant": "tabular.mlp",
        "bureau": "tabular.mlp",
        "job": "text.sentence-transformer",
        "history": "sequence.gru",
    }
    assert config.inputs["history"].column == "transactions"
    assert config.inputs["job"].options["frozen"] is True
