"""Files a column names that cannot be read: stop with an error, or skip the row's modality.

Encoders that read files (``image.timm``, ``audio.mel-cnn``) take an ``on_bad_file``
option. ``error`` (the default) stops at the first missing or corrupt file with a
:class:`~transfuse.DataError` naming the column, the row and the path; ``skip`` treats that
row's modality as missing (the fusion masks it out), warns once per file, and the run's
``log.json`` reports how many rows were skipped and the first few paths
(:meth:`BadFiles.report`, through :meth:`transfuse.bases.Encoder.data_report`).

Each file is judged once per encoder and remembered by path, size and modification time
(bytes by a digest), so a file read every epoch is not probed again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from transfuse.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["FIRST_PATHS", "BadFiles", "OnBadFile", "file_id", "is_file_value", "row_where"]

#: ``on_bad_file`` values.
OnBadFile = Literal["error", "skip"]
#: How many skipped paths a report names.
FIRST_PATHS = 5


def is_file_value(value: Any) -> bool:
    """Whether ``value`` names a file or holds one's bytes (the values ``on_bad_file`` covers)."""
    return isinstance(value, str | os.PathLike | bytes | bytearray | memoryview)


def file_id(value: Any) -> str:
    """What identifies a file value's content: absolute path, size and mtime (bytes: digest)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes:" + hashlib.blake2b(bytes(value), digest_size=16).hexdigest()
    path = os.path.abspath(os.path.expanduser(os.fspath(value)))
    try:
        stat = os.stat(path)
    except OSError:
        return f"absent:{path}"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def row_where(column: pd.Series, label: Any) -> str:
    """Where a row's value is, for messages: ``column 'photo', row 7``."""
    return f"column {column.name!r}, row {label!r}" if column.name is not None else f"row {label!r}"


def _shown(value: Any) -> str:
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    return f"<{len(bytes(value))} bytes>"


class BadFiles:
    """The files an encoder failed to read, and what ``on_bad_file`` says to do about them.

    ``kind`` names the modality in messages ("image", "audio").
    """

    def __init__(self, policy: OnBadFile, kind: str) -> None:
        self.policy = policy
        self.kind = kind
        self._bad: dict[str, str] = {}  # file id -> why it cannot be read
        self._good: set[str] = set()

    @property
    def skipping(self) -> bool:
        """Whether a bad file makes a missing modality (``skip``) rather than an error."""
        return self.policy == "skip"

    def failed(self, value: Any, error: DataError) -> None:
        """Record that ``value`` could not be read; raise ``error`` (with the way out
        added to its fix) under ``error``, warn once per file under ``skip``."""
        key = file_id(value)
        if self.policy == "error":
            fix = f"{error.fix} (or set on_bad_file: skip)" if error.fix else None
            raise DataError(error.what, where=error.where, fix=fix) from None
        if key not in self._bad:
            message = f"{error.one_line()}; on_bad_file: skip, so the row has no {self.kind}"
            warnings.warn(message, stacklevel=3)
        self._bad[key] = error.what

    def is_bad(self, value: Any) -> bool:
        """Whether ``value`` is a file value already known to be unreadable."""
        return bool(self._bad) and is_file_value(value) and file_id(value) in self._bad

    def probe(self, value: Any, read: Callable[[Any], object]) -> bool:
        """Whether the file value reads; ``read`` (which raises a DataError naming the row)
        runs once per file. Under ``error`` a bad file raises."""
        key = file_id(value)
        if key in self._bad:
            return False
        if key in self._good:
            return True
        try:
            read(value)
        except DataError as exc:
            self.failed(value, exc)
            return False
        self._good.add(key)
        return True

    def mark_unreadable(
        self, column: pd.Series, missing: np.ndarray, read: Callable[..., object]
    ) -> np.ndarray:
        """Under ``skip``: also mark missing the rows whose file does not read (``read(value,
        where=...)`` raises a DataError; each file is read once). ``missing`` is updated
        in place and returned; under ``error`` it is returned as it is."""
        if self.skipping:
            for i, (label, value) in enumerate(column.items()):
                if not missing[i] and is_file_value(value):
                    where = row_where(column, label)
                    missing[i] = not self.probe(value, functools.partial(read, where=where))
        return missing

    def report(self, values: Iterable[Any]) -> dict[str, Any]:
        """Rows among ``values`` whose file was skipped, and the first few paths; empty
        when none was (only files already read are judged)."""
        rows, first = 0, list[str]()
        for value in values:
            if self.is_bad(value):
                rows += 1
                shown = _shown(value)
                if len(first) < FIRST_PATHS and shown not in first:
                    first.append(shown)
        if not rows:
            return {}
        return {"skipped_files": rows, "first": first}
