"""``text.bag-of-words``: a light, trainable hashed-token EmbeddingBag.

Tokens (word n-grams) are hashed into ``buckets`` with scikit-learn's HashingVectorizer,
so there is no vocabulary to fit and unseen words still land somewhere; a text's
embedding is the count-weighted mean of its tokens' rows. For when no pretrained model is
wanted, or as a fast baseline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse.bases import Batch, Encoder
from transfuse_text.options import BagOfWordsOptions
from transfuse_text.values import missing_texts, to_texts

if TYPE_CHECKING:
    from transfuse.bases import Logit, Parts
    from transfuse.device import DeviceManager

__all__ = ["BagOfWordsEncoder"]


class BagOfWordsEncoder(Encoder):
    """Hashed word n-grams -> EmbeddingBag (count-weighted mean): ``[B, dim]``."""

    options: BagOfWordsOptions

    def __init__(self, options: BagOfWordsOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.output_dim = options.dim
        self.frozen = False
        self.bag = nn.EmbeddingBag(options.buckets, options.dim, mode="sum")
        nn.init.normal_(self.bag.weight, std=1.0)
        self._vectorizer: Any = None

    def _hasher(self) -> Any:
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                n_features=self.options.buckets,
                ngram_range=(1, self.options.ngrams),
                lowercase=self.options.lowercase,
                alternate_sign=False,
                norm=None,
            )
        return self._vectorizer

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing: None/NaN or a blank string."""
        return missing_texts(values)

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
        """Word occlusion (see :mod:`transfuse_text.explain`)."""
        from transfuse_text.explain import word_occlusion

        return word_occlusion(self, values, logit)

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Hashed token ids and counts, ``[B, max_tokens]`` each (count 0 pads)."""
        counts = self._hasher().transform(to_texts(values)).tocsr()
        rows, width = counts.shape[0], self.options.max_tokens
        tokens = np.zeros((rows, width), dtype=np.int64)
        weights = np.zeros((rows, width), dtype=np.float32)
        for i in range(rows):
            lo, hi = counts.indptr[i], counts.indptr[i + 1]
            ids, n = counts.indices[lo:hi], counts.data[lo:hi]
            if len(ids) > width:  # keep the most frequent tokens
                keep = np.argsort(-n, kind="stable")[:width]
                ids, n = ids[keep], n[keep]
            tokens[i, : len(ids)] = ids
            weights[i, : len(ids)] = n
        return {"tokens": torch.from_numpy(tokens), "counts": torch.from_numpy(weights)}

    def forward(self, batch: Batch) -> Tensor:
        """Count-weighted mean of the tokens' embeddings (zeros for an empty text)."""
        counts = batch["counts"].to(self.bag.weight.dtype)
        summed = self.bag(batch["tokens"], per_sample_weights=counts)
        return summed / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
