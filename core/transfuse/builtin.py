"""The core's own components, registered through the same hooks as any plugin.

Only entries and options models live here (no torch): the implementations are in
:mod:`transfuse.tasks`, :mod:`transfuse.fusion` and :mod:`transfuse.sources`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from transfuse.components import (
    DataSourceEntry,
    FusionEntry,
    Options,
    TaskEntry,
)
from transfuse.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

# -- tasks ------------------------------------------------------------------------------


class ClassificationOptions(Options):
    """Options of the binary and multiclass tasks."""

    class_weights: Literal["none", "balanced"] | dict[str, float] = Field(
        default="none", description="Weigh the loss per class ('balanced' for rare labels)."
    )
    positive: str | int | bool | None = Field(
        default=None, description="The positive class (binary); the larger label if unset."
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)


class RegressionOptions(Options):
    """Options of the regression task."""

    loss: Literal["mse", "huber"] = "mse"
    standardize: bool = Field(default=True, description="Scale targets by training stats.")


# -- fusion -----------------------------------------------------------------------------


class FusionOptions(Options):
    """Options every fusion module shares."""

    dim: int = Field(default=128, ge=1, description="Width of the fused representation.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    modality_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Drop whole modalities while training."
    )


class AttentionOptions(FusionOptions):
    """Options of ``fusion.attention``."""

    heads: int = Field(default=4, ge=1)
    layers: int = Field(default=1, ge=1)


class LowRankOptions(FusionOptions):
    """Options of ``fusion.lowrank``."""

    rank: int = Field(default=4, ge=1)


class StackOptions(FusionOptions):
    """Options of ``fusion.stack``."""

    aux_weight: float = Field(
        default=1.0, ge=0.0, description="Weight of each input's own head loss (0: none)."
    )
    detach: bool = Field(
        default=False,
        description="The fused loss trains only the combination, not the heads (stacking).",
    )
    interaction: bool = Field(
        default=True, description="Add an MLP over all inputs, starting at zero (a residual)."
    )
    refit: bool = Field(
        default=True,
        description="After training, refit the per-input weights on the validation rows "
        "(k-fold over L2 penalties, the joint weights and each head alone).",
    )
    linear_heads: bool = Field(
        default=False,
        description="Each input's head is one linear map of its raw embedding (no "
        "projection), starting at its first columns (class k's logit: column k), where "
        "text.tfidf's warm start and tabular.gbdt's leaf_value_init put their own logit: "
        "the stack then starts from those models and refits their weights.",
    )
    refit_choice: Literal["best", "simplest"] = Field(
        default="best",
        description="How the refit picks among its candidates: the best mean fold score, or "
        "the simplest within one standard error of it (each input alone, then the joint "
        "weights, then refit weights from the largest penalty down).",
    )
    refit_inputs: bool = Field(
        default=False,
        description="After the refit has weighed the inputs on the validation rows, refit "
        "each input's own model (text.tfidf's logistic regression, tabular.gbdt's trees) on "
        "the training and validation rows together, with the settings its fit chose (C, the "
        "tree count); replaces what training changed in those layers (use with epochs 0). "
        "Calibration and the validation metrics use the logits from before.",
    )
    refit_folds: int = Field(
        default=0,
        ge=0,
        description="With refit_inputs and every input able to refit its own model: weigh "
        "the inputs on out-of-fold logits of the training and validation rows together "
        "(each of k folds scored by the inputs refit on the other folds: classic stacking), "
        "not on the validation rows alone; 0: off, else k >= 2. Costs k + 1 refits of each "
        "input.",
    )

    @field_validator("refit_folds")
    @classmethod
    def _folds_are_two_or_more(cls, value: int) -> int:
        if value == 1:
            raise ValueError("refit_folds must be 0 (off) or at least 2")
        return value


class LinearOptions(FusionOptions):
    """Options of ``fusion.linear``."""

    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="On the concatenation.")


# -- data sources -----------------------------------------------------------------------


class FileSourceOptions(Options):
    """Options of the csv and parquet sources."""

    path: str = Field(description="The file to read.")
    columns: list[str] | None = Field(default=None, description="Read only these columns.")


@hookimpl
def transfuse_tasks() -> list[TaskEntry]:
    """The built-in tasks."""
    return [
        TaskEntry(
            name="binary",
            factory="transfuse.tasks:BinaryTask",
            options=ClassificationOptions,
            description="Two classes: one logit, BCE loss, ROC-AUC/KS/PR-AUC/Brier.",
        ),
        TaskEntry(
            name="multiclass",
            factory="transfuse.tasks:MulticlassTask",
            options=ClassificationOptions,
            description="K classes: softmax, cross-entropy, accuracy/macro-F1/log-loss.",
        ),
        TaskEntry(
            name="regression",
            factory="transfuse.tasks:RegressionTask",
            options=RegressionOptions,
            description="A real-valued target: MSE or Huber loss, RMSE/MAE/R².",
        ),
    ]


@hookimpl
def transfuse_fusions() -> list[FusionEntry]:
    """The built-in fusion modules."""
    return [
        FusionEntry(
            name="fusion.concat",
            factory="transfuse.fusion:ConcatFusion",
            options=FusionOptions,
            description="Concatenate the embeddings (zeros where missing), then an MLP.",
        ),
        FusionEntry(
            name="fusion.gated",
            factory="transfuse.fusion:GatedFusion",
            options=FusionOptions,
            description="Learned per-modality gates weigh projected embeddings.",
        ),
        FusionEntry(
            name="fusion.attention",
            factory="transfuse.fusion:AttentionFusion",
            options=AttentionOptions,
            description="A transformer over one token per modality and a summary token.",
        ),
        FusionEntry(
            name="fusion.lowrank",
            factory="transfuse.fusion:LowRankFusion",
            options=LowRankOptions,
            description="Low-rank multimodal fusion (Liu et al. 2018).",
        ),
        FusionEntry(
            name="fusion.late",
            factory="transfuse.fusion:LateFusion",
            options=FusionOptions,
            description="A head per modality; logits averaged over present modalities.",
        ),
        FusionEntry(
            name="fusion.stack",
            factory="transfuse.fusion:StackFusion",
            options=StackOptions,
            description="Per-modality heads trained on their own losses, combined by learned "
            "weights plus a residual interaction MLP (for a dominant modality).",
        ),
        FusionEntry(
            name="fusion.linear",
            factory="transfuse.fusion:LinearFusion",
            options=LinearOptions,
            description="Concatenate the embeddings and presence flags, one linear map: the "
            "logit stays affine in every input (for exact transfer edits).",
        ),
    ]


@hookimpl
def transfuse_data_sources() -> list[DataSourceEntry]:
    """The built-in file sources."""
    return [
        DataSourceEntry(
            name="csv",
            factory="transfuse.sources:CsvSource",
            options=FileSourceOptions,
            description="A CSV file.",
        ),
        DataSourceEntry(
            name="parquet",
            factory="transfuse.sources:ParquetSource",
            options=FileSourceOptions,
            description="A parquet file.",
        ),
    ]


@hookimpl(trylast=True)
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Last resort: numbers, booleans and short repeated strings are tabular."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "tabular"
    values = column.dropna()
    if len(values) and values.astype(str).nunique() <= max(20, len(values) // 20):
        return "tabular"
    return None
