"""The built-in tasks: binary and multiclass classification, and regression.

A task owns the label encoding, the loss, the user-facing scores and the metrics (all
from scikit-learn). Labels arrive as a :class:`pandas.Series`; classes are kept as plain
JSON values (strings, ints, bools), so :meth:`Task.state` round-trips through JSON.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from torch import Tensor

from transfuse.bases import Task
from transfuse.errors import CheckpointError, ConfigError, DataError

__all__ = ["BinaryTask", "MulticlassTask", "RegressionTask", "ks_statistic"]

Label = str | int | float | bool


def ks_statistic(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic of a score: the largest ``|TPR - FPR|`` over thresholds.

    The credit-scoring separation measure; ``y_true`` must hold both classes (0 and 1).
    """
    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        raise ValueError("the KS statistic needs both classes in y_true")
    fpr, tpr, _ = skm.roc_curve(y, np.asarray(scores, dtype=np.float64))
    return float(np.max(np.abs(tpr - fpr)))


# -- labels -----------------------------------------------------------------------------


def _plain(value: Any) -> Label:
    """A label as a plain JSON value: numpy scalars unwrapped, whole floats made ints."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _sort_key(value: Label) -> tuple[int, Any]:
    """Numbers (and bools) before strings, each in natural order."""
    return (1, value) if isinstance(value, str) else (0, value)


def _where(labels: pd.Series) -> str:
    return f"column {labels.name!r}" if labels.name is not None else "the labels"


def _check_labelled(labels: pd.Series) -> None:
    """Refuse missing labels (the data path drops unlabeled rows before a task sees them)."""
    missing = int(labels.isna().sum())
    if missing:
        raise DataError(
            f"{missing} of {len(labels)} labels are missing",
            where=_where(labels),
            fix="drop the unlabeled rows or fill in their labels",
        )


def _codes(labels: pd.Series, classes: list[Label]) -> np.ndarray:
    """The class index of every label; an unseen label is a DataError naming it."""
    _check_labelled(labels)
    index: dict[Hashable, int] = {}
    for code, cls in enumerate(classes):
        index.setdefault(cls, code)
    uniques = pd.unique(labels.to_numpy(dtype=object))
    lookup = {raw: index.get(_plain(raw)) for raw in uniques}
    unknown = [raw for raw, code in lookup.items() if code is None]
    if unknown:
        shown = ", ".join(repr(_plain(u)) for u in unknown[:5])
        raise DataError(
            f"label(s) {shown} were not seen in training (classes: {classes})",
            where=_where(labels),
            fix="use the training set's labels, or retrain with these classes",
        )
    return np.fromiter((lookup[v] for v in labels.to_numpy(dtype=object)), np.int64, len(labels))


def _classes(labels: pd.Series) -> list[Label]:
    """The distinct labels, sorted."""
    _check_labelled(labels)
    uniques = {_plain(v) for v in pd.unique(labels.to_numpy(dtype=object))}
    try:
        return sorted(uniques, key=_sort_key)
    except TypeError:  # mixed types that do not compare: sort by text
        return sorted(uniques, key=str)


def _weights_by_class(option: Any, classes: list[Label], codes: np.ndarray) -> list[float] | None:
    """Per-class loss weights from ``class_weights`` ('none', 'balanced' or {class: w})."""
    if option == "none":
        return None
    if option == "balanced":  # n / (K * n_class), as scikit-learn's; 1 for an absent class
        counts = np.bincount(codes, minlength=len(classes))
        return [len(codes) / (len(classes) * n) if n else 1.0 for n in counts.tolist()]
    names = {str(c) for c in classes}
    unknown = sorted(set(option) - names)
    if unknown:
        raise ConfigError(
            f"class_weights names unknown class(es) {unknown}",
            where="task.options.class_weights",
            fix=f"use the classes of the labels: {sorted(names)}",
        )
    return [float(option.get(str(c), 1.0)) for c in classes]


def _json_classes(state: dict[str, Any]) -> list[Label]:
    try:
        return [_plain(c) for c in state["classes"]]
    except (KeyError, TypeError):
        raise CheckpointError(
            "the task state has no list of classes",
            where="task state",
            fix="retrain the model; the run directory is incomplete",
        ) from None


def _as_matrix(scores: np.ndarray, n: int) -> np.ndarray:
    """Scores as float64 ``[n, k]``; NaN or infinite scores (a diverged model) are refused."""
    matrix = np.asarray(scores, dtype=np.float64).reshape(n, -1)
    bad = int((~np.isfinite(matrix)).any(axis=1).sum())
    if bad:
        raise DataError(
            f"{bad} of {n} rows have NaN or infinite scores",
            where="model outputs",
            fix="training diverged: lower train.lr, or look for extreme input values",
        )
    return matrix


# -- tasks ------------------------------------------------------------------------------


class _ClassificationTask(Task):
    """Shared label handling of the binary and multiclass tasks."""

    classes: list[Label] | None = None
    weights: list[float] | None = None

    @property
    def num_outputs(self) -> int:
        """Width of the head: one logit (binary) or one per class."""
        return len(self._fitted())

    def _fitted(self) -> list[Label]:
        if self.classes is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() or load_state() first")
        return self.classes

    def score_columns(self) -> list[str]:
        """One ``p_<class>`` column per class."""
        return [f"p_{c}" for c in self._fitted()]

    def state(self) -> dict[str, Any]:
        """Classes (in head order) and the per-class loss weights."""
        return {"classes": list(self._fitted()), "weights": self.weights}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.classes = _json_classes(state)
        weights = state.get("weights")
        self.weights = [float(w) for w in weights] if weights is not None else None


class BinaryTask(_ClassificationTask):
    """Two classes: one logit, BCE-with-logits loss, scores ``P(positive)``."""

    default_metric = "roc_auc"

    def fit(self, labels: pd.Series) -> None:
        """Find the two classes (negative first) and the positive class's loss weight."""
        found = _classes(labels)
        positive = self._positive(found)
        if positive not in found:
            found = [*found, positive]
        if len(found) != 2:
            raise DataError(
                f"a binary task needs exactly two classes, found {len(found)}: {found[:10]}",
                where=_where(labels),
                fix="use task type 'multiclass', or map the labels to two values",
            )
        self.classes = [next(c for c in found if c != positive), positive]
        self.weights = _weights_by_class(
            self.options.class_weights, self.classes, _codes(labels, self.classes)
        )

    def _positive(self, found: list[Label]) -> Label:
        option = self.options.positive
        if option is None:
            return found[-1]
        hits = (
            [c for c in found if c == option and type(c) is type(option)]
            or [c for c in found if c == option]  # 1 == True
            or [c for c in found if str(c) == str(option)]  # "1" names 1
        )
        if hits:
            return hits[0]
        if len(found) == 1:  # the labels lack the positive class: it is the second one
            return _plain(option)
        raise ConfigError(
            f"positive class {option!r} is not among the labels {found}",
            where="task.options.positive",
            fix="name one of the label values",
        )

    @property
    def num_outputs(self) -> int:
        """One logit."""
        self._fitted()
        return 1

    @property
    def positive(self) -> Label:
        """The positive class (scores are its probability)."""
        return self._fitted()[1]

    def score_columns(self) -> list[str]:
        """``p_<positive>``."""
        return [f"p_{self.positive}"]

    def encode(self, labels: pd.Series) -> Tensor:
        """1.0 for the positive class, 0.0 for the negative, as float32 ``[N]``."""
        return torch.as_tensor(_codes(labels, self._fitted()), dtype=torch.float32)

    def pos_weight(self) -> float:
        """The positive class's loss weight relative to the negative class."""
        if self.weights is None:
            return 1.0
        return self.weights[1] / self.weights[0]

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """BCE with logits, with ``pos_weight`` and label smoothing toward 0.5."""
        eps = self.options.label_smoothing
        target = target.float() * (1.0 - eps) + 0.5 * eps
        logit = logits.float().reshape(-1)
        weight = torch.tensor(self.pos_weight(), device=logit.device)
        return F.binary_cross_entropy_with_logits(logit, target, pos_weight=weight)

    def scores(self, logits: Tensor) -> np.ndarray:
        """``P(positive)`` as ``[N, 1]``."""
        return torch.sigmoid(logits.detach().float().reshape(-1, 1)).cpu().double().numpy()

    def metrics(self, labels: pd.Series, scores: np.ndarray) -> dict[str, float]:
        """ROC-AUC, KS, PR-AUC, Brier, log-loss, accuracy and macro-F1 at 0.5."""
        y = _codes(labels, self._fitted())
        if not len(y):
            return {}
        p = _as_matrix(scores, len(y))[:, 0]
        hard = (p >= 0.5).astype(np.int64)
        out = {
            "brier": skm.brier_score_loss(y, p, pos_label=1),
            "log_loss": skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]),
            "accuracy": skm.accuracy_score(y, hard),
            "macro_f1": skm.f1_score(y, hard, average="macro", zero_division=0),
        }
        if len(np.unique(y)) == 2:  # ranking metrics need both classes
            out["roc_auc"] = skm.roc_auc_score(y, p)
            out["ks"] = ks_statistic(y, p)
            out["pr_auc"] = skm.average_precision_score(y, p)
        return {name: float(value) for name, value in out.items()}


class MulticlassTask(_ClassificationTask):
    """K classes: one logit each, weighted softmax cross-entropy, scores ``P(class)``."""

    default_metric = "macro_f1"

    def fit(self, labels: pd.Series) -> None:
        """Find the classes (sorted) and their loss weights."""
        classes = _classes(labels)
        if len(classes) < 2:
            raise DataError(
                f"a classification task needs at least two classes, found {classes}",
                where=_where(labels),
                fix="check the target column and the training split",
            )
        self.classes = classes
        self.weights = _weights_by_class(
            self.options.class_weights, classes, _codes(labels, classes)
        )

    def encode(self, labels: pd.Series) -> Tensor:
        """Class indices as int64 ``[N]``."""
        return torch.as_tensor(_codes(labels, self._fitted()), dtype=torch.long)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy with class weights and label smoothing."""
        logits = logits.float()
        weight = None
        if self.weights is not None:
            weight = torch.tensor(self.weights, dtype=torch.float32, device=logits.device)
        return F.cross_entropy(
            logits, target.long(), weight=weight, label_smoothing=self.options.label_smoothing
        )

    def scores(self, logits: Tensor) -> np.ndarray:
        """Softmax probabilities ``[N, K]``."""
        return torch.softmax(logits.detach().float(), dim=-1).cpu().double().numpy()

    def metrics(self, labels: pd.Series, scores: np.ndarray) -> dict[str, float]:
        """Accuracy, macro-F1, log-loss and one-vs-rest ROC-AUC (when every class occurs)."""
        classes = self._fitted()
        y = _codes(labels, classes)
        if not len(y):
            return {}
        p = _as_matrix(scores, len(y))
        p = p / p.sum(axis=1, keepdims=True)
        ks = list(range(len(classes)))
        hard = p.argmax(axis=1)
        floored = np.clip(p, 1e-7, 1.0)  # then summing to one again, as log_loss checks
        out = {
            "accuracy": skm.accuracy_score(y, hard),
            "macro_f1": skm.f1_score(y, hard, average="macro", zero_division=0),
            "log_loss": skm.log_loss(y, floored / floored.sum(axis=1, keepdims=True), labels=ks),
        }
        if len(np.unique(y)) == len(classes):  # one-vs-rest AUC needs every class
            two = len(classes) == 2
            out["roc_auc"] = (
                skm.roc_auc_score(y, p[:, 1])
                if two
                else skm.roc_auc_score(y, p, multi_class="ovr", labels=ks)
            )
        return {name: float(value) for name, value in out.items()}


class RegressionTask(Task):
    """A real-valued target: standardized for the loss, de-standardized in the scores."""

    default_metric = "rmse"

    def __init__(self, options: Any, device: Any) -> None:
        super().__init__(options, device)
        self.mean = 0.0
        self.std = 1.0

    @property
    def num_outputs(self) -> int:
        """One output."""
        return 1

    def _values(self, labels: pd.Series) -> np.ndarray:
        _check_labelled(labels)
        numbers = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            example = labels[bad].iloc[0]
            raise DataError(
                f"{int(bad.sum())} label(s) are not finite numbers (e.g. {example!r})",
                where=_where(labels),
                fix="a regression target must be numeric; use a classification task otherwise",
            )
        return numbers

    def fit(self, labels: pd.Series) -> None:
        """Learn the training mean and standard deviation (when ``standardize``)."""
        values = self._values(labels)
        if not self.options.standardize or not len(values):
            self.mean, self.std = 0.0, 1.0
            return
        self.mean = float(values.mean())
        std = float(values.std())
        self.std = std if std > 0 else 1.0

    def encode(self, labels: pd.Series) -> Tensor:
        """Standardized targets as float32 ``[N]``."""
        return torch.as_tensor((self._values(labels) - self.mean) / self.std, dtype=torch.float32)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """MSE or Huber (delta 1, in standard deviations) on the standardized scale."""
        pred = logits.float().reshape(-1)
        if self.options.loss == "huber":
            return F.huber_loss(pred, target.float(), delta=1.0)
        return F.mse_loss(pred, target.float())

    def scores(self, logits: Tensor) -> np.ndarray:
        """Predictions on the target's own scale, ``[N, 1]``."""
        pred = logits.detach().float().reshape(-1, 1).cpu().double().numpy()
        return pred * self.std + self.mean

    def score_columns(self) -> list[str]:
        """``prediction``."""
        return ["prediction"]

    def metrics(self, labels: pd.Series, scores: np.ndarray) -> dict[str, float]:
        """RMSE, MAE and R² on the target's own scale."""
        y = self._values(labels)
        if not len(y):
            return {}
        pred = _as_matrix(scores, len(y))[:, 0]
        out = {
            "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
            "mae": float(skm.mean_absolute_error(y, pred)),
        }
        if len(y) >= 2 and np.ptp(y) > 0:  # R² is undefined for a constant target
            out["r2"] = float(skm.r2_score(y, pred))
        return out

    def state(self) -> dict[str, Any]:
        """The target's training mean and standard deviation."""
        return {"mean": self.mean, "std": self.std}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""
        try:
            self.mean, self.std = float(state["mean"]), float(state["std"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(
                "the regression task state lacks its mean and std",
                where="task state",
                fix="retrain the model; the run directory is incomplete",
            ) from None
