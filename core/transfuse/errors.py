"""Errors a user can cause. Each says what was wrong, where, and what to do.

The CLI prints a :class:`TransfuseError` on one line and exits 2; any other exception is a
bug in transfuse (or a plugin) and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "PluginConflictError",
    "PluginError",
    "TransferError",
    "TransfuseError",
    "UnknownComponentError",
]


class TransfuseError(Exception):
    """Base of every error a user can cause.

    ``what`` says what went wrong, ``where`` names the place (a config key, a column,
    a file, a row, a plugin) and ``fix`` says what to do about it.
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.one_line())

    def within(self, place: str) -> TransfuseError:
        """The same error, its ``where`` prefixed by an outer place (a file)."""
        where = place if self.where is None else f"{place}: {self.where}"
        error = type(self)(self.what, where=where, fix=self.fix)
        error.__cause__ = self.__cause__
        return error

    def one_line(self) -> str:
        """The message as one line: ``where: what; fix``."""
        text = self.what if self.where is None else f"{self.where}: {self.what}"
        if self.fix:  # "did you mean 'x'?" reads on without a semicolon
            text = f"{text}{' ' if text.rstrip().endswith('?') else '; '}{self.fix}"
        return " ".join(text.split())


class ConfigError(TransfuseError):
    """A pipeline config is malformed or names something that does not exist."""


class PluginError(TransfuseError):
    """A plugin failed to load or misbehaved."""


class PluginConflictError(PluginError):
    """Two distributions register a component under the same name."""

    #: The clashing entries (set by the plugin manager).
    entries: list[Any]

    def within(self, place: str) -> TransfuseError:
        """The same error at an outer place, keeping the clashing entries."""
        error = super().within(place)
        error.entries = getattr(self, "entries", [])  # type: ignore[attr-defined]
        return error


class UnknownComponentError(ConfigError):
    """A name that no installed plugin registers."""


class DataError(TransfuseError):
    """Input data is missing a column, has a bad value or cannot be read."""


class CheckpointError(TransfuseError):
    """A run directory or checkpoint is missing, corrupt or incompatible."""


class DeviceError(TransfuseError):
    """A requested device or precision is not available on this machine."""


class TransferError(TransfuseError):
    """A transfer strategy could not carry the source model into the target."""
