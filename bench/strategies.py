"""Benchmark (not a test): the transfer strategies on a real cross-schema pair, through the
real runtime (``Pipeline.fit(init=..., strategies=...)``).

Source: the ``lending-club-grade-2018`` preset (2018 LendingClub, high-risk grade). Target:
``lending-club-bad-2016`` (2016 LendingClub bad loans, 5%, 200 labels), whose ``applicant``
input shares the source's fields and whose ``history`` input is its own. Prints the target's
test AUC for training from scratch and for each strategy list, and its ratio to scratch.

    python bench/strategies.py [--epochs N] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import transfuse
from transfuse.bases import TransferContext
from transfuse.plugins import get_plugin_manager

SOURCE, TARGET = "lending-club-grade-2018", "lending-club-bad-2016"
KEEP_HISTORY = {"from": "inputs.history.*", "shape": "skip"}  # each extract's own
ARMS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "scratch": [],
    "layer-map + finetune": [
        ("layer-map", {"rules": [KEEP_HISTORY], "min_loaded": 0.3}),
        ("finetune", {"backbone_lr_mult": 0.3}),
    ],
    "layer-map + freeze (linear probe)": [
        ("layer-map", {"rules": [KEEP_HISTORY], "min_loaded": 0.3}),
        ("freeze", {"include": ["inputs.applicant.*", "fusion.*"], "exclude": []}),
    ],
    "layer-map + lp-ft": [
        ("layer-map", {"rules": [KEEP_HISTORY], "min_loaded": 0.3}),
        ("lp-ft", {"probe_epochs": 3, "probe": ["head.*", "inputs.history.*"]}),
    ],
    "layer-map + gradual-unfreeze + l2sp": [
        ("layer-map", {"rules": [KEEP_HISTORY], "min_loaded": 0.3}),
        ("gradual-unfreeze", {"every_epochs": 2}),
        ("l2sp", {"alpha": 0.01, "beta": 0.001}),
    ],
    "layer-map + finetune + coral": [
        ("layer-map", {"rules": [KEEP_HISTORY], "min_loaded": 0.3}),
        ("finetune", {"backbone_lr_mult": 0.3}),
        ("coral", {"weight": 1.0, "batch_size": 64}),
    ],
}


def pipeline(name: str, epochs: int, seed: int) -> transfuse.Pipeline:
    from transfuse.config import load_pipeline

    cfg = load_pipeline(name)
    train = cfg.train.model_copy(update={"epochs": epochs, "seed": seed, "progress": False})
    cfg = cfg.model_copy(update={"train": train, "transfer": None})
    return transfuse.Pipeline.from_config(cfg)


def as_target_rows(frame: Any, target: transfuse.Pipeline) -> Any:
    """Source rows with the target's input columns (those the source lacks are missing)."""
    columns = [c for spec in target.config.inputs.values() for c in spec.column_list]
    return frame.reindex(columns=columns)


def run_arm(source: transfuse.Pipeline, steps: list, epochs: int, seed: int) -> tuple[float, float]:
    manager = get_plugin_manager()
    target = pipeline(TARGET, epochs, seed)
    strategies = []
    for name, options in steps:
        entry = manager.get("strategy", name)
        strategies.append(entry.load()(entry.validate_options(options), None))

    def init(pipe: transfuse.Pipeline, model: Any, splits: Any) -> list:
        full = pipe.load_data()
        used = set(splits.train.index) | set(splits.validation.index)
        used |= set(splits.test.index) if splits.test is not None else set()
        unlabeled = full.drop(index=[i for i in full.index if i in used])
        unlabeled = unlabeled.drop(columns=[pipe.config.task.target])
        ctx = TransferContext(
            source.model,
            model,
            pipe.device,
            splits.train,
            unlabeled=unlabeled,
            source_data=as_target_rows(source.splits.train, pipe),
            epochs=epochs,
            steps_per_epoch=max(1, -(-len(splits.train) // pipe.config.train.batch_size)),
            batches=pipe.batches,
            extra={"label": pipe.config.task.target},
        )
        reports = []
        for strategy in strategies:
            strategy.device_manager = pipe.device
            report = strategy.prepare(ctx)
            if report is not None:
                reports.append(report)
        return reports

    started = time.perf_counter()
    target.fit(init=init if strategies else None, strategies=strategies)
    return float(target.metrics["test"]["roc_auc"]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--source-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    results: dict[str, list[float]] = {arm: [] for arm in ARMS}
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for seed in args.seeds:
        source = pipeline(SOURCE, args.source_epochs, seed).fit()
        print(f"seed {seed}: source test AUC {source.metrics['test']['roc_auc']:.3f}", flush=True)
        for arm, steps in ARMS.items():
            auc, spent = run_arm(source, steps, args.epochs, seed)
            results[arm].append(auc)
            seconds[arm].append(spent)
            print(f"  {arm:40s} AUC {auc:.3f}  ({spent:.0f} s)", flush=True)
    base = np.mean(results["scratch"])
    print(f"\ntarget test AUC over seeds {args.seeds} (200 labels; ratio to scratch)")
    for arm in ARMS:
        mean, std = np.mean(results[arm]), np.std(results[arm])
        print(
            f"{arm:40s} {mean:.3f} ± {std:.3f}   x{mean / base:.3f}   {np.mean(seconds[arm]):.0f} s"
        )


if __name__ == "__main__":
    main()
