"""transfuse-text: text encoders (sentence-transformers models, TF-IDF, a hashed bag of words).

Importing this module is light: it registers entries whose factories are lazy strings, so
torch and sentence-transformers load only when an encoder is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfuse import EncoderEntry, PipelineEntry, hookimpl
from transfuse_text.options import BagOfWordsOptions, SentenceTransformerOptions, TfidfOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BagOfWordsOptions",
    "SentenceTransformerOptions",
    "TfidfOptions",
    "transfuse_encoders",
    "transfuse_infer_modality",
    "transfuse_pipelines",
]

__version__ = "0.1.0"


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The text encoders."""
    return [
        EncoderEntry(
            name="text.sentence-transformer",
            modality="text",
            factory="transfuse_text.sentence:SentenceTransformerEncoder",
            options=SentenceTransformerOptions,
            description="A sentence-transformers model from a local folder "
            "(default: the packaged all-MiniLM-L6-v2, 384 dims).",
        ),
        EncoderEntry(
            name="text.bag-of-words",
            modality="text",
            factory="transfuse_text.bow:BagOfWordsEncoder",
            options=BagOfWordsOptions,
            description="A trainable hashed-token EmbeddingBag; no pretrained model needed.",
        ),
        EncoderEntry(
            name="text.tfidf",
            modality="text",
            factory="transfuse_text.tfidf:TfidfEncoder",
            options=TfidfOptions,
            description="Fitted word + character n-gram TF-IDF into a trainable linear layer "
            "(the TF-IDF + logistic regression baseline, inside the model).",
        ),
    ]


@hookimpl
def transfuse_pipelines() -> list[PipelineEntry]:
    """``text-table``: the recommended text + table recipe, as a template to name columns in."""
    return [
        PipelineEntry(
            name="text-table",
            resource="transfuse_text.presets:text_table.yaml",
            description="Template: text.tfidf (warm-started at a logistic regression) + "
            "tabular.gbdt, fusion.stack with linear heads and refit weights; name your columns.",
        )
    ]


@hookimpl
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """Free-text string columns are text (not IDs, dates, categories or file paths)."""
    from transfuse_text.infer import looks_like_free_text

    return "text" if looks_like_free_text(column) else None
