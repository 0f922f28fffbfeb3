"""Small real encoders and data for the runtime's tests (not a test module).

With ``--import-mode=importlib`` test folders are not packages, so the runtime tests put
this folder on ``sys.path`` and ``import runtime_kit``. The encoders are registered per
test by each module's ``kit_manager`` fixture, so the tests need no installed plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import Field
from torch import nn

from transfuse import EncoderEntry, Options, PluginManager, hookimpl
from transfuse.bases import Batch, Encoder

MODULE = "runtime_kit"


class NumericOptions(Options):
    """Options of the test encoders."""

    dim: int = Field(default=8, ge=1)
    handles_missing: bool = False
    scale: float = 1.0


class Numeric(Encoder):
    """Numeric columns, standardised with training statistics, then Linear + ReLU."""

    def __init__(self, options: NumericOptions, device: Any) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.handles_missing = options.handles_missing
        self.mean: list[float] = []
        self.std: list[float] = []
        self.proj: nn.Module | None = None

    def _frame(self, values: pd.Series | pd.DataFrame) -> pd.DataFrame:
        return values.to_frame() if isinstance(values, pd.Series) else values

    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        frame = self._frame(values).astype(float)
        self.load_fitted_state(
            {"mean": frame.mean().fillna(0).tolist(), "std": frame.std().fillna(1).tolist()}
        )

    def fitted_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.mean, self.std = list(state["mean"]), [s or 1.0 for s in state["std"]]
        self.proj = nn.Sequential(nn.Linear(len(self.mean), self.output_dim), nn.ReLU())

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        frame = self._frame(values).astype(float)
        x = (frame.to_numpy() - np.array(self.mean)) / np.array(self.std)
        return {"x": torch.as_tensor(np.nan_to_num(x) * self.options.scale, dtype=torch.float32)}

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.proj is not None
        return self.proj(batch["x"])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        assert self.proj is not None
        return {"backbone": list(self.proj[0].parameters())}


class Frozen(Encoder):
    """A fixed random projection of numeric columns; counts the rows it embeds."""

    frozen = True
    calls: ClassVar[list[int]] = []

    def __init__(self, options: NumericOptions, device: Any) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.width = 0
        self.proj: nn.Linear | None = None

    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        self.load_fitted_state({"width": 1 if isinstance(values, pd.Series) else values.shape[1]})

    def fitted_state(self) -> dict[str, Any]:
        return {"width": self.width}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.width = int(state["width"])
        gen = torch.Generator().manual_seed(7)
        self.proj = nn.Linear(self.width, self.output_dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.output_dim, self.width, generator=gen))
            self.proj.bias.zero_()

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        frame = values.to_frame() if isinstance(values, pd.Series) else values
        return {"x": torch.as_tensor(np.nan_to_num(frame.to_numpy(float)), dtype=torch.float32)}

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.proj is not None
        Frozen.calls.append(len(batch["x"]))
        return self.proj(batch["x"] * self.options.scale)


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The test encoders."""
    return [
        EncoderEntry(
            name="test.numeric",
            modality="tabular",
            factory=f"{MODULE}:Numeric",
            options=NumericOptions,
            description="Numeric columns -> Linear (tests).",
        ),
        EncoderEntry(
            name="test.frozen",
            modality="tabular",
            factory=f"{MODULE}:Frozen",
            options=NumericOptions,
            description="A frozen random projection (tests).",
        ),
    ]


def frame(n: int = 240, seed: int = 0, *, missing: float = 0.0) -> pd.DataFrame:
    """Rows whose label ``y`` depends on ``a`` and ``b``; ``noise`` carries nothing.

    With ``missing``, that fraction of ``b`` is NaN (a missing modality).
    """
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = ((a + b + 0.3 * rng.normal(size=n)) > 0).astype(int)
    out = pd.DataFrame({"a": a, "b": b, "noise": rng.normal(size=n), "y": y})
    if missing:
        out.loc[rng.random(n) < missing, "b"] = np.nan
    return out


def config(**overrides: Any) -> dict[str, Any]:
    """A pipeline over :func:`frame` with two inputs, merged with ``overrides``."""
    base: dict[str, Any] = {
        "name": "kit",
        "task": {"type": "binary", "target": "y"},
        "inputs": {
            "a": {"encoder": "test.numeric", "column": "a"},
            "b": {"encoder": "test.numeric", "column": "b"},
        },
        "fusion": {"method": "fusion.concat", "options": {"dim": 16, "dropout": 0.0}},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "progress": False, "seed": 0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "inputs":
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def install(
    register_plugin: Any,
    manager: PluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> PluginManager:
    """Register the test encoders and put the embedding cache in ``tmp_path`` (the body of
    each runtime test module's ``kit_manager`` fixture)."""
    import sys

    register_plugin(sys.modules[__name__], name="runtime-kit")
    monkeypatch.setenv("TRANSFUSE_CACHE", str(tmp_path / "cache"))
    Frozen.calls.clear()
    return manager
