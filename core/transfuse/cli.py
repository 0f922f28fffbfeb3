"""The ``transfuse`` command.

Every command's heavy imports happen inside it, so ``transfuse --help`` and
``transfuse plugins`` stay fast. An error a user can cause prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from transfuse.errors import PluginError, TransfuseError

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _cmd_plugins(args: argparse.Namespace) -> int:
    from transfuse.listing import cmd_plugins

    return cmd_plugins(args)


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from transfuse.config import load_pipeline, resolve

    config = load_pipeline(args.file)
    if args.source and config.transfer is not None:
        runs = [r.strip() for given in args.source for r in given.split(",") if r.strip()]
        config.transfer.from_ = runs[0] if len(runs) == 1 else runs
    try:
        resolve(config, need_source=True, load=True)  # imports each factory, as train does
    except TransfuseError as exc:
        raise exc.within(str(args.file)) from None
    count = len(config.inputs)
    print(f"ok: {args.file} ({config.name}, {count} input{'' if count == 1 else 's'})")
    return 0


def _cmd_config_schema(args: argparse.Namespace) -> int:
    from transfuse.listing import pipeline_schema

    print(json.dumps(pipeline_schema(), indent=2))
    return 0


def _cmd_data_describe(args: argparse.Namespace) -> int:
    from transfuse.describe import describe_source, parse_options, render

    summary = describe_source(args.name, parse_options(args.option), target=args.target)
    print(render(summary, args.json))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with every working command."""
    from transfuse import __version__

    parser = argparse.ArgumentParser(
        prog="transfuse",
        description="Multimodal models and model transfer, built from plugins.",
    )
    parser.add_argument("--version", action="version", version=f"transfuse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "plugins", help="list installed plugins and their components, or one component's options"
    )
    from transfuse.listing import add_plugins_arguments

    add_plugins_arguments(p)
    p.set_defaults(func=_cmd_plugins)

    config = sub.add_parser("config", help="validate a pipeline or print its schema")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    v = config_sub.add_parser("validate", help="check a pipeline file (or preset name)")
    v.add_argument("file", help="a YAML pipeline file or a preset name")
    v.add_argument(
        "--from",
        dest="source",
        action="append",
        help="the source run(s) a transfer section will get from the CLI (repeatable)",
    )
    v.set_defaults(func=_cmd_config_validate)
    s = config_sub.add_parser("schema", help="print the JSON Schema of pipeline files")
    s.set_defaults(func=_cmd_config_schema)

    data = sub.add_parser("data", help="look inside a registered data source")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dd = data_sub.add_parser(
        "describe", help="rows, columns, types and label balance of a data source"
    )
    dd.add_argument("name", help="a data source name (see `transfuse plugins`)")
    dd.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a source option, e.g. --option sample=500 (repeatable)",
    )
    dd.add_argument("--target", help="the label column (default: the source's own label)")
    dd.add_argument("--json", action="store_true", help="machine-readable output")
    dd.set_defaults(func=_cmd_data_describe)

    from transfuse import commands

    commands.add_commands(sub)
    from transfuse.scaffold import add_new_command

    add_new_command(sub)
    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: Any) -> None:
    """Add the commands plugins register (``transfuse_commands``). One named like a core
    command is left out (``transfuse plugins`` reports it); one whose code cannot be
    imported still appears, and says why when run."""
    from transfuse.plugins import _strict, get_plugin_manager

    for name, entry in sorted(get_plugin_manager().commands(core=sub.choices).items()):
        help_line = f"{entry.description} [{entry.distribution}]"
        parser = sub.add_parser(name, help=help_line, description=entry.description)
        try:
            run = entry.load()(parser)
            if not callable(run):
                raise TypeError(f"{entry.factory} returned {type(run).__name__}, not a function")
        except Exception as exc:
            error = exc if isinstance(exc, PluginError) else PluginError(
                f"command {name!r} cannot be set up: {type(exc).__name__}: {exc}",
                where=f"{entry.distribution} {entry.version}",
                fix="reinstall the plugin or report the bug to its authors",
            )  # fmt: skip
            if _strict():
                raise error from (None if error is exc else exc)
            parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            run = _failing(error)
        parser.set_defaults(func=run)


def _failing(error: PluginError) -> Command:
    def run(args: argparse.Namespace) -> int:
        raise error

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        parser = build_parser()
    except TransfuseError as exc:  # TRANSFUSE_STRICT_PLUGINS and a broken plugin
        print(f"transfuse: error: {exc.one_line()}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code: int = args.func(args)
        return code
    except TransfuseError as exc:
        print(f"transfuse: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transfuse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `transfuse ... | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a plugin's bug is reported against the plugin, in one line
        from transfuse.plugins import blame_plugin

        error = blame_plugin(exc)
        if error is None:
            raise
        print(f"transfuse: error: {error.one_line()}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
