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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from transfuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transfuse.config import DataConfig, JoinConfig, PipelineConfig
    from transfuse.plugins import PluginManager

__all__ = [
    "check_training_rows",
    "event_lists",
    "join_tables",
    "load_frame",
    "need_columns",
    "read_rows",
    "read_table",
    "resolve_relative_paths",
    "table_names",
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
    """Load one table through a data source (``csv``/``parquet`` chosen by a path's suffix;
    a folder is read as parquet files, as Spark and pyarrow write them)."""
    options = dict(options)
    file: Path | None = None
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_absolute() and base_dir is not None and (base_dir / file).exists():
            file = base_dir / file
        options["path"] = str(file)
        if source is None:
            source = "parquet" if file.is_dir() else _SUFFIX_SOURCE.get(file.suffix.lower())
            if source is None:
                raise DataError(
                    f"cannot tell the format of {file.name!r}",
                    where=f"{where}.path",
                    fix="use a .csv or .parquet file (or a folder of parquet files), or name "
                    "the source with 'source:'",
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


def read_rows(path: str | Path, where: str = "--data") -> pd.DataFrame:
    """Rows to score or evaluate, read from a CSV or parquet file (or a folder of parquet
    files) as ``transfuse predict --data`` reads them: relative file paths inside it (an
    image, a recording) are taken from the file's folder. ``Pipeline.predict`` and friends
    call this when given a path instead of a DataFrame."""
    from transfuse.plugins import get_plugin_manager

    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(
            f"no such file (working directory: {Path.cwd()})",
            where=f"{where} {file}",
            fix="check the path",
        )
    return read_table(None, str(file), {}, get_plugin_manager(), where=where)


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
    data: DataConfig,
    manager: PluginManager,
    *,
    base_dir: Path | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The table ``config.data`` describes: loaded, filtered by ``where``, joined.

    ``tables`` replaces joined tables by name (``{"transactions": frame}``); the others
    are read from their configured source or path.
    """
    frame = read_table(data.source, data.path, data.options, manager, base_dir=base_dir)
    frame = _where(frame, data.where)
    given = dict(tables or {})
    others: dict[str, pd.DataFrame] = {}
    for i, join in enumerate(data.join):
        if join.name in given:
            others[join.name] = given[join.name]
        else:
            others[join.name] = read_table(
                join.source,
                join.path,
                join.options,
                manager,
                where=f"data.join.{i}",
                base_dir=base_dir,
            )
    return join_tables(frame, data, others)


def table_names(data: DataConfig) -> list[str]:
    """The names of the tables a pipeline joins to its main table, in order."""
    return [join.name for join in data.join]


def join_tables(
    frame: pd.DataFrame,
    data: DataConfig,
    tables: Mapping[str, pd.DataFrame],
    *,
    where: str = "data.join",
    how: str = "tables={{{name!r}: frame}}",
) -> pd.DataFrame:
    """Join every ``data.join`` table, given by name in ``tables``, to ``frame`` by key.

    A table the config names but ``tables`` lacks is a DataError naming it and saying how
    to give it (``how``, e.g. ``--data {name}=PATH``); so is a name the config does not
    know.
    """
    names = table_names(data)
    unknown = sorted(set(tables) - set(names))
    if unknown:
        raise DataError(
            f"table {unknown[0]!r} is not one this pipeline joins",
            where=where,
            fix=f"the pipeline joins: {', '.join(names) or 'no tables'}",
        )
    for i, join in enumerate(data.join):
        if join.name not in tables:
            relation = f"{join.relation} on {join.key!r}"
            raise DataError(
                f"table {join.name!r} ({relation}) is missing",
                where=where,
                fix=f"give it as {how.format(name=join.name)}; a table with no rows (its "
                "header only) means these entities have none",
            )
        frame = _join(frame, join, data.key, tables[join.name], f"data.join.{i}")
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
    other: pd.DataFrame,
    where: str,
) -> pd.DataFrame:
    if key is None:
        raise ConfigError("joining tables needs the main table's key", where="data.key")
    need_columns(frame, [key], "data.key")
    need_columns(other, [join.key], f"{where}.key ({join.name})")
    columns = join.columns or [c for c in other.columns if c != join.key]
    need_columns(other, columns, f"{where}.columns ({join.name})")
    other = other.assign(**{join.key: _like(other[join.key], frame[key], join, where)})
    if join.relation == "one-to-one":
        repeated = other.loc[other[join.key].duplicated(), join.key].unique()
        if len(repeated):
            shown = ", ".join(map(repr, repeated[:3].tolist()))
            more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
            raise DataError(
                f"table {join.name!r} is one-to-one but key {join.key!r} repeats: {shown}{more}",
                where=f"{where}.relation",
                fix="give one row per key, or use relation: one-to-many for a table with "
                "several rows per key",
            )
        right = other[[join.key, *columns]].rename(columns={c: f"{join.name}_{c}" for c in columns})
        if join.key == key:
            merged = frame.merge(right, how="left", on=key)
        else:
            right = right.rename(columns={join.key: "__transfuse_key"})
            merged = frame.merge(right, how="left", left_on=key, right_on="__transfuse_key")
            merged = merged.drop(columns=["__transfuse_key"])
        return merged
    if join.order_by is not None:
        need_columns(other, [join.order_by], f"{where}.order_by ({join.name})")
    out = frame.copy()
    out[join.name] = pd.Series(
        event_lists(other, join, frame[key]), index=frame.index, dtype=object
    )
    return out


def _like(keys: pd.Series, main: pd.Series, join: JoinConfig, where: str) -> pd.Series:
    """The joined table's keys in the main table's kind (numbers or text): a CSV read
    ``007`` as 7 and a parquet file kept ``"7"`` still match."""
    numeric = pd.api.types.is_numeric_dtype
    if numeric(keys) == numeric(main):
        return keys
    if numeric(main):
        converted = pd.to_numeric(keys, errors="coerce")
        bad = keys[converted.isna() & keys.notna()]
        if len(bad):
            raise DataError(
                f"table {join.name!r} key {join.key!r} holds {bad.iloc[0]!r}, but the main "
                "table's keys are numbers",
                where=f"{where}.key",
                fix="give both tables the same kind of key",
            )
        return converted
    return keys.astype("string").astype(object).where(keys.notna(), None)


def event_lists(
    other: pd.DataFrame, join: JoinConfig, entities: pd.Series
) -> list[list[dict[str, Any]] | None]:
    """Each entity's events: records of the join's columns ordered by ``order_by`` (ties
    keep the table's order), the latest ``max_events``; ``None`` for an entity without.

    Vectorised: one stable sort, one ``cumcount`` keeps the latest events, one
    ``to_dict("records")``, then a cut at the key boundaries; no Python loop per row.
    """
    columns = join.columns or [c for c in other.columns if c != join.key]
    table = other[other[join.key].isin(entities)].reset_index(drop=True)
    codes, uniques = pd.factorize(table[join.key], sort=False)
    ordered = pd.DataFrame({"code": codes}, index=table.index)
    by = ["code"]
    if join.order_by is not None:
        ordered["order"] = table[join.order_by]
        by.append("order")
    ordered = ordered.sort_values(by, kind="stable")
    latest = ordered.groupby("code", sort=False).cumcount(ascending=False) < join.max_events
    ordered = ordered[latest.to_numpy()]
    grouped = ordered["code"].to_numpy()
    picked = table.iloc[ordered.index.to_numpy()][columns]
    records = cast("list[dict[str, Any]]", picked.to_dict("records"))
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    if not len(grouped):
        starts = starts[:0]
    ends = [*starts[1:], len(records)]
    events = {uniques[grouped[s]]: records[s:e] for s, e in zip(starts, ends)}
    return [events.get(k) for k in entities.tolist()]


def need_columns(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    """A DataError listing every missing column, the config key and the columns there are
    (the closest first, so a misspelling stands out); also refuses what is not a DataFrame
    and a needed column whose name the table repeats."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"the rows must be a pandas DataFrame, not a {type(frame).__name__}",
            where=where,
            fix="pass a DataFrame with one column per input, e.g. pd.DataFrame(rows)",
        )
    repeated = set(frame.columns[frame.columns.duplicated()])
    twice = [c for c in columns if c in repeated]
    if twice:
        raise DataError(
            f"the table has several columns named {', '.join(map(repr, twice))}",
            where=where,
            fix="rename or drop the repeated columns",
        )
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
    if values.dtype.kind in "OSU" or isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
        # missing or blank text in every row (a list, so categoricals need no reduction)
        blank = [isinstance(v, str) and not v.strip() for v in values.tolist()]
        return bool((values.isna().to_numpy() | np.array(blank, dtype=bool)).all())
    return False
