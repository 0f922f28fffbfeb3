"""Fixtures for the tabular plugin's tests: small frames made with numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import transfuse_tabular
from transfuse.testing import cpu_device


def make_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Numbers (one with a missing value), a category (one missing), a yes/no column and
    a column whose name has a dot."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "annual_income": rng.lognormal(10.5, 0.6, n),
            "age": rng.integers(18, 80, n),
            "purpose": rng.choice(["car", "home", "debt"], n),
            "owns_home": rng.random(n) > 0.5,
            "debt.ratio": rng.normal(0.3, 0.1, n),
        }
    )
    frame.loc[3, "annual_income"] = np.nan
    frame.loc[5, "purpose"] = None
    return frame


def make_task(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A learnable task: the label depends on a number, a category and a missing flag."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "kind": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) > 0.5,
        }
    )
    frame.loc[rng.random(n) < 0.2, "x"] = np.nan
    score = frame["x"].fillna(2.0) + np.where(frame["kind"] == "a", 1.5, 0.0)
    score = score - np.where(frame["flag"], 0.8, 0.0)
    label = (score + 0.3 * rng.normal(size=n) > 0.3).astype(int)
    return frame, label


@pytest.fixture
def one_thread() -> Any:
    """Tiny models train faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tabular(register_plugin: Callable[..., object], transfuse_manager: Any) -> Any:
    """The plugin registered with a core-only manager; returns the manager."""
    register_plugin(transfuse_tabular, name="transfuse-tabular")
    return transfuse_manager


def build(manager: Any, name: str, **options: Any) -> Any:
    """An encoder from its entry and options, on a seeded CPU device."""
    entry = manager.get("encoder", name)
    return entry.load()(entry.validate_options(options), cpu_device())


def train_and_score(
    encoder: Any, frame: pd.DataFrame, label: pd.Series, *, epochs: int = 60, lr: float = 1e-2
) -> float:
    """Train encoder + linear head (full batch) on 3/4 of the rows; AUC on the rest."""
    cut = len(frame) * 3 // 4
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    head = torch.nn.Linear(encoder.output_dim, 1)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    batch, y = (
        encoder.prepare(train),
        torch.tensor(label.iloc[:cut].to_numpy(), dtype=torch.float32),
    )
    encoder.train()
    for _ in range(epochs):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(encoder(batch))[:, 0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        scores = head(encoder(encoder.prepare(test)))[:, 0].numpy()
    return float(roc_auc_score(label.iloc[cut:], scores))
