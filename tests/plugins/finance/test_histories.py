"""The synthetic LendingClub histories: seeded, keyed like the loans, and following the
rules the docs state (spend with income, late payments and cash advances with the grade)."""

from __future__ import annotations

import pandas as pd
import pytest

import transfuse_finance
from transfuse.testing import check_data_source
from transfuse_finance.histories import (
    CATEGORIES,
    applicant_figures,
    bureau_table,
    transactions_table,
)
from transfuse_finance.lending import LendingClub
from transfuse_finance.options import FinanceSourceOptions, HistoryOptions


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return applicant_figures()


@pytest.fixture(scope="module")
def tx(people) -> pd.DataFrame:
    return transactions_table(people, HistoryOptions())


def test_the_same_seed_gives_the_same_tables_and_another_seed_others(people, tx):
    few = people.head(300)
    again = transactions_table(few, HistoryOptions())
    assert again.equals(transactions_table(few, HistoryOptions()))
    assert not again.equals(transactions_table(few, HistoryOptions(seed=1)))
    assert bureau_table(few, HistoryOptions()).equals(bureau_table(few, HistoryOptions()))


def test_transactions_are_keyed_by_the_loans_and_ordered_by_day(people, tx):
    assert list(tx.columns) == ["loan_id", "month", "day", "category", "amount", "late"]
    keys = set(LendingClub(FinanceSourceOptions()).load()["loan_id"])
    assert set(tx["loan_id"]) <= keys
    assert tx["month"].between(-12, -1).all() and tx["day"].between(1, 360).all()
    assert (tx.groupby("loan_id")["day"].diff().dropna() >= 0).all()
    assert set(tx["category"]) == {*CATEGORIES, "payment"}
    assert set(tx.loc[tx.category != "payment", "late"]) == {0}


def test_about_the_stated_share_of_applicants_have_no_card(people, tx):
    without = 1 - tx["loan_id"].nunique() / len(people)
    assert 0.04 < without < 0.08  # no_history 0.06
    payments = tx[tx.category == "payment"].groupby("loan_id").size()
    assert (payments == 12).all()  # one a month for every card holder


def test_spend_rises_with_income_and_lateness_with_the_grade(people, tx):
    purchases = tx[tx.category != "payment"].groupby("loan_id")["amount"].sum()
    income = people.set_index("loan_id")["annual_income"].reindex(purchases.index)
    low, high = purchases[income < income.quantile(0.25)], purchases[income > income.quantile(0.75)]
    assert high.median() > 1.5 * low.median()
    late = tx[tx.category == "payment"].groupby("loan_id")["late"].mean()
    grade = people.set_index("loan_id")["grade"].reindex(late.index)
    by_grade = late.groupby(grade).mean()
    assert by_grade.is_monotonic_increasing and by_grade[6] > 4 * by_grade[0]
    cash = (tx.category == "cash_advance").groupby(tx.loan_id).mean()
    cash_by_grade = cash.groupby(people.set_index("loan_id")["grade"].reindex(cash.index)).mean()
    assert cash_by_grade[6] > 2 * cash_by_grade[0]


def test_bureau_has_one_row_per_applicant_with_one_and_scores_fall_with_the_grade(people):
    bureau = bureau_table(people, HistoryOptions())
    assert not bureau["loan_id"].duplicated().any()
    assert 0.01 < 1 - len(bureau) / len(people) < 0.05  # no_record 0.03
    assert bureau["score"].between(300, 850).all()
    grade = people.set_index("loan_id")["grade"].reindex(bureau["loan_id"]).to_numpy()
    means = bureau.groupby(grade)["score"].mean()
    assert means.is_monotonic_decreasing


@pytest.mark.parametrize(
    "name", ["finance.lending-club-transactions", "finance.lending-club-bureau"]
)
def test_the_histories_are_registered_data_sources(transfuse_manager, register_plugin, name):
    register_plugin(transfuse_finance, name="transfuse-finance")
    entry = transfuse_manager.get("data_source", name)
    assert "SYNTHETIC" in entry.description
    frame = entry.load()(entry.validate_options({"seed": 3})).load()
    assert isinstance(frame, pd.DataFrame) and "loan_id" in frame.columns
    check_data_source(entry)
