"""Fixtures for the sequence plugin's tests: transaction histories made with numpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import transfuse_sequence

MCCS = ["5411", "5812", "4111", "5999"]


def _histories(n: int, seed: int = 0, threshold: float = 100.0) -> tuple[pd.Series, np.ndarray]:
    """``n`` entities with 1-20 transactions each (lognormal amounts, median 20) and the label
    "some transaction is above ``threshold``" (about 40% of entities). Amounts within 20% of
    the threshold are drawn again, so that a label is never a matter of cents."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        amounts = rng.lognormal(3.0, 1.0, rng.integers(1, 21)).round(2)
        while (near := np.abs(amounts / threshold - 1) < 0.2).any():
            amounts[near] = rng.lognormal(3.0, 1.0, near.sum()).round(2)
        rows.append(
            [
                {"amount": float(a), "mcc": str(rng.choice(MCCS)), "days_ago": int(d)}
                for a, d in zip(amounts, rng.integers(0, 365, amounts.size))
            ]
        )
        labels.append(float((amounts > threshold).any()))
    return pd.Series(rows, dtype=object, name="transactions"), np.array(labels, dtype=np.float32)


@pytest.fixture
def histories() -> Callable[..., tuple[pd.Series, np.ndarray]]:
    """``histories(n, seed=0, threshold=100.0)``: event lists and "any amount > threshold"."""
    return _histories


@pytest.fixture
def sequence_plugin(register_plugin: Callable[..., object]) -> object:
    """The sequence plugin registered on the test's plugin manager."""
    return register_plugin(transfuse_sequence, name="sequence")


@pytest.fixture
def build(transfuse_manager, sequence_plugin, device_manager) -> Callable[..., object]:
    """``build(name, **options)``: an unfitted encoder."""

    def make(name: str, **options: object) -> object:
        entry = transfuse_manager.get("encoder", name)
        return entry.load()(entry.validate_options(options), device_manager)

    return make
