"""Benchmark (not a test): does a transfer from two source runs beat the best single source,
on LendingClub target test splits nobody tuned on?

LendingClub 2018Q1 (``finance.lending-club``), label ``high_risk`` (grade D-G), the 40
applicant columns of ``lending-club-source``. Two source runs, each a ``tabular.gbdt``
network (the recipe network of ``bench/transfer.py``): the debt-consolidation loans and the
credit-card loans. Target: the loans for every other purpose. For reference, a third source
run pools both purposes (``bench/transfer.py``'s source).

Protocol (``bench/transfer.py``'s, whose functions this imports): for each
``--split-seeds`` value a stratified 30% target test split, never used for a choice; label
budgets drawn stratified from the other 70%, ``--seeds`` draws each. Every arm and option
is fixed before it runs; the headline is ONE recipe, ``RECIPE``: both runs through
``strategy.source-weights`` (defaults: temperature 0.02, combine first) then
``strategy.stack``. Bars: each single source moved by the same recipe (layer-map + stack),
and "the best single source in hindsight": whichever single-source arm has the higher
mean test AUC at that budget (picked on the test rows, so an optimistic bar). Paired AUC
differences with a bootstrap 95% interval over test rows and seeds of every split.
The defaults took 2,131 s on a 2-core machine shared with other jobs (load 9-39), 625 s of
it training the three source runs; ``--sources DIR`` keeps them for the next run, and
``--budgets 200 --seeds 1 --split-seeds 0`` is a quick look.

    python bench/multisource.py --sources runs/ms        # defaults; keep the source runs
    python bench/multisource.py --budgets 200 --seeds 2 --split-seeds 5
    python bench/multisource.py --json out.json          # also every score, as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import budget_sample, split_target  # bench/ is not a package
from transfer import FINETUNE, LABEL, SOURCE_TRAIN, STACK, TRAIN, load_shift, log, network_config
from transfer_tables import Arm, tables

import transfuse

#: The source runs, in the order given to the several-source arms: name -> loan purposes.
SOURCES = {"consolidation": ["debt_consolidation"], "card": ["credit_card"]}
POOLED = "consolidation + card in one run"
RECIPE = "both runs: source-weights + stack (the recipe)"
SINGLE = {name: f"{name} run alone: layer-map + stack" for name in SOURCES}
HINDSIGHT = "best single run (hindsight, picked on test rows)"
#: Transfer arms, fixed before any run: label -> (source runs, strategies in order).
ARMS: dict[str, tuple[list[str], list[Any]]] = {
    **{SINGLE[n]: ([n], [("layer-map", {}), STACK]) for n in SOURCES},
    RECIPE: (list(SOURCES), [("source-weights", {}), STACK]),
    "both runs: source-weights + finetune (distill 1.0)": (
        list(SOURCES),
        [("source-weights", {}), FINETUNE],
    ),
    f"{POOLED}: layer-map + stack": ([POOLED], [("layer-map", {}), STACK]),
}
ENSEMBLE = "both runs unchanged, logits weighted as source-weights weighs them"
TEMPERATURE = 0.02  # source-weights' default


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Sources:
    """The source runs, trained once (they do not depend on the target split)."""

    def __init__(self, frame: pd.DataFrame, columns: list[str], workdir: Path) -> None:
        self.columns = columns
        self.paths: dict[str, Path] = {}
        self.pipelines: dict[str, Any] = {}
        groups = {**SOURCES, POOLED: [p for v in SOURCES.values() for p in v]}
        for name, purposes in groups.items():
            rows = frame[frame["loan_purpose"].isin(purposes)]
            saved = workdir / f"source-{name.replace(' ', '')}"
            if (saved / "model.safetensors").is_file():  # --sources DIR from an earlier run
                self.paths[name], self.pipelines[name] = saved, transfuse.load(saved)
                log(f"source run {name}: {len(rows)} rows (kept from {saved})")
                continue
            started = time.perf_counter()
            cfg = network_config("gbdt", LABEL, 0, SOURCE_TRAIN, columns, 0.1)
            pipe = transfuse.Pipeline.from_config(cfg).fit(rows)
            self.paths[name] = pipe.save(saved)
            self.pipelines[name] = pipe
            log(f"source run {name}: {len(rows)} rows ({time.perf_counter() - started:.0f} s)")


def run_split(
    sources: Sources,
    target: pd.DataFrame,
    split_seed: int,
    budgets: list[int],
    seeds: int,
    arms: list[str],
) -> tuple[np.ndarray, dict[str, list[Arm]]]:
    """Every arm at every budget and seed on one target test split."""
    pool, test = split_target(target, LABEL, seed=split_seed)
    y = test[LABEL].to_numpy()
    unchanged = {n: sources.pipelines[n].predict_scores(test)[:, -1] for n in sources.paths}
    for name, p in unchanged.items():
        log(f"  split {split_seed}: {name} run unchanged, test AUC {roc_auc_score(y, p):.3f}")
    out: dict[str, list[Arm]] = {}
    for budget in budgets:
        found: dict[str, Arm] = {}

        def add(method: str, kind: str, scores: np.ndarray, into: dict[str, Arm] = found) -> None:
            into.setdefault(method, Arm(method, kind)).scores.append(np.asarray(scores, float))

        for name in SOURCES:
            add(f"{name} run unchanged", "baseline", unchanged[name])
        for seed in range(seeds):
            started = time.perf_counter()
            rows = budget_sample(pool, LABEL, budget, seed)
            labels = rows[LABEL].to_numpy()
            aucs = [
                roc_auc_score(labels, sources.pipelines[n].predict_scores(rows)[:, -1])
                for n in SOURCES
            ]
            z = np.asarray(aucs) / TEMPERATURE
            w = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            mixed = sum(wk * _logit(unchanged[n]) for wk, n in zip(w, SOURCES, strict=True))
            add(ENSEMBLE, "baseline", 1 / (1 + np.exp(-np.asarray(mixed))))
            for arm in arms:
                runs, steps = ARMS[arm]
                cfg = network_config("gbdt", LABEL, seed, TRAIN, sources.columns)
                paths = [sources.paths[r] for r in runs]
                moved = transfuse.transfer(cfg, paths, steps, data=rows, test=test,
                                           shift=False).pipeline  # fmt: skip
                add(arm, "transfer", moved.predict_scores(test)[:, -1])
            line = "  ".join(
                f"{a.method[:18]} {roc_auc_score(y, a.scores[-1]):.3f}" for a in found.values()
            )
            log(f"  n={budget} seed {seed} ({time.perf_counter() - started:.0f} s): {line}")
        out[str(budget)] = list(found.values())
    return y, out


def with_hindsight(labels: dict[int, np.ndarray], results: dict[str, dict[int, list[Arm]]]) -> str:
    """Add the best-single-run bar (the single arm with the higher mean test AUC at each
    budget) and say which it was."""
    said = []
    for budget, per in results.items():
        means = {}
        for method in SINGLE.values():
            aucs = [roc_auc_score(labels[s], x) for s, arms in per.items()
                    for a in arms if a.method == method for x in a.scores]  # fmt: skip
            if aucs:
                means[method] = float(np.mean(aucs))
        if not means:
            continue
        best = max(means, key=lambda m: means[m])
        said.append(f"n={budget}: {best.split(' run')[0]}")
        for arms in per.values():
            found = next(a for a in arms if a.method == best)
            arms.append(Arm(HINDSIGHT, "bar", list(found.scores)))
    return "best single run in hindsight: " + ", ".join(said)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--seeds", type=int, default=2, help="draws of the labelled rows")
    parser.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, help="also write every test score here")
    parser.add_argument(
        "--sources", type=Path, help="keep the source runs here and reuse them when present"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()
    source_rows, target, columns = load_shift()
    frame = pd.concat([source_rows, target])
    log(f"target: {len(target)} loans of other purposes, {target[LABEL].mean():.1%} high risk")
    labels: dict[int, np.ndarray] = {}
    results: dict[str, dict[int, list[Arm]]] = {str(b): {} for b in args.budgets}
    with tempfile.TemporaryDirectory(prefix="transfuse-multisource-") as tmp:
        sources = Sources(frame, columns, args.sources or Path(tmp))
        for split_seed in args.split_seeds:
            y, per_budget = run_split(
                sources, target, split_seed, args.budgets, args.seeds, args.arms
            )
            labels[split_seed] = y
            for budget, arms in per_budget.items():
                results[budget][split_seed] = arms
    hindsight = with_hindsight(labels, results)
    bars = [HINDSIGHT, *[SINGLE[n] for n in SOURCES if SINGLE[n] in args.arms]]
    print()
    print(tables(labels, results, recipe=RECIPE, bars=bars, rounds=args.bootstrap))
    print(f"\n{hindsight}\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        saved = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "labels": {str(s): y.tolist() for s, y in labels.items()},
            "results": {b: {str(s): [{"method": a.method, "kind": a.kind,
                                      "scores": [x.tolist() for x in a.scores]} for a in arms]
                            for s, arms in per.items()} for b, per in results.items()},
        }  # fmt: skip
        args.json.write_text(json.dumps(saved), "utf-8")


if __name__ == "__main__":
    main()
