"""Small real models in the runtime's layout (inputs / fusion / head) for the strategy tests.

``ColumnEncoder`` has per-column parameters named ``columns.<column>.<param>`` and tells its
categories through ``category_index``, like the tabular encoders; ``TinyModel`` fuses by
concatenation and a linear layer. ``kit`` gives the tests these and a few helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from transfuse.bases import Encoder, TransferContext
from transfuse.device import DeviceManager
from transfuse.testing import cpu_device


class NumericColumn(nn.Module):
    """One numeric column: ``x * weight + bias``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x[:, None] * self.weight + self.bias


class CategoryColumn(nn.Module):
    """One categorical column: row 0 for an unknown value, then the vocabulary."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)

    def forward(self, codes: Tensor) -> Tensor:
        return self.embedding(codes)


class ColumnEncoder(Encoder):
    """Per-column embeddings, summed, through a shared layer."""

    handles_missing = True

    def __init__(self, dim: int = 8, device: Any = None) -> None:
        # A device manager without a seed: building one with a seed reseeds torch.
        super().__init__(None, device or DeviceManager("cpu", "fp32"))  # type: ignore[arg-type]
        self.output_dim = dim
        self.columns = nn.ModuleDict()
        self.shared = nn.Linear(dim, dim)
        self.vocab: dict[str, list[str]] = {}
        self.order: list[str] = []

    def fit(self, values: pd.DataFrame) -> None:
        self.order = list(values.columns)
        for name in self.order:
            if pd.api.types.is_numeric_dtype(values[name]):
                self.columns[name] = NumericColumn(self.output_dim)
            else:
                vocab = sorted(values[name].dropna().astype(str).unique())
                self.vocab[name] = vocab
                self.columns[name] = CategoryColumn(len(vocab) + 1, self.output_dim)

    def category_index(self, column: str) -> dict[str, int]:
        return {v: i + 1 for i, v in enumerate(self.vocab[column])}

    def prepare(self, values: pd.DataFrame) -> dict[str, Tensor]:
        out = {}
        for name in self.order:
            if name in self.vocab:
                index = self.category_index(name)
                codes = [index.get(str(v), 0) for v in values[name]]
                out[name] = torch.tensor(codes, dtype=torch.long)
            else:
                out[name] = torch.tensor(values[name].to_numpy(dtype="float32"))
        return out

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        total = sum(self.columns[name](batch[name]) for name in self.order)
        return torch.relu(self.shared(total))


class ConcatFusion(nn.Module):
    """Concatenate the inputs' embeddings, then a linear layer."""

    def __init__(self, dims: dict[str, int], dim: int = 8) -> None:
        super().__init__()
        self.output_dim = dim
        self.proj = nn.Linear(sum(dims.values()), dim)

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return torch.tanh(self.proj(torch.cat(list(embeddings.values()), dim=1)))


class TinyModel(nn.Module):
    """``inputs`` / ``fusion`` / ``head``; ``model(batch)`` gives logits and features."""

    def __init__(self, inputs: dict[str, Encoder], dim: int = 8, outputs: int = 1) -> None:
        super().__init__()
        self.inputs = nn.ModuleDict(inputs)
        self.fusion = ConcatFusion({n: e.output_dim for n, e in inputs.items()}, dim)
        self.head = nn.Linear(dim, outputs)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        emb = {n: enc(batch["inputs"][n]) for n, enc in self.inputs.items()}
        features = self.fusion(emb, batch["present"])
        return {"logits": self.head(features), "features": features}


def table_model(
    frame: pd.DataFrame, columns: list[str], seed: int = 0, name: str = "t"
) -> TinyModel:
    """A TinyModel with one ColumnEncoder input fitted on ``frame[columns]``."""
    torch.manual_seed(seed)
    encoder = ColumnEncoder()
    encoder.fit(frame[columns])
    return TinyModel({name: encoder})


def batch_of(model: TinyModel, frame: pd.DataFrame, label: str | None = None) -> dict[str, Any]:
    """A whole frame as one batch for ``model``."""
    inputs = {n: enc.prepare(frame[enc.order]) for n, enc in model.inputs.items()}
    present = {n: torch.ones(len(frame), dtype=torch.bool) for n in model.inputs}
    batch: dict[str, Any] = {"inputs": inputs, "present": present}
    if label is not None:
        batch["target"] = torch.tensor(frame[label].to_numpy(dtype="float32"))
    return batch


def batches_for(
    model: TinyModel, label: str | None = None
) -> Callable[..., Iterator[dict[str, Any]]]:
    """``TransferContext.batches`` for ``model``: shuffled batches of a frame (with
    ``target`` when the frame has the ``label`` column, as the runtime's batches do)."""

    def batches(
        frame: pd.DataFrame, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> Iterator[dict[str, Any]]:
        order = (
            np.random.default_rng(seed).permutation(len(frame))
            if shuffle
            else np.arange(len(frame))
        )
        for start in range(0, len(frame), batch_size):
            rows = frame.iloc[order[start : start + batch_size]]
            yield batch_of(model, rows, label if label in rows.columns else None)

    return batches


def train(
    model: TinyModel, frame: pd.DataFrame, label: str, steps: int = 150, lr: float = 0.05
) -> None:
    """Full-batch Adam on BCE: enough to learn the toy labels."""
    batch = batch_of(model, frame, label)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(batch)["logits"].squeeze(1), batch["target"]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()


def toy_frame(n: int, seed: int, columns: str = "abc") -> pd.DataFrame:
    """Standard-normal numeric columns; the label ``y`` is 1 when ``b + c > 0``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.standard_normal(n).astype("float32") for c in columns})
    frame["y"] = ((frame["b"] + frame["c"]) > 0).astype("float32")
    return frame


def context(source: nn.Module, target: nn.Module, data: pd.DataFrame, **kw: Any) -> TransferContext:
    """A transfer context on the CPU."""
    return TransferContext(source, target, cpu_device(), data, **kw)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The models and helpers above, for tests (conftest modules are not importable)."""
    return SimpleNamespace(
        ColumnEncoder=ColumnEncoder,
        TinyModel=TinyModel,
        table_model=table_model,
        batch_of=batch_of,
        batches_for=batches_for,
        train=train,
        toy_frame=toy_frame,
        context=context,
        device=cpu_device,
    )
