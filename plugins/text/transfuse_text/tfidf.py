"""``text.tfidf``: a fitted TF-IDF vocabulary feeding a trainable sparse linear layer.

``fit`` learns word and character n-gram vocabularies and their inverse document
frequencies from the training texts (scikit-learn's TfidfVectorizer); ``prepare`` turns a
text into its TF-IDF weights (sublinear term frequency x idf, L2-normalised per kind);
``forward`` is an EmbeddingBag that sums the terms' rows weighted by TF-IDF, a linear map
from the sparse TF-IDF vector to ``dim`` numbers. So the classic TF-IDF + logistic
regression baseline lives inside the fused model and trains with it.

With class labels (``warm_start``), ``fit`` also fits scikit-learn's logistic regression
on the training rows' TF-IDF (the penalty C chosen on the validation rows, or by 3-fold
cross-validation inside the training rows) and writes its weights into the layer's first
columns (class k's logit in column k; binary: column 0), so the model starts from the
convex optimum rather than from noise; a fusion with linear heads (``fusion.stack``
``linear_heads: true``) then starts exactly at that logistic regression.

``prepare`` works row by row (a fixed width, fitted on the training rows), so the data
path builds a frame's sparse rows once, not every step. The vocabulary is saved as JSON
and the idf as safetensors; the layer's weights go with the model's; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import ConfigError, DataError
from transfuse.bases import Batch, Encoder
from transfuse_text.options import TfidfOptions
from transfuse_text.values import missing_texts, to_texts

if TYPE_CHECKING:
    from transfuse.bases import Logit, Parts
    from transfuse.device import DeviceManager

__all__ = ["TfidfEncoder"]

_VOCABULARY = "vocabulary.json"
_IDF = "idf.safetensors"
#: The warm start's penalties to choose among (inverse L2 strength, scikit-learn's C).
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)
_FOLDS = 3


class TfidfEncoder(Encoder):
    """TF-IDF of word and character n-grams -> a linear layer (EmbeddingBag): ``[B, dim]``."""

    options: TfidfOptions
    rowwise_prepare = True

    def __init__(self, options: TfidfOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        if options.char_ngrams == 1:
            raise ConfigError(
                "char_ngrams 1 would count single letters only",
                where="text.tfidf options.char_ngrams",
                fix="use 0 (no character n-grams) or 2 to 6",
            )
        self.kinds = [
            kind
            for kind, n in (("word", options.word_ngrams), ("char", options.char_ngrams))
            if n > 0
        ]
        if not self.kinds:
            raise ConfigError(
                "word_ngrams and char_ngrams are both 0: there would be no terms",
                where="text.tfidf options",
                fix="set word_ngrams or char_ngrams above 0",
            )
        self.output_dim = options.dim
        self.frozen = options.frozen
        self.vocabulary: dict[str, list[str]] = {}
        self.idf: dict[str, np.ndarray] = {}
        self._counters: dict[str, Any] = {}
        self.bag: nn.EmbeddingBag | None = None
        self._memo: dict[str, int] = {}  # text -> row of _memo_rows (the texts fit saw)
        self._memo_rows: Any = None
        #: Terms kept per row (``prepare``'s width): the most any training text has, at
        #: most ``max_terms``; fitted, so a row's prepared form never depends on its batch.
        self.width = options.max_terms
        #: What the warm start did (``C``, its held-out scores, the intercept); empty: none.
        self.warm: dict[str, Any] = {}

    # -- vocabulary ----------------------------------------------------------------
    def _vectorizer_args(self, kind: str) -> dict[str, Any]:
        opts = self.options
        if kind == "word":
            return {"analyzer": "word", "ngram_range": (1, opts.word_ngrams)}
        return {"analyzer": "char_wb", "ngram_range": (2, opts.char_ngrams)}

    def fit(
        self,
        values: pd.Series | pd.DataFrame,
        target: pd.Series | np.ndarray | None = None,
        valid: tuple[pd.Series | pd.DataFrame, pd.Series | np.ndarray] | None = None,
    ) -> None:
        """Learn the vocabularies and idf from the training rows' texts (missing ones
        skipped); with class labels and ``warm_start``, start the linear layer at a
        logistic regression fitted on them (``valid``: the rows that choose its C)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = [t for t, gone in zip(to_texts(values), missing_texts(values)) if not gone]
        if not texts:
            raise DataError(
                "no training row has a text to learn a vocabulary from",
                where="text.tfidf",
                fix="check the input's column, or drop the input",
            )
        opts = self.options
        self._memo, self._memo_rows = {}, None
        parts = []
        for kind in self.kinds:
            vectorizer = TfidfVectorizer(
                **self._vectorizer_args(kind),
                lowercase=opts.lowercase,
                min_df=min(opts.min_df, len(texts)),
                max_features=opts.max_features,
                sublinear_tf=opts.sublinear_tf,
                dtype=np.float32,
            )
            try:  # the training texts' TF-IDF too: the same as tfidf() gives, read once
                parts.append(vectorizer.fit_transform(texts).astype(np.float32))
            except ValueError as exc:  # an empty vocabulary
                raise DataError(
                    f"no {kind} n-gram is frequent enough in {len(texts)} training texts ({exc})",
                    where="text.tfidf options.min_df",
                    fix="lower min_df, or turn this kind of n-gram off",
                ) from None
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            self.vocabulary[kind] = terms
            self.idf[kind] = np.asarray(vectorizer.idf_, dtype=np.float32)
        self.width = opts.max_terms
        self.warm = {}
        self._build()
        self._remember(texts, self._joined(parts))
        matrix = self.tfidf(values)
        most = int(np.diff(matrix.indptr).max()) if matrix.shape[0] else 1
        self.width = max(1, min(opts.max_terms, most))
        if valid is not None:  # prepared again soon (early stopping): transform them once
            self._remember(to_texts(valid[0]), self._transform(to_texts(valid[0])))
        if target is not None and opts.warm_start:
            self._warm_start(matrix, target, valid)

    def _remember(self, texts: list[str], matrix: Any) -> None:
        """Keep these texts' TF-IDF rows, so that preparing the frames ``fit`` saw (the
        training and validation rows, again in every pass's first epoch or the cache's
        fill) reads them instead of counting n-grams again."""
        import scipy.sparse as sp

        start = 0 if self._memo_rows is None else self._memo_rows.shape[0]
        new: dict[str, int] = {}
        keep: list[int] = []
        for i, text in enumerate(texts):
            if text and text not in self._memo and text not in new:
                new[text] = start + len(keep)
                keep.append(i)
        if not keep:
            return
        rows = matrix[keep]
        self._memo.update(new)
        old = self._memo_rows
        self._memo_rows = rows.tocsr() if old is None else sp.vstack([old, rows], format="csr")

    # -- the warm start ------------------------------------------------------------
    def _warm_start(
        self,
        matrix: Any,
        target: pd.Series | np.ndarray,
        valid: tuple[pd.Series | pd.DataFrame, pd.Series | np.ndarray] | None,
    ) -> None:
        """Fit a logistic regression on the training rows' TF-IDF and copy its weights into
        the layer's first columns. Classes are the labels' distinct values in sorted order
        (the binary task's default: the last one is positive); a target with one class, more
        classes than ``dim`` or 50 (regression-like), gets no warm start."""
        from sklearn.linear_model import LogisticRegression

        labels = pd.Series(np.asarray(target, dtype=object))
        keep = labels.notna().to_numpy() & (np.diff(matrix.indptr) > 0)  # rows with a text
        classes = _sorted_classes(labels[keep])
        room = 50 if len(classes) == 2 else min(50, self.options.dim)  # binary: one column
        if not 2 <= len(classes) <= room:
            self.warm = {"skipped": f"{len(classes)} classes"}
            return
        index = {c: i for i, c in enumerate(classes)}
        y = labels[keep].map(index).to_numpy(dtype=np.int64)
        x = matrix[np.flatnonzero(keep)]
        held = None
        if valid is not None:
            vy = pd.Series(np.asarray(valid[1], dtype=object))
            known = (vy.notna() & vy.isin(list(index))).to_numpy()
            known = known & ~np.asarray(missing_texts(valid[0]), dtype=bool)
            if known.sum() and len(set(vy[known])) == len(classes):
                vx = self.tfidf(valid[0])[np.flatnonzero(known)]
                held = (vx, vy[known].map(index).to_numpy(dtype=np.int64))
        scores: dict[str, float] = {}
        model = None
        if self.options.C is not None:
            chosen, chosen_on = float(self.options.C), "options.C"
        else:
            scores, fitted = _choose_c(x, y, held, self.device_manager.seed or 0)
            chosen = max(C_GRID, key=lambda c: scores[f"{c:g}"])  # the first of equals
            chosen_on = "validation rows" if held is not None else f"{_FOLDS}-fold CV"
            model = fitted.get(chosen)  # fitted on exactly the training rows
        rows = "training rows"
        start = None  # the chosen C's model: where a refit on more rows starts
        if self.options.warm_start_rows == "all" and held is not None:
            import scipy.sparse as sp

            x, y = sp.vstack([x, held[0]], format="csr"), np.concatenate([y, held[1]])
            start, model, rows = model, None, "training and validation rows"
        if model is None:
            model = LogisticRegression(C=chosen, max_iter=1000)
            if start is not None:  # the same optimum, reached in fewer steps
                model.set_params(warm_start=True)
                model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
            model.fit(x, y)
        coef = np.asarray(model.coef_, dtype=np.float32)  # [1 or K, size]
        assert self.bag is not None
        with torch.no_grad():  # only the logit columns: the rest would be noise to unlearn
            self.bag.weight.zero_()
            self.bag.weight[:, : len(coef)] = torch.from_numpy(coef.T.copy())
        self.warm = {
            "C": chosen,
            "scores": scores,
            "intercept": [float(v) for v in np.ravel(model.intercept_)],
            "classes": [str(c) for c in classes],
            "rows": len(y),
            "fitted_on": rows,
            "chosen_on": chosen_on,
        }

    def refit_rows(
        self, values: pd.Series | pd.DataFrame, target: pd.Series | np.ndarray
    ) -> dict[str, Any] | None:
        """Refit the warm start's logistic regression on these labelled rows (the
        training and validation rows: ``fusion.stack`` ``refit_inputs``) with the C its fit
        chose, and start the layer there again (the vocabulary is kept). ``None``: no
        warm start to refit."""
        from sklearn.linear_model import LogisticRegression

        if "C" not in self.warm:
            return None
        classes = list(self.warm["classes"])
        labels = pd.Series(np.asarray(target, dtype=object)).map(
            lambda v: str(v) if v is not None and v == v else None
        )
        matrix = self.tfidf(values)
        keep = (labels.isin(classes).to_numpy()) & (np.diff(matrix.indptr) > 0)
        y = labels[keep].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
        if len(np.unique(y)) != len(classes):
            return None
        model = LogisticRegression(C=self.warm["C"], max_iter=1000)
        model.fit(matrix[np.flatnonzero(keep)], y)
        coef = np.asarray(model.coef_, dtype=np.float32)
        assert self.bag is not None
        with torch.no_grad():
            self.bag.weight.zero_()
            self.bag.weight[:, : len(coef)] = torch.from_numpy(coef.T.copy())
        self.warm.update(
            intercept=[float(v) for v in np.ravel(model.intercept_)],
            rows=len(y),
            fitted_on="training and validation rows (refit_inputs)",
        )
        return {"C": self.warm["C"], "rows": len(y)}

    def _build(self) -> None:
        """The linear layer, one row per term of every kind."""
        self._counters = {}
        size = sum(len(v) for v in self.vocabulary.values())
        self.bag = nn.EmbeddingBag(size, self.options.dim, mode="sum")
        # Small, like a linear model starting near zero: large random rows for rare terms
        # would be noise the model first has to unlearn (0.90 against 0.94 test AUC).
        nn.init.normal_(self.bag.weight, std=0.01)

    @property
    def size(self) -> int:
        """Number of terms (rows of the linear layer)."""
        return sum(len(v) for v in self.vocabulary.values())

    def _counter(self, kind: str) -> Any:
        if kind not in self._counters:
            from sklearn.feature_extraction.text import CountVectorizer

            terms = self.vocabulary[kind]
            self._counters[kind] = CountVectorizer(
                **self._vectorizer_args(kind),
                lowercase=self.options.lowercase,
                vocabulary={t: i for i, t in enumerate(terms)},
                dtype=np.float32,
            )
        return self._counters[kind]

    def tfidf(self, values: pd.Series | pd.DataFrame) -> Any:
        """The rows' TF-IDF weights as a scipy CSR matrix ``[N, size]`` (each kind's part
        L2-normalised, the parts scaled so that a row's norm is at most 1)."""
        import scipy.sparse as sp

        self._require_fitted()
        texts = to_texts(values)
        if not self._memo:
            return self._transform(texts)
        index = np.fromiter((self._memo.get(t, -1) for t in texts), np.int64, len(texts))
        known = index >= 0
        if known.all():
            return self._memo_rows[index]
        fresh = self._transform([t for t, k in zip(texts, known) if not k])
        if not known.any():
            return fresh
        stacked = sp.vstack([self._memo_rows[index[known]], fresh], format="csr")
        order = np.concatenate([np.flatnonzero(known), np.flatnonzero(~known)])
        return stacked[np.argsort(order, kind="stable")]

    def _transform(self, texts: list[str]) -> Any:
        """:meth:`tfidf` of texts, counted afresh."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        parts = []
        for kind in self.kinds:
            counts = self._counter(kind).transform(texts).astype(np.float32).tocsr()
            if self.options.sublinear_tf:
                np.log(counts.data, out=counts.data)
                counts.data += 1.0
            weighted = counts @ sp.diags(self.idf[kind])
            parts.append(normalize(weighted, norm="l2", copy=False))
        return self._joined(parts)

    @staticmethod
    def _joined(parts: list[Any]) -> Any:
        """The kinds' normalised parts side by side, scaled so a row's norm is at most 1."""
        import scipy.sparse as sp

        matrix = sp.hstack(parts, format="csr", dtype=np.float32)
        if len(parts) > 1:
            matrix = matrix * (1.0 / math.sqrt(len(parts)))
        matrix = matrix.tocsr()
        matrix.sort_indices()  # one order of a row's terms, however the parts were counted
        return matrix

    # -- the encoder ---------------------------------------------------------------
    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing: None/NaN or a blank string."""
        return missing_texts(values)

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
        """Word occlusion (see :mod:`transfuse_text.explain`)."""
        from transfuse_text.explain import word_occlusion

        return word_occlusion(self, values, logit)

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Term ids and TF-IDF weights, ``[B, width]`` each (``width`` fitted on the
        training rows: their most terms, at most ``max_terms``); a longer row keeps its
        largest weights; weight 0 pads. Row by row, so a frame is prepared once."""
        matrix = self.tfidf(values)
        rows, width = matrix.shape[0], self.width
        counts = np.diff(matrix.indptr)
        terms = np.zeros((rows, width), dtype=np.int64)
        weights = np.zeros((rows, width), dtype=np.float32)
        fits = np.repeat(counts <= width, counts)  # per stored entry: its row fits
        row = np.repeat(np.arange(rows), counts)[fits]
        column = (np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts))[fits]
        terms[row, column] = matrix.indices[fits]
        weights[row, column] = matrix.data[fits]
        for i in np.flatnonzero(counts > width):
            lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
            keep = np.argsort(-matrix.data[lo:hi], kind="stable")[:width]
            terms[i] = matrix.indices[lo:hi][keep]
            weights[i] = matrix.data[lo:hi][keep]
        return {"terms": torch.from_numpy(terms), "weights": torch.from_numpy(weights)}

    def forward(self, batch: Batch) -> Tensor:
        """The TF-IDF-weighted sum of the terms' rows: a linear map of the TF-IDF vector."""
        self._require_fitted()
        assert self.bag is not None
        terms, weights = batch["terms"], batch["weights"]
        if weights.numel():  # rows are left-aligned: drop the columns no row of the batch uses
            used = max(1, int((weights != 0).sum(dim=1).max()))
            terms, weights = terms[:, :used], weights[:, :used]
        out: Tensor = self.bag(terms, per_sample_weights=weights.to(self.bag.weight.dtype))
        return out

    def cache_key(self) -> str:
        """The options and a digest of the fitted state and the layer's weights (a frozen
        layer's outputs are cached; a refit or other weights must not reuse them)."""
        import hashlib

        self._require_fitted()
        assert self.bag is not None
        digest = hashlib.sha256(json.dumps([self.kinds, self.vocabulary, self.width]).encode())
        for kind in self.kinds:
            digest.update(np.ascontiguousarray(self.idf[kind]).tobytes())
        digest.update(self.bag.weight.detach().float().cpu().numpy().tobytes())
        return f"{super().cache_key()}|{digest.hexdigest()}"

    def _require_fitted(self) -> None:
        if self.bag is None:
            raise ConfigError(
                "text.tfidf has no vocabulary yet",
                where="text.tfidf",
                fix="fit it on training texts (or load a run) before embedding",
            )

    # -- saving --------------------------------------------------------------------
    def save_fitted(self, directory: Path) -> None:
        """The vocabularies as JSON (terms in column order) and the idf as safetensors."""
        from safetensors.numpy import save_file

        self._require_fitted()
        payload = {
            "kinds": self.kinds,
            "vocabulary": self.vocabulary,
            "width": self.width,
            "warm_start": self.warm,
        }
        (directory / _VOCABULARY).write_text(json.dumps(payload), "utf-8")
        save_file({k: np.ascontiguousarray(v) for k, v in self.idf.items()}, directory / _IDF)

    def load_fitted(self, directory: Path) -> None:
        """Restore :meth:`save_fitted` and build the linear layer."""
        from safetensors.numpy import load_file

        path, idf_path = directory / _VOCABULARY, directory / _IDF
        if not path.is_file() or not idf_path.is_file():
            raise DataError(
                f"the run has no text.tfidf vocabulary ({_VOCABULARY}, {_IDF})",
                where=str(directory),
                fix="use a run directory written by transfuse with this input",
            )
        payload = json.loads(path.read_text("utf-8"))
        if list(payload.get("kinds", [])) != self.kinds:
            raise DataError(
                f"the saved vocabulary has kinds {payload.get('kinds')}, the options ask "
                f"for {self.kinds}",
                where=str(path),
                fix="load the run with the options it was trained with",
            )
        idf = load_file(str(idf_path))
        self._memo, self._memo_rows = {}, None
        self.vocabulary = {k: list(payload["vocabulary"][k]) for k in self.kinds}
        self.idf = {k: idf[k].astype(np.float32) for k in self.kinds}
        # Runs saved before the width was fitted prepared up to max_terms terms a row.
        self.width = int(payload.get("width", self.options.max_terms))
        self.warm = dict(payload.get("warm_start", {}))
        for kind in self.kinds:
            if len(self.idf[kind]) != len(self.vocabulary[kind]):
                raise DataError(
                    f"{kind} vocabulary and idf disagree in length",
                    where=str(directory),
                    fix="the run's files are damaged: retrain it",
                )
        self._build()


def _sorted_classes(labels: pd.Series) -> list[Any]:
    """The distinct labels, numbers in numeric order, others as sorted strings."""
    distinct = list(pd.unique(labels))
    try:
        return sorted(distinct, key=float)
    except (TypeError, ValueError):
        return sorted(distinct, key=str)


def _choose_c(
    x: Any, y: np.ndarray, held: tuple[Any, np.ndarray] | None, seed: int
) -> tuple[dict[str, float], dict[float, Any]]:
    """Each C of :data:`C_GRID`'s held-out score (ROC-AUC for two classes, minus the log
    loss for more): on ``held`` when given, else the mean over 3 stratified folds of
    ``x`` (a fold lacking a class is skipped). Along the grid each fit starts from the
    previous C's weights. Also returns, with ``held``, the models (fitted on ``x``) by C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    classes = int(y.max()) + 1

    def score(model: Any, vx: Any, vy: np.ndarray) -> float:
        if classes == 2:
            return float(roc_auc_score(vy, model.decision_function(vx)))
        return -float(log_loss(vy, model.predict_proba(vx), labels=list(range(classes))))

    if held is not None:
        splits = [(x, y, *held)]
    else:
        smallest = int(np.bincount(y).min())
        folds = StratifiedKFold(min(_FOLDS, max(2, smallest)), shuffle=True, random_state=seed)
        splits = [
            (x[a], y[a], x[b], y[b])
            for a, b in (folds.split(np.zeros(len(y)), y) if smallest >= 2 else [])
            if len(np.unique(y[a])) == classes and len(np.unique(y[b])) == classes
        ]
    import copy

    out: dict[str, float] = {}
    models: dict[float, Any] = {}
    paths = [LogisticRegression(max_iter=1000, warm_start=True) for _ in splits]
    for c in C_GRID:
        found = []
        for model, (tx, ty, vx, vy) in zip(paths, splits):
            model.set_params(C=c).fit(tx, ty)
            found.append(score(model, vx, vy))
        if held is not None:
            models[c] = copy.deepcopy(paths[0])
        out[f"{c:g}"] = float(np.mean(found)) if found else 0.0
    return out, models
