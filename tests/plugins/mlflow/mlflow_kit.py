"""A tiny real credit pipeline for the MLflow tests: tabular.mlp + text.bag-of-words (not a test
module; the tests put this folder on ``sys.path``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NOTES = ["salary stable job", "payday loan emergency", "bonus savings plan", "late fees again"]


def rows(n: int = 160, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """Applicants whose label depends on debt, income and the words of the note."""
    rng = np.random.default_rng(seed)
    debt = rng.uniform(0, 1, n)
    income = rng.normal(50, 10, n)
    note = rng.choice(NOTES, n)
    risky = np.isin(note, NOTES[1::2])
    logit = 3 * (debt - 0.5) - 0.05 * (income - 50) + 1.5 * risky
    bad = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    purpose = rng.choice(["car", "home", "card"], n)
    return pd.DataFrame(
        {"id": np.arange(start, start + n), "debt": debt, "income": income,
         "purpose": purpose, "note": note, "bad": bad}
    )  # fmt: skip


def config(name: str = "mlflow-credit", epochs: int = 2) -> dict[str, Any]:
    """The pipeline: a table input and a note input, concat fusion, on the CPU."""
    return {
        "name": name,
        "task": {"type": "binary", "target": "bad"},
        "data": {"key": "id"},
        "inputs": {
            "applicant": {"encoder": "tabular.mlp", "columns": ["debt", "income", "purpose"]},
            "note": {"encoder": "text.bag-of-words", "column": "note"},
        },
        "fusion": {"method": "fusion.concat"},
        "train": {"epochs": epochs, "batch_size": 32, "progress": False, "seed": 0,
                  "device": "cpu"},
    }  # fmt: skip
