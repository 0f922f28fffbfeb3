"""Numeric transforms fitted on training rows: standard and quantile scaling, and the
piecewise-linear encoding (Gorishniy et al. 2022) over quantile bins. Host-side numpy."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from transfuse_tabular.columns import Column

__all__ = ["piecewise_linear", "quantile_normal", "scale"]

_CLIP = 1e-7


def quantile_normal(x: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Map values through the training rows' empirical CDF, then to a standard normal.

    Like scikit-learn's ``QuantileTransformer(output_distribution="normal")``: ties (a
    value repeated over many quantiles) map to the middle of their range.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    refs = np.linspace(0, 1, len(q))
    up = np.interp(x, q, refs)
    down = 1.0 - np.interp(-x, -q[::-1], 1.0 - refs[::-1])
    return ndtri(np.clip(0.5 * (up + down), _CLIP, 1 - _CLIP))


def scale(x: np.ndarray, column: Column, how: str) -> np.ndarray:
    """Scale one column's raw values (NaN stays NaN) by its fitted statistics."""
    if how == "quantile":
        return quantile_normal(x, column.quantiles)
    return (x - column.mean) / column.std


def piecewise_linear(x: np.ndarray, edges: list[float]) -> np.ndarray:
    """``[N, bins]``: 1 for bins left of x, x's fraction of its own bin, 0 to the right.

    The first bin extends below the lowest edge and the last above the highest, so values
    outside the training range extrapolate linearly (as in rtdl_num_embeddings).
    """
    e = np.asarray(edges, dtype=np.float64)
    left, width = e[:-1], np.diff(e)
    out = (x[:, None] - left[None, :]) / width[None, :]
    out[:, 1:] = np.maximum(out[:, 1:], 0.0)
    out[:, :-1] = np.minimum(out[:, :-1], 1.0)
    return out
