"""The ``transfuse`` command: listing plugins, validating configs, staying light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfuse.cli import main

RAISES = "raise RuntimeError('broken plugin')\n"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transfuse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("transfuse ")


def test_plugins_json_lists_the_core_as_active(capsys):
    assert main(["plugins", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    core = next(r for r in records if r["distribution"] == "transfuse")
    assert core["status"] == "active"
    attention = next(c for c in core["components"] if c["name"] == "fusion.attention")
    assert attention["kind"] == "fusion" and attention["modality"] is None
    assert attention["options"]["properties"]["heads"]["minimum"] == 1  # its options schema
    for record in records:
        assert set(record) >= {"name", "distribution", "version", "status", "error", "location"}
        assert set(record) >= {"components", "problems"}


def test_a_broken_plugin_is_listed_as_failed_and_the_command_still_succeeds(fake_dists):
    site = fake_dists("broken-plugin", "broken_plugin", RAISES)
    result = run("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    broken = next(r for r in records if r["distribution"] == "broken-plugin")
    assert broken["status"] == "failed" and "broken plugin" in broken["error"]
    assert any(r["distribution"] == "transfuse" and r["status"] == "active" for r in records)


def test_config_validate_accepts_a_good_file(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\ntask: {type: binary, target: y}\n"
        "inputs: {a: {column: x}}\nfusion: {method: fusion.gated}\n",
        "utf-8",
    )
    assert main(["config", "validate", str(path)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_config_validate_on_a_bad_file_exits_2_with_one_line_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\ntask: {type: binary, target: y}\ninputs: {a: {column: x}}\n"
        "train: {epochs: -1}\n",
        "utf-8",
    )
    result = run("config", "validate", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.epochs" in lines[0]
    assert "Traceback" not in result.stderr


def test_config_schema_prints_json_schema(capsys):
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "PipelineConfig"


@pytest.mark.parametrize(
    "code",
    ["import transfuse", "from transfuse.cli import main; main(['plugins'])"],
)
def test_listing_imports_no_torch(code):
    probe = f"import sys; {code}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_no_placeholder_commands():
    from transfuse.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.get_default("func") or name in {"config", "data"}, f"{name} does nothing"


def test_module_entry_point_runs():
    assert Path(sys.executable).exists()
    assert run("--version").returncode == 0


CLAIMS_TIMM = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="image.clash", modality="image", factory="{module}:E",
                         description="One of two claiming image.clash.")]
"""

NEEDS_NEWER = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="text.future", modality="text", factory="future_plugin:E",
                         description="Needs a newer core.", requires_core=">=99")]
"""


def test_plugins_says_what_is_wrong_with_each_broken_plugin(fake_dists, tmp_path):
    fake_dists("broken-plugin", "broken_plugin", RAISES)
    fake_dists("clash-a", "clash_a", CLAIMS_TIMM.format(module="clash_a"), version="1.0")
    fake_dists("clash-b", "clash_b", CLAIMS_TIMM.format(module="clash_b"), version="2.0")
    site = fake_dists("future-plugin", "future_plugin", NEEDS_NEWER, version="3.0")
    result = run("plugins", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "broken-plugin 1.0 [failed]" in out and "error: RuntimeError: broken plugin" in out
    assert "problem: encoder 'image.clash' is also registered by clash-b 2.0" in out
    assert "problem: encoder 'image.clash' is also registered by clash-a 1.0" in out
    assert "problem: encoder 'text.future' needs transfuse>=99, and this is transfuse" in out
    assert "fusion.attention" in out  # the core still lists its components


def test_using_a_clashing_name_exits_2_naming_both(fake_dists, tmp_path):
    fake_dists("clash-a", "clash_a", CLAIMS_TIMM.format(module="clash_a"), version="1.0")
    site = fake_dists("clash-b", "clash_b", CLAIMS_TIMM.format(module="clash_b"), version="2.0")
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ntask: {type: binary, target: y}\n"
        "inputs: {scan: {encoder: image.clash, column: x}}\n",
        "utf-8",
    )
    result = run("config", "validate", str(path), env={"PYTHONPATH": str(site)})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "inputs.scan.encoder: encoder 'image.clash' is registered twice" in result.stderr
    assert "clash-a 1.0" in result.stderr and "clash-b 2.0" in result.stderr
