"""Transaction sequences at scale: one million card events for 50,000 entities, joined by
key into one event list per entity and batched for ``sequence.gru``.

The tables are made with numpy (seeded): a main table of ``--entities`` rows (key,
income, label) and ``--rows`` transactions (key, day, category, amount, late flag) spread
over the entities with a long tail (some have hundreds of events, a few none). Stages,
each timed with its peak memory (resident set, sampled every 10 ms, above the level when
the stage started):

1. **join**: :func:`transfuse.tables.join_tables`, the ``data.join`` path (one stable
   sort, ``cumcount``, one ``to_dict``; no Python loop per row), keeping the latest
   ``--max-events`` per entity; against the baseline a per-entity ``groupby().apply``
   (what the join did before), on the same tables in the same run;
2. **fit**: the encoder learns its scalers and vocabularies from the event lists;
3. **batch**: :class:`transfuse.data.FrameBatches` turns every entity into device batches
   of ``[B, max_events, F]`` tensors (``prepare`` in the loader, as training does).

Rows per second count transaction rows (the join, batching) or entities.

    python bench/sequence.py                       # the issue's size, a few minutes on 2 cores
    python bench/sequence.py --rows 100000 --entities 5000 --baseline-rows 100000
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from perfkit import machine, print_table

CATEGORIES = ["grocery", "dining", "fuel", "online", "utilities", "travel", "cash", "payment"]


def make_tables(entities: int, rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The main table and ``rows`` transactions over ``entities`` keys (long-tailed)."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, entities)
    weights[rng.random(entities) < 0.02] = 0.0  # 2% without events
    counts = rng.multinomial(rows, weights / weights.sum())
    keys = np.arange(1, entities + 1, dtype=np.int64)
    who = np.repeat(keys, counts)
    tx = pd.DataFrame(
        {
            "cid": who,
            "day": rng.integers(1, 366, rows),
            "category": np.array(CATEGORIES, dtype=object)[rng.integers(0, len(CATEGORIES), rows)],
            "amount": rng.lognormal(3.5, 1.0, rows).round(2),
            "late": (rng.random(rows) < 0.05).astype(np.int64),
        }
    )
    tx = tx.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # arrival order
    income = rng.lognormal(11, 0.5, entities)
    main = pd.DataFrame({"cid": keys, "income": income, "y": rng.integers(0, 2, entities)})
    return main, tx


class PeakMemory:
    """Peak resident memory above the level at ``start``, sampled every 10 ms."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self.base = self.peak = 0

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.base = self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, its wall seconds and its peak extra memory in MiB."""
    with PeakMemory() as mem:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    return out, seconds, mem.mib


def groupby_apply(tx: pd.DataFrame, main: pd.DataFrame, max_events: int) -> list[Any]:
    """The baseline: the join as it was, one ``apply`` per entity."""
    columns = [c for c in tx.columns if c != "cid"]
    ordered = tx.sort_values("day", kind="stable")
    events = ordered.groupby("cid", sort=False)[columns].apply(
        lambda g: g.tail(max_events).to_dict("records")
    )
    found = main["cid"].map(events.to_dict())
    return found.astype(object).where(found.notna(), None).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="transaction rows")
    parser.add_argument("--entities", type=int, default=50_000, help="entities (keys)")
    parser.add_argument("--max-events", type=int, default=64, help="events kept per entity")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=200_000,
        help="rows (and the same share of entities) the groupby-apply baseline joins; "
        "the vectorised join runs on the same subset for the ratio",
    )
    args = parser.parse_args()

    import torch

    from transfuse.config import parse_config
    from transfuse.data import FrameBatches, InputPlan
    from transfuse.device import DeviceManager
    from transfuse.plugins import get_plugin_manager
    from transfuse.tables import join_tables

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    config = parse_config(
        {
            "name": "bench-sequence",
            "task": {"type": "binary", "target": "y"},
            "data": {
                "key": "cid",
                "join": [
                    {
                        "name": "tx",
                        "key": "cid",
                        "relation": "one-to-many",
                        "columns": ["day", "category", "amount", "late"],
                        "order_by": "day",
                        "max_events": args.max_events,
                    }
                ],
            },
            "inputs": {
                "history": {
                    "encoder": "sequence.gru",
                    "column": "tx",
                    "options": {"max_events": args.max_events},
                }
            },
        }
    )
    start = time.perf_counter()
    (main_table, tx), make_s, make_mib = timed(lambda: make_tables(args.entities, args.rows))
    print(f"machine: {machine()}")
    print(
        f"tables: {len(main_table):,} entities, {len(tx):,} transactions "
        f"({tx.memory_usage(deep=True).sum() / 2**20:.0f} MiB in pandas), made in {make_s:.1f} s"
    )

    # baseline against the vectorised join on the same subset
    share = min(1.0, args.baseline_rows / max(1, args.rows))
    sub_main = main_table.iloc[: max(1, int(len(main_table) * share))]
    sub_tx = tx[tx["cid"].isin(sub_main["cid"])]
    base, base_s, base_mib = timed(lambda: groupby_apply(sub_tx, sub_main, args.max_events))
    fast, fast_s, fast_mib = timed(lambda: join_tables(sub_main, config.data, {"tx": sub_tx}))
    same = all(
        (a is None and b is None) or a == b for a, b in zip(base, fast["tx"].tolist(), strict=True)
    )
    print(f"subset join: {len(sub_tx):,} rows, the two joins agree: {same}")
    del base, fast

    joined, join_s, join_mib = timed(lambda: join_tables(main_table, config.data, {"tx": tx}))
    lengths = joined["tx"].map(lambda v: 0 if v is None else len(v))
    print(
        f"joined: {len(joined):,} entities, {int((lengths == 0).sum()):,} without events, "
        f"{int(lengths.sum()):,} events kept (at most {args.max_events} each)"
    )

    manager = get_plugin_manager()
    entry = manager.get("encoder", "sequence.gru")
    device = DeviceManager("cpu", "fp32", seed=0)
    encoder = entry.load()(entry.validate_options(config.inputs["history"].options), device)
    _, fit_s, fit_mib = timed(lambda: encoder.fit(joined["tx"]))
    plan = InputPlan("history", ["tx"], encoder)
    data = FrameBatches(joined, [plan], device, batch_size=args.batch_size)

    def batch_all() -> int:
        count = 0
        for batch in data.batches():
            count += int(batch["index"].shape[0])
        return count

    batched, batch_s, batch_mib = timed(batch_all)
    assert batched == len(joined)
    total_s = time.perf_counter() - start
    kept = int(lengths.sum())
    rows = [
        [
            "make the tables (numpy)",
            f"{make_s:.1f}",
            f"{args.rows / make_s:,.0f}",
            f"{make_mib:.0f}",
        ],
        [
            f"join, groupby-apply baseline ({len(sub_tx):,} rows)",
            f"{base_s:.1f}",
            f"{len(sub_tx) / base_s:,.0f}",
            f"{base_mib:.0f}",
        ],
        [
            f"join, vectorised ({len(sub_tx):,} rows)",
            f"{fast_s:.2f}",
            f"{len(sub_tx) / fast_s:,.0f}",
            f"{fast_mib:.0f}",
        ],
        [
            f"join, vectorised ({args.rows:,} rows)",
            f"{join_s:.1f}",
            f"{args.rows / join_s:,.0f}",
            f"{join_mib:.0f}",
        ],
        [
            f"fit the encoder ({len(joined):,} entities)",
            f"{fit_s:.1f}",
            f"{kept / fit_s:,.0f}",
            f"{fit_mib:.0f}",
        ],
        [
            f"batch, prepare ({kept:,} kept events, batch {args.batch_size})",
            f"{batch_s:.1f}",
            f"{kept / batch_s:,.0f}",
            f"{batch_mib:.0f}",
        ],
    ]
    print_table(
        f"{args.rows:,} transactions, {args.entities:,} entities (sequence.gru, "
        f"max_events {args.max_events})",
        ["stage", "seconds", "rows/s", "peak MiB above start"],
        rows,
    )
    import resource

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"\nvectorised join / groupby-apply baseline: {base_s / fast_s:.1f}x faster on the "
        f"same {len(sub_tx):,} rows; whole run {total_s:.0f} s; peak resident memory of the "
        f"process {peak_mib:.0f} MiB (torch and the plugins included), now "
        f"{PeakMemory().rss() / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
