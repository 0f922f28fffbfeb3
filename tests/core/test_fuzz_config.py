"""Fuzzing the config loader: whatever a file holds, it loads or it is a TransfuseError.

Three sources of input: arbitrary text, YAML dumps of arbitrary nested values, and
random mutations (replace, delete, add a key) of a valid pipeline that uses the installed
plugins' real option models. Each is parsed and resolved as ``config validate`` does it.
Derandomized with small example counts, so CI is deterministic and fast.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transfuse import TransfuseError
from transfuse.config import load_config, parse_config, resolve
from transfuse.plugins import PluginManager

#: More examples for a longer hunt: TRANSFUSE_FUZZ_EXAMPLES=5000 pytest tests/core/test_fuzz*.py
EXAMPLES = int(os.environ.get("TRANSFUSE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: A valid pipeline over the installed plugins' components, with options for each.
VALID: dict[str, Any] = {
    "name": "fuzz",
    "description": "a pipeline that validates",
    "task": {"type": "binary", "target": "y", "options": {}},
    "data": {"path": "rows.csv", "test_size": 0.2, "where": {"kind": ["a", "b"]}},
    "inputs": {
        "table": {"encoder": "tabular.mlp", "columns": ["a", "b"], "options": {"dim": 16}},
        "note": {"encoder": "text.bag-of-words", "column": "note", "options": {}},
        "call": {"encoder": "audio.mel-cnn", "column": "call_wav", "options": {"dim": 8}},
    },
    "fusion": {"method": "fusion.attention", "options": {"dim": 16, "heads": 2}},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.001, "device": "cpu", "seed": 0},
    "transfer": {
        "from": "runs/source",
        "strategies": [{"layer-map": {"min_loaded": 0.1}}, "finetune", {"l2sp": {"alpha": 0.01}}],
    },
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "auto", "cpu", "tpu9", "binary", "tabular.mlp", "fusion.x", "*", "-1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def installed() -> PluginManager:
    """The installed plugins (their real option models), not the test's core-only manager."""
    return PluginManager()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside nested dicts and lists."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _mutate(data: dict[str, Any], path: tuple[Any, ...], how: str, new: Any, key: str) -> None:
    parent: Any = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = new
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last][key] = new
    else:
        parent[last] = [parent[last], new]


def _validate(raw: Any, manager: PluginManager) -> None:
    """What `config validate` does with a parsed document; only TransfuseError may escape."""
    try:
        config = parse_config(raw, "fuzz.yaml")
        resolve(config, manager, need_source=True)
    except TransfuseError as exc:
        assert "\n" not in str(exc)


def test_the_valid_pipeline_validates(installed: PluginManager) -> None:
    resolve(parse_config(copy.deepcopy(VALID)), installed, need_source=True)


@FUZZ
@given(
    path=st.sampled_from(_paths(VALID)),
    how=st.sampled_from(["replace", "replace", "delete", "add", "wrap"]),
    new=values,
    key=st.sampled_from(["extra", "options", "column", "from", "epochs", "dim", ""]),
)
def test_a_mutated_pipeline_loads_or_is_a_transfuse_error(
    installed: PluginManager, path: tuple[Any, ...], how: str, new: Any, key: str
) -> None:
    data = copy.deepcopy(VALID)
    _mutate(data, path, how, new, key)
    _validate(data, installed)


@FUZZ
@given(document=values)
def test_any_yaml_document_loads_or_is_a_transfuse_error(
    installed: PluginManager, document: Any
) -> None:
    _load_text(yaml.safe_dump(document, allow_unicode=True).encode("utf-8"), installed)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda base, at, junk: base[:at] + junk + base[at:],
            st.just(yaml.safe_dump(VALID, sort_keys=False)),
            st.integers(min_value=0, max_value=900),
            st.text(alphabet=":{}[]-&*!|>'\"#%@`\t\n ,?", max_size=6),
        ),
    )
)
def test_any_text_loads_or_is_a_transfuse_error(installed: PluginManager, text: str) -> None:
    _load_text(text.encode("utf-8"), installed)


@FUZZ
@given(head=st.binary(max_size=40), rest=st.binary(max_size=40))
def test_any_bytes_load_or_are_a_transfuse_error(
    installed: PluginManager, head: bytes, rest: bytes
) -> None:
    _load_text(head + yaml.safe_dump(VALID).encode() + rest, installed)


def _load_text(content: bytes, manager: PluginManager) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_bytes(content)
        try:
            config = load_config(path)
            resolve(config, manager, need_source=True)
        except TransfuseError as exc:
            assert "\n" not in str(exc)
