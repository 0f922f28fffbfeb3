"""Reading the tables a pipeline names: a data source by name or a CSV/parquet path, the
``where`` row filter, and the ``data.join`` tables joined by key.

One-to-one tables are merged as columns prefixed with the join's name
(``bureau_score``); one-to-many tables (transactions) become one list-of-records column
per entity, ordered by ``order_by`` and keeping the latest ``max_events``. Relative file
paths inside a table are made absolute against the table's folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from transfuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transfuse.config import DataConfig, JoinConfig, PipelineConfig
    from transfuse.plugins import PluginManager

__all__ = [
    "check_training_rows",
    "load_frame",
    "need_columns",
    "read_table",
    "resolve_relative_paths",
]

_SUFFIX_SOURCE = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_table(
    source: str | None,
    path: str | None,
    options: Mapping[str, Any],
    manager: PluginManager,
    *,
    where: str = "data",
    base_dir: Path | None = None,
) -> pd.DataFrame:
    """Load one table through a data source (``csv``/``parquet`` chosen by a path's suffix)."""
    options = dict(options)
    file: Path | None = None
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_absolute() and base_dir is not None and (base_dir / file).exists():
            file = base_dir / file
        options["path"] = str(file)
        if source is None:
            source = _SUFFIX_SOURCE.get(file.suffix.lower())
            if source is None:
                raise DataError(
                    f"cannot tell the format of {file.name!r}",
                    where=f"{where}.path",
                    fix="use a .csv or .parquet file, or name the source with 'source:'",
                )
    if source is None:
        raise ConfigError(
            "no data: neither a source nor a path is given",
            where=where,
            fix="set data.path (a CSV or parquet file) or data.source, or pass a DataFrame",
        )
    entry = manager.get("data_source", source, where=f"{where}.source")
    validated = entry.validate_options(options, f"{where}.options")
    frame = entry.load()(validated).load()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"data source {entry.name!r} did not return a table", where=where)
    if file is not None:
        frame = resolve_relative_paths(frame, file.parent)
    return frame


def resolve_relative_paths(frame: pd.DataFrame, base: Path) -> pd.DataFrame:
    """Make relative file paths in text columns absolute when they name files beside the
    table (so a CSV that says ``images/1.png`` works from any working directory)."""
    base = base.resolve()
    if base == Path.cwd().resolve():
        return frame
    out = frame
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind not in "OT" and not pd.api.types.is_string_dtype(values):
            continue
        sample = values.dropna().head(20)
        if sample.empty or not all(isinstance(v, str) for v in sample):
            continue
        if not all(_relative_file(v, base) for v in sample):
            continue
        if out is frame:
            out = frame.copy()
        out[column] = values.map(
            lambda v: str(base / v) if isinstance(v, str) and _relative_file(v, base) else v
        )
    return out


def _relative_file(value: str, base: Path) -> bool:
    if not value or len(value) > 1024 or "\n" in value or os.path.isabs(value):
        return False
    return not os.path.exists(value) and (base / value).is_file()


def load_frame(
    data: DataConfig, manager: PluginManager, *, base_dir: Path | None = None
) -> pd.DataFrame:
    """The table ``config.data`` describes: loaded, filtered by ``where``, joined."""
    frame = read_table(data.source, data.path, data.options, manager, base_dir=base_dir)
    frame = _where(frame, data.where)
    for i, join in enumerate(data.join):
        frame = _join(frame, join, data.key, manager, f"data.join.{i}", base_dir)
    return frame.reset_index(drop=True)


def _where(frame: pd.DataFrame, where: Mapping[str, list[Any]]) -> pd.DataFrame:
    for column, allowed in where.items():
        need_columns(frame, [column], f"data.where.{column}")
        frame = frame[frame[column].isin(allowed)]
        if frame.empty:
            raise DataError(
                f"no rows left after keeping {column} in {allowed}",
                where=f"data.where.{column}",
                fix="check the values against the table's",
            )
    return frame


def _join(
    frame: pd.DataFrame,
    join: JoinConfig,
    key: str | None,
    manager: PluginManager,
    where: str,
    base_dir: Path | None,
) -> pd.DataFrame:
    if key is None:
        raise ConfigError("joining tables needs the main table's key", where="data.key")
    need_columns(frame, [key], "data.key")
    other = read_table(
        join.source, join.path, join.options, manager, where=where, base_dir=base_dir
    )
    need_columns(other, [join.key], f"{where}.key")
    columns = join.columns or [c for c in other.columns if c != join.key]
    need_columns(other, columns, f"{where}.columns")
    if join.relation == "one-to-one":
        if other[join.key].duplicated().any():
            raise DataError(
                f"table {join.name!r} has repeated keys in {join.key!r}",
                where=f"{where}.relation",
                fix="use relation: one-to-many for a table with several rows per key",
            )
        right = other[[join.key, *columns]].rename(columns={c: f"{join.name}_{c}" for c in columns})
        merged = frame.merge(right, how="left", left_on=key, right_on=join.key)
        if join.key != key:
            merged = merged.drop(columns=[join.key])
        return merged
    if join.order_by is not None:
        need_columns(other, [join.order_by], f"{where}.order_by")
        other = other.sort_values(join.order_by, kind="stable")
    events = other.groupby(join.key, sort=False)[columns].apply(
        lambda g: g.tail(join.max_events).to_dict("records")
    )
    out = frame.copy()
    out[join.name] = out[key].map(events.to_dict())
    out[join.name] = out[join.name].astype(object).where(out[join.name].notna(), None)
    return out


def need_columns(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    """A DataError listing every missing column, the config key and the columns there are
    (the closest first, so a misspelling stands out)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        import difflib

        have = [str(c) for c in frame.columns]
        close = [m for c in missing for m in difflib.get_close_matches(str(c), have, n=1)]
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        shown = ", ".join(have[:30]) + (f" and {len(have) - 30} more" if len(have) > 30 else "")
        what = (
            f"column {missing[0]!r} is not in the table"
            if len(missing) == 1
            else f"columns {', '.join(map(repr, missing))} are not in the table"
        )
        raise DataError(what, where=where, fix=f"{hint}the table has: {shown or 'no columns'}")


def check_training_rows(frame: pd.DataFrame, config: PipelineConfig) -> None:
    """Refuse rows that cannot train the pipeline: none at all, no label in any row, or an
    input whose columns are empty in every row."""
    if frame.empty:
        raise DataError(
            "the table has no rows", where="data", fix="check data.path / data.where, or --data"
        )
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise DataError(
            f"the table has several columns named {', '.join(map(repr, repeated))}",
            where="data",
            fix="rename or drop the repeated columns",
        )
    target = config.task.target
    if target in frame.columns and frame[target].isna().all():
        raise DataError(
            f"no row has a label in column {target!r}",
            where="task.target",
            fix="give labelled rows, or point task.target at the label column",
        )
    for name, spec in config.inputs.items():
        columns = [c for c in spec.column_list if c in frame.columns]
        if columns and all(_all_missing(frame[c]) for c in columns):
            label = "column" if len(columns) == 1 else "columns"
            raise DataError(
                f"{label} {', '.join(map(repr, columns))} of input {name!r} "
                f"{'is' if len(columns) == 1 else 'are'} empty in every row",
                where=f"inputs.{name}",
                fix="fill the column, or remove the input from the pipeline",
            )


def _all_missing(values: pd.Series) -> bool:
    if values.isna().all():
        return True
    if values.dtype.kind in "OSU" or pd.api.types.is_string_dtype(values):
        return bool(values.map(lambda v: isinstance(v, str) and not v.strip()).all())
    return False
