"""The commands that run models: train, evaluate, predict.

Kept apart from :mod:`transfuse.cli` so the parser stays small; each command imports the
runtime (torch) only when it runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from transfuse.distributed import is_main_process
from transfuse.errors import CheckpointError, DataError, TransfuseError

__all__ = ["add_commands", "checkpoint_dir", "read_data_args", "read_rows", "write_rows"]


def checkpoint_dir(out: Path) -> Path:
    """Where ``train --out OUT`` keeps its checkpoint until the run is saved."""
    out = out.expanduser().absolute()
    return out.parent / f".{out.name}.checkpoint"


def read_rows(path: str | Path, where: str = "--data") -> Any:
    """A CSV or parquet file as a DataFrame (relative file paths in it made absolute
    against its folder): :func:`transfuse.tables.read_rows`, the API's reader too."""
    from transfuse.tables import read_rows as read

    return read(path, where)


def write_rows(frame: Any, path: str | Path) -> None:
    """Write a DataFrame as CSV or parquet (by suffix; a path ending in ``/`` is a folder
    of parquet parts), atomically."""
    from transfuse.scoring import RowWriter

    writer = RowWriter(path)
    try:
        writer.write(frame)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def _resolve(config: Any, origin: str) -> None:
    """Check every component name and option (as `config validate` does), naming the file."""
    from transfuse.config import resolve

    try:
        resolve(config, need_source=True, load=True)
    except TransfuseError as exc:
        raise exc.within(origin) from None


def with_data_files(config: Any, values: list[str] | None) -> tuple[Any, Path | None]:
    """``--data PATH`` (the main table) and ``--data NAME=PATH`` (a ``data.join`` table by
    its name) for train and transfer: the config with each named table read from its file,
    and the main file (None when not given). Nothing is read here but file existence."""
    names = [join.name for join in config.data.join]
    main: Path | None = None
    joins = list(config.data.join)
    for value in values or []:
        name, sep, path = value.partition("=")
        named = sep and name.replace("_", "").replace("-", "").isalnum()
        if named and not Path(value).exists():
            if name not in names:
                raise DataError(
                    f"the pipeline joins no table named {name!r}",
                    where=f"--data {value}",
                    fix=f"name one of its data.join tables ({', '.join(names) or 'none'}), "
                    "or give the main table as --data PATH",
                )
            file = Path(path).expanduser()
            if not file.exists():
                raise DataError("no such file", where=f"--data {name}={file}", fix="check the path")
            i = names.index(name)
            update: dict[str, Any] = {"path": str(file.absolute()), "source": None, "options": {}}
            joins[i] = joins[i].model_copy(update=update)
        elif main is not None:
            raise DataError(
                "two main tables are given",
                where=f"--data {value}",
                fix="give the main table once as --data PATH and each joined table as "
                "--data NAME=PATH",
            )
        else:
            main = Path(value).expanduser()
            if not main.exists():
                raise DataError("no such file", where=f"--data {main}", fix="check the path")
    if joins != list(config.data.join):
        config = config.model_copy(update={"data": config.data.model_copy(update={"join": joins})})
    return config, main


def _cmd_train(args: argparse.Namespace) -> int:
    from transfuse.config import load_pipeline
    from transfuse.pipeline import Pipeline
    from transfuse.runs import check_destination

    config = load_pipeline(args.pipeline)
    config, main = with_data_files(config, args.data)
    if config.transfer is not None:  # trained by transfer from its source run
        return _run_transfer(
            args.pipeline,
            args.out,
            data=args.data,
            device=args.device,
            epochs=args.epochs,
            overwrite=args.overwrite,
        )
    _resolve(config, args.pipeline)  # every name and option, before anything is read
    train_updates: dict[str, Any] = {}
    if args.device:
        train_updates["device"] = args.device
    if args.epochs:
        train_updates["epochs"] = args.epochs
    if train_updates:
        config = config.model_copy(update={"train": config.train.model_copy(update=train_updates)})
    base_dir = Path(args.pipeline).parent if Path(args.pipeline).is_file() else None
    if main is not None:
        data = config.data.model_copy(update={"path": str(main.absolute()), "source": None})
        config = config.model_copy(update={"data": data})
    out = Path(args.out)
    check_destination(out, overwrite=args.overwrite)
    ckpt = checkpoint_dir(out)
    if args.resume and not (ckpt / "checkpoint" / "state.json").is_file():
        raise CheckpointError(
            "there is no checkpoint to resume",
            where=str(ckpt),
            fix="train without --resume",
        )
    if not args.resume and ckpt.exists() and is_main_process():  # rank 0 under torchrun
        print(
            f"transfuse: starting afresh; replacing the checkpoint in {ckpt} "
            "(use --resume to continue it)",
            file=sys.stderr,
        )
        shutil.rmtree(ckpt)
    pipeline = Pipeline(config, base_dir=base_dir)
    try:
        pipeline.fit(checkpoint_dir=ckpt, resume=args.resume)
    except BaseException:
        # A failure before the first checkpoint leaves nothing worth resuming behind.
        if is_main_process() and not (ckpt / "checkpoint" / "state.json").is_file():
            shutil.rmtree(ckpt, ignore_errors=True)
        raise
    path = pipeline.save(out)
    if not is_main_process():  # under torchrun rank 0 cleans up and reports
        return 0
    shutil.rmtree(ckpt, ignore_errors=True)
    metrics = pipeline.metrics
    metric = metrics.get("metric", "loss")
    parts = [
        f"{split} {metric} {metrics[split][metric]:.4f}"
        for split in ("validation", "test")
        if metric in metrics.get(split, {})
    ]
    print(
        f"trained {config.name}: {', '.join(parts)} "
        f"(best epoch {metrics.get('best_epoch', 0) + 1}) -> {path}"
    )
    return 0


def read_data_args(values: list[str], pipeline: Any) -> tuple[Any, dict[str, Any] | None, Path]:
    """``--data PATH`` (the main table) and ``--data NAME=PATH`` (each table the run joins,
    by its ``data.join`` name): the main rows, the tables (None when none is given) and the
    main file. A run that joins tables needs every one of them, unless the main file
    already holds the joined columns."""
    main, tables = _data_tables(values)
    frame = read_rows(main)
    return frame, _joined(pipeline, tables, list(frame.columns)), main


def _data_tables(values: list[str]) -> tuple[Path, dict[str, Any]]:
    """The main file of ``--data PATH`` and the tables of ``--data NAME=PATH``, read."""
    main: Path | None = None
    tables: dict[str, Any] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name.replace("_", "").replace("-", "").isalnum() and not Path(value).exists():
            if name in tables:
                raise DataError(f"table {name!r} is given twice", where=f"--data {value}")
            tables[name] = read_rows(path, f"--data {name}=")
        elif main is not None:
            raise DataError(
                "two main tables are given",
                where=f"--data {value}",
                fix="give the main table once as --data PATH and each joined table as "
                "--data NAME=PATH",
            )
        else:
            main = Path(value).expanduser()
    if main is None:
        raise DataError(
            "no main table is given",
            where="--data",
            fix="give the rows as --data PATH (and each joined table as --data NAME=PATH)",
        )
    return main, tables


def _joined(pipeline: Any, tables: dict[str, Any], header: list[str]) -> dict[str, Any] | None:
    """The tables to join to the main rows (None: the main file is already joined, or the
    run joins none)."""
    from transfuse.tables import table_names

    names = table_names(pipeline.config.data)
    columns = {c for spec in pipeline.config.inputs.values() for c in spec.column_list}
    if names and not tables and columns <= set(header):
        return None  # already joined
    return tables if names or tables else None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import transfuse

    pipeline = transfuse.load(args.run, device=args.device)
    frame, tables, _ = read_data_args(args.data, pipeline)
    metrics = pipeline.evaluate(frame, tables, how="--data {name}=PATH")
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for name, value in sorted(metrics.items()):
            print(f"{name:<12} {value:.4f}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import transfuse
    from transfuse.report import note_lines
    from transfuse.scoring import predict_file, read_columns

    pipeline = transfuse.load(args.run, device=args.device)
    main, given = _data_tables(args.data)
    if not main.exists():
        raise DataError("no such file", where=f"--data {main}", fix="check the path")
    tables = _joined(pipeline, given, read_columns(main))
    summary = predict_file(
        pipeline, main, args.out, tables=tables, keep=args.keep, chunk_rows=args.chunk_rows
    )
    print(f"wrote {summary.rows} rows ({', '.join(summary.columns)}) to {summary.path}")
    for name, report in summary.report.items():  # skipped files, unknown categories
        for key, value in report.items():
            for line in note_lines(key, value):
                print(f"note: inputs.{name}: {line.replace('`', '')}", file=sys.stderr)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from transfuse.reasons import explain_command

    return explain_command(args)


def _overrides(config: Any, device: str | None, epochs: int | None) -> Any:
    updates: dict[str, Any] = {}
    if device:
        updates["device"] = device
    if epochs:
        updates["epochs"] = epochs
    if not updates:
        return config
    return config.model_copy(update={"train": config.train.model_copy(update=updates)})


def _run_transfer(
    pipeline: str,
    out: str,
    *,
    source: str | list[str] | None = None,
    data: list[str] | None = None,
    unlabeled: str | None = None,
    baseline: str | None = None,
    strategies: list[str] | None = None,
    device: str | None = None,
    epochs: int | None = None,
    overwrite: bool = False,
) -> int:
    from transfuse.config import load_pipeline
    from transfuse.runs import check_destination
    from transfuse.workflow import source_runs, split_of, transfer

    config, main = with_data_files(_overrides(load_pipeline(pipeline), device, epochs), data)
    base_dir = Path(pipeline).parent if Path(pipeline).is_file() else None
    runs = source_runs(source, None)
    if not runs and config.transfer is not None:
        runs = source_runs(config.transfer.sources(), base_dir)
    sources = [str(r) for r in runs]
    checked = config
    if config.transfer is not None and sources:
        section = config.transfer.model_copy(
            update={"from_": sources[0] if len(sources) == 1 else sources}
        )
        checked = config.model_copy(update={"transfer": section})
    _resolve(checked, pipeline)
    frame = read_rows(main) if main else None
    extra = read_rows(unlabeled, "--unlabeled") if unlabeled else None
    check_destination(Path(out), overwrite=overwrite)
    from transfuse.pipeline import Pipeline

    target = Pipeline(config, base_dir=base_dir)
    result = transfer(
        target, sources or None, strategies or None, data=frame, unlabeled=extra,
        baseline=baseline,
    )  # fmt: skip
    path = result.save(out)
    if not is_main_process():  # under torchrun rank 0 reports
        return 0
    metrics = result.pipeline.metrics
    split = split_of(metrics)
    print(f"transferred {config.name} from {', '.join(sources) or '?'} -> {path}")
    for report in result.reports:
        print(f"  {report.headline()}")  # "no weights loaded" for one that copies none
        _print_origins(report)
    if result.comparison:
        print(f"\n  {split} rows    transfer   scratch   difference")
        for metric, row in result.comparison.items():
            print(
                f"  {metric:<12} {row['transfer']:>9.4f} {row['scratch']:>9.4f} "
                f"{row['difference']:>+11.4f}"
            )
    else:
        metric = metrics.get("metric", "loss")
        value = metrics.get(split, {}).get(metric)
        if value is not None:
            print(f"  {split} {metric} {value:.4f}")
    return 0


def _print_origins(report: Any) -> None:
    """With several source runs: which run each target tensor came from."""
    if not report.runs():
        return
    for t in report.tensors:
        origin = f"from {t.run}" + (f" ({t.source})" if t.source and t.source != t.name else "")
        if t.run is None:
            origin = "from no source"
        note = f"; {t.note}" if t.note else ""
        print(f"    {t.name}: {t.fate} {origin}{note}")


def _cmd_transfer(args: argparse.Namespace) -> int:
    return _run_transfer(
        args.pipeline,
        args.out,
        source=args.source,
        data=args.data,
        unlabeled=args.unlabeled,
        baseline=args.baseline,
        strategies=args.strategy,
        device=args.device,
        epochs=args.epochs,
        overwrite=args.overwrite,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from transfuse.demo import run_demo

    run_demo(
        args.out,
        source=args.source,
        target=args.target,
        device=args.device,
        epochs=args.epochs,
        sample=args.sample,
    )
    return 0


def add_commands(sub: Any) -> None:
    """Add the runtime commands to the ``transfuse`` parser."""
    p = sub.add_parser("train", help="train a pipeline and write a run directory")
    p.add_argument("pipeline", help="a YAML pipeline file or a preset name")
    p.add_argument("--out", required=True, help="the run directory to write")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument(
        "--data",
        action="append",
        help="train on this CSV or parquet file instead of data:; repeat as NAME=PATH to "
        "read a data.join table from a file",
    )
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides train.device)")
    p.add_argument("--epochs", type=int, help="overrides train.epochs")
    p.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a trained run on labelled rows")
    e.add_argument("run", help="a run directory written by `transfuse train`")
    e.add_argument(
        "--data",
        required=True,
        action="append",
        help="a CSV or parquet file with the label column; repeat as NAME=PATH for each "
        "table the run joins",
    )
    e.add_argument("--device", help="where to compute (default: the run's train.device)")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("predict", help="score new rows with a trained run")
    r.add_argument("run", help="a run directory written by `transfuse train`")
    r.add_argument(
        "--data",
        required=True,
        action="append",
        help="a CSV or parquet file (or a folder of parquet files) of rows to score, read in "
        "chunks; repeat as NAME=PATH for each table the run joins (data.join names, e.g. "
        "--data transactions=tx.csv), read whole",
    )
    r.add_argument(
        "--out",
        required=True,
        help="where to write the scores: .csv, .parquet, or a folder (ending in /) of parquet "
        "parts; written as the chunks are scored, renamed into place at the end",
    )
    r.add_argument("--keep", nargs="*", default=None, help="input columns to copy to the output")
    r.add_argument(
        "--chunk-rows",
        type=int,
        default=65_536,
        help="rows scored at a time (memory stays flat as the file grows; default 65536)",
    )
    r.add_argument("--device", help="where to compute (default: the run's train.device)")
    r.set_defaults(func=_cmd_predict)

    x = sub.add_parser("explain", help="why each row got its score: inputs, parts, reasons")
    x.add_argument("run", help="a run directory written by `transfuse train`")
    x.add_argument(
        "--data",
        required=True,
        action="append",
        help="a CSV or parquet file of rows to explain; repeat as NAME=PATH for each table "
        "the run joins",
    )
    x.add_argument("--out", required=True, help="where to write one row per row (.csv, .parquet)")
    x.add_argument("--top", type=int, default=4, help="reasons per row (default 4)")
    x.add_argument("--images", help="a folder for image inputs' saliency maps (PNG)")
    x.add_argument("--device", help="where to compute (default: the run's train.device)")
    x.set_defaults(func=_cmd_explain)

    t = sub.add_parser("transfer", help="train a target pipeline by transfer from a source run")
    t.add_argument("pipeline", help="the target pipeline: a YAML file or a preset name")
    t.add_argument(
        "--from",
        dest="source",
        action="append",
        help="a source run directory (repeat, or comma-separate, for several; in order); "
        "default: transfer.from",
    )
    t.add_argument("--out", required=True, help="the run directory to write")
    t.add_argument(
        "--data",
        action="append",
        help="target rows (CSV or parquet) instead of data:; repeat as NAME=PATH to read a "
        "data.join table from a file",
    )
    t.add_argument("--unlabeled", help="unlabeled target rows, for coral and dann")
    t.add_argument(
        "--baseline",
        choices=["none", "scratch"],
        default=None,
        help="scratch: also train the target from scratch and compare",
    )
    t.add_argument(
        "--strategy",
        action="append",
        help="a strategy name (repeat, in order); default: transfer.strategies",
    )
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides train.device)")
    t.add_argument("--epochs", type=int, help="overrides train.epochs")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    t.set_defaults(func=_cmd_transfer)

    d = sub.add_parser(
        "demo", help="train a source model, transfer it to a target domain, compare with scratch"
    )
    d.add_argument("--out", default="runs/demo", help="where to write the runs and report.md")
    d.add_argument("--source", default="demo-source", help="the source pipeline preset")
    d.add_argument("--target", default="demo-target", help="the target pipeline preset")
    d.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    d.add_argument("--epochs", type=int, help="a quick look: overrides both presets' epochs")
    d.add_argument(
        "--sample", type=int, help="a quick look: rows drawn from the data (presets: 6,000)"
    )
    d.set_defaults(func=_cmd_demo)

    from transfuse.monitor import add_monitor_command

    add_monitor_command(sub)  # transfuse monitor RUN --data NEW (transfuse.monitor)
