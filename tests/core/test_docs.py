"""Every hook is documented with its exact signature, and every hook has a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from transfuse import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("transfuse_"))


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in sig.parameters.values()
    )
    return f"def {name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(name):
    docs = (ROOT / "docs" / "hooks.md").read_text("utf-8")
    assert _signature(name) in docs, f"docs/hooks.md lacks `{_signature(name)}`"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_docstring_with_an_example(name):
    doc = getattr(hookspecs, name).__doc__ or ""
    assert "Example::" in doc


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_docs.py"]
    assert any(name in p.read_text("utf-8") for p in tests), f"no test mentions {name}"


# -- what a plugin author reads (issue 26) ---------------------------------------------


def _keys(model, prefix: str = "") -> list[str]:
    """Every key path of a pipeline config model (lists as ``[]``, mappings as ``NAME``)."""
    import typing

    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out.append(key)
        import types

        union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
        args = typing.get_args(field.annotation) if union else (field.annotation,)
        for arg in (a for a in args if a is not type(None)):
            origin = typing.get_origin(arg)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _keys(arg, f"{key}.")
            elif origin is list and isinstance(typing.get_args(arg)[0], type):
                item = typing.get_args(arg)[0]
                if issubclass(item, BaseModel):
                    out += _keys(item, f"{key}[].")
            elif origin is dict:
                value = typing.get_args(arg)[1]
                if isinstance(value, type) and issubclass(value, BaseModel):
                    out += _keys(value, f"{key}.NAME.")
    return out


def test_every_pipeline_key_is_in_the_reference():
    from transfuse.config import PipelineConfig

    page = (ROOT / "docs" / "reference" / "pipeline.md").read_text("utf-8")
    missing = [k for k in _keys(PipelineConfig) if f"| `{k}` |" not in page]
    assert not missing, f"docs/reference/pipeline.md lacks a row for {missing}"


def test_the_plugins_json_shape_is_documented_key_by_key():
    import typing

    from transfuse.plugins import PluginRecord, Status

    page = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    for key in PluginRecord("n", "d", "1", "active").as_json():
        assert f'"{key}":' in page, f"plugins.md does not show the key {key!r} of --json"
    for status in typing.get_args(Status):
        assert status in page.split("## Listing", 1)[1], status


def test_the_encoder_contract_names_every_method():
    from transfuse.bases import Encoder

    page = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    contract = page.split("### The encoder contract", 1)[1].split("\n## ", 1)[0]
    methods = ["fit", "save_fitted", "load_fitted", "missing", "prepare", "forward"]
    methods += ["data_report", "cache_key", "fitted_state", "load_fitted_state"]
    for method in methods:
        assert hasattr(Encoder, method) and f"`{method}" in contract, method
    assert "self.options" in contract and "CPU" in contract


def test_python_examples_import_what_they_use():
    import re

    for page in ("plugins.md", "strategies.md", "hooks.md"):
        text = (ROOT / "docs" / page).read_text("utf-8")
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
            # (a signature's annotation, `column: pd.Series`, is not a use)
            if re.search(r"(?<!: )(?<!-> )\bpd\.", block):
                assert "import pandas as pd" in block, f"{page}: a block uses pd unimported"
            if re.search(r"(?<!: )(?<!-> )\bnp\.", block):
                assert "import numpy as np" in block, f"{page}: a block uses np unimported"
