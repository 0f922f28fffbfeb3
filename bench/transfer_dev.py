"""Development analysis for issue 17 (not a benchmark of the library): which use of the
target labels pays on the development splits, computed outside the network.

For each development split seed (default 0 1 2; never the held-out ones) and budget, the
source ``tabular.gbdt`` network of ``bench/transfer.py`` is scored once; then, on the
same budget draws as the benchmark:

- ``S``: the source network unchanged; ``P``: pooled LightGBM with a domain flag (the
  benchmark's bar); ``P noflag``: the same without the flag;
- ``S + k P``: the source logit plus the flag-less pooled logit rescaled to its spread on
  the budget rows (what ``strategy.pool`` distils into the network);
- ``offset ridge``: the source logit as an offset plus a ridge logistic correction on the
  raw columns (and ``loan_purpose`` on the purpose shift), penalty by 3x5 k-fold, the
  one-standard-error rule (``strategy.stack``'s rule on raw columns);
- ``offset boost``: 20 shallow LightGBM trees on the budget rows from the source logit;
- ``S + logistic``: the source network averaged with a logistic regression fitted on the
  source rows (no target label).

    python bench/transfer_dev.py --pairs purpose --budgets 200 500 --seeds 3
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "strategies"))

from baselines import (  # bench/ is not a package: imported from its folder
    DOMAIN,
    _categories,
    _lgbm_view,
    budget_sample,
    lightgbm_scores,
    logistic_scores,
    split_target,
)
from sklearn.metrics import roc_auc_score
from transfer import SOURCE_TRAIN, load_pair, network_config

import transfuse


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def raw_matrix(
    train: pd.DataFrame, test: pd.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Signed-log numbers (median-imputed, missing flags) and one-hot text with >= 3 rows."""
    cats = _categories([train], cols)
    nums = [c for c in cols if c not in cats]

    def numbers(frame: pd.DataFrame) -> np.ndarray:
        v = frame[nums].astype(float).to_numpy()
        return np.sign(v) * np.log1p(np.abs(v))

    xt, xv = numbers(train), numbers(test)
    med = np.nan_to_num(np.nanmedian(xt, 0))
    mt, mv = np.isnan(xt), np.isnan(xv)
    flags = mt.any(0)
    parts_t = [np.where(mt, med, xt), mt[:, flags]]
    parts_v = [np.where(mv, med, xv), mv[:, flags]]
    for c in cats:
        for value in cats[c]:
            hit_t = (train[c].astype(str) == value).to_numpy()
            if hit_t.sum() >= 3:
                parts_t.append(hit_t[:, None])
                parts_v.append((test[c].astype(str) == value).to_numpy()[:, None])
    return np.column_stack(parts_t).astype(float), np.column_stack(parts_v).astype(float)


def offset_ridge(s_tr, y, s_te, xt, xv):  # type: ignore[no-untyped-def]
    from transfuse_strategies.stack import choose_penalty, fit_offset_logistic

    x, xte = np.column_stack([s_tr, xt]), np.column_stack([s_te, xv])
    grid = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, np.inf]
    lam, _ = choose_penalty(x, y, s_tr, grid, folds=5, repeats=3, seed=0)
    mean, sd = x.mean(0), x.std(0)
    sd[sd < 1e-12] = 1
    beta = fit_offset_logistic((x - mean) / sd, y, s_tr, lam)
    return s_te + beta[0] + ((xte - mean) / sd) @ beta[1:]


def offset_boost(rows, y, s_tr, test, s_te, cols, seed):  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    cats = _categories([rows, test], cols)
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 4,
              "min_data_in_leaf": 10, "feature_fraction": 0.8, "bagging_fraction": 0.8,
              "bagging_freq": 1, "lambda_l2": 10.0, "verbose": -1, "seed": seed,
              "num_threads": 1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(_lgbm_view(rows, cols, cats), y, init_score=s_tr), 20)
    return s_te + booster.predict(_lgbm_view(test, cols, cats), raw_score=True)


def run(name: str, budgets: list[int], splits: list[int], seeds: int) -> None:
    pair = load_pair(name)
    cfg = network_config("gbdt", pair.source_label, 0, SOURCE_TRAIN, pair.shared, 0.1)
    pipe = transfuse.Pipeline.from_config(cfg).fit(pair.source)
    net = pd.Series(logit(pipe.predict_scores(pair.target)[:, -1]), index=pair.target.index)
    extra = ["loan_purpose"] if name == "purpose" else []
    found: dict[tuple[int, str], list[float]] = {}
    for split in splits:
        pool, test = split_target(pair.target, pair.label, seed=split)
        y_test = test[pair.label].to_numpy()
        lr_source = logit(logistic_scores(pair.source, pair.source[pair.source_label], test,
                                          pair.shared, 0))  # fmt: skip
        for budget in budgets:
            for seed in range(seeds):

                def add(arm: str, scores: np.ndarray, b: int = budget, yt=y_test) -> None:  # type: ignore[no-untyped-def]
                    found.setdefault((b, arm), []).append(roc_auc_score(yt, scores))

                rows = budget_sample(pool, pair.label, budget, seed)
                y = rows[pair.label].to_numpy()
                s_tr, s_te = net[rows.index].to_numpy(), net[test.index].to_numpy()
                src = pair.source.assign(**{DOMAIN: 0, "_y": pair.source[pair.source_label]})
                pooled = pd.concat([src, rows.assign(**{DOMAIN: 1, "_y": y})], ignore_index=True)
                flag = [*pair.shared, DOMAIN]
                p_flag = lightgbm_scores(
                    pooled, pooled["_y"], test.assign(**{DOMAIN: 1}), flag, seed
                )
                p_te = logit(lightgbm_scores(pooled, pooled["_y"], test, pair.shared, seed))
                p_tr = logit(lightgbm_scores(pooled, pooled["_y"], rows, pair.shared, seed))
                add("S source network", s_te)
                add("P pooled LightGBM + flag", p_flag)
                add("P noflag", p_te)
                add("S + k P noflag", s_te + s_tr.std() / p_tr.std() * p_te)
                xt, xv = raw_matrix(rows, test, [*pair.shared, *extra])
                add("offset ridge, raw columns", offset_ridge(s_tr, y, s_te, xt, xv))
                add("offset boost, 20 trees", offset_boost(rows, y, s_tr, test, s_te,
                                                           pair.shared, seed))  # fmt: skip
                add("S + logistic (source rows)", s_te / s_te.std() + lr_source / lr_source.std())
            print(f"{name} split {split} n={budget} done", flush=True)
    for (budget, arm), aucs in sorted(found.items()):
        print(f"{name} n={budget} {arm:32s} {np.mean(aucs):.4f} ± {np.std(aucs):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["purpose", "cross-schema"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[200])
    parser.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in args.pairs:
        run(name, args.budgets, args.split_seeds, args.seeds)


if __name__ == "__main__":
    main()
