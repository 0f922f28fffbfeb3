"""The shared base of the neural tabular encoders: fit the schema, build per-column
embeddings, prepare frames into tensors, save and restore the fitted state.

Subclasses build the trunk (``build_trunk``) that turns the column tokens ``[B, C, d]``
into ``[B, dim]``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse.bases import Batch, Encoder
from transfuse.errors import CheckpointError, DataError
from transfuse_tabular.columns import TableSchema, as_frame
from transfuse_tabular.embeddings import (
    CategoricalEmbedding,
    NumericEmbedding,
    categorical_tokens,
    numeric_tokens,
)
from transfuse_tabular.numeric import piecewise_linear, scale

if TYPE_CHECKING:
    from transfuse.bases import Logit, Parts
    from transfuse.device import DeviceManager
    from transfuse_tabular.options import NeuralTableOptions

__all__ = ["TableEncoder"]

STATE_VERSION = 1


class TableEncoder(Encoder):
    """Numeric, categorical and boolean columns -> one token per column -> a trunk."""

    handles_missing = True
    rowwise_prepare = True  # prepared once per frame, sliced per batch
    options: NeuralTableOptions

    def __init__(self, options: NeuralTableOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.schema: TableSchema | None = None
        self.columns = nn.ModuleDict()
        self.trunk: nn.Module = nn.Identity()

    # -- subclasses ----------------------------------------------------------------------
    def build_trunk(self, num_columns: int) -> nn.Module:
        """The module that maps column tokens ``[B, C, d]`` to ``[B, dim]``."""
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------
    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        """Learn column kinds, scalers, bins and vocabularies from training rows only."""
        o = self.options
        self.schema = TableSchema.fit(
            as_frame(values),
            numeric=o.numeric,
            categorical=o.categorical,
            boolean=o.boolean,
            text_statistics=o.text_statistics,
            min_frequency=o.min_frequency,
            bins=o.bins,
        )
        self._build()

    def _build(self) -> None:
        """Create every parameter with its final shape from the fitted schema."""
        assert self.schema is not None
        o, d = self.options, self.options.embedding_dim
        columns: dict[str, nn.Module] = {}
        for column in self.schema.numeric:
            columns[column.key] = NumericEmbedding(
                o.numeric_embedding,
                d,
                bins=len(column.edges) - 1,
                frequencies=o.frequencies,
                sigma=o.frequency_scale,
            )
        for column in self.schema.categorical:
            columns[column.key] = CategoricalEmbedding(column.cardinality, d)
        self.columns = nn.ModuleDict(columns)
        self.trunk = self.build_trunk(len(self.schema.columns))

    def _fitted(self) -> TableSchema:
        if self.schema is None:
            raise DataError(
                "the encoder is used before it was fitted",
                where=type(self).__name__,
                fix="call fit(values) on training rows, or load_fitted(directory)",
            )
        return self.schema

    # -- data ----------------------------------------------------------------------------
    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """Rows per column whose category went to the unknown bucket (for the run's log)."""
        unknown = self._fitted().unknown(as_frame(values))
        return {"unknown_categories": unknown} if unknown else {}

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Frame -> ``numeric`` (scaled, 0 where missing), ``numeric_missing``, ``ple``
        (piecewise-linear encodings, zero-padded) and ``categorical`` codes."""
        schema = self._fitted()
        frame = as_frame(values)
        raw = schema.numbers(frame)
        missing = np.isnan(raw)
        batch: Batch = {"numeric_missing": torch.from_numpy(missing)}
        if self.options.numeric_embedding == "ple":
            bins = max((len(c.edges) - 1 for c in schema.numeric), default=0)
            encoded = np.zeros((len(frame), raw.shape[1], bins), dtype=np.float32)
            for j, column in enumerate(schema.numeric):
                encoded[:, j, : len(column.edges) - 1] = piecewise_linear(raw[:, j], column.edges)
            encoded[missing] = 0.0
            batch["ple"] = torch.from_numpy(encoded)
            scaled = raw
        else:
            scaled = (
                np.column_stack(
                    [
                        scale(raw[:, j], c, self.options.scaling)
                        for j, c in enumerate(schema.numeric)
                    ]
                )
                if schema.numeric
                else raw
            )
        batch["numeric"] = torch.from_numpy(np.nan_to_num(scaled, nan=0.0).astype(np.float32))
        batch["categorical"] = torch.from_numpy(schema.codes(frame))
        return batch

    def tokens(self, batch: Batch) -> Tensor:
        """One vector per column: ``[B, C, embedding_dim]`` in the fitted column order."""
        schema = self._fitted()
        out = []
        if schema.numeric:
            numeric = [cast(NumericEmbedding, self.columns[c.key]) for c in schema.numeric]
            x, missing = batch["numeric"], batch["numeric_missing"]
            out.append(numeric_tokens(numeric, x, missing, batch.get("ple")))
        if schema.categorical:
            categorical = [
                cast(CategoricalEmbedding, self.columns[c.key]) for c in schema.categorical
            ]
            out.append(categorical_tokens(categorical, batch["categorical"]))
        return torch.cat(out, dim=1)

    def forward(self, batch: Batch) -> Tensor:
        """Embed a prepared batch: ``[B, dim]``."""
        return self.trunk(self.tokens(batch))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``columns`` (per-column embeddings) and ``trunk`` (shared layers)."""
        return {"columns": list(self.columns.parameters()), "trunk": list(self.trunk.parameters())}

    # -- state ---------------------------------------------------------------------------
    def fitted_state(self) -> dict[str, Any]:
        """Column kinds, order, keys, statistics, bins and vocabularies (JSON-able)."""
        if self.schema is None:
            return {}
        return {
            "version": STATE_VERSION,
            "encoder": type(self).__name__,
            "columns": self.schema.to_state(),
        }

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state` and build the parameters with their final shapes."""
        if not state:
            raise CheckpointError(
                "no fitted state to restore",
                where=type(self).__name__,
                fix="restore from the directory that save_fitted wrote",
            )
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(
                f"fitted state version {state.get('version')!r} is not {STATE_VERSION}",
                where=type(self).__name__,
                fix="refit the encoder with this version of transfuse-tabular",
            )
        self.schema = TableSchema.from_state(state["columns"])
        self._build()

    # -- explanations --------------------------------------------------------------------
    def explain_parts(self) -> list[str]:
        """The columns, in the order :meth:`attribute` scores them."""
        return self.column_names()

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
        """Integrated Gradients per column (see :mod:`transfuse_tabular.explain`)."""
        from transfuse_tabular.explain import integrated_gradients

        return integrated_gradients(self, values, logit)

    # -- for transfer strategies ---------------------------------------------------------
    def column_names(self) -> list[str]:
        """Fitted column names, in the order of the tokens."""
        return [c.name for c in self._fitted().columns]

    def column_state(self, column: str) -> dict[str, Any]:
        """What fit learned about one column: ``name``, ``key`` (its ModuleDict key),
        ``kind``, and mean/std/quantiles/edges or vocabulary/counts."""
        return dataclasses.asdict(self._fitted().column(column))

    def category_index(self, column: str) -> dict[str, int]:
        """Category value (as text) -> its row in ``columns.<key>.embedding.weight``.

        Rows 0 and 1 hold the missing and unknown vectors; the vocabulary starts at 2.
        """
        fitted = self._fitted().column(column)
        if fitted.kind == "numeric":
            raise DataError(f"column {column!r} is numeric", where="category_index")
        return {value: row + 2 for row, value in enumerate(fitted.vocabulary)}
