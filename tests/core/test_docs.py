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
