"""The plugin manager: entry-point discovery, isolation, conflicts and listing.

Plugins are modules named by entry points in the ``transfuse`` group. Loading one that
raises records it as failed (``TRANSFUSE_STRICT_PLUGINS=1`` raises instead) and the others
keep working; ``TRANSFUSE_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or
distribution name. The core's own components register through the same hooks.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from transfuse import hookspecs
from transfuse.components import KINDS, CommandEntry, ComponentEntry
from transfuse.errors import PluginConflictError, PluginError, UnknownComponentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginManager",
    "PluginRecord",
    "blame_plugin",
    "get_plugin_manager",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "transfuse"
#: ``active``: every component usable; ``problem``: loaded, but some components cannot be
#: used (a clash of names, a newer core needed; see ``problems``); ``failed``: the import
#: or a hook raised (see ``error``); ``disabled``: blocked by ``TRANSFUSE_DISABLE_PLUGINS``.
Status = Literal["active", "problem", "disabled", "failed"]

# Hook name per component kind, and the namespace a short name is completed with.
_HOOKS = {
    "encoder": "transfuse_encoders",
    "fusion": "transfuse_fusions",
    "strategy": "transfuse_strategies",
    "task": "transfuse_tasks",
    "data_source": "transfuse_data_sources",
    "pipeline": "transfuse_pipelines",
    "command": "transfuse_commands",
}
_PREFIX = {"fusion": "fusion.", "strategy": "strategy.", "task": "task."}


@dataclass
class PluginRecord:
    """One plugin as ``transfuse plugins`` shows it."""

    name: str
    distribution: str
    version: str | None
    status: Status
    error: str | None = None
    location: str | None = None
    components: list[ComponentEntry] = field(default_factory=list)
    #: What is wrong with some of its components (a clash of names, a newer core needed).
    problems: list[str] = field(default_factory=list)

    #: The top-level package of the plugin's module (to tell whose code raised).
    package: str | None = None

    def as_json(self, *, options: bool = False) -> dict[str, Any]:
        """The record in the ``transfuse plugins --json`` format; with ``options`` each
        component carries its options' JSON Schema."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "location": self.location,
            "components": [c.summary(schema=options) for c in self.components],
            "problems": list(self.problems),
        }

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with it (a disabled plugin is the user's choice)."""
        return self.status in {"active", "disabled"}


def _env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("TRANSFUSE_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


class PluginManager:
    """A typed facade over :class:`pluggy.PluginManager` for transfuse's hooks."""

    def __init__(self, *, autoload: bool = True, builtins: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._records: dict[str, PluginRecord] = {}
        self._components: dict[str, dict[str, ComponentEntry]] | None = None
        self._unusable: dict[str, dict[str, PluginError]] = {kind: {} for kind in KINDS}
        #: The core's own command names (see :meth:`commands`): no plugin may take one.
        self._core_commands: frozenset[str] = frozenset()
        if builtins:
            from transfuse import builtin

            self.register(builtin, name="transfuse", distribution="transfuse", version=_version())
        if autoload:
            self.load_entry_points()

    # -- loading -------------------------------------------------------------------
    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Load every plugin of the ``transfuse`` entry-point group, each in isolation."""
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        disabled = _env_list("TRANSFUSE_DISABLE_PLUGINS")
        seen: set[tuple[str, str]] = set()
        for ep in entry_points:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ep.value.split(".")[0]
            version = dist.version if dist is not None else None
            if (ep.name, dist_name) in seen:
                continue  # the same distribution seen twice on sys.path
            seen.add((ep.name, dist_name))
            location = ep.value
            name = ep.name if ep.name not in self._records else f"{ep.name}@{dist_name}"
            if ep.name in disabled or dist_name in disabled:
                self._records[name] = PluginRecord(
                    name, dist_name, version, "disabled", "TRANSFUSE_DISABLE_PLUGINS", location
                )
                continue
            try:
                module = ep.load()
                self.register(module, name=name, distribution=dist_name, version=version)
            except Exception as exc:
                message = (
                    exc.one_line()
                    if isinstance(exc, PluginError)
                    else f"{type(exc).__name__}: {exc}"
                )
                if _strict():
                    raise PluginError(
                        f"plugin {ep.name!r} failed to import: {message}",
                        where=f"{dist_name} {version}",
                        fix="fix or uninstall it, or unset TRANSFUSE_STRICT_PLUGINS",
                    ) from exc
                self._records[name] = PluginRecord(
                    name, dist_name, version, "failed", message, location,
                    package=ep.value.split(":")[0].split(".")[0],
                )  # fmt: skip
                continue

    def register(
        self,
        plugin: object,
        *,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register a module or object that implements some hooks."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name in self._records and self._records[name].status == "active":
            raise PluginError(f"a plugin named {name!r} is already registered")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()  # a misspelled hook name is an error, not ignored
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(
                f"plugin {name!r} does not match the hook specs: {exc}",
                where=distribution or name,
                fix="check the hook names and arguments against docs/hooks.md",
            ) from exc
        location = getattr(plugin, "__file__", None)
        module_name = getattr(plugin, "__name__", None)
        self._records[name] = PluginRecord(
            name, distribution or name, version, "active", None, location,
            package=module_name.split(".")[0] if isinstance(module_name, str) else None,
        )  # fmt: skip
        self._components = None

    def unregister(self, name: str) -> None:
        """Remove a registered plugin (used by tests)."""
        self.pm.unregister(name=name)
        self._records.pop(name, None)
        self._components = None

    # -- components ----------------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, ComponentEntry]]:
        if self._components is not None:
            return self._components
        gathered: list[tuple[PluginRecord, str, list[ComponentEntry]]] = []
        for rec in self._records.values():
            rec.components, rec.problems = [], []
            if rec.status == "problem":
                rec.status, rec.error = "active", None
        for kind, hook_name in _HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                record = self._records.get(impl.plugin_name)
                if record is None or record.status != "active":
                    continue
                try:
                    entries = list(impl.function())
                    for entry in entries:
                        if not isinstance(entry, KINDS[kind]):
                            raise TypeError(
                                f"{hook_name} returned {type(entry).__name__}, "
                                f"expected {KINDS[kind].__name__}"
                            )
                except Exception as exc:
                    if _strict():
                        raise
                    record.status = "failed"
                    record.error = f"{hook_name}: {type(exc).__name__}: {exc}"
                    continue
                gathered.append((record, kind, entries))
        # A plugin whose hook failed contributes nothing, not half of its components.
        found: dict[str, dict[str, ComponentEntry]] = {kind: {} for kind in KINDS}
        self._unusable = {kind: {} for kind in KINDS}
        core = _version()
        for record, _kind, entries in gathered:
            if record.status != "active":
                continue
            for entry in entries:
                entry = entry.with_origin(record.distribution, record.version)
                self._add(found, record, entry, core)
        for rec in self._records.values():
            if rec.status == "active" and rec.problems:
                rec.status, rec.error = "problem", "; ".join(rec.problems)
        self._components = found
        return found

    def _add(
        self,
        found: dict[str, dict[str, ComponentEntry]],
        record: PluginRecord,
        entry: ComponentEntry,
        core: str,
    ) -> None:
        """Add one entry, or record why it cannot be used (a newer core, a clash of names)."""
        kind, name = entry.kind, entry.name
        needs = _core_mismatch(entry.requires_core, core)
        if needs is not None:
            problem = f"{kind} {name!r} {needs}"
            record.problems.append(problem)
            error = PluginError(
                problem,
                where=f"{entry.distribution} {entry.version}",
                fix="upgrade transfuse, or install a version of the plugin made for this one",
            )
            self._unusable[kind].setdefault(name, error)
            return
        if kind == "command" and name in self._core_commands:
            record.problems.append(
                f"command {name!r} is the core's own (transfuse {core}); the one from "
                f"{entry.distribution} {entry.version} is ignored: rename it"
            )
            return
        clash = self._unusable[kind].get(name)
        other = found[kind].get(name)
        if other is None and not isinstance(clash, PluginConflictError):
            found[kind][name] = entry
            record.components.append(entry)
            return
        if other is not None and "transfuse" in (other.distribution, entry.distribution):
            # The core's own name stays the core's: a plugin cannot knock a built-in out.
            core_entry, plugin = (
                (other, entry) if other.distribution == "transfuse" else (entry, other)
            )
            found[kind][name] = core_entry
            for rec in self._records.values():
                if rec.distribution == plugin.distribution:
                    rec.components = [c for c in rec.components if c is not plugin]
                    rec.problems.append(
                        f"{kind} {name!r} is the core's own (transfuse {core_entry.version}); "
                        f"the one from {plugin.distribution} {plugin.version} is ignored: "
                        "rename it (e.g. with your own namespace)"
                    )
                elif rec.distribution == "transfuse" and core_entry not in rec.components:
                    rec.components.append(core_entry)
            return
        holders = [other] if other is not None else []
        if isinstance(clash, PluginConflictError):
            holders = list(clash.entries)
        holders.append(entry)
        by = " and by ".join(f"{e.distribution} {e.version}" for e in holders)
        error = PluginConflictError(
            f"{kind} {name!r} is registered twice: by {by}",
            fix="uninstall one of them, or block one with TRANSFUSE_DISABLE_PLUGINS",
        )
        error.entries = holders
        self._unusable[kind][name] = error
        found[kind].pop(name, None)
        for rec in self._records.values():
            if rec.distribution in {e.distribution for e in holders}:
                rec.components = [c for c in rec.components if (c.kind, c.name) != (kind, name)]
                others = ", ".join(
                    f"{e.distribution} {e.version}"
                    for e in holders
                    if e.distribution != rec.distribution
                )
                problem = f"{kind} {name!r} is also registered by {others}; neither is used"
                rec.problems = [p for p in rec.problems if not p.startswith(f"{kind} {name!r} ")]
                rec.problems.append(problem)

    def components(self, kind: str) -> dict[str, ComponentEntry]:
        """Every registered component of one kind, by name."""
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; one of {sorted(KINDS)}")
        return dict(self._collect()[kind])

    def get(self, kind: str, name: str, *, where: str | None = None) -> Any:
        """The entry for ``name``; a short name (``l2sp``) is completed (``strategy.l2sp``)."""
        table = self.components(kind)
        candidates = [name, _PREFIX.get(kind, "") + name]
        for candidate in candidates:
            if candidate in table:
                return table[candidate]
        for candidate in candidates:
            unusable = self._unusable[kind].get(candidate)
            if unusable is not None:
                raise unusable.within(where) if where else unusable
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
        close += [
            n for n in difflib.get_close_matches(candidates[1], list(table), n=3) if n not in close
        ]
        label = kind.replace("_", " ")
        hint = f"did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else None
        available = ", ".join(sorted(table)) or "none installed"
        failed = [r for r in self._records.values() if r.status == "failed"]
        if failed:
            # Its components are unknown because it never ran: say so, not only "install it".
            broken = "; ".join(
                f"plugin {r.name!r} ({r.distribution} {r.version or ''}) failed: {r.error}"
                for r in failed
            )
            raise PluginError(
                f"unknown {label} {name!r}" + (f" ({hint})" if hint else "") + f", and {broken}",
                where=where,
                fix="fix that plugin (it may be the one that has it; `transfuse plugins "
                "--check` shows every problem), or install the plugin that has it",
            )
        raise UnknownComponentError(
            f"unknown {label} {name!r}" + (f"; {hint}" if hint else ""),
            where=where,
            fix=f"installed: {available}" + ("" if close else "; install the plugin that has it"),
        )

    def commands(self, core: Iterable[str] = ()) -> dict[str, CommandEntry]:
        """The commands plugins add to the ``transfuse`` CLI, by name. A plugin's command
        named like one of ``core`` (the CLI's own commands) is left out and listed among
        that plugin's problems, so a plugin never replaces a built-in command."""
        names = frozenset(core)
        if names != self._core_commands:
            self._core_commands, self._components = names, None
        table = self.components("command")
        return {name: e for name, e in table.items() if isinstance(e, CommandEntry)}

    def records(self) -> list[PluginRecord]:
        """Every plugin seen: active, with problems, disabled and failed."""
        self._collect()
        return list(self._records.values())

    def record_of(self, distribution: str) -> PluginRecord | None:
        """The record of an installed distribution, if any (loaded or not)."""
        self._collect()
        return next((r for r in self._records.values() if r.distribution == distribution), None)

    def blame(self, exc: BaseException) -> PluginError | None:
        """A plugin error naming the plugin whose code raised ``exc`` (read from its
        traceback: the innermost frame in a registered plugin's package), or None when
        no plugin's code is in it. The core's own package is never blamed."""
        import traceback

        packages = {
            r.package: r
            for r in self._records.values()
            if r.package and r.distribution != "transfuse" and r.package != "transfuse"
        }
        culprit: tuple[PluginRecord, traceback.FrameSummary] | None = None
        for frame, _ in traceback.walk_tb(exc.__traceback__):
            module = str(frame.f_globals.get("__name__", "")).split(".")[0]
            if module in packages:
                summary = traceback.FrameSummary(
                    frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
                )
                culprit = (packages[module], summary)
        if culprit is None:
            return None
        record, where = culprit
        return PluginError(
            f"plugin {record.distribution} {record.version or ''} raised "
            f"{type(exc).__name__}: {exc} (in {where.name}, {where.filename}:{where.lineno})",
            fix="this is a bug in the plugin: fix it or report it to its authors "
            "(run with TRANSFUSE_TRACEBACK=1 for the whole traceback)",
        )

    # -- the other hooks -----------------------------------------------------------
    def infer_modality(self, column: pd.Series) -> str | None:
        """Ask the plugins what modality a column holds."""
        result: str | None = self.pm.hook.transfuse_infer_modality(column=column)
        return result

    def emit(self, event: str, payload: Mapping[str, Any]) -> None:
        """Tell every observer about an event; an observer's error never stops a run."""
        for impl in self.pm.hook.transfuse_on_event.get_hookimpls():
            try:
                impl.function(event=event, payload=payload)
            except Exception as exc:
                if _strict():
                    raise
                import warnings

                warnings.warn(
                    f"plugin {impl.plugin_name!r} failed on event {event!r}: {exc}",
                    stacklevel=2,
                )


def _core_mismatch(spec: str | None, core: str) -> str | None:
    """Why the core version does not satisfy an entry's ``requires_core``, or None."""
    if not spec:
        return None
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with pip, pytest, matplotlib
        return f"declares requires_core {spec!r}, which needs the 'packaging' library to check"
    try:
        wanted = SpecifierSet(spec)
    except InvalidSpecifier:
        return f"declares requires_core {spec!r}, which is not a version specifier"
    try:
        version = Version(core)
    except InvalidVersion:
        return None  # a source tree without metadata: nothing to compare
    if wanted.contains(version, prereleases=True):
        return None
    return f"needs transfuse{spec}, and this is transfuse {core}"


def _version() -> str:
    try:
        return metadata.version("transfuse")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


_DEFAULT: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PluginManager()
    return _DEFAULT


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Replace (or drop) the process-wide manager; for tests and long-lived programs."""
    global _DEFAULT
    _DEFAULT = manager


def blame_plugin(exc: BaseException) -> PluginError | None:
    """For the CLI: the :class:`PluginError` naming the plugin whose code raised ``exc``
    (see :meth:`PluginManager.blame`), or None (a bug in transfuse keeps its traceback,
    as does any error under ``TRANSFUSE_TRACEBACK=1``)."""
    if _DEFAULT is None or os.environ.get("TRANSFUSE_TRACEBACK", "") not in {"", "0"}:
        return None
    return _DEFAULT.blame(exc)


def make_module(name: str, **hooks: Any) -> types.ModuleType:
    """Build a plugin module from functions, for tests and notebooks."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookspecs.hookimpl(function))
    return module
