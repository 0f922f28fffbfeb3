"""transfuse-tabular: encoders for tables of numbers, categories and yes/no columns.

Registers ``tabular.mlp``, ``tabular.ft-transformer`` and ``tabular.gbdt`` and tells the
core which columns are tabular. Importing this package loads no torch and no LightGBM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfuse import EncoderEntry, hookimpl
from transfuse_tabular.options import FTTransformerOptions, GBDTOptions, MLPOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["transfuse_encoders", "transfuse_infer_modality"]

MODALITY = "tabular"
_MAX_CATEGORY_LENGTH = 40
_MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf", ".wav", ".flac", ".mp3")


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The tabular encoders."""
    return [
        EncoderEntry(
            name="tabular.mlp",
            modality=MODALITY,
            factory="transfuse_tabular.mlp:MLPEncoder",
            options=MLPOptions,
            description="Per-column embeddings (linear, piecewise-linear or periodic for "
            "numbers), concatenated, then an MLP.",
        ),
        EncoderEntry(
            name="tabular.ft-transformer",
            modality=MODALITY,
            factory="transfuse_tabular.ft_transformer:FTTransformerEncoder",
            options=FTTransformerOptions,
            description="Feature tokenizer + transformer (Gorishniy et al. 2021).",
        ),
        EncoderEntry(
            name="tabular.gbdt",
            modality=MODALITY,
            factory="transfuse_tabular.gbdt:GBDTEncoder",
            options=GBDTOptions,
            description="A LightGBM model fitted on the training rows; a learned vector per "
            "leaf, averaged over trees.",
        ),
    ]


@hookimpl
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Numbers, yes/no, pandas categoricals and short repeated strings are tabular."""
    import pandas as pd  # the caller already has it; kept out of the plugin's import

    if pd.api.types.is_bool_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
        return MODALITY
    if pd.api.types.is_numeric_dtype(column):
        return MODALITY
    if pd.api.types.is_datetime64_any_dtype(column):
        return None
    values = column.dropna()
    if not len(values):
        return None
    text = values.astype(str)
    distinct = text.nunique()
    if (
        distinct < len(text)
        and distinct <= max(20, len(text) // 20)
        and text.str.len().max() <= _MAX_CATEGORY_LENGTH
        and not text.str.lower().str.endswith(_MEDIA_SUFFIXES).any()
    ):
        return MODALITY
    return None
