"""What a plugin author sees: options listed and checked, strict checks, a broken plugin's
messages, and the conformance kit's words."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from transfuse import EncoderEntry, FusionEntry, Options, StrategyEntry
from transfuse.cli import main
from transfuse.listing import describe_options, pipeline_schema
from transfuse.plugins import PluginManager, make_module, reset_plugin_manager


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transfuse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


BROKEN_IMPORT = "import not_a_module_anywhere\n"

CLAIMS_CONCAT = """
from transfuse import hookimpl, FusionEntry

@hookimpl
def transfuse_fusions():
    return [FusionEntry(name="fusion.concat", factory="squat:F", description="mine")]
"""

BROKEN_FACTORY = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="text.broken", modality="text", description="Its code is gone.",
                         factory="broken_factory_impl:Encoder")]
"""

NOT_AN_ENCODER = """
from transfuse import hookimpl, EncoderEntry

class Encoder:
    pass

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="text.plain", modality="text", description="Not an Encoder.",
                         factory="not_an_encoder:Encoder")]
"""


def _pipeline(tmp_path, encoder: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ntask: {type: binary, target: y}\n"
        f"inputs: {{notes: {{encoder: {encoder}, column: x}}}}\n",
        "utf-8",
    )
    return str(path)


# -- options you can discover ----------------------------------------------------------


def test_plugins_name_prints_each_option_with_type_default_bounds_and_help(capsys):
    assert main(["plugins", "fusion.attention"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fusion fusion.attention\n")
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("dim "))
    assert "int" in line and "128" in line and ">= 1" in line
    assert "Width of the fused representation." in line
    assert "options go in fusion.options" in out


def test_a_short_name_finds_the_component_and_an_unknown_one_suggests(capsys):
    assert main(["plugins", "attention"]) == 0
    assert "fusion fusion.attention" in capsys.readouterr().out
    assert main(["plugins", "fusion.atention"]) == 2
    assert "did you mean 'fusion.attention'" in capsys.readouterr().err


def test_describe_options_reads_the_pydantic_model():
    from typing import Literal

    from pydantic import Field

    class Probe(Options):
        size: int = Field(3, ge=1, le=9, description="How big.")
        mode: Literal["a", "b"] = "a"
        names: list[str] = Field(default_factory=list)
        path: str = Field(description="Required.")

    rows = {r.name: r for r in describe_options(Probe)}
    assert (rows["size"].type, rows["size"].default, rows["size"].bounds) == (
        "int",
        "3",
        ">= 1, <= 9",
    )
    assert rows["size"].help == "How big."
    assert rows["mode"].type == "'a' | 'b'" and rows["names"].default == "[]"
    assert rows["path"].default == "(required)"


def test_listing_a_component_imports_no_torch():
    code = (
        "import sys; from transfuse.cli import main; main(['plugins', 'fusion.attention']);"
        "main(['plugins', '--json']); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_pipeline_schema_checks_each_components_options():
    schema = pipeline_schema(PluginManager(autoload=False))
    fusion = schema["$defs"]["FusionConfig"]
    assert "fusion.attention" in fusion["properties"]["method"]["enum"]
    rule = next(
        r
        for r in fusion["allOf"]
        if "attention" in r["if"].get("properties", {}).get("method", {}).get("enum", [])
    )
    ref = rule["then"]["properties"]["options"]["$ref"].rsplit("/", 1)[-1]
    assert schema["$defs"][ref]["properties"]["heads"]["minimum"] == 1
    assert schema["$defs"][ref]["additionalProperties"] is False
    # No method given: the default's (fusion.concat) options apply.
    assert any(r["if"] == {"not": {"required": ["method"]}} for r in fusion["allOf"])


def test_a_yaml_language_server_would_flag_a_bad_option():
    jsonschema = pytest.importorskip("jsonschema")
    schema = pipeline_schema(PluginManager(autoload=False))
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "name": "p",
        "task": {"type": "binary", "target": "y"},
        "inputs": {"a": {"column": "x"}},
        "fusion": {"method": "attention", "options": {"heads": 2}},
    }
    assert not list(validator.iter_errors(good))
    bad = {**good, "fusion": {"method": "attention", "options": {"heads": 0}}}
    assert [list(e.absolute_path) for e in validator.iter_errors(bad)] == [
        ["fusion", "options", "heads"]
    ]


def test_an_option_given_nan_says_it_must_be_finite():
    from pydantic import Field

    from transfuse import ConfigError

    class Pull(Options):
        alpha: float = Field(0.01, ge=0, le=1000)

    entry = StrategyEntry(name="strategy.pull", factory="m:S", options=Pull, description="x")
    with pytest.raises(ConfigError, match="alpha: Input should be a finite number"):
        entry.validate_options({"alpha": float("nan")}, "transfer.strategies.0")


# -- strict checks and clashes ----------------------------------------------------------


def test_check_exits_1_on_a_plugin_that_takes_a_core_name_and_says_both(fake_dists):
    site = fake_dists("squat-plugin", "squat", CLAIMS_CONCAT, version="0.3")
    env = {"PYTHONPATH": str(site)}
    listed = run("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr  # listing alone still succeeds
    record = next(r for r in json.loads(listed.stdout) if r["distribution"] == "squat-plugin")
    assert record["status"] == "problem" and "fusion 'fusion.concat'" in record["error"]
    checked = run("plugins", "--check", env=env)
    assert checked.returncode == 1
    assert "squat-plugin 0.3: fusion 'fusion.concat' is the core's own (transfuse" in checked.stderr
    assert "the one from squat-plugin 0.3 is ignored" in checked.stderr
    strict = run("plugins", env={**env, "TRANSFUSE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1


def test_the_core_component_keeps_working_beside_a_squatter(register_plugin, transfuse_manager):
    def transfuse_fusions():
        return [FusionEntry(name="fusion.concat", factory="m:F", description="mine")]

    register_plugin(make_module("squatter", transfuse_fusions=transfuse_fusions), version="2.0")
    assert transfuse_manager.get("fusion", "concat").distribution == "transfuse"
    record = next(r for r in transfuse_manager.records() if r.name == "squatter")
    assert record.status == "problem" and "squatter 2.0 is ignored" in record.error


def test_check_exits_0_when_all_is_well():
    done = run("plugins", "--check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ") and "no problems" in done.stdout


# -- a broken plugin says what is wrong ---------------------------------------------------


def test_a_component_of_a_plugin_that_failed_to_import_is_blamed_on_that_import(
    fake_dists, tmp_path
):
    site = fake_dists("transfuse-charngram", "transfuse_charngram", BROKEN_IMPORT)
    done = run(
        "config", "validate", _pipeline(tmp_path, "text.char-ngram"), env={"PYTHONPATH": str(site)}
    )
    assert done.returncode == 2
    err = done.stderr
    assert "inputs.notes.encoder: unknown encoder 'text.char-ngram'" in err
    assert "'transfuse_charngram' (transfuse-charngram 1.0) failed" in err
    assert "No module named 'not_a_module_anywhere'" in err
    assert "install the plugin that has it" in err  # still possible, but not the only word


@pytest.fixture
def installed(fake_dists, site_entry_points):
    """Install a fake distribution and make a manager with the core and it alone the
    process-wide one (the command then runs in this process)."""

    def install(dist: str, module: str, code: str, version: str) -> PluginManager:
        site = fake_dists(dist, module, code, version=version)
        manager = PluginManager(autoload=False)
        manager.load_entry_points(site_entry_points(site))
        reset_plugin_manager(manager)
        return manager

    return install


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_config_validate_imports_each_factory(installed, tmp_path, capsys):
    installed("broken-factory", "broken_factory", BROKEN_FACTORY, "0.2")
    assert main(["config", "validate", _pipeline(tmp_path, "text.broken")]) == 2
    err = _one_line(capsys)
    assert "inputs.notes.encoder: broken-factory 0.2: cannot import 'broken_factory_impl:" in err
    assert "No module named 'broken_factory_impl'" in err


def test_config_validate_checks_the_factory_is_an_encoder(installed, tmp_path, capsys):
    installed("plain", "not_an_encoder", NOT_AN_ENCODER, "0.1")
    assert main(["config", "validate", _pipeline(tmp_path, "text.plain")]) == 2
    assert "is Encoder, not a subclass of transfuse.Encoder" in _one_line(capsys)


BOOM = """
from transfuse import hookimpl, DataSourceEntry
from transfuse.bases import DataSource

class Boom(DataSource):
    def load(self):
        return {}["no such key"]

@hookimpl
def transfuse_data_sources():
    return [DataSourceEntry(name="boom", factory="boom_plugin:Boom", description="Raises.")]
"""


def test_an_exception_in_plugin_code_is_one_line_naming_the_plugin_and_line(
    installed, tmp_path, capsys, monkeypatch
):
    installed("boom-plugin", "boom_plugin", BOOM, "0.9")
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ntask: {type: binary, target: y}\ndata: {source: boom}\n"
        "inputs: {a: {column: x}}\ntrain: {device: cpu}\n",
        "utf-8",
    )
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = _one_line(capsys)
    assert "plugin boom-plugin 0.9 raised KeyError: 'no such key' (in load, " in err
    assert "boom_plugin.py:7)" in err and "TRANSFUSE_TRACEBACK=1" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "site"]  # nothing left
    monkeypatch.setenv("TRANSFUSE_TRACEBACK", "1")
    with pytest.raises(KeyError):  # the whole traceback, for the plugin's author
        main(["train", str(path), "--out", str(tmp_path / "run")])


def test_an_error_in_the_core_is_not_blamed_on_a_plugin():
    manager = PluginManager(autoload=False)
    try:
        {}["x"]
    except KeyError as exc:
        assert manager.blame(exc) is None


# -- the kit ----------------------------------------------------------------------------


def _strategy_module(name: str, code: str):
    import types

    module = types.ModuleType(name)
    exec(code, module.__dict__)  # the test's own plugin code
    sys.modules[name] = module
    return module


STICKY = """
from transfuse import Options, StrategyEntry, hookimpl
from transfuse.bases import TransferStrategy

class Sticky(TransferStrategy):
    def prepare(self, ctx):
        for p in ctx.target_model.inputs.parameters():
            p.requires_grad_(False)

    def extra_loss(self, batch, outputs, step):
        return EXTRA

@hookimpl
def transfuse_strategies():
    return [StrategyEntry(name="strategy.sticky", factory="{name}:Sticky",
                          description="Freezes and never lets go.")]
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("None", "finalize left 2 parameter(s) frozen that trained before prepare"),
        ("0.5", "extra_loss returned a float; return a scalar tensor"),
        (
            "__import__('torch').ones(3)",
            "extra_loss returned a tensor of shape (3,); return a scalar",
        ),
    ],
    ids=["finalize", "float", "vector"],
)
def test_check_plugin_says_what_is_wrong_in_words(extra, expected):
    from transfuse.testing import ConformanceError, check_plugin

    name = f"sticky_{abs(hash(extra))}"
    module = _strategy_module(name, STICKY.replace("EXTRA", extra).replace("{name}", name))
    with pytest.raises(ConformanceError) as info:
        check_plugin(module)
    message = str(info.value)
    assert f"1 problem(s) in plugin {name!r}" in message
    assert f"strategy 'strategy.sticky': {expected}" in message


def test_check_plugin_checks_every_entry_and_lists_every_failure():
    from transfuse.testing import ConformanceError, check_plugin

    code = """
from transfuse import EncoderEntry, FusionEntry, hookimpl

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="image.odd", modality="image", factory="transfuse.fusion:Concat",
                         description="No samples for images.")]

@hookimpl
def transfuse_fusions():
    return [FusionEntry(name="fusion.mine", factory="transfuse.fusion:Concat",
                        description="")]
"""
    module = _strategy_module("two_entries", code)
    with pytest.raises(ConformanceError) as info:
        check_plugin(module)
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "encoder 'image.odd': no sample values for modality 'image'" in message
    assert "fusion 'fusion.mine': its description is empty" in message


def test_check_plugin_passes_the_example_strategy():
    from transfuse.testing import check_plugin

    pytest.importorskip("transfuse_bias_only")
    built = check_plugin("transfuse-bias-only")
    assert list(built) == ["strategy.bias-only"]


def test_the_testing_module_imports_without_pytest():
    code = (
        "import sys; sys.modules['pytest'] = None; import transfuse.testing as t;"
        "print(callable(t.check_plugin), callable(t.transfuse_manager))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.fixture(autouse=True)
def _fresh_manager():
    yield
    reset_plugin_manager(None)


def test_an_entry_that_needs_a_newer_core_fails_the_kit():
    from transfuse.testing import ConformanceError, check_plugin

    def transfuse_encoders():
        return [
            EncoderEntry(
                name="text.later",
                modality="text",
                factory="m:E",
                description="x",
                requires_core=">=99",
            )
        ]

    module = make_module("later", transfuse_encoders=transfuse_encoders)
    with pytest.raises(ConformanceError, match="encoder 'text.later' needs transfuse>=99"):
        check_plugin(module)


def test_loading_a_run_whose_plugin_is_installed_but_broken_says_so(
    fake_dists, installed, tmp_path
):
    from types import SimpleNamespace

    from transfuse import CheckpointError
    from transfuse.config import parse_config
    from transfuse.runs import check_compatible

    manager = installed("transfuse-charngram", "transfuse_charngram", BROKEN_IMPORT, "0.1.0")
    config = parse_config(
        {
            "name": "old",
            "task": {"type": "binary", "target": "y"},
            "inputs": {"notes": {"encoder": "text.char-ngram", "column": "x"}},
        }
    )
    origin = {"distribution": "transfuse-charngram", "version": "0.1.0"}
    files = SimpleNamespace(
        config=config,
        path=tmp_path / "run",
        environment={"components": {"inputs.notes.encoder": origin}},
    )  # what a run trained with the plugin records (environment.json)
    with pytest.raises(CheckpointError) as info:
        check_compatible(files, manager)
    message = str(info.value)
    assert "it came from transfuse-charngram 0.1.0" in message
    assert "transfuse-charngram 0.1.0 is installed but failed" in message
    assert "No module named 'not_a_module_anywhere'" in message
    assert "install transfuse-charngram==" not in message


def test_the_context_gives_a_batchs_fused_features():
    import torch
    from torch import nn

    from transfuse import TransferContext
    from transfuse.testing import cpu_device

    class Model(nn.Module):
        def forward(self, batch):
            return {"logits": batch["x"].sum(1, keepdim=True), "features": batch["x"] * 2}

    ctx = TransferContext(Model(), Model(), cpu_device(), None)
    batch = {"x": torch.ones(3, 4)}
    assert torch.equal(ctx.features(ctx.target_model, batch), torch.full((3, 4), 2.0))
