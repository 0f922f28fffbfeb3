"""Adverse-action reasons in the words a credit letter uses.

The core explains a row (:func:`transfuse.explain.explain_rows`) and gives every factor a
stable code (:func:`transfuse.reasons.code_table`, the run's ``reason_codes.json``); this
module words the top factors that pushed an applicant towards the adverse class the way
a lender writes them: plain labels for the credit fields (``debt-to-income``), the
applicant's value and how it compares with the training applicants ("debt-to-income
38.2, higher than 91% of training applicants"), and the words of a text input quoted
together, in the order the applicant wrote them ("job title: 'self employed'").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.explain import Explanations

__all__ = ["LABELS", "adverse_action_reasons", "credit_reason", "reasons_frame"]

#: Plain-language labels of the credit fields of this plugin's sources.
LABELS: dict[str, str] = {
    "annual_income": "annual income",
    "annual_inc": "annual income",
    "debt_to_income": "debt-to-income",
    "dti": "debt-to-income",
    "emp_length": "years employed",
    "emp_title": "job title",
    "loan_amount": "loan amount",
    "funded_amnt": "loan amount",
    "term": "loan term",
    "homeownership": "home ownership",
    "home_ownership": "home ownership",
    "verified_income": "income verification",
    "verification_status": "income verification",
    "delinq_2y": "delinquencies in the last 2 years",
    "delinq_2yrs": "delinquencies in the last 2 years",
    "inquiries_last_12m": "credit inquiries in the last 12 months",
    "inq_last_6mths": "credit inquiries in the last 6 months",
    "current_accounts_delinq": "accounts now delinquent",
    "revol_util": "revolving credit utilization",
    "earliest_credit_line": "year of the earliest credit line",
    "total_credit_lines": "total credit lines",
    "open_credit_lines": "open credit lines",
    "bureau_score": "credit bureau score",
    "bureau_inquiries_6m": "bureau inquiries in the last 6 months",
    "purpose": "loan purpose",
    "state": "state",
    # German credit, HMDA
    "duration.in.month": "loan duration in months",
    "credit.amount": "credit amount",
    "age.in.years": "age",
    "dir": "debt payments to total income",
    "hir": "housing expenses to income",
    "lvr": "loan-to-value",
    "ccs": "consumer credit score",
    "mcs": "mortgage credit score",
}


def _label(name: str, labels: Mapping[str, str]) -> str:
    return labels.get(name, name.replace("_", " "))


def credit_reason(factor: Mapping[str, Any], labels: Mapping[str, str] = LABELS) -> str:
    """One factor of :meth:`Explanations.factors` in a credit letter's words."""
    if factor["fixed"]:
        label = _label(str(factor["part"]), labels)
        value, note = factor["value"], str(factor["note"])
        if not value:
            return label
        note = note.replace("training rows", "training applicants")
        return f"{label} {value}" + (f", {note}" if note else "")
    label = _label(str(factor["input"]), labels)
    words = factor.get("words") or [factor["part"]]
    return f"{label}: '{' '.join(str(w) for w in words)}'"


def adverse_action_reasons(
    explained: Explanations,
    row: int,
    *,
    top: int = 4,
    codes: list[dict[str, Any]] | None = None,
    labels: Mapping[str, str] = LABELS,
) -> list[dict[str, Any]]:
    """Row ``row``'s top ``top`` adverse reasons: ``{"code", "reason", "attribution"}``.

    Only factors that raised the score count. The words of one text input that raised it
    form one reason (their attributions summed), quoted in the order of the text."""
    merged: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for factor in explained.factors(row):
        if factor["attribution"] <= 0:
            break
        key = f"{factor['input']}.{factor['part']}" if factor["fixed"] else factor["input"]
        if key not in merged:
            merged[key] = {**factor, "words": [], "attribution": 0.0}
            order.append(key)
        merged[key]["attribution"] += factor["attribution"]
        if not factor["fixed"]:
            merged[key]["words"].append(factor["part"])
    order.sort(key=lambda k: -merged[k]["attribution"])  # stable: ties keep their order
    out = []
    for key in order[:top]:
        factor = merged[key]
        if factor["words"]:
            sequence = explained.parts[factor["input"]].labels[row]  # in the text's order
            factor["words"] = [w for w in sequence if w in factor["words"]]
        code = next((c["code"] for c in codes or [] if c["factor"] == key), "")
        out.append(
            {
                "code": code,
                "reason": credit_reason(factor, labels),
                "attribution": factor["attribution"],
            }
        )
    return out


def reasons_frame(
    explained: Explanations,
    *,
    top: int = 4,
    codes: list[dict[str, Any]] | None = None,
    labels: Mapping[str, str] = LABELS,
) -> pd.DataFrame:
    """One row per explained row: ``code_k`` and ``reason_k`` in credit wording."""
    import pandas as pd

    rows = []
    for i in range(len(explained)):
        found = adverse_action_reasons(explained, i, top=top, codes=codes, labels=labels)
        record: dict[str, Any] = {}
        for k in range(top):
            record[f"code_{k + 1}"] = found[k]["code"] if k < len(found) else ""
            record[f"reason_{k + 1}"] = found[k]["reason"] if k < len(found) else ""
        rows.append(record)
    return pd.DataFrame(rows, index=explained.index)
