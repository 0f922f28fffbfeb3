"""Pipeline configs: YAML loading, strict keys, key paths in errors, component options."""

from __future__ import annotations

import json

import pytest

from transfuse import ConfigError, UnknownComponentError
from transfuse.config import dump_yaml, load_config, parse_config, resolve, schema

MINIMAL = {
    "name": "tiny",
    "task": {"type": "binary", "target": "y"},
    "inputs": {"table": {"encoder": "tabular.mlp", "columns": ["a", "b"]}},
}


def test_a_minimal_config_gets_defaults():
    config = parse_config(MINIMAL)
    assert config.fusion.method == "fusion.concat"
    assert config.train.device == "auto" and config.train.precision == "auto"
    assert config.inputs["table"].column_list == ["a", "b"]


def test_an_unknown_key_is_rejected_with_its_path():
    raw = {**MINIMAL, "train": {"epochs": 3, "learning_rate": 0.1}}
    with pytest.raises(ConfigError, match=r"train\.learning_rate: unknown key"):
        parse_config(raw, "p.yaml")


def test_a_wrong_type_names_the_nested_key():
    raw = {**MINIMAL, "inputs": {"table": {"columns": ["a"], "options": "x"}}}
    with pytest.raises(ConfigError, match=r"inputs\.table\.options"):
        parse_config(raw)


def test_an_input_needs_exactly_one_of_column_or_columns():
    raw = {**MINIMAL, "inputs": {"t": {"column": "a", "columns": ["b"]}}}
    with pytest.raises(ConfigError, match="exactly one of 'column' or 'columns'"):
        parse_config(raw)


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntask: {type: binary\n", "utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(path)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_transfer_strategies_accept_names_and_mappings():
    raw = {
        **MINIMAL,
        "transfer": {"from": "runs/src", "strategies": ["layer-map", {"l2sp": {"alpha": 0.1}}]},
    }
    config = parse_config(raw)
    assert config.transfer.from_ == "runs/src"
    assert config.transfer.steps() == [("layer-map", {}), ("l2sp", {"alpha": 0.1})]
    with pytest.raises(ConfigError, match="one-key mapping"):
        parse_config({**MINIMAL, "transfer": {"strategies": [{"a": {}, "b": {}}]}})


def test_resolve_checks_component_names_with_suggestions(transfuse_manager):
    raw = {**MINIMAL, "inputs": {"t": {"columns": ["a"]}}, "fusion": {"method": "fusion.atention"}}
    with pytest.raises(
        UnknownComponentError, match=r"fusion\.method.*did you mean 'fusion\.attention'"
    ):
        resolve(parse_config(raw), transfuse_manager)


def test_resolve_validates_component_options_against_their_model(transfuse_manager):
    raw = {
        **MINIMAL,
        "inputs": {"t": {"columns": ["a"]}},
        "fusion": {"method": "attention", "options": {"heads": 0}},
    }
    with pytest.raises(ConfigError, match=r"fusion\.options\.heads"):
        resolve(parse_config(raw), transfuse_manager)
    raw["fusion"]["options"] = {"heads": 2, "dims": 3}
    with pytest.raises(ConfigError, match=r"fusion\.options\.dims: unknown key"):
        resolve(parse_config(raw), transfuse_manager)


def test_a_config_round_trips_through_yaml():
    config = parse_config({**MINIMAL, "transfer": {"from": "r", "strategies": ["finetune"]}})
    import yaml

    again = parse_config(yaml.safe_load(dump_yaml(config)))
    assert again == config


def test_the_schema_is_json_and_names_the_sections():
    text = json.dumps(schema())
    for key in ("task", "data", "inputs", "fusion", "train", "transfer"):
        assert f'"{key}"' in text
