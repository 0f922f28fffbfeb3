"""Options of the tabular encoders (pydantic only: importing this loads no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from transfuse import Options

__all__ = ["FTTransformerOptions", "GBDTOptions", "MLPOptions", "TableOptions"]


class TableOptions(Options):
    """What every tabular encoder shares: output width, column types, vocabularies."""

    dim: int = Field(default=64, ge=1, description="Width of the encoder's output.")
    numeric: list[str] = Field(
        default_factory=list, description="Columns to treat as numbers, whatever their dtype."
    )
    categorical: list[str] = Field(
        default_factory=list, description="Columns to treat as categories (e.g. integer codes)."
    )
    boolean: list[str] = Field(
        default_factory=list, description="Columns to treat as yes/no (true/false, 1/0, y/n)."
    )
    text_statistics: list[str] = Field(
        default_factory=list,
        description="Free-text columns each read as 12 numbers instead of a category: "
        "characters, words, capitals, digits, punctuation, '!', '?', quotes, '@', '#', a "
        "link, a leading quote (style and length, which a bag of words does not see).",
    )
    min_frequency: int = Field(
        default=5,
        ge=1,
        description="Categories seen on fewer training rows fall in the unknown bucket.",
    )


class NeuralTableOptions(TableOptions):
    """Options of the neural tabular encoders (numeric embeddings, dropout, depth)."""

    numeric_embedding: Literal["linear", "ple", "periodic"] = Field(
        default="linear",
        description="How a number becomes a vector: linear (x*w+b on the scaled value), "
        "piecewise-linear encoding over quantile bins (ple), or periodic (sin/cos of learned "
        "frequencies). linear measured best on LendingClub (docs: Benchmark).",
    )
    scaling: Literal["quantile", "standard"] = Field(
        default="quantile",
        description="Scaling before linear/periodic embeddings: quantile (to a normal, robust "
        "to heavy tails) or standard (mean/std). Fitted on training rows only.",
    )
    bins: int = Field(default=16, ge=2, description="Quantile bins per column for ple.")
    frequencies: int = Field(default=16, ge=1, description="Learned frequencies (periodic).")
    frequency_scale: float = Field(
        default=0.3, gt=0, description="Std of the initial frequencies (periodic)."
    )
    embedding_dim: int = Field(default=16, ge=1, description="Width of each column's vector.")
    dropout: float = Field(default=0.3, ge=0.0, lt=1.0, description="Dropout in the trunk.")
    layers: int = Field(default=2, ge=0, description="Hidden blocks of the trunk.")


class MLPOptions(NeuralTableOptions):
    """Options of ``tabular.mlp``: column vectors concatenated, then an MLP."""

    hidden: int = Field(default=256, ge=1, description="Width of the hidden layers.")


class FTTransformerOptions(NeuralTableOptions):
    """Options of ``tabular.ft-transformer``: one token per column, then a transformer."""

    embedding_dim: int = Field(default=64, ge=1, description="Token width (d_token).")
    layers: int = Field(default=2, ge=1, description="Transformer blocks.")
    dropout: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Dropout in the feed-forward and residual."
    )
    heads: int = Field(
        default=4,
        ge=1,
        description="Attention heads (divide embedding_dim; few are faster on CPU).",
    )
    attention_dropout: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Dropout on the attention weights."
    )
    ffn_factor: float = Field(default=4 / 3, gt=0, description="Feed-forward width / d_token.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FTTransformerOptions:
        if self.embedding_dim % self.heads:
            raise ValueError(
                f"heads ({self.heads}) must divide embedding_dim ({self.embedding_dim})"
            )
        return self


class GBDTOptions(TableOptions):
    """Options of ``tabular.gbdt``: a LightGBM model whose leaves are embedded."""

    objective: Literal["auto", "binary", "multiclass", "regression"] = Field(
        default="auto",
        description="LightGBM objective; auto: binary for 2 classes, multiclass for "
        "non-numeric labels or up to 20 integer classes, regression otherwise.",
    )
    trees: int = Field(default=1000, ge=1, description="Boosting rounds (most trees).")
    leaves: int = Field(default=15, ge=2, description="Leaves per tree.")
    learning_rate: float = Field(default=0.02, gt=0, description="LightGBM's shrinkage.")
    min_rows_per_leaf: int = Field(
        default=20, ge=1, description="min_data_in_leaf (and min_data_per_group)."
    )
    column_subsample: float = Field(default=0.8, gt=0, le=1, description="feature_fraction.")
    row_subsample: float = Field(default=0.8, gt=0, le=1, description="bagging_fraction.")
    early_stopping: int = Field(
        default=100,
        ge=0,
        description="Stop after this many rounds without a better "
        "validation loss (needs validation rows; 0: off).",
    )
    leaf_value_init: bool = Field(
        default=True,
        description="Start each leaf's vector with the leaf's value scaled by the tree "
        "count in one coordinate, so the mean over trees starts at LightGBM's raw score.",
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout on the averaged leaf vector."
    )
    seed: int | None = Field(default=None, description="LightGBM seed; the run's seed if unset.")
    threads: int = Field(default=0, ge=0, description="LightGBM threads (0: its default).")
