"""The ``transfuse mlflow`` command's arguments.

Imported whenever ``transfuse`` builds its parser, so it imports argparse only; :func:`run`
imports mlflow and the runtime.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Add ``mlflow``'s arguments; returns the function that runs it."""
    parser.add_argument("run", help="a run directory written by `transfuse train`")
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="write the pyfunc model folder here instead of logging it to the tracking store",
    )
    parser.add_argument("--name", default="model", help="the logged model's name (default: model)")
    parser.add_argument("--register", metavar="NAME", help="register the logged model as NAME")
    parser.add_argument(
        "--example",
        metavar="FILE",
        help="a CSV or parquet file of rows; its first five (label dropped) become the input "
        "example, which gives the model a signature (Spark takes its result type from it)",
    )
    parser.add_argument("--device", help="where the model scores (default: the run's device)")
    return run


def run(args: argparse.Namespace) -> int:
    """Save or log the run as an MLflow pyfunc model; print where it went."""
    from pathlib import Path

    from transfuse_mlflow.flavor import _run_dir, log_model, save_model

    run_dir = _run_dir(args.run)
    example = None
    if args.example:
        import yaml

        from transfuse.commands import read_rows

        rows = read_rows(args.example, "--example").head(5)
        config = yaml.safe_load((run_dir / "config.yaml").read_text("utf-8"))
        example = rows.drop(columns=[config["task"]["target"]], errors="ignore")
    if args.save:
        path = save_model(run_dir, Path(args.save), device=args.device, input_example=example)
        print(f"saved {run_dir} as an MLflow pyfunc model in {path}")
        return 0
    info = log_model(
        run_dir,
        args.name,
        registered_model_name=args.register,
        device=args.device,
        input_example=example,
    )
    registered = f" (registered as {args.register})" if args.register else ""
    print(f"logged {run_dir} as {info.model_uri}{registered}")
    return 0
