"""Component entries: what a plugin registers through the hooks.

An entry is a frozen dataclass that names a component and says where its code lives,
as a lazy ``"package.module:Name"`` string, so that listing plugins imports no torch.
The plugin manager fills in ``distribution`` and ``version``.

The base classes that the factories implement (``Encoder``, ``Fusion``, ...) subclass
``torch.nn.Module`` and therefore live in :mod:`transfuse.bases`, imported only when a
component is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from transfuse.errors import ConfigError, PluginError

__all__ = [
    "KINDS",
    "CommandEntry",
    "ComponentEntry",
    "DataSourceEntry",
    "EncoderEntry",
    "FusionEntry",
    "NoOptions",
    "Options",
    "PipelineEntry",
    "StrategyEntry",
    "TaskEntry",
    "format_validation_error",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_COMMAND = re.compile(r"^[a-z][a-z0-9-]*$")


class Options(BaseModel):
    """Base of every component's options model.

    Subclass it with typed fields (``pydantic.Field`` gives bounds and a description,
    which ``transfuse plugins NAME`` and ``transfuse config schema`` show). Unknown keys
    are rejected, instances are frozen, and ``.nan``/``.inf`` are refused (a YAML float
    that no option means). The validators are built on first use, so listing plugins
    stays fast.

    Example::

        class CharNgramOptions(Options):
            n: int = Field(3, ge=1, le=6, description="Characters per n-gram.")
            dim: int = Field(32, ge=1, description="Width of the embedding.")
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
        defer_build=True,
        allow_inf_nan=False,
    )


class NoOptions(Options):
    """For components that take no options."""


_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")


def format_validation_error(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """Turn a pydantic error into one line naming each bad key path.

    With ``model``, an unknown key is followed by the closest allowed keys at that place.
    Union members' tags (``str``, ``dict[...]``) are left out of the paths.
    """
    found: dict[str, list[str]] = {}
    for item in error.errors():
        loc = [p for p in item["loc"] if not (isinstance(p, str) and _TAG.match(p))]
        path = ".".join(str(p) for p in (prefix, *loc) if p != "")
        msg = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key" + _suggest(str(loc[-1]), _allowed_keys(model, loc[:-1]))
        messages = found.setdefault(path or "<root>", [])
        if msg not in messages:
            messages.append(msg)
    parts = []
    for path, messages in found.items():
        tail = [m.removeprefix("Input should be ") for m in messages[1:]]
        parts.append(f"{path}: {', or '.join([messages[0], *tail])}")
    if len(parts) > 4:
        parts = [*parts[:4], f"and {len(parts) - 4} more"]
    return "; ".join(parts)


def _suggest(name: str, allowed: list[str] | None) -> str:
    if not allowed:
        return ""
    close = difflib.get_close_matches(name, allowed, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} (allowed here: {', '.join(allowed)})"


def _allowed_keys(model: type[BaseModel] | None, loc: Sequence[int | str]) -> list[str] | None:
    """The keys a model accepts at ``loc`` (following nested models, lists and dicts)."""
    current: Any = model
    for part in loc:
        current = _inner_model(current, part)
        if current is None:
            return None
    current = _unwrap(current)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return None
    return [f.alias or name for name, f in current.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _inner_model(annotation: Any, part: int | str) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, f in annotation.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple) and args and isinstance(part, int):
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


@dataclass(frozen=True, kw_only=True)
class ComponentEntry:
    """What every registered component declares.

    A registration hook returns a list of entries; the plugin manager fills in
    ``distribution`` and ``version``. Nothing here imports the component's code:
    ``factory`` is a string, imported by :meth:`load` when a pipeline builds it.
    """

    kind: ClassVar[str] = "component"

    name: str
    """The unique dotted name a pipeline uses (``text.char-ngram``, ``strategy.l2sp``)."""
    factory: str
    """Where the class lives, as ``"package.module:ClassName"`` (imported on first use)."""
    description: str
    """One line for ``transfuse plugins``."""
    options: type[Options] = NoOptions
    """The options model (a subclass of :class:`Options`); the config's ``options:`` for
    the component are validated against it, and the instance is passed to the factory.
    """
    distribution: str | None = None
    """The distribution that registered it (set by the plugin manager)."""
    version: str | None = None
    """That distribution's version (set by the plugin manager)."""
    requires_core: str | None = None
    """A version specifier the core must satisfy (``">=0.2"``); unmet, the entry is listed
    as unusable instead of failing later.
    """

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PluginError(
                f"invalid {self.kind} name {self.name!r}",
                fix="use lower-case dotted names such as 'text.sentence-transformer'",
            )
        if not _FACTORY.match(self.factory):
            raise PluginError(
                f"{self.kind} {self.name!r} has factory {self.factory!r}",
                fix="give it as 'package.module:ClassName'",
            )

    @property
    def short_name(self) -> str:
        """The name without its leading namespace (``strategy.l2sp`` -> ``l2sp``)."""
        return self.name.split(".", 1)[-1]

    def load(self) -> Any:
        """Import and return the factory (normally a class)."""
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a plugin's bug is reported against the plugin
            raise PluginError(
                f"cannot import {self.factory!r} for {self.kind} {self.name!r}: "
                f"{type(exc).__name__}: {exc}",
                where=" ".join(filter(None, [self.distribution, self.version])) or "plugin",
                fix="reinstall the plugin or report the bug to its authors",
            ) from exc
        return obj

    def validate_options(self, raw: Mapping[str, Any] | Options | None, where: str = "") -> Options:
        """Validate raw options against this component's options model."""
        if isinstance(raw, self.options):
            return raw
        try:
            return self.options.model_validate(dict(raw or {}))
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, where or f"{self.name} options", self.options),
                fix=f"`transfuse plugins {self.name}` lists its options (type, default, bounds)",
            ) from None

    def with_origin(self, distribution: str, version: str | None) -> ComponentEntry:
        """A copy that names the distribution that provides it."""
        return dataclasses.replace(self, distribution=distribution, version=version)

    def summary(self, *, schema: bool = False) -> dict[str, Any]:
        """The JSON-able listing used by ``transfuse plugins --json`` (with ``schema``, the
        options' JSON Schema under ``"options"``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "modality": getattr(self, "modality", None),
        }
        if schema:
            out["description"] = self.description
            out["options"] = self.options_schema()
        return out

    def options_schema(self) -> dict[str, Any]:
        """The JSON Schema of this component's options (``additionalProperties: false``)."""
        schema: dict[str, Any] = self.options.model_json_schema()
        return schema


@dataclass(frozen=True, kw_only=True)
class EncoderEntry(ComponentEntry):
    """An encoder turns one input (a column or a group of columns) into ``[B, D]``."""

    kind: ClassVar[str] = "encoder"
    modality: str
    """What kind of input it reads (``text``, ``image``, ``audio``, ``tabular``, ...)."""


@dataclass(frozen=True, kw_only=True)
class FusionEntry(ComponentEntry):
    """A fusion module combines the inputs' embeddings into one vector per row."""

    kind: ClassVar[str] = "fusion"


@dataclass(frozen=True, kw_only=True)
class StrategyEntry(ComponentEntry):
    """A transfer strategy carries a source model's knowledge into a target model."""

    kind: ClassVar[str] = "strategy"
    copies_weights: bool = False
    """Whether the strategy copies source weights in ``prepare`` (``layer-map``); such a
    strategy must come before those that do not, which act on the copied weights.
    Declared here so that ``config validate`` checks the order without importing the
    strategy; the class's own ``TransferStrategy.copies_weights`` must say the same
    (``transfuse.testing.check_plugin`` checks that they agree).
    """


@dataclass(frozen=True, kw_only=True)
class TaskEntry(ComponentEntry):
    """A task owns the head, the loss and the metrics (binary, multiclass, regression)."""

    kind: ClassVar[str] = "task"


@dataclass(frozen=True, kw_only=True)
class DataSourceEntry(ComponentEntry):
    """A data source loads a table by name (csv, parquet, finance datasets)."""

    kind: ClassVar[str] = "data_source"


@dataclass(frozen=True, kw_only=True)
class PipelineEntry(ComponentEntry):
    """A named pipeline preset: a YAML file shipped as package data.

    ``factory`` names the package and the file, as ``"package.presets:file.yaml"``.
    """

    kind: ClassVar[str] = "pipeline"
    factory: str = field(default="")
    resource: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PluginError(f"invalid pipeline name {self.name!r}")
        if ":" not in self.resource:
            raise PluginError(
                f"pipeline {self.name!r} has resource {self.resource!r}",
                fix="give it as 'package:file.yaml'",
            )

    def read_text(self) -> str:
        """The preset's YAML text, read from the providing package's data."""
        package, _, filename = self.resource.partition(":")
        try:
            return resources.files(package).joinpath(filename).read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError) as exc:
            raise PluginError(
                f"pipeline {self.name!r}: cannot read {self.resource!r}: {exc}",
                where=self.distribution or "plugin",
                fix="reinstall the plugin that ships it",
            ) from exc


@dataclass(frozen=True, kw_only=True)
class CommandEntry(ComponentEntry):
    """A subcommand of the ``transfuse`` command line (``transfuse serve``).

    ``factory`` names a function ``(parser: argparse.ArgumentParser) -> run`` that adds the
    command's arguments to its parser and returns ``run(args: argparse.Namespace) -> int``
    (the exit status). Its module is imported whenever the parser is built (``transfuse
    --help`` too), so it imports nothing heavy; ``run`` imports what the command needs.
    ``description`` is the command's help line.
    """

    kind: ClassVar[str] = "command"

    def __post_init__(self) -> None:
        if not _COMMAND.match(self.name):
            raise PluginError(
                f"invalid command name {self.name!r}",
                fix="use one lower-case word such as 'serve' (letters, digits and '-')",
            )
        super().__post_init__()


KINDS: dict[str, type[ComponentEntry]] = {
    cls.kind: cls
    for cls in (
        EncoderEntry,
        FusionEntry,
        StrategyEntry,
        TaskEntry,
        DataSourceEntry,
        PipelineEntry,
        CommandEntry,
    )
}
