"""The built-in file sources: a CSV or a parquet file, read with pandas.

Every problem a user can cause (no such file, a file that is not a table, a requested
column the file lacks, a file without rows) is a one-line :class:`DataError` naming the
file and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from transfuse.bases import DataSource
from transfuse.errors import DataError

if TYPE_CHECKING:
    from transfuse.builtin import FileSourceOptions

__all__ = ["CsvSource", "ParquetSource"]

_SEPARATORS = (";", "\t", "|")


class _FileSource(DataSource):
    """Shared checks: the file exists, the columns exist, there are rows."""

    options: FileSourceOptions
    kind = "file"

    @property
    def path(self) -> Path:
        """The file to read, with ``~`` expanded."""
        return Path(self.options.path).expanduser()

    def load(self) -> pd.DataFrame:
        """The table, restricted to ``columns`` (in that order) when given."""
        path = self.path
        if not path.exists():
            raise DataError(
                f"{self.kind} file not found (working directory: {Path.cwd()})",
                where=str(path),
                fix="check data.options.path; a relative path is read from the working directory",
            )
        try:
            header = self.header(path)
        except DataError:
            raise
        except Exception as exc:
            raise self._unreadable(path, exc) from None
        wanted = self.options.columns
        if wanted is not None:
            missing = [c for c in wanted if c not in header]
            if missing:
                raise DataError(
                    f"column(s) {missing} not in the {self.kind} file",
                    where=str(path),
                    fix=f"pick from its columns: {header[:30]}",
                )
        try:
            frame = self.read(path, wanted)
        except Exception as exc:
            raise self._unreadable(path, exc) from None
        if not len(frame):
            raise DataError(
                f"the {self.kind} file has no rows",
                where=str(path),
                fix="point to a file with data",
            )
        return frame[wanted] if wanted is not None else frame

    def _unreadable(self, path: Path, exc: Exception) -> DataError:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return DataError(
            f"cannot read it as {self.kind} ({reason})",
            where=str(path),
            fix=f"check that it is a valid {self.kind} file",
        )

    def header(self, path: Path) -> list[str]:
        """The file's column names, read without loading the rows."""
        raise NotImplementedError

    def read(self, path: Path, columns: list[str] | None) -> pd.DataFrame:
        """The rows, only ``columns`` when given."""
        raise NotImplementedError


class CsvSource(_FileSource):
    """A CSV file (compressed ones too). The separator is a comma, or the semicolon, tab
    or bar that a one-column header turns out to hold."""

    kind = "CSV"
    sep = ","

    def header(self, path: Path) -> list[str]:
        """The column names; picks the separator from the header line."""
        try:
            columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            raise DataError(
                "the CSV file is empty", where=str(path), fix="point to a file with data"
            ) from None
        if len(columns) == 1:
            self.sep = next((s for s in _SEPARATORS if s in columns[0]), ",")
            if self.sep != ",":
                columns = [str(c) for c in pd.read_csv(path, nrows=0, sep=self.sep).columns]
        return columns

    def read(self, path: Path, columns: list[str] | None) -> pd.DataFrame:
        """The rows."""
        return pd.read_csv(path, sep=self.sep, usecols=columns)


class ParquetSource(_FileSource):
    """A parquet file (or a folder of them), read with pyarrow."""

    kind = "parquet"

    def header(self, path: Path) -> list[str]:
        """The column names from the parquet schema."""
        import pyarrow.dataset as ds

        return list(ds.dataset(path, format="parquet", partitioning="hive").schema.names)

    def read(self, path: Path, columns: list[str] | None) -> pd.DataFrame:
        """The rows."""
        return pd.read_parquet(path, columns=columns, engine="pyarrow")
