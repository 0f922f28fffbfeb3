"""docs/strategies.md stays true: every option is documented, and the strategy-author example
is exactly the installable package in examples/custom-strategy, which works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import transfuse_strategies as plugin
from transfuse.plugins import PluginManager
from transfuse.testing import check_strategy

ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "docs" / "strategies.md").read_text("utf-8")
EXAMPLE = ROOT / "examples" / "custom-strategy"

OPTIONS = {
    "strategy.layer-map": plugin.LayerMapOptions,
    "strategy.finetune": plugin.FineTuneOptions,
    "strategy.freeze": plugin.FreezeOptions,
    "strategy.lp-ft": plugin.LpFtOptions,
    "strategy.gradual-unfreeze": plugin.GradualUnfreezeOptions,
    "strategy.l2sp": plugin.L2SPOptions,
    "strategy.replay": plugin.ReplayOptions,
    "strategy.stack": plugin.StackOptions,
    "strategy.source-weights": plugin.SourceWeightsOptions,
    "strategy.coral": plugin.CoralOptions,
    "strategy.dann": plugin.DannOptions,
}


def section(name: str) -> str:
    """The docs text from the ``## `` heading naming ``name`` to the next heading."""
    start = re.search(rf"^## .*{re.escape(name)}\b", DOCS, re.M)
    assert start, f"no section for {name}"
    end = DOCS.find("\n## ", start.end())
    return DOCS[start.start() : end if end != -1 else None]


def shown(value: object) -> str:
    """A default as the docs' tables write it (YAML-ish: null, true, ["*"])."""
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_is_in_the_docs_with_its_default(name):
    text = section(name)
    for field, info in OPTIONS[name].model_fields.items():
        key = info.alias or field
        row = re.search(rf"^\| `{re.escape(key)}` \| ([^|]+) \|", text, re.M)
        assert row, f"{name}: option {key!r} is not documented"
        expected = shown(info.get_default(call_default_factory=True))
        written = row.group(1).strip().strip("`")
        assert written == expected, f"{name}: {key} documented as {written}, is {expected}"


@pytest.mark.parametrize(
    "path", ["transfuse_bias_only/__init__.py", "transfuse_bias_only/strategy.py"]
)
def test_the_docs_example_is_the_example_package(path):
    source = (EXAMPLE / path).read_text("utf-8").strip()
    blocks = [b.strip() for b in re.findall(r"```python\n(.*?)```", DOCS, re.S)]
    assert source in blocks, f"docs/strategies.md does not show {path} as it is"
    assert sum(len([line for line in b.splitlines() if line.strip()]) for b in blocks[-2:]) < 30


def test_the_example_strategy_is_installed_and_works():
    pytest.importorskip("transfuse_bias_only", reason="pip install -e examples/custom-strategy")
    manager = PluginManager()
    entry = manager.get("strategy", "bias-only")
    assert entry.distribution == "transfuse-bias-only"
    strategy = check_strategy(entry)
    from torch import nn

    from transfuse.bases import TransferContext
    from transfuse.testing import cpu_device

    model = nn.Module()
    model.inputs = nn.ModuleDict({"x": nn.Linear(4, 8)})
    model.fusion, model.head = nn.Linear(8, 8), nn.Linear(8, 1)
    strategy.prepare(TransferContext(model, model, cpu_device(), None))  # type: ignore[arg-type]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"inputs.x.bias", "fusion.bias", "head.weight", "head.bias"}
