"""Benchmark (not a test): row explanations on real credit data (issue 23).

LendingClub 2018Q1 (finance.lending-club: openintro/loans_full_schema, 10,000 loans; label
high_risk = grade D-G) from the applicant's table row and the free-text job title
(emp_title). One pipeline is trained, then 1,000 held-out rows are explained, and the
script prints, from that one run:

* deletion curves: the mean |change in logit| when the top-k attributed columns (set
  missing) or words (removed from the text; rows with more than k words) are removed,
  against k random ones, and their ratio (target: at least 3x for k = 1);
* the completeness errors: inputs (exact Shapley) and parts (after completion) against
  the logit, and the encoder's own delta where it reports one;
* the time to explain the rows against the time to predict them (target: at most 20x).

    python bench/explain.py                                 # tabular.mlp + text.bag-of-words
    python bench/explain.py --text text.sentence-transformer # frozen MiniLM, word occlusion
    python bench/explain.py --table tabular.gbdt --text text.tfidf
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = [
    "loan_amount", "term", "annual_income", "verified_income", "debt_to_income",
    "emp_length", "homeownership", "delinq_2y", "inquiries_last_12m", "total_credit_lines",
    "open_credit_lines", "total_credit_utilized", "num_historical_failed_to_pay",
    "accounts_opened_24m", "account_never_delinq_percent", "public_record_bankrupt",
]  # fmt: skip


def config(table: str, text: str, epochs: int, seed: int) -> dict[str, Any]:
    text_options: dict[str, Any] = {"frozen": True} if text.endswith("sentence-transformer") else {}
    return {
        "name": "explain-bench",
        "task": {"type": "binary", "target": "high_risk"},
        "data": {"source": "finance.lending-club", "test_size": 0.2},
        "inputs": {
            "applicant": {"encoder": table, "columns": COLUMNS},
            "job": {"encoder": text, "column": "emp_title", "options": text_options},
        },
        "train": {"epochs": epochs, "batch_size": 128, "lr": 2e-3, "seed": seed,
                  "device": "cpu", "progress": False},
    }  # fmt: skip


def logits(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    from transfuse.train import predict_logits

    return predict_logits(pipeline.model, pipeline.frame_batches(frame), pipeline.device)[:, 0]


def deletion(
    pipeline: Any, rows: pd.DataFrame, explained: Any, k: int, rng: np.random.Generator
) -> dict[str, float]:
    """Mean |change in logit| removing the top-k columns / words (by the encoder's own
    |attribution|) against k random ones."""
    from transfuse_text.explain import _without

    base = explained.logit
    table, words = explained.parts["applicant"], explained.parts["job"]
    out: dict[str, float] = {}
    for name, chosen in (("top", "top"), ("random", "random")):
        cols = rows.copy()
        texts = rows.copy()
        for i in range(len(rows)):
            order = np.argsort(-np.abs(table.raw[i]), kind="stable")
            pick = order[:k] if chosen == "top" else rng.permutation(len(order))[:k]
            for j in pick:
                cols.iloc[i, cols.columns.get_loc(table.labels[i][j])] = np.nan
            labels = words.labels[i]
            if labels:
                order = np.argsort(-np.abs(words.raw[i]), kind="stable")
                pick = order[:k] if chosen == "top" else rng.permutation(len(order))[:k]
                text = str(rows["emp_title"].iloc[i])
                for j in pick:
                    text = _without(text, labels[j])
                texts.iloc[i, texts.columns.get_loc("emp_title")] = text or None
        out[f"columns {name}"] = float(np.mean(np.abs(logits(pipeline, cols) - base)))
        has = np.array([len(labels) > k for labels in words.labels])  # else top == random
        moved = np.abs(logits(pipeline, texts) - base)
        out[f"words {name}"] = float(np.mean(moved[has])) if has.any() else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="tabular.mlp")
    parser.add_argument("--text", default="text.bag-of-words")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TRANSFUSE_CACHE", tempfile.mkdtemp(prefix="explain-bench-"))

    import transfuse
    from transfuse.explain import explain_rows

    start = time.perf_counter()
    pipeline = transfuse.Pipeline.from_config(config(args.table, args.text, args.epochs, args.seed))
    pipeline.fit()
    assert pipeline.splits is not None and pipeline.splits.test is not None
    test_auc = pipeline.metrics["test"]["roc_auc"]
    print(f"{args.table} + {args.text}: trained in {time.perf_counter() - start:.0f} s, "
          f"test AUC {test_auc:.4f}")  # fmt: skip
    rows = pipeline.splits.test.drop(columns=["high_risk"]).iloc[: args.rows]
    start = time.perf_counter()
    pipeline.predict_scores(rows)
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    explained = explain_rows(pipeline, rows)
    explain_s = time.perf_counter() - start
    print(f"\n{len(rows)} rows: predict {predict_s:.2f} s, explain {explain_s:.2f} s, "
          f"ratio {explain_s / predict_s:.1f}x (target <= 20x)")  # fmt: skip
    print("\ncompleteness (max |error|, logits):")
    print(f"  inputs (exact Shapley)      {explained.completeness_error():.2e}")
    print(f"  parts (completed)           {explained.parts_error():.2e}")
    for name, parts in explained.parts.items():
        if parts.delta is not None:
            d = parts.delta[np.isfinite(parts.delta)]
            print(f"  {name} own delta ({parts.method.split(' (')[0]}): "
                  f"median {np.median(d):.2e}, max {np.max(d):.2e}")  # fmt: skip
        gap = [abs(float(r.sum()) - float(s.sum())) for r, s in zip(parts.raw, parts.scores)]
        print(f"  {name} raw parts vs its Shapley share: median gap {np.median(gap):.3f}")
    print("\ndeletion: mean |change in logit| (top-k attributed vs k random)")
    print("  k   columns top  random   ratio    words top  random   ratio")
    rng = np.random.default_rng(args.seed)
    for k in (1, 2, 3):
        d = deletion(pipeline, rows, explained, k, rng)
        print(
            f"  {k}   {d['columns top']:9.3f} {d['columns random']:7.3f} "
            f"{d['columns top'] / d['columns random']:7.1f}x   {d['words top']:9.3f} "
            f"{d['words random']:7.3f} {d['words top'] / d['words random']:7.1f}x"
        )


if __name__ == "__main__":
    main()
