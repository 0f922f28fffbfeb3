"""Benchmark (not a test): the baselines a transfer must beat on the two LendingClub shifts.

1. Purpose shift, ``finance.lending-club`` (2018Q1), label ``high_risk`` (grade D-G):
   source = debt_consolidation + credit_card loans, target = every other purpose.
2. Cross-schema, source ``finance.lending-club`` (all 10,000 loans, label ``high_risk``),
   target ``finance.lending-club-modeldata`` (2016Q1, label ``bad``, 5%); the source model
   sees only the fields both extracts share (canonical names and values).

The target test rows are a stratified 30% split (seed 0); budgets are stratified samples of
the remaining 70%, one per seed. Table features only (no emp_title, no loan_purpose: the
source has two purposes, the target ten). Prints test ROC-AUC, mean ± std over seeds.

    python bench/finance_baselines.py                      # 5 seeds, both shifts
    python bench/finance_baselines.py --seeds 0 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import (  # bench/ is not a package: imported from its folder
    Result,
    logistic_scores,
    pooled,
    source_only,
    split_target,
    target_only,
)

from transfuse import get_plugin_manager

SOURCE_PURPOSES = ["debt_consolidation", "credit_card"]
NOT_FEATURES = {"loan_id", "emp_title", "loan_purpose", "high_risk", "bad"}


def load(name: str) -> pd.DataFrame:
    """A finance table through the installed plugin, as a pipeline would get it."""
    entry = get_plugin_manager().get("data_source", name)
    return entry.load()(entry.validate_options({"progress": False})).load()


def run_shift(
    title: str,
    source: pd.DataFrame,
    source_label: str,
    target: pd.DataFrame,
    label: str,
    source_features: list[str],
    target_features: list[str],
    budgets: list[int | None],
    seeds: list[int],
) -> list[Result]:
    """Every baseline on one shift."""
    pool, test = split_target(target, label)
    print(f"\n## {title}")
    print(f"source {len(source)} rows ({source[source_label].mean():.1%} positive); target pool "
          f"{len(pool)}, test {len(test)} ({test[label].mean():.1%} positive)")  # fmt: skip
    results = [source_only(source, source_label, test, label, source_features, seeds)]
    results += target_only(pool, test, label, target_features, budgets, seeds)
    if set(target_features) != set(source_features):
        shared = [c for c in target_features if c in source_features]
        results += target_only(pool, test, label, shared, budgets, seeds,
                               method="lightgbm target-only, shared fields")  # fmt: skip
    results += pooled(source, source_label, pool, test, label, target_features, budgets, seeds)
    results += target_only(pool, test, label, target_features, budgets, seeds,
                           scorer=logistic_scores, method="logistic target-only")  # fmt: skip
    print_table(results, [str(b) if b is not None else "all" for b in budgets])
    return results


def print_table(results: list[Result], budgets: list[str]) -> None:
    """A Markdown table: one row per method, one column per label budget."""
    methods = list(dict.fromkeys(r.method for r in results))
    header = ["method", "0", *budgets]
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for method in methods:
        cells = {r.budget: f"{r.mean:.3f} ± {r.std:.3f}" for r in results if r.method == method}
        print("| " + " | ".join([method, *(cells.get(b, "") for b in header[1:])]) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", nargs="+", default=["50", "100", "200", "500", "all"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    budgets = [None if b == "all" else int(b) for b in args.budgets]
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()

    lending = load("finance.lending-club")
    features = [c for c in lending.columns if c not in NOT_FEATURES]
    in_source = lending["loan_purpose"].isin(SOURCE_PURPOSES)
    purpose = run_shift(
        "Purpose shift: card + consolidation -> other purposes (label high_risk)",
        lending[in_source], "high_risk", lending[~in_source], "high_risk",
        features, features, budgets, args.seeds,
    )  # fmt: skip

    from transfuse_finance.lending import SHARED_FIELDS

    modeldata = load("finance.lending-club-modeldata")
    shared = list(SHARED_FIELDS)
    target_features = [c for c in modeldata.columns if c not in NOT_FEATURES]
    cross = run_shift(
        "Cross-schema: 2018 grade (openintro) -> 2016 bad loans (modeldata)",
        lending, "high_risk", modeldata, "bad", shared, target_features, budgets, args.seeds,
    )  # fmt: skip
    print(f"\n{time.perf_counter() - start:.0f} s, seeds {args.seeds}")
    if args.json:
        payload = {"purpose_shift": [r.as_json() for r in purpose],
                   "cross_schema": [r.as_json() for r in cross], "seeds": args.seeds}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1), "utf-8")


if __name__ == "__main__":
    main()
