"""What ``transfuse plugins`` shows: plugins, one component's options, strict checks, and
the JSON Schema of pipeline files with every component's options.

Nothing here imports a component's code: options models are pydantic classes declared
next to the entries (their validators are built on first use), so listing stays free of
torch even when it prints options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transfuse.components import KINDS, ComponentEntry, Options
from transfuse.errors import PluginError, UnknownComponentError

if TYPE_CHECKING:
    from transfuse.plugins import PluginManager, PluginRecord

__all__ = [
    "OptionInfo",
    "add_plugins_arguments",
    "cmd_plugins",
    "describe_options",
    "find_component",
    "pipeline_schema",
    "problems",
    "show_component",
]

#: Where the options of each kind go in a pipeline file.
_PLACES = {
    "encoder": "inputs.NAME.options",
    "fusion": "fusion.options",
    "strategy": "transfer.strategies: [{NAME: {...}}]",
    "task": "task.options",
    "data_source": "data.options",
    "pipeline": "(a preset: `transfuse train NAME`)",
}


@dataclass(frozen=True)
class OptionInfo:
    """One option of a component, as ``transfuse plugins NAME`` prints it."""

    name: str
    type: str
    default: str
    bounds: str
    help: str


def _type_name(annotation: Any) -> str:
    """``int``, ``float | None``, ``list[str]``, ``'reset' | 'keep'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_BOUND_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "multiple_of": "multiple of"}
_LENGTH_SYMBOLS = {"min_length": "length >=", "max_length": "length <="}


def _bounds(metadata: Iterable[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, symbol in {**_BOUND_SYMBOLS, **_LENGTH_SYMBOLS}.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def describe_options(model: type[Options]) -> list[OptionInfo]:
    """Every option of an options model: name (its YAML key), type, default, bounds and
    help text (the field's ``description``)."""
    from pydantic_core import PydanticUndefined

    out = []
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            default = json.dumps(field.default_factory(), default=str)  # type: ignore[call-arg]
        elif field.default is PydanticUndefined:
            default = "(required)"
        else:
            default = json.dumps(field.default, default=str)
        out.append(
            OptionInfo(
                name=field.alias or name,
                type=_type_name(field.annotation),
                default=default,
                bounds=_bounds(field.metadata),
                help=" ".join((field.description or "").split()),
            )
        )
    return out


def find_component(manager: PluginManager, name: str) -> ComponentEntry:
    """A component by its name (or short name) in any kind; a clear error otherwise."""
    found: list[ComponentEntry] = []
    unusable: PluginError | None = None
    for kind in KINDS:
        try:
            found.append(manager.get(kind, name))
        except UnknownComponentError:
            continue
        except PluginError as exc:  # a clash, a newer core needed, a plugin that failed
            unusable = unusable or exc
    if not found and unusable is not None:
        raise unusable
    exact = [e for e in found if e.name == name]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if found:
        names = ", ".join(f"{e.kind} {e.name}" for e in found)
        raise UnknownComponentError(
            f"{name!r} names several components: {names}",
            where="transfuse plugins NAME",
            fix="give the full dotted name",
        )
    every = sorted(n for kind in KINDS for n in manager.components(kind))
    import difflib

    close = difflib.get_close_matches(name, every, n=3, cutoff=0.5)
    raise UnknownComponentError(
        f"no installed component is named {name!r}"
        + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""),
        where="transfuse plugins NAME",
        fix="`transfuse plugins` lists every component",
    )


def show_component(entry: ComponentEntry) -> str:
    """The text ``transfuse plugins NAME`` prints: what it is, where it comes from, and
    a table of its options."""
    modality = getattr(entry, "modality", None)
    lines = [
        f"{entry.kind} {entry.name}" + (f" [{modality}]" if modality else ""),
        f"  {entry.description}",
        f"  from {entry.distribution} {entry.version or ''}".rstrip()
        + f" ({entry.factory or getattr(entry, 'resource', '')})",
        f"  options go in {_PLACES.get(entry.kind, 'options')}",
    ]
    if getattr(entry, "copies_weights", False):
        lines.append("  copies the source weights (listed before the other strategies)")
    if entry.requires_core:
        lines.append(f"  requires transfuse{entry.requires_core}")
    rows = describe_options(entry.options)
    if not rows:
        lines.append("  no options")
        return "\n".join(lines)
    header = ("option", "type", "default", "bounds", "help")
    table = [header, *[(r.name, r.type, r.default, r.bounds, r.help) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines.append("")
    for row in table:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append(("  " + "  ".join([*cells, row[4]])).rstrip())
    return "\n".join(lines)


def problems(records: Iterable[PluginRecord]) -> list[str]:
    """Every problem of the installed plugins, one line each (failed imports, failed
    hooks, clashes of names, a newer core needed); empty when all is well."""
    out = []
    for r in records:
        label = f"{r.distribution} {r.version or ''}".rstrip()
        if r.status == "failed":
            out.append(f"{label}: failed: {r.error}")
        out += [f"{label}: {p}" for p in r.problems]
    return out


def _strict() -> bool:
    return os.environ.get("TRANSFUSE_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


def add_plugins_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``transfuse plugins``."""
    parser.add_argument(
        "name", nargs="?", help="a component's name: show its options (type, default, bounds)"
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (with options schemas)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if any plugin has a problem (failed import, clash of names, newer core "
        "needed); TRANSFUSE_STRICT_PLUGINS=1 does the same",
    )


def cmd_plugins(args: argparse.Namespace) -> int:
    """``transfuse plugins [NAME] [--json] [--check]``."""
    from transfuse.plugins import get_plugin_manager

    manager = get_plugin_manager()
    if args.name:
        entry = find_component(manager, args.name)
        if args.json:
            print(json.dumps(entry.summary(schema=True) | _origin(entry), indent=2))
        else:
            print(show_component(entry))
        return 0
    records = manager.records()
    found = problems(records)
    if args.json:
        print(json.dumps([r.as_json(options=True) for r in records], indent=2))
    elif args.check and not found:  # a CI step: one line
        print(f"ok: {len(records)} plugins, no problems")
    elif not args.check:
        _print_records(records)
    if found and (args.check or _strict()):
        print(f"transfuse: {len(found)} plugin problem(s):", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _origin(entry: ComponentEntry) -> dict[str, Any]:
    return {"distribution": entry.distribution, "version": entry.version, "factory": entry.factory}


def _print_records(records: Iterable[PluginRecord]) -> None:
    for r in records:
        print(f"{r.distribution} {r.version or ''} [{r.status}] ({r.name})".replace("  ", " "))
        if r.location:
            print(f"  from {r.location}")
        if r.status == "failed" and r.error:
            print(f"  error: {r.error}")
        for problem in r.problems:
            print(f"  problem: {problem}")
        for c in sorted(r.components, key=lambda c: (c.kind, c.name)):
            modality = getattr(c, "modality", None)
            extra = f" [{modality}]" if modality else ""
            print(f"  {c.kind:<12} {c.name}{extra}: {c.description}")


# -- the pipeline schema with every component's options -------------------------------


def pipeline_schema(manager: PluginManager | None = None) -> dict[str, Any]:
    """The JSON Schema of a pipeline file in which each component's ``options`` are
    checked against that component's own options model (``if``/``then`` on the name),
    and component names are the installed ones; for editors with a YAML language server.
    """
    from pydantic.json_schema import models_json_schema

    from transfuse.config import PipelineConfig
    from transfuse.plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    tables = {kind: manager.components(kind) for kind in ("encoder", "fusion", "strategy", "task")}
    tables["data_source"] = manager.components("data_source")
    models: list[type[Any]] = [PipelineConfig]
    for table in tables.values():
        for entry in table.values():
            if entry.options not in models:
                models.append(entry.options)
    refs, definitions = models_json_schema([(m, "validation") for m in models])
    defs: dict[str, Any] = definitions.get("$defs", {})

    def ref(entry: ComponentEntry) -> dict[str, Any]:
        return dict(refs[(entry.options, "validation")])

    def names(kind: str, entry: ComponentEntry) -> list[str]:
        out = [entry.name]
        prefix = {"fusion": "fusion.", "strategy": "strategy.", "task": "task."}.get(kind)
        if prefix and entry.name.startswith(prefix):
            out.append(entry.name.removeprefix(prefix))
        return out

    def per_name(kind: str, key: str, default: str | None = None) -> list[dict[str, Any]]:
        rules = []
        for entry in tables[kind].values():
            rules.append(
                {
                    "if": {"properties": {key: {"enum": names(kind, entry)}}, "required": [key]},
                    "then": {"properties": {"options": ref(entry)}},
                }
            )
            if default is not None and entry.name == default:
                rules.append(
                    {
                        "if": {"not": {"required": [key]}},
                        "then": {"properties": {"options": ref(entry)}},
                    }
                )
        return rules

    def every_name(kind: str) -> list[str]:
        return sorted({n for e in tables[kind].values() for n in names(kind, e)})

    root = defs.pop("PipelineConfig")
    _name_enum(defs["InputConfig"], "encoder", every_name("encoder"), nullable=True)
    defs["InputConfig"]["allOf"] = per_name("encoder", "encoder")
    _name_enum(defs["FusionConfig"], "method", every_name("fusion"))
    defs["FusionConfig"]["allOf"] = per_name("fusion", "method", default="fusion.concat")
    _name_enum(defs["TaskConfig"], "type", every_name("task"))
    defs["TaskConfig"]["allOf"] = per_name("task", "type")
    step_options = {
        name: {"anyOf": [ref(entry), {"type": "null"}]}
        for entry in tables["strategy"].values()
        for name in names("strategy", entry)
    }
    defs["TransferConfig"]["properties"]["strategies"]["items"] = {
        "anyOf": [
            {"enum": every_name("strategy")},
            {
                "type": "object",
                "properties": step_options,
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
            },
        ]
    }
    root["$defs"] = defs
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return dict(root)


def _name_enum(model: dict[str, Any], key: str, names: list[str], nullable: bool = False) -> None:
    """Restrict a component-name property to the installed names (editors complete them)."""
    prop = model["properties"][key]
    keep = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    choices: dict[str, Any] = {"enum": names}
    prop.clear()
    prop.update(keep)
    if nullable:
        prop["anyOf"] = [choices, {"type": "null"}]
    else:
        prop.update(choices)
