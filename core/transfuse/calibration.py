"""Calibration: a binary model's score made a probability that matches the observed rate.

A network trained with class weights, label smoothing or early stopping ranks rows well
but its ``P(bad)`` is off (a 0.3 that defaults half the time). After training, a
calibrator is fitted on the validation rows and applied to every score the run gives:

- ``platt`` (the default): ``p' = sigmoid(slope * logit(p) + intercept)``, a logistic
  regression on the logit with Platt's (1999) prior-corrected targets
  ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, so a validation set that the model
  separates perfectly does not push the slope to infinity. Monotone: ROC-AUC, KS and every
  cut-off's ranking are unchanged. Two numbers, robust on a few hundred rows.
- ``isotonic``: scikit-learn's ``IsotonicRegression``, a step function through the
  validation rows' observed rates; more flexible, needs more rows, and may tie rows
  (ROC-AUC can move slightly).
- ``none``: scores as the network gives them.

The fitted calibrator is stored in the run as ``calibration.json`` (numbers only, never a
pickle) and applied with numpy (``np.interp`` for isotonic). Multiclass and regression runs
are not calibrated. Expected calibration error (ECE) is the row-weighted mean gap between
the mean score and the observed rate in ten equal-width score bins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from transfuse.errors import CheckpointError

__all__ = [
    "FILE",
    "METHODS",
    "Calibration",
    "expected_calibration_error",
    "fit_calibration",
    "keep_unless_rejected",
    "load_calibration",
    "reliability_plot",
    "save_calibration",
]

FILE = "calibration.json"
METHODS = ("platt", "isotonic", "none")
Method = Literal["platt", "isotonic", "none"]
_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] before the logit


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibration:
    """A fitted calibrator: Platt's slope and intercept, or isotonic's thresholds."""

    method: Method = "none"
    slope: float = 1.0
    intercept: float = 0.0
    x: tuple[float, ...] = ()  # isotonic: raw-score thresholds, increasing
    y: tuple[float, ...] = ()  # isotonic: the calibrated probability at each threshold
    rows: int = 0  # the validation rows it was fitted on
    positives: int = 0
    requested: str = "none"  # what the config asked for
    note: str = ""  # why it fell back to none, if it did

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw probabilities ``p`` (any shape)."""
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            z = self.slope * _logit(p) + self.intercept
            return np.asarray(1.0 / (1.0 + np.exp(-z)))
        if self.method == "isotonic":
            return np.interp(p, np.asarray(self.x), np.asarray(self.y))
        return p

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to ``calibration.json``."""
        out: dict[str, Any] = {
            "method": self.method,
            "requested": self.requested,
            "fitted_on": {"split": "validation", "rows": self.rows, "positives": self.positives},
        }
        if self.method == "platt":
            out.update(slope=self.slope, intercept=self.intercept)
        if self.method == "isotonic":
            out.update(x=list(self.x), y=list(self.y))
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = FILE) -> Calibration:
        """Read :meth:`to_dict`; anything malformed is a CheckpointError naming the file."""

        def bad(what: str) -> CheckpointError:
            return CheckpointError(
                f"calibration.json {what}",
                where=where,
                fix="retrain the run, or delete the file to use uncalibrated scores",
            )

        method = data.get("method")
        if method not in METHODS:
            raise bad(f"names an unknown method {method!r} (known: {', '.join(METHODS)})")
        fitted = data.get("fitted_on") or {}
        common: dict[str, Any] = {
            "method": method,
            "rows": int(fitted.get("rows", 0)),
            "positives": int(fitted.get("positives", 0)),
            "requested": str(data.get("requested", method)),
            "note": str(data.get("note", "")),
        }
        try:
            if method == "platt":
                slope, intercept = float(data["slope"]), float(data["intercept"])
                if not (math.isfinite(slope) and math.isfinite(intercept)) or slope <= 0:
                    raise bad("holds a slope that is not a positive finite number")
                return cls(slope=slope, intercept=intercept, **common)
            if method == "isotonic":
                x = np.asarray(data["x"], dtype=np.float64)
                y = np.asarray(data["y"], dtype=np.float64)
                if x.ndim != 1 or x.shape != y.shape or not len(x):
                    raise bad("holds isotonic thresholds x and y of different lengths")
                if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.any(np.diff(x) < 0):
                    raise bad("holds isotonic thresholds that are not finite and increasing")
                return cls(x=tuple(x.tolist()), y=tuple(y.tolist()), **common)
        except (KeyError, TypeError, ValueError):
            raise bad(f"lacks the numbers of its {method} calibrator") from None
        return cls(**common)


def _log_likelihood(calibration: Calibration, y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(calibration.apply(p), 1e-12, 1.0 - 1e-12)
    return float(np.sum(y * np.log(q) + (1 - y) * np.log1p(-q)))


def keep_unless_rejected(
    prior: Calibration, fitted: Calibration, y: np.ndarray, p: np.ndarray, level: float = 0.05
) -> Calibration:
    """``prior`` (a source run's Platt calibrator, for a transferred model that scores these
    rows exactly as the source model does) unless these rows reject it: a likelihood-ratio
    test against ``fitted`` (Platt refit on them, two numbers more) at ``level``. On a few
    hundred labels a refit is mostly noise, and the source's was fitted on its own,
    larger, validation rows. Anything but two Platt calibrators: ``fitted``."""
    from scipy.stats import chi2

    if prior.method != "platt" or fitted.method != "platt" or not len(y):
        return fitted
    y = np.asarray(y, dtype=np.float64)
    statistic = 2.0 * (_log_likelihood(fitted, y, p) - _log_likelihood(prior, y, p))
    critical = float(chi2.ppf(1.0 - level, 2))
    if statistic > critical:
        return fitted
    note = (
        f"the source run's calibrator: the model scores the {len(y)} validation rows as the "
        f"source model does, and they do not reject it (likelihood ratio {statistic:.2f}, "
        f"under {critical:.2f} at {level:g}, 2 degrees of freedom)"
    )
    return Calibration(
        method="platt",
        slope=prior.slope,
        intercept=prior.intercept,
        rows=prior.rows,
        positives=prior.positives,
        requested=fitted.requested,
        note=note,
    )


def fit_calibration(method: str, y: np.ndarray, p: np.ndarray) -> Calibration:
    """Fit ``method`` on labels ``y`` (0/1) and raw probabilities ``p`` (validation rows).

    Falls back to ``none`` (saying why in ``note``) when the rows hold one class only, or
    when Platt's slope comes out non-positive (the scores do not rank these rows).
    """
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    n, positives = len(y), int(y.sum())
    base: dict[str, Any] = {"rows": n, "positives": positives, "requested": method}
    if method == "none":
        return Calibration(**base)
    if positives == 0 or positives == n:
        note = "the validation rows hold one class only; scores left uncalibrated"
        return Calibration(note=note, **base)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # Platt's targets: soft labels, as two weighted copies of every row.
        hi, lo = (positives + 1.0) / (positives + 2.0), 1.0 / (n - positives + 2.0)
        target = np.where(y == 1, hi, lo)
        x = np.concatenate([_logit(p), _logit(p)]).reshape(-1, 1)
        labels = np.concatenate([np.ones(n), np.zeros(n)])
        weights = np.concatenate([target, 1.0 - target])
        model = LogisticRegression(C=np.inf).fit(x, labels, sample_weight=weights)
        slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if not slope > 0:
            note = f"Platt's slope is {slope:.3g} (the scores do not rank the validation rows)"
            return Calibration(note=note + "; scores left uncalibrated", **base)
        return Calibration(method="platt", slope=slope, intercept=intercept, **base)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        xs = tuple(float(v) for v in iso.X_thresholds_)
        ys = tuple(float(v) for v in iso.y_thresholds_)
        return Calibration(method="isotonic", x=xs, y=ys, **base)
    raise ValueError(f"unknown calibration method {method!r}")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: over ``bins`` equal-width bins of ``p``, the row-weighted mean of
    ``|observed rate - mean score|`` (0 is perfectly calibrated)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if not len(y):
        return float("nan")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.sum() * abs(y[members].mean() - p[members].mean())
    return float(total / len(y))


def save_calibration(directory: Path, calibration: Calibration) -> None:
    """Write ``calibration.json`` into a run directory."""
    text = json.dumps(calibration.to_dict(), indent=2)
    (directory / FILE).write_text(text + "\n", "utf-8")


def load_calibration(directory: Path) -> Calibration | None:
    """The run's calibrator, or None for a run written before calibration existed."""
    path = directory / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{FILE} is unreadable: {exc}", where=str(directory)) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{FILE} is not a JSON object", where=str(directory))
    return Calibration.from_dict(data, where=str(path))


def reliability_plot(
    path: Path, y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, split: str, bins: int = 10
) -> str:
    """Draw the reliability diagram (observed rate against mean score per bin, before and
    after calibration); returns its caption."""
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for label, scores in (("before", raw), ("after", calibrated)):
        rate, mean = calibration_curve(y, scores, n_bins=bins, strategy="uniform")
        ece = expected_calibration_error(y, scores, bins)
        ax.plot(mean, rate, marker="o", label=f"{label} calibration (ECE {ece:.3f})")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(f"Reliability on the {split} rows")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"reliability diagram on the {split} rows, before and after calibration"
