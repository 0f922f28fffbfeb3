"""Commands from plugins: the ``transfuse_commands`` hook adds subcommands to ``transfuse``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable

import pytest

from transfuse import CommandEntry, DataError, PluginError, hookimpl
from transfuse.cli import build_parser, main


def command_module(monkeypatch: pytest.MonkeyPatch, name: str = "sv1_hello") -> types.ModuleType:
    """An importable module with a command factory: ``hello NAME [--loud]``."""
    module = types.ModuleType(name)

    def run(args: argparse.Namespace) -> int:
        if args.who == "nobody":
            raise DataError("nobody to greet", where="WHO", fix="name someone")
        print(("HELLO " if args.loud else "hello ") + args.who)
        return 3 if args.loud else 0

    def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
        parser.add_argument("who")
        parser.add_argument("--loud", action="store_true")
        return run

    def not_a_function(parser: argparse.ArgumentParser) -> int:
        return 1

    module.configure = configure  # type: ignore[attr-defined]
    module.not_a_function = not_a_function  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return module


def plugin(*entries: CommandEntry, name: str = "hello-plugin") -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def transfuse_commands() -> list[CommandEntry]:
        return list(entries)

    module.transfuse_commands = transfuse_commands  # type: ignore[attr-defined]
    return module


HELLO = CommandEntry(name="hello", factory="sv1_hello:configure", description="Say hello.")


def test_a_plugin_command_runs_with_its_arguments(register_plugin, monkeypatch, capsys):
    command_module(monkeypatch)
    register_plugin(plugin(HELLO))
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert main(["hello", "world", "--loud"]) == 3  # its exit status is the command's
    assert capsys.readouterr().out == "HELLO world\n"


def test_a_plugin_command_is_listed_in_help_with_its_distribution(register_plugin, monkeypatch):
    command_module(monkeypatch)
    register_plugin(plugin(HELLO))
    text = build_parser().format_help()
    assert "hello" in text and "Say hello. [hello-plugin]" in text


def test_a_transfuse_error_from_a_plugin_command_is_one_line_and_exit_2(
    register_plugin, monkeypatch, capsys
):
    command_module(monkeypatch)
    register_plugin(plugin(HELLO))
    assert main(["hello", "nobody"]) == 2
    err = capsys.readouterr().err
    assert err == "transfuse: error: WHO: nobody to greet; name someone\n"


def test_a_command_named_like_a_core_command_never_replaces_it(
    register_plugin, monkeypatch, capsys
):
    command_module(monkeypatch)
    hijack = CommandEntry(name="train", factory="sv1_hello:configure", description="Hijack.")
    register_plugin(plugin(hijack), name="hijacker")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    from transfuse.commands import _cmd_train

    assert sub.choices["train"].get_default("func") is _cmd_train
    assert main(["plugins", "--json"]) == 0
    record = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "hijacker")
    assert record["components"] == []
    assert any("command 'train' is the core's own" in p for p in record["problems"])


def test_two_plugins_with_one_command_name_clash_and_neither_is_used(
    register_plugin, monkeypatch, capsys
):
    command_module(monkeypatch)
    register_plugin(plugin(HELLO, name="a"), name="hello-a")
    register_plugin(plugin(HELLO, name="b"), name="hello-b")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "hello" not in sub.choices
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "command 'hello' is also registered by hello-b" in out
    assert "command 'hello' is also registered by hello-a" in out


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("sv1_missing_module:configure", "cannot import 'sv1_missing_module:configure'"),
        ("sv1_hello:not_a_function", "returned int, not a function"),
    ],
    ids=["import-fails", "not-a-function"],
)
def test_a_broken_command_is_listed_and_says_why_when_run(
    register_plugin, monkeypatch, capsys, factory, message
):
    command_module(monkeypatch)
    broken = CommandEntry(name="broken", factory=factory, description="Broken.")
    register_plugin(plugin(broken, HELLO))
    assert main(["hello", "x"]) == 0  # the plugin's other command still works
    assert main(["broken", "any", "--args"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("transfuse: error: ") and message in err and err.count("\n") == 1


def test_strict_plugins_turn_a_broken_command_into_an_error_for_every_command(
    register_plugin, monkeypatch, capsys
):
    monkeypatch.setenv("TRANSFUSE_STRICT_PLUGINS", "1")
    broken = CommandEntry(name="broken", factory="sv1_missing:configure", description="B.")
    register_plugin(plugin(broken))
    assert main(["plugins"]) == 2
    assert "cannot import 'sv1_missing:configure'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Serve", "serve.http", "-x", "two words", ""])
def test_a_command_name_is_one_lower_case_word(name: str) -> None:
    with pytest.raises(PluginError, match="invalid command name"):
        CommandEntry(name=name, factory="m:f", description="d")


def test_plugins_lists_a_command_as_a_component(register_plugin, monkeypatch, capsys):
    command_module(monkeypatch)
    register_plugin(plugin(HELLO))
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["command", "hello:", "Say", "hello."] for line in lines)


HELLO_DIST = """
import argparse
from transfuse import CommandEntry, hookimpl

@hookimpl
def transfuse_commands():
    return [CommandEntry(name="hello", factory="hello_dist:configure", description="Hi.")]

def configure(parser: argparse.ArgumentParser):
    parser.add_argument("who")
    return run

def run(args):
    import sys
    print("hello", args.who, "torch" in sys.modules)
    return 0
"""


def test_an_installed_plugin_adds_a_command_to_the_script(fake_dists) -> None:
    site = fake_dists("hello-dist", "hello_dist", HELLO_DIST)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "hello", "there"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello there False\n"  # building the parser imported no torch
