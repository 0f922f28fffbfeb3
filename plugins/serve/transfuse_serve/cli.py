"""The ``transfuse serve`` command's arguments.

This module is imported whenever ``transfuse`` builds its parser (``transfuse --help``
too), so it imports argparse only; :func:`run` imports FastAPI, uvicorn and the runtime.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Add ``serve``'s arguments; returns the function that runs it."""
    parser.add_argument("run", help="a run directory written by `transfuse train`")
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="the port (default: 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes, each with its own copy of the model (default: 1)",
    )
    parser.add_argument(
        "--root",
        help="the folder that file-valued inputs (image, audio, video) may name by path; "
        "nothing outside it is read (without it, files arrive as base64 only)",
    )
    parser.add_argument(
        "--max-rows", type=int, default=10_000, help="most rows per request (default: 10000)"
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        help="largest request body in MiB; a larger one gets 413 (default: 32)",
    )
    parser.add_argument("--device", help="where to compute (default: the run's train.device)")
    return run


def run(args: argparse.Namespace) -> int:
    """Load the run, check the settings, and serve until interrupted."""
    from transfuse_serve.app import ServeSettings, serve

    settings = ServeSettings.checked(
        run=args.run,
        root=args.root,
        max_rows=args.max_rows,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        device=args.device,
    )
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0
