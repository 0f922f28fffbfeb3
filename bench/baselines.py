"""Transfer baselines on pandas frames: what a transfer method has to beat.

Every function takes frames and column names and returns test ROC-AUCs, so the finance
script (``bench/finance_baselines.py``) and the transfer benchmark can share them:

- ``source_only``: LightGBM fitted on the source, applied unchanged to the target test rows;
- ``target_only``: LightGBM (or logistic regression) on a label budget of target rows;
- ``pooled``: LightGBM on the source plus the budgeted target rows, with a domain flag.

Budgets are label-stratified samples of the target's training pool, one per seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from transfuse.demo import LGBM_PARAMS as DEMO_LGBM_PARAMS

__all__ = [
    "LGBM_PARAMS",
    "Result",
    "budget_sample",
    "lightgbm_scores",
    "logistic_scores",
    "pooled",
    "source_only",
    "split_target",
    "target_only",
]

#: One LightGBM set-up for every baseline, the demo's pooled arm's (small leaves and
#: row/column subsampling, so that it behaves on 50 rows as well as on 10,000), on one
#: thread: the benchmark runs beside other work, where one thread is faster.
LGBM_PARAMS: dict[str, Any] = {**DEMO_LGBM_PARAMS, "n_jobs": 1}
DOMAIN = "_domain"

Scorer = Callable[[pd.DataFrame, pd.Series, pd.DataFrame, Sequence[str], int], np.ndarray]


@dataclass
class Result:
    """One baseline at one budget: the test AUC per seed."""

    method: str
    budget: str
    aucs: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean AUC over seeds."""
        return float(np.mean(self.aucs))

    @property
    def std(self) -> float:
        """Standard deviation of the AUC over seeds (0 for one seed)."""
        return float(np.std(self.aucs))

    def as_json(self) -> dict[str, Any]:
        """The result as a JSON-able mapping."""
        return {"method": self.method, "budget": self.budget, "mean": self.mean,
                "std": self.std, "aucs": self.aucs}  # fmt: skip


def split_target(
    frame: pd.DataFrame, label: str, test_size: float = 0.3, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The target's training pool and its label-stratified test rows."""
    pool, test = train_test_split(
        frame, test_size=test_size, stratify=frame[label], random_state=seed
    )
    return pool, test


def budget_sample(frame: pd.DataFrame, label: str, budget: int | None, seed: int) -> pd.DataFrame:
    """``budget`` label-stratified rows of ``frame`` (all rows when None or too many)."""
    if budget is None or budget >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=budget, stratify=frame[label], random_state=seed)
    return sample


def _categories(frames: Iterable[pd.DataFrame], features: Sequence[str]) -> dict[str, list[Any]]:
    """For each text column, the sorted union of its values over ``frames``."""
    frames = list(frames)
    out: dict[str, list[Any]] = {}
    for column in features:
        if all(pd.api.types.is_numeric_dtype(f[column]) for f in frames):
            continue
        values: set[Any] = set()
        for f in frames:
            values.update(f[column].dropna().astype(str).unique())
        out[column] = sorted(values)
    return out


def _lgbm_view(
    frame: pd.DataFrame, features: Sequence[str], cats: dict[str, list[Any]]
) -> pd.DataFrame:
    view = frame[list(features)].copy()
    for column, values in cats.items():
        text = view[column].astype(object).where(view[column].notna(), None)
        view[column] = pd.Categorical(text.map(lambda v: None if v is None else str(v)),
                                      categories=values)  # fmt: skip
    return view


def lightgbm_scores(
    train: pd.DataFrame, y: pd.Series, test: pd.DataFrame, features: Sequence[str], seed: int
) -> np.ndarray:
    """P(label = 1) on ``test`` from LightGBM fitted on ``train``; text columns become
    categories with one shared vocabulary."""
    import lightgbm as lgb

    cats = _categories([train, test], features)
    model = lgb.LGBMClassifier(**LGBM_PARAMS, random_state=seed)
    model.fit(_lgbm_view(train, features, cats), y.to_numpy())
    return np.asarray(model.predict_proba(_lgbm_view(test, features, cats)))[:, 1]


def logistic_scores(
    train: pd.DataFrame, y: pd.Series, test: pd.DataFrame, features: Sequence[str], seed: int
) -> np.ndarray:
    """P(label = 1) from an L2 logistic regression: numbers signed-log1p'ed, imputed
    (with missing indicators) and standardised; text one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    cats = _categories([train, test], features)
    numbers = [c for c in features if c not in cats]
    signed_log = FunctionTransformer(lambda x: np.sign(x) * np.log1p(np.abs(x)))
    columns = ColumnTransformer([
        ("num", make_pipeline(signed_log, SimpleImputer(strategy="median", add_indicator=True),
                              StandardScaler()), numbers),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore")), list(cats)),
    ])  # fmt: skip
    model = make_pipeline(columns, LogisticRegression(C=1.0, max_iter=2000, random_state=seed))

    def text(frame: pd.DataFrame) -> pd.DataFrame:
        view = frame[list(features)].copy()
        for column in cats:
            view[column] = view[column].astype(object).where(view[column].notna(), np.nan)
        for column in numbers:
            view[column] = view[column].astype(np.float64)
        return view

    model.fit(text(train), y.to_numpy())
    return model.predict_proba(text(test))[:, 1]


def source_only(
    source: pd.DataFrame,
    source_label: str,
    test: pd.DataFrame,
    test_label: str,
    features: Sequence[str],
    seeds: Sequence[int] = (0,),
) -> Result:
    """LightGBM fitted on the whole source, scored on the target test rows unchanged."""
    result = Result("lightgbm source-only", "0")
    for seed in seeds:
        scores = lightgbm_scores(source, source[source_label], test, features, seed)
        result.aucs.append(float(roc_auc_score(test[test_label], scores)))
    return result


def target_only(
    pool: pd.DataFrame,
    test: pd.DataFrame,
    label: str,
    features: Sequence[str],
    budgets: Sequence[int | None],
    seeds: Sequence[int],
    *,
    scorer: Scorer = lightgbm_scores,
    method: str = "lightgbm target-only",
) -> list[Result]:
    """A model on ``budget`` target labels per seed (None: the whole pool)."""
    results = []
    for budget in budgets:
        result = Result(method, "all" if budget is None else str(budget))
        for seed in seeds:
            train = budget_sample(pool, label, budget, seed)
            scores = scorer(train, train[label], test, features, seed)
            result.aucs.append(float(roc_auc_score(test[label], scores)))
        results.append(result)
    return results


def pooled(
    source: pd.DataFrame,
    source_label: str,
    pool: pd.DataFrame,
    test: pd.DataFrame,
    label: str,
    features: Sequence[str],
    budgets: Sequence[int | None],
    seeds: Sequence[int],
) -> list[Result]:
    """LightGBM on all source rows plus ``budget`` target rows, a 0/1 domain flag added
    as a feature (1 = target, also on the test rows); columns one side lacks are missing."""
    source = source.assign(_y=source[source_label])
    source[DOMAIN] = 0
    test = test.copy()
    test[DOMAIN] = 1
    columns = [*features, DOMAIN]
    results = []
    for budget in budgets:
        result = Result("lightgbm pooled + domain flag", "all" if budget is None else str(budget))
        for seed in seeds:
            target = budget_sample(pool, label, budget, seed)
            target = target.assign(_y=target[label])
            target[DOMAIN] = 1
            train = pd.concat([source, target], ignore_index=True)
            for column in columns:
                if column not in train:
                    train[column] = np.nan
            scores = lightgbm_scores(
                train, train["_y"], test.reindex(columns=columns), columns, seed
            )
            result.aucs.append(float(roc_auc_score(test[label], scores)))
        results.append(result)
    return results
