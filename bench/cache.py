"""The embedding cache: a pipeline with frozen text and image encoders, cold and warm.

Real LendingClub loans (openintro/loans_full_schema): the nine application columns
(``tabular.mlp``), the job title through frozen all-MiniLM-L6-v2 and a per-loan image (a
small generated chart of the loan's figures, a PNG file) through frozen EfficientNet-Lite0,
attention fusion. The first run starts from an empty cache: epoch 1 embeds every row once
(length-sorted, deduplicated, written in bulk); epochs 2..N and a second run of the same
pipeline read the memory-mapped cache. Target: later epochs and the second run at least
20x faster than the first epoch.

    python bench/cache.py                        # CPU, about 3 minutes on 2 idle cores
    python bench/cache.py --rows 500 --epochs 3
    python bench/cache.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from perfkit import (
    LOAN_COLUMNS,
    add_device_args,
    loan_config,
    loans,
    machine,
    print_table,
    set_threads,
)


def chart_images(frame: pd.DataFrame, folder: Path) -> list[str]:
    """One 64x64 PNG per row: bars of the row's standardised application figures."""
    from PIL import Image

    values = frame[LOAN_COLUMNS].astype(float)
    scaled = ((values - values.mean()) / values.std()).fillna(0).clip(-2, 2).to_numpy()
    paths = []
    for i, row in enumerate(scaled):
        pixels = np.full((64, 64, 3), 255, dtype=np.uint8)
        for j, v in enumerate(row):
            top = int(32 - v * 15)
            lo, hi = sorted((top, 32))
            pixels[lo : hi + 1, 4 + j * 6 : 8 + j * 6] = (40 + 20 * j, 90, 200 - 15 * j)
        path = folder / f"loan-{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--rows", type=int, default=1000, help="loans used (of 10,000)")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    set_threads(args)
    work = Path(tempfile.mkdtemp(prefix="transfuse-cache-bench-"))
    os.environ["TRANSFUSE_CACHE"] = str(work / "cache")  # empty: the first run is cold
    from transfuse import Pipeline

    frame = loans().iloc[: args.rows].reset_index(drop=True)
    (work / "images").mkdir()
    frame["chart"] = chart_images(frame, work / "images")
    config = loan_config(args.epochs, args)
    config["inputs"]["chart"] = {"encoder": "image.timm", "column": "chart"}
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        pipeline = Pipeline.from_config(config).fit(frame)
        runs.append((time.perf_counter() - started, pipeline.metrics["history"]))
    print(f"machine: {machine(pipeline.device)}")
    first = runs[0][1][0]["seconds"]
    rows = []
    for run, (total, history) in enumerate(runs, start=1):
        for record in history:
            cache = record["cache"]
            looked = ", ".join(
                f"{k} {v['hits']}/{v['hits'] + v['misses']}" for k, v in cache.items()
            )
            epoch = record["epoch"] + 1
            rows.append(
                [f"run {run}, epoch {epoch}", record["seconds"], first / record["seconds"], looked]
            )
        rows.append([f"run {run}, whole fit", total, "", ""])
    later = [r["seconds"] for r in runs[0][1][1:]]
    second = runs[1][1][0]["seconds"]
    title = (
        f"{len(pipeline.splits.train)} training rows ({args.rows} loans), {args.epochs} epochs; "
        f"epochs 2..N {first / max(later):.0f}x-{first / min(later):.0f}x faster than "
        f"epoch 1, the second run's epoch 1 {first / second:.0f}x"
    )
    header = ["epoch", "seconds", "x faster than run 1 epoch 1", "cache hits / rows (train)"]
    print_table(title, header, rows)


if __name__ == "__main__":
    main()
