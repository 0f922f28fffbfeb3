"""Scoring a file in chunks: ``transfuse predict``'s data path.

:func:`predict_file` reads the rows to score a chunk at a time (a parquet file through
``pyarrow.parquet.ParquetFile.iter_batches``, a folder of parquet files through a
``pyarrow.dataset``, a CSV through pandas' ``chunksize``), scores each chunk with
:meth:`Pipeline.predict <transfuse.pipeline.Pipeline.predict>` and appends it to the
output (a parquet writer, a CSV appended to, or a folder of parquet parts) under a
temporary name, renamed into place only when every row is written. So memory stays flat
as the input grows, and a failure leaves no half-written output behind.

Joined tables (``--data NAME=PATH``) are read whole and joined to each chunk. Frozen
inputs are computed batch by batch instead of through the embedding cache: a portfolio
scored once would fill the disk (and the cache's in-memory index) with rows read once.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from transfuse.errors import DataError

if TYPE_CHECKING:
    from transfuse.pipeline import Pipeline

__all__ = [
    "CHUNK_ROWS",
    "PredictSummary",
    "RowWriter",
    "is_parquet",
    "iter_chunks",
    "predict_file",
    "read_columns",
    "score_rows",
]

#: Rows scored at a time by default: large enough to keep the model busy, small enough
#: that a chunk of wide rows stays in the tens of megabytes.
CHUNK_ROWS = 65_536

_PARQUET = {".parquet", ".pq"}
_CSV = {".csv", ".tsv", ".txt"}


@dataclass
class PredictSummary:
    """What :func:`predict_file` wrote."""

    path: Path
    rows: int
    columns: list[str]
    chunks: int
    #: Per input, what its encoder noted about the rows (summed over the chunks).
    report: dict[str, dict[str, Any]] = field(default_factory=dict)


def is_parquet(path: Path) -> bool:
    """A ``.parquet``/``.pq`` file, or a folder (of parquet files, as Spark writes them)."""
    return path.is_dir() or path.suffix.lower() in _PARQUET


def _parquet_dataset(path: Path) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet", partitioning="hive")


def _unreadable(path: Path, kind: str, exc: Exception) -> DataError:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return DataError(
        f"cannot read it as {kind} ({reason})",
        where=str(path),
        fix=f"check that it is a valid {kind} file",
    )


def _csv_separator(path: Path, where: str) -> str:
    """The separator a CSV uses (as :class:`transfuse.sources.CsvSource` picks it)."""
    from transfuse.sources import CsvSource

    source = CsvSource.__new__(CsvSource)  # only the header logic, no options needed
    try:
        source.header(path)
    except DataError:
        raise
    except Exception as exc:
        raise _unreadable(path, "CSV", exc) from None
    return source.sep


def read_columns(path: Path) -> list[str]:
    """The column names of a CSV or parquet file (or folder), reading no rows."""
    path = path.expanduser()
    if is_parquet(path):
        try:
            return [str(n) for n in _parquet_dataset(path).schema.names]
        except Exception as exc:
            raise _unreadable(path, "parquet", exc) from None
    sep = _csv_separator(path, str(path))
    return [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]


def iter_chunks(
    path: Path, chunk_rows: int = CHUNK_ROWS, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of a CSV or parquet file (or a folder of parquet files), ``chunk_rows`` at
    a time (parquet chunks never span two files of a folder), only ``columns`` when given.
    Relative file paths in text columns are made absolute against the file's folder."""
    from transfuse.tables import resolve_relative_paths

    path = path.expanduser()
    base = path.parent
    if is_parquet(path):
        kind = "parquet"
        wanted = list(columns) if columns is not None else None
        try:
            # pre_buffer off: with it, pyarrow keeps every row group it has read buffered
            # until the file is closed, so memory grew with the file (200 MB more per 3M rows)
            if path.is_dir():
                import pyarrow.dataset as ds

                batches = _parquet_dataset(path).to_batches(
                    columns=wanted,
                    batch_size=chunk_rows,
                    batch_readahead=1,
                    fragment_readahead=1,
                    fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
                )
            else:
                import pyarrow.parquet as pq

                reader = pq.ParquetFile(path, pre_buffer=False)
                batches = reader.iter_batches(batch_size=chunk_rows, columns=wanted)
            parts: Iterator[pd.DataFrame] = (b.to_pandas() for b in batches)
        except Exception as exc:
            raise _unreadable(path, kind, exc) from None
    else:
        kind = "CSV"
        sep = _csv_separator(path, str(path))
        try:
            usecols = list(columns) if columns is not None else None
            parts = iter(pd.read_csv(path, sep=sep, usecols=usecols, chunksize=chunk_rows))
        except Exception as exc:
            raise _unreadable(path, kind, exc) from None
    while True:
        try:
            chunk = next(parts)
        except StopIteration:
            return
        except Exception as exc:
            raise _unreadable(path, kind, exc) from None
        if len(chunk):
            yield resolve_relative_paths(chunk, base)


class RowWriter:
    """Writes a table chunk by chunk under a temporary name beside ``path``, then renames
    it into place (:meth:`commit`); :meth:`abort` removes what was written. ``.csv`` and
    ``.parquet``/``.pq`` files, or a folder of parquet parts when ``path`` ends in ``/``
    or is an existing empty folder."""

    def __init__(self, out: str | Path, where: str = "--out") -> None:
        path = Path(out).expanduser()
        self.path = path
        self.where = where
        folder = str(out).endswith(("/", "\\")) or path.is_dir()
        suffix = path.suffix.lower()
        if folder:
            self.kind = "folder"
            if path.is_dir() and any(path.iterdir()):
                raise DataError(
                    "the output folder exists and is not empty",
                    where=f"{where} {path}",
                    fix="name a new folder (or an empty one), or remove this one",
                )
        elif suffix in _PARQUET:
            self.kind = "parquet"
        elif suffix == ".csv":
            self.kind = "csv"
        else:
            raise DataError(
                f"cannot tell the format of {path.name!r}",
                where=where,
                fix="use .csv or .parquet, or a folder (ending in /) for parquet parts",
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.rows = 0
        self.parts = 0
        self._schema: Any = None
        self._writer: Any = None
        self._file: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (same columns as the first one)."""
        if self.kind == "csv":
            if self._file is None:
                self._file = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
            frame.to_csv(self._file, index=False, header=self.parts == 0)
        else:
            table = self._arrow(frame)
            if self.kind == "folder":
                import pyarrow.parquet as pq

                self.tmp.mkdir(exist_ok=True)
                pq.write_table(table, self.tmp / f"part-{self.parts:05d}.parquet")
            else:
                if self._writer is None:
                    import pyarrow.parquet as pq

                    self._writer = pq.ParquetWriter(self.tmp, table.schema)
                self._writer.write_table(table)
        self.rows += len(frame)
        self.parts += 1

    def _arrow(self, frame: pd.DataFrame) -> Any:
        """The chunk as an arrow table in the first chunk's schema."""
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._schema is None:
            self._schema = table.schema.remove_metadata()
            return table.replace_schema_metadata(None)
        if table.schema.remove_metadata().equals(self._schema):
            return table.replace_schema_metadata(None)
        try:
            return table.replace_schema_metadata(None).cast(self._schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            changed = [
                f.name
                for f in self._schema
                if f.name in table.schema.names and table.schema.field(f.name).type != f.type
            ]
            raise DataError(
                f"column {changed[0] if changed else '?'!r} changes type between chunks ({exc})",
                where=f"{self.where} {self.path}",
                fix="give the column one type in the input, or score in larger chunks "
                "(--chunk-rows)",
            ) from None

    def commit(self) -> Path:
        """Close the output and rename it into place."""
        self._close()
        if self.kind == "folder" and not self.tmp.exists():
            self.tmp.mkdir()
        if self.kind == "folder" and self.path.is_dir():
            self.path.rmdir()  # checked empty at the start
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Remove whatever was written."""
        try:
            self._close()
        finally:
            if self.tmp.is_dir():
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                self.tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None


def merge_reports(
    total: dict[str, dict[str, Any]], part: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Sum what the encoders noted per chunk: counts add up, lists of examples are kept
    to their first ten, nested mappings merge the same way."""

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out = dict(a)
            for key, value in b.items():
                out[key] = merge(out[key], value) if key in out else value
            return out
        if isinstance(a, bool) or isinstance(b, bool):
            return a or b
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a + b
        if isinstance(a, list) and isinstance(b, list):
            return [*a, *[v for v in b if v not in a]][:10]
        return a

    return {name: merge(total.get(name, {}), report) for name, report in part.items()} | {
        name: report for name, report in total.items() if name not in part
    }


def score_rows(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame] | None = None,
    *,
    keep: Sequence[str] = (),
    how: str = "--data {name}=PATH",
) -> pd.DataFrame:
    """One chunk as ``transfuse predict`` writes it: the ``keep`` columns, then the score
    columns (:meth:`Pipeline.predict <transfuse.pipeline.Pipeline.predict>`), on a fresh
    index. Frozen inputs are computed, not cached (a chunk is scored once)."""
    plans = pipeline.plans
    pipeline.plans = [replace(plan, embedder=None) for plan in plans]
    try:
        scores = pipeline.predict(frame, tables, how=how)
    finally:
        pipeline.plans = plans
    keep = list(keep)
    result = frame[keep].join(scores) if keep else scores
    return result.reset_index(drop=True)


def predict_file(
    pipeline: Pipeline,
    data: str | Path,
    out: str | Path,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    keep: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    how: str = "--data {name}=PATH",
    on_chunk: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Score the rows in ``data`` (CSV, parquet, or a folder of parquet files) with a
    trained ``pipeline`` and write ``keep`` columns (default: ``data.key`` when the file
    has it) and the score columns to ``out`` (``.csv``, ``.parquet`` or a folder), chunk
    by chunk; ``tables`` are the joined tables by name (read whole). ``on_chunk(rows)``
    is called after each chunk is written."""
    if chunk_rows < 1:
        raise DataError(
            "chunk_rows must be at least 1", where="--chunk-rows", fix="give e.g. 65536"
        )
    path = Path(data).expanduser()
    target = Path(out).expanduser()
    if not path.exists():
        raise DataError("no such file", where=f"--data {path}", fix="check the path")
    if (target.exists() and target.resolve() == path.resolve()) or (
        path.is_dir() and target.absolute().resolve().is_relative_to(path.resolve())
    ):
        raise DataError(
            "refusing to overwrite the input file with predictions (or write into its folder)",
            where=f"--out {target}",
            fix="give another output path",
        )
    header = read_columns(path)
    key = pipeline.config.data.key
    chosen = list(keep) if keep is not None else ([key] if key and key in header else [])
    missing = [c for c in chosen if c not in header]
    if missing:
        raise DataError(
            f"column {missing[0]!r} is not in the data",
            where="--keep",
            fix=f"the file has: {', '.join(header[:30])}",
        )
    needed = {c for spec in pipeline.config.inputs.values() for c in spec.column_list}
    columns: list[str] | None = None
    if tables is None and needed <= set(header):  # read only what scoring and --keep use
        columns = [c for c in header if c in needed or c in chosen]
    writer = RowWriter(out)
    report: dict[str, dict[str, Any]] = {}
    result = pd.DataFrame()
    chunks = 0
    try:
        for chunk in iter_chunks(path, chunk_rows, columns):
            result = score_rows(pipeline, chunk, tables, keep=chosen, how=how)
            report = merge_reports(report, pipeline.predict_report)
            writer.write(result)
            chunks += 1
            if on_chunk is not None:
                on_chunk(len(result))
        if writer.rows == 0:
            raise DataError(
                "the file has no rows", where=f"--data {path}", fix="point to a file with data"
            )
        written = writer.commit()
    except BaseException:
        writer.abort()
        raise
    pipeline.predict_report = report
    columns_out = [str(c) for c in result.columns]
    return PredictSummary(written, writer.rows, columns_out, chunks, report)
