"""Benchmark (not a test): does transfer help on real credit data, and by how much?

The LendingClub purpose shift (``finance.lending-club``, 2018Q1, label ``high_risk`` =
grade D-G). Source: the 7,393 debt-consolidation and credit-card loans. Target: the 2,607
loans for every other purpose. Inputs: the 40 applicant-table columns of the
``lending-club-source`` preset (what is known at application), for every model alike.

Protocol (issue 6):

- a fixed stratified 30% target test split (``--split-seed``), never used for a choice;
- labelled target budgets n in {50, 100, 200, 500, all} drawn from the other 70%;
  10 seeds for n <= 200 and 5 above, each seed redrawing the labelled rows (stratified)
  and the initialisation; networks stop early on 20% of the budget, nothing else is tuned;
- baselines on the same rows: logistic regression and LightGBM on the target rows only,
  LightGBM on all source rows plus the target rows with a domain flag, each network
  trained from scratch, and each source network applied unchanged;
- transfer: the source network (trained once per split on the source rows) moved to the
  target by ``transfuse.transfer`` with the strategies listed in ``TRANSFERS``;
- metrics on the target test rows: ROC-AUC, KS, PR-AUC, Brier; the paired AUC difference
  of the best transfer against the best baseline, and against pooled LightGBM, with a
  bootstrap 95% interval (test rows and seeds resampled together).

    python bench/transfer.py                                  # the full table (~30 min)
    python bench/transfer.py --budgets 50 200 --max-seeds 3   # a quick look
    python bench/transfer.py --split-seed 1 --budgets 50 100 200 500   # another split
    python bench/transfer.py --json out.json                  # also every score, as JSON
    python bench/transfer.py --tables out.json                # the tables of a saved run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import (  # bench/ is not a package: imported from its folder
    DOMAIN,
    budget_sample,
    lightgbm_scores,
    logistic_scores,
    split_target,
)

import transfuse
from transfuse import get_plugin_manager
from transfuse.config import load_pipeline

LABEL = "high_risk"
SOURCE_PURPOSES = ["debt_consolidation", "credit_card"]

#: The networks: one tabular encoder each, a linear head (``fusion.concat`` of one input).
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("tabular.mlp", {}),
    "mlp-ple": ("tabular.mlp", {"numeric_embedding": "ple"}),
    "gbdt": ("tabular.gbdt", {}),
}
DEFAULT_FAMILIES = ["mlp", "gbdt"]
#: The transfer arms per network: strategies in order (names in the ``strategy.`` group).
FINETUNE = ("finetune", {"backbone_lr_mult": 0.3})
REPLAY = ("replay", {"weight": 1.0})
TRANSFERS: dict[str, dict[str, list[Any]]] = {
    "mlp": {
        "finetune": [("layer-map", {}), FINETUNE],
        "finetune + replay": [("layer-map", {}), FINETUNE, REPLAY],
    },
    "mlp-ple": {"finetune": [("layer-map", {}), FINETUNE]},
    "gbdt": {
        "source trees, finetune": [("layer-map", {}), FINETUNE],
        "continue boosting, finetune": [("layer-map", {"gbdt": "continue"}), FINETUNE],
        "continue boosting, finetune + replay": [
            ("layer-map", {"gbdt": "continue"}),
            FINETUNE,
            REPLAY,
        ],
    },
}
TRAIN = {"epochs": 40, "batch_size": 64, "lr": 1e-3, "patience": 6, "progress": False}
SOURCE_TRAIN = {"epochs": 30, "batch_size": 128, "lr": 1e-3, "patience": 5, "progress": False}


# -- data ---------------------------------------------------------------------------------
def load_shift() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The source rows, the target rows and the feature columns, through the finance plugin."""
    entry = get_plugin_manager().get("data_source", "finance.lending-club")
    frame = entry.load()(entry.validate_options({"progress": False})).load()
    features = load_pipeline("lending-club-source").inputs["applicant"].column_list
    in_source = frame["loan_purpose"].isin(SOURCE_PURPOSES)
    return frame[in_source], frame[~in_source], list(features)


def network_config(
    family: str, seed: int, train: dict[str, Any], features: list[str], test_size: float = 0.0
) -> Any:
    """A one-input pipeline config: the applicant table through ``family``'s encoder
    (``test_size``: the rows held out when no test frame is given)."""
    encoder, options = FAMILIES[family]
    return transfuse.config.parse_config(
        {
            "name": f"bench-{family}",
            "task": {"type": "binary", "target": LABEL},
            "data": {"source": "finance.lending-club", "test_size": test_size},
            "inputs": {"applicant": {"encoder": encoder, "columns": features, "options": options}},
            "fusion": {"method": "fusion.concat"},
            "train": {**train, "seed": seed, "device": "cpu", "precision": "fp32"},
        }
    )


# -- results ------------------------------------------------------------------------------
@dataclass
class Arm:
    """One method at one budget: test scores per seed (one entry if seeds do not matter)."""

    method: str
    kind: str  # "baseline" or "transfer"
    scores: list[np.ndarray] = field(default_factory=list)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, KS, PR-AUC and Brier of probabilities ``p`` on labels ``y``."""
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "ks": float(np.max(tpr - fpr)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
    }


def _aucs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of ``scores`` [S, N] (Mann-Whitney with tied ranks averaged)."""
    ranks = rankdata(scores, axis=1)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def paired_difference(
    y: np.ndarray, a: Arm, b: Arm, *, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean AUC of ``a`` minus ``b`` over seeds, and a bootstrap 95% interval that resamples
    the test rows and the seeds (paired: seed i of both used the same labelled rows)."""
    n_seeds = max(len(a.scores), len(b.scores))
    sa = np.stack([a.scores[i % len(a.scores)] for i in range(n_seeds)])
    sb = np.stack([b.scores[i % len(b.scores)] for i in range(n_seeds)])
    point = float(np.mean(_aucs(y, sa) - _aucs(y, sb)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(rounds)
    for r in range(rounds):
        rows = rng.integers(0, len(y), len(y))
        while y[rows].min() == y[rows].max():  # pragma: no cover - needs both classes
            rows = rng.integers(0, len(y), len(y))
        seeds = rng.integers(0, n_seeds, n_seeds)
        diffs[r] = np.mean(_aucs(y[rows], sa[seeds][:, rows]) - _aucs(y[rows], sb[seeds][:, rows]))
    low, high = np.quantile(diffs, [0.025, 0.975])
    return point, float(low), float(high)


# -- the runs -----------------------------------------------------------------------------
class Bench:
    """Everything one split needs: frames, fitted source networks, results per budget."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.source, target, self.features = load_shift()
        self.pool, self.test = split_target(target, LABEL, seed=args.split_seed)
        self.y = self.test[LABEL].to_numpy()
        self.sources: dict[str, Path] = {}
        self.source_scores: dict[str, np.ndarray] = {}

    def log(self, text: str) -> None:
        print(text, flush=True)

    def fit_sources(self) -> None:
        """Each network trained once on the source rows, saved, and scored on target test."""
        for family in self.args.families:
            started = time.perf_counter()
            cfg = network_config(family, 0, SOURCE_TRAIN, self.features, test_size=0.1)
            pipe = transfuse.Pipeline.from_config(cfg).fit(self.source)
            self.sources[family] = pipe.save(self.workdir / f"source-{family}")
            self.source_scores[family] = pipe.predict_scores(self.test)[:, -1]
            auc = roc_auc_score(self.y, self.source_scores[family])
            self.log(f"source {family:8s} target test AUC {auc:.3f} "
                     f"({time.perf_counter() - started:.0f} s)")  # fmt: skip

    def seeds(self, budget: int | None) -> list[int]:
        count = 10 if budget is not None and budget <= 200 else 5
        return list(range(min(count, self.args.max_seeds or count)))

    def run_budget(self, budget: int | None) -> list[Arm]:
        """Every method at one budget, every seed."""
        arms: dict[str, Arm] = {}

        def add(method: str, kind: str, scores: np.ndarray) -> None:
            arms.setdefault(method, Arm(method, kind)).scores.append(np.asarray(scores, float))

        for family in self.args.families:
            add(f"{family}, source unchanged", "baseline", self.source_scores[family])
        pooled_source = self.source.assign(**{DOMAIN: 0})
        for seed in self.seeds(budget):
            started = time.perf_counter()
            rows = budget_sample(self.pool, LABEL, budget, seed)
            y = rows[LABEL]
            add("logistic, target only", "baseline",
                logistic_scores(rows, y, self.test, self.features, seed))  # fmt: skip
            add("LightGBM, target only", "baseline",
                lightgbm_scores(rows, y, self.test, self.features, seed))  # fmt: skip
            pooled = pd.concat([pooled_source, rows.assign(**{DOMAIN: 1})], ignore_index=True)
            add("LightGBM, pooled + domain flag", "baseline",
                lightgbm_scores(pooled, pooled[LABEL], self.test.assign(**{DOMAIN: 1}),
                                [*self.features, DOMAIN], seed))  # fmt: skip
            for family in self.args.families:
                cfg = network_config(family, seed, TRAIN, self.features)
                scratch = transfuse.Pipeline.from_config(cfg).fit(rows, self.test)
                add(f"{family}, scratch", "baseline", scratch.predict_scores(self.test)[:, -1])
                for arm, steps in TRANSFERS[family].items():
                    moved = transfuse.transfer(
                        cfg, self.sources[family], steps, data=rows, test=self.test,
                        source_data=self.source,  # the source run's own rows, no target rows
                    ).pipeline  # fmt: skip
                    add(f"{family}, transfer: {arm}", "transfer",
                        moved.predict_scores(self.test)[:, -1])  # fmt: skip
            line = "  ".join(
                f"{a.method.split(',')[0][:8]}{'*' if a.kind == 'transfer' else ''}"
                f" {roc_auc_score(self.y, a.scores[-1]):.3f}"
                for a in arms.values()
                if "unchanged" not in a.method
            )
            self.log(f"n={budget or 'all'} seed {seed} ({time.perf_counter() - started:.0f} s): "
                     f"{line}")  # fmt: skip
        return list(arms.values())


# -- the tables -----------------------------------------------------------------------------
def summary(y: np.ndarray, arms: Sequence[Arm]) -> dict[str, dict[str, float]]:
    """Mean and std of each metric over seeds, per method."""
    out = {}
    for arm in arms:
        per_seed = [metrics(y, s) for s in arm.scores]
        row = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}
        row["roc_auc_std"] = float(np.std([m["roc_auc"] for m in per_seed]))
        row["seeds"] = len(arm.scores)
        out[arm.method] = row
    return out


def tables(y: np.ndarray, results: dict[str, list[Arm]], rounds: int) -> str:
    """The Markdown tables: AUC per budget, the other metrics, the paired differences."""
    budgets = list(results)
    stats = {b: summary(y, arms) for b, arms in results.items()}
    methods = list(dict.fromkeys(a.method for arms in results.values() for a in arms))
    kinds = {a.method: a.kind for arms in results.values() for a in arms}

    def grid(title: str, cell: Any, star: bool = False) -> list[str]:
        out = [title, "", "| method | " + " | ".join(f"n={b}" for b in budgets) + " |"]
        out.append("| --- |" + " ---: |" * len(budgets))
        for method in methods:
            cells = [cell(stats[b][method]) if method in stats[b] else "" for b in budgets]
            mark = " *" if star and kinds[method] == "transfer" else ""
            out.append(f"| {method}{mark} | " + " | ".join(cells) + " |")
        return out

    lines = grid(
        "ROC-AUC on the target test rows, mean ± std over seeds (* transfer):",
        lambda s: f"{s['roc_auc']:.3f} ± {s['roc_auc_std']:.3f}",
        star=True,
    )
    other = grid(
        "KS / PR-AUC / Brier, mean over seeds:",
        lambda s: f"{s['ks']:.3f} / {s['pr_auc']:.3f} / {s['brier']:.3f}",
    )
    lines += ["", *other]
    lines += ["", "Paired ROC-AUC difference, best transfer minus a baseline (bootstrap 95%):", ""]
    lines += ["| n | best transfer | best baseline | difference | vs LightGBM pooled |"]
    lines += ["| --- | --- | --- | ---: | ---: |"]
    for b, arms in results.items():
        best_t = max((a for a in arms if a.kind == "transfer"),
                     key=lambda a: stats[b][a.method]["roc_auc"])  # fmt: skip
        best_b = max((a for a in arms if a.kind == "baseline"),
                     key=lambda a: stats[b][a.method]["roc_auc"])  # fmt: skip
        pooled = next(a for a in arms if a.method == "LightGBM, pooled + domain flag")
        d, lo, hi = paired_difference(y, best_t, best_b, rounds=rounds)
        dp, lop, hip = paired_difference(y, best_t, pooled, rounds=rounds)
        lines.append(f"| {b} | {best_t.method} | {best_b.method} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                     f" | {dp:+.3f} [{lop:+.3f}, {hip:+.3f}] |")  # fmt: skip
    lines += ["", "Each transfer minus LightGBM pooled + domain flag, paired (bootstrap 95%):", ""]
    lines += ["| transfer | " + " | ".join(f"n={b}" for b in budgets) + " |"]
    lines += ["| --- |" + " ---: |" * len(budgets)]
    for method in (m for m in methods if kinds[m] == "transfer"):
        cells = []
        for arms in results.values():
            arm = next((a for a in arms if a.method == method), None)
            pooled = next(a for a in arms if a.method == "LightGBM, pooled + domain flag")
            if arm is None:
                cells.append("")
                continue
            d, lo, hi = paired_difference(y, arm, pooled, rounds=rounds)
            cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", default=["50", "100", "200", "500", "all"])
    parser.add_argument("--families", nargs="+", default=DEFAULT_FAMILIES, choices=list(FAMILIES))
    parser.add_argument("--max-seeds", type=int, help="at most this many seeds per budget")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the test split")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, help="also write every test score here")
    parser.add_argument("--tables", type=Path, help="only print the tables of a --json file")
    args = parser.parse_args()
    if args.tables:
        saved = json.loads(args.tables.read_text("utf-8"))
        results = {b: [Arm(a["method"], a["kind"], [np.asarray(s) for s in a["scores"]])
                       for a in arms] for b, arms in saved["results"].items()}  # fmt: skip
        print(tables(np.asarray(saved["labels"]), results, args.bootstrap))
        return
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="transfuse-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        bench.log(f"source {len(bench.source)} rows, target pool {len(bench.pool)}, target test "
                  f"{len(bench.test)} ({bench.y.mean():.1%} high risk), split seed "
                  f"{args.split_seed}")  # fmt: skip
        bench.fit_sources()
        results = {}
        for b in args.budgets:
            results[b] = bench.run_budget(None if b == "all" else int(b))
    print()
    print(tables(bench.y, results, args.bootstrap))
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        payload = {
            "split_seed": args.split_seed,
            "labels": bench.y.tolist(),
            "results": {b: [{"method": a.method, "kind": a.kind,
                             "scores": [s.tolist() for s in a.scores]} for a in arms]
                        for b, arms in results.items()},
        }  # fmt: skip
        args.json.write_text(json.dumps(payload), "utf-8")


if __name__ == "__main__":
    main()
