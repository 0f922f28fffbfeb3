"""Benchmark (not a test): does transfer beat the unchanged source model and pooled
LightGBM on real credit data, on test splits nobody tuned on?

Two pairs of domains, one protocol:

- ``purpose``: LendingClub 2018Q1 (``finance.lending-club``), label ``high_risk`` (grade
  D-G). Source: the 7,393 debt-consolidation and credit-card loans; target: the 2,607
  loans for every other purpose; the 40 applicant columns of ``lending-club-source``.
- ``cross-schema``: source the 10,000 2018 loans (label ``high_risk``), target the 9,857
  2016 loans of ``finance.lending-club-modeldata`` (label ``bad``, 5%); the networks read
  the 9 fields both extracts share, the target-only baselines every 2016 field.

Protocol: for each ``--split-seeds`` value a stratified 30% target test split, never used
for a choice; label budgets drawn stratified from the other 70%, ``--seeds`` draws each
(redrawing rows and initialisation). Every arm is fixed before it runs; the headline is
ONE recipe, ``RECIPE``: the source ``tabular.gbdt`` network moved by ``transfuse.transfer``
with ``[layer-map, stack]`` (its penalty chosen by repeated k-fold on the budget's rows).
The two bars: the source network unchanged and LightGBM pooled (source + budget rows, a
domain flag). Metrics on the target test rows; paired AUC differences with a bootstrap 95%
interval over test rows and seeds of every split.

    python bench/transfer.py                                   # defaults (~20 min, 2 cores)
    python bench/transfer.py --pairs purpose --budgets 200 --seeds 2 --split-seeds 100
    python bench/transfer.py --arms recipe gbdt-finetune mlp-stack --split-seeds 7 8
    python bench/transfer.py --json out.json                   # also every score, as JSON
    python bench/transfer.py --tables out.json                 # the tables of a saved run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import (  # bench/ is not a package: imported from its folder
    DOMAIN,
    budget_sample,
    lightgbm_scores,
    logistic_scores,
    split_target,
)
from transfer_tables import Arm, _aucs, metrics, paired_difference, tables

import transfuse
from transfuse import get_plugin_manager
from transfuse.config import load_pipeline
from transfuse.pipeline import load as load_run

__all__ = ["ARMS", "RECIPE", "Arm", "_aucs", "metrics", "paired_difference"]

LABEL = "high_risk"
SOURCE_PURPOSES = ["debt_consolidation", "credit_card"]
NOT_FEATURES = {"loan_id", "emp_title", "loan_purpose", "high_risk", "bad"}

#: The networks: one tabular encoder each over the shared columns, a linear head.
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "gbdt": ("tabular.gbdt", {}),
    "mlp": ("tabular.mlp", {}),
    "gbdt-linear": ("tabular.gbdt", {}),
}
#: The fusion of a family's networks (``fusion.concat`` unless named here).
FUSIONS = {"gbdt-linear": "fusion.linear"}
STACK = ("stack", {})
FINETUNE = ("finetune", {"backbone_lr_mult": 0.3})
#: Transfer arms, fixed before any run: id -> (network, label, strategies in order).
ARMS: dict[str, tuple[str, str, list[Any]]] = {
    "recipe": ("gbdt", "gbdt: layer-map + stack (the recipe)", [("layer-map", {}), STACK]),
    "gbdt-finetune": ("gbdt", "gbdt: layer-map + finetune", [("layer-map", {}), FINETUNE]),
    "gbdt-continue": (
        "gbdt",
        "gbdt: continue boosting + finetune",
        [("layer-map", {"gbdt": "continue"}), FINETUNE],
    ),
    "gbdt-pool": ("gbdt", "gbdt: layer-map + pool", [("layer-map", {}), ("pool", {})]),
    "linear-pool": (
        "gbdt-linear",
        "gbdt + fusion.linear: layer-map + pool (exact)",
        [("layer-map", {}), ("pool", {"exact": True})],
    ),
    "mlp-stack": ("mlp", "mlp: layer-map + stack", [("layer-map", {}), STACK]),
    "mlp-finetune": ("mlp", "mlp: layer-map + finetune", [("layer-map", {}), FINETUNE]),
}
#: Baselines beside the two bars (which always run).
BASELINES = ["lgbm-source", "lgbm-target", "logistic-target"]
DEFAULT_ARMS = ["recipe", "gbdt-finetune", "mlp-stack", *BASELINES]
RECIPE = ARMS["recipe"][1]
BAR_SOURCE, BAR_POOLED = "gbdt source network unchanged", "LightGBM pooled + domain flag"
TRAIN = {"epochs": 40, "batch_size": 64, "lr": 1e-3, "patience": 6, "progress": False}
SOURCE_TRAIN = {"epochs": 30, "batch_size": 128, "lr": 1e-3, "patience": 5, "progress": False}


# -- data ---------------------------------------------------------------------------------
@dataclass
class Pair:
    """A source domain and a target domain: frames, labels and the columns each model reads."""

    name: str
    source: pd.DataFrame
    source_label: str
    target: pd.DataFrame
    label: str
    shared: list[str]  # what the networks and the pooled / source-only LightGBM read
    target_columns: list[str]  # what the target-only baselines read


def _load(name: str) -> pd.DataFrame:
    entry = get_plugin_manager().get("data_source", name)
    return entry.load()(entry.validate_options({"progress": False})).load()


def load_shift() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The purpose shift's source rows, target rows and feature columns."""
    frame = _load("finance.lending-club")
    features = load_pipeline("lending-club-source").inputs["applicant"].column_list
    in_source = frame["loan_purpose"].isin(SOURCE_PURPOSES)
    return frame[in_source], frame[~in_source], list(features)


def load_pair(name: str) -> Pair:
    """``purpose`` or ``cross-schema``, through the finance plugin."""
    if name == "purpose":
        source, target, features = load_shift()
        return Pair(name, source, LABEL, target, LABEL, features, features)
    source, target = _load("finance.lending-club"), _load("finance.lending-club-modeldata")
    shared = load_pipeline("lending-club-bad-2016").inputs["applicant"].column_list
    own = [c for c in target.columns if c not in NOT_FEATURES]
    return Pair(name, source, LABEL, target, "bad", list(shared), own)


def network_config(family: str, label: str, seed: int, train: dict[str, Any],
                   columns: list[str], test_size: float = 0.0) -> Any:  # fmt: skip
    """A one-input pipeline: the shared columns through ``family``'s encoder."""
    encoder, options = FAMILIES[family]
    return transfuse.config.parse_config(
        {
            "name": f"bench-{family}",
            "task": {"type": "binary", "target": label},
            "data": {"source": "finance.lending-club", "test_size": test_size},
            "inputs": {"applicant": {"encoder": encoder, "columns": columns, "options": options}},
            "fusion": {"method": FUSIONS.get(family, "fusion.concat")},
            "train": {**train, "seed": seed, "device": "cpu", "precision": "fp32"},
        }
    )


# -- the runs -----------------------------------------------------------------------------
class Split:
    """One pair on one test split: fitted source networks, then every arm per budget."""

    def __init__(self, pair: Pair, split_seed: int, arms: list[str], workdir: Path) -> None:
        self.pair, self.arms, self.workdir = pair, arms, workdir
        self.pool, self.test = split_target(pair.target, pair.label, seed=split_seed)
        self.y = self.test[pair.label].to_numpy()
        self.sources: dict[str, Path] = {}
        self.source_scores: dict[str, np.ndarray] = {}
        families = {"gbdt"} | {ARMS[a][0] for a in arms if a in ARMS}
        for family in sorted(families):
            # The source network does not depend on the split: fitted once per pair.
            path = workdir / f"source-{pair.name}-{family}"
            if not path.exists():
                cfg = network_config(family, pair.source_label, 0, SOURCE_TRAIN, pair.shared, 0.1)
                transfuse.Pipeline.from_config(cfg).fit(pair.source).save(path)
            self.sources[family] = path
            pipe = load_run(path)
            self.source_scores[family] = pipe.predict_scores(self.test)[:, -1]
            log(f"  source {family} network on the target test rows: AUC "
                f"{roc_auc_score(self.y, self.source_scores[family]):.3f}")  # fmt: skip
        self.lgbm_source = lightgbm_scores(
            pair.source, pair.source[pair.source_label], self.test, pair.shared, 0
        )

    def run(self, budget: int, seeds: int) -> list[Arm]:
        """Every selected arm at one budget, for each seed."""
        pair, found = self.pair, {}

        def add(method: str, kind: str, scores: np.ndarray) -> None:
            found.setdefault(method, Arm(method, kind)).scores.append(np.asarray(scores, float))

        add(BAR_SOURCE, "bar", self.source_scores["gbdt"])
        if "mlp" in self.source_scores:
            add("mlp source network unchanged", "baseline", self.source_scores["mlp"])
        if "gbdt-linear" in self.source_scores:
            add("gbdt + fusion.linear source network unchanged", "baseline",
                self.source_scores["gbdt-linear"])  # fmt: skip
        if "lgbm-source" in self.arms:
            add("LightGBM source only", "baseline", self.lgbm_source)
        source = pair.source.assign(**{DOMAIN: 0, "_y": pair.source[pair.source_label]})
        for seed in range(seeds):
            started = time.perf_counter()
            rows = budget_sample(self.pool, pair.label, budget, seed)
            y = rows[pair.label]
            pooled = pd.concat([source, rows.assign(**{DOMAIN: 1, "_y": y})], ignore_index=True)
            add(BAR_POOLED, "bar", lightgbm_scores(pooled, pooled["_y"],
                self.test.assign(**{DOMAIN: 1}), [*pair.shared, DOMAIN], seed))  # fmt: skip
            if "lgbm-target" in self.arms:
                add("LightGBM target only", "baseline",
                    lightgbm_scores(rows, y, self.test, pair.target_columns, seed))  # fmt: skip
            if "logistic-target" in self.arms:
                add("logistic target only", "baseline",
                    logistic_scores(rows, y, self.test, pair.target_columns, seed))  # fmt: skip
            for arm in (a for a in self.arms if a in ARMS):
                family, method, steps = ARMS[arm]
                cfg = network_config(family, pair.label, seed, TRAIN, pair.shared)
                result = transfuse.transfer(cfg, self.sources[family], steps, data=rows,
                                            test=self.test, source_data=pair.source,
                                            shift=False)  # fmt: skip
                moved = result.pipeline
                add(method, "transfer", moved.predict_scores(self.test)[:, -1])
                for note in (n for r in result.reports for n in r.notes):
                    if note.startswith("written into the network exactly"):  # strategy.pool
                        log(f"  {arm}: {note}")
            shown = [a for a in found.values() if a.kind != "bar" or a.method == BAR_POOLED]
            line = "  ".join(
                f"{a.method[:14]} {roc_auc_score(self.y, a.scores[-1]):.3f}" for a in shown
            )
            log(f"  n={budget} seed {seed} ({time.perf_counter() - started:.0f} s): {line}")
        return list(found.values())


def log(text: str) -> None:
    print(text, flush=True)


def shift_summary(pair: Pair) -> str:
    """The domain-shift section a transfer report would show for this pair."""
    from transfuse.shift import domain_shift

    return domain_shift(pair.source, pair.target, pair.shared).to_markdown(top=5)


def print_tables(saved: dict[str, Any], rounds: int) -> None:
    for name, block in saved["pairs"].items():
        labels = {int(s): np.asarray(y) for s, y in block["labels"].items()}
        results = {b: {int(s): [Arm(a["method"], a["kind"], [np.asarray(x) for x in a["scores"]])
                                for a in arms] for s, arms in per.items()}
                   for b, per in block["results"].items()}  # fmt: skip
        print(f"\n## {name}\n")
        if block.get("shift"):
            print(block["shift"] + "\n")
        print(tables(labels, results, recipe=RECIPE, bars=[BAR_SOURCE, BAR_POOLED],
                     rounds=rounds))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["purpose", "cross-schema"],
                        choices=["purpose", "cross-schema"])  # fmt: skip
    parser.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=[*ARMS, *BASELINES])
    budgets_help = "label budgets (default: 50 200 500 purpose, 200 cross-schema)"
    parser.add_argument("--budgets", nargs="+", type=int, help=budgets_help)
    parser.add_argument("--seeds", type=int, default=5, help="draws of the labelled rows")
    parser.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--no-shift", action="store_true", help="skip the domain-shift summary")
    parser.add_argument("--json", type=Path, help="also write every test score here")
    parser.add_argument("--tables", type=Path, help="only print the tables of a --json file")
    args = parser.parse_args()
    if args.tables:
        print_tables(json.loads(args.tables.read_text("utf-8")), args.bootstrap)
        return
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()
    saved: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "pairs": {}}
    with tempfile.TemporaryDirectory(prefix="transfuse-bench-") as tmp:
        for name in args.pairs:
            pair = load_pair(name)
            budgets = args.budgets or ([50, 200, 500] if name == "purpose" else [200])
            block: dict[str, Any] = {"labels": {}, "results": {str(b): {} for b in budgets}}
            block["shift"] = "" if args.no_shift else shift_summary(pair)
            for split_seed in args.split_seeds:
                log(f"{name}, split seed {split_seed}")
                split = Split(pair, split_seed, args.arms, Path(tmp))
                block["labels"][str(split_seed)] = split.y.tolist()
                for b in budgets:
                    arms = split.run(b, args.seeds)
                    block["results"][str(b)][str(split_seed)] = [
                        {"method": a.method, "kind": a.kind,
                         "scores": [s.tolist() for s in a.scores]} for a in arms
                    ]  # fmt: skip
            saved["pairs"][name] = block
    print_tables(saved, args.bootstrap)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(saved), "utf-8")


if __name__ == "__main__":
    main()
