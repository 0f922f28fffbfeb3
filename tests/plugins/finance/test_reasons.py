"""Adverse-action reasons in credit wording, from a core explanation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfuse.explain import Explanations, InputParts
from transfuse_finance.reasons import adverse_action_reasons, credit_reason, reasons_frame

CODES = [
    {"code": "R01", "factor": "applicant.debt_to_income"},
    {"code": "R02", "factor": "applicant.annual_income"},
    {"code": "R03", "factor": "job"},
]


def explained() -> Explanations:
    """Two rows: a table input (two columns) and a job-title text input."""
    table = InputParts(
        labels=[["debt_to_income", "annual_income"]] * 2,
        scores=[np.array([0.9, -0.2]), np.array([-0.5, 0.1])],
        raw=[np.array([0.9, -0.2]), np.array([-0.5, 0.1])],
        values=[["38.2", "52,000"], ["9.1", "120,000"]],
        notes=[["higher than 91% of training rows", "lower than 60% of training rows"],
               ["lower than 80% of training rows", "higher than 95% of training rows"]],
        method="integrated gradients", baseline="reference row", complete=False,
        fixed=["debt_to_income", "annual_income"],
    )  # fmt: skip
    job = InputParts(
        labels=[["self", "employed", "since", "2019"], ["nurse"]],
        scores=[np.array([0.4, 0.6, -0.1, 0.0]), np.array([-0.3])],
        raw=[np.array([0.4, 0.6, -0.1, 0.0]), np.array([-0.3])],
        values=[[""] * 4, [""]],
        notes=[[""] * 4, [""]],
        method="word occlusion", baseline="the text without the word", complete=False,
        fixed=None,
    )  # fmt: skip
    return Explanations(
        index=pd.Index(["a", "b"]),
        output="logit of bad = 1",
        logit=np.array([1.5, -1.0]),
        baseline=np.array([-0.2, -0.2]),
        inputs={"applicant": np.array([0.7, -0.4]), "job": np.array([0.9, -0.3])},
        parts={"applicant": table, "job": job},
    )


def test_a_column_reads_like_a_letter() -> None:
    factor = {"fixed": True, "part": "debt_to_income", "value": "38.2",
              "note": "higher than 91% of training rows", "input": "applicant"}  # fmt: skip
    assert credit_reason(factor) == "debt-to-income 38.2, higher than 91% of training applicants"


def test_the_words_of_a_text_make_one_reason_in_the_text_order() -> None:
    reasons = adverse_action_reasons(explained(), 0, codes=CODES)
    assert [r["reason"] for r in reasons] == [
        "job: 'self employed'",
        "debt-to-income 38.2, higher than 91% of training applicants",
    ]
    assert [r["code"] for r in reasons] == ["R03", "R01"]
    assert reasons[0]["attribution"] == 1.0


def test_only_factors_that_raised_the_score_are_reasons() -> None:
    reasons = adverse_action_reasons(explained(), 1, codes=CODES)
    assert [r["reason"] for r in reasons] == [
        "annual income 120,000, higher than 95% of training applicants"
    ]


def test_labels_name_the_text_input_and_top_limits_the_reasons() -> None:
    labels = {"job": "job title", "debt_to_income": "debt-to-income"}
    reasons = adverse_action_reasons(explained(), 0, top=1, codes=CODES, labels=labels)
    assert [r["reason"] for r in reasons] == ["job title: 'self employed'"]


def test_the_frame_has_one_row_per_explained_row() -> None:
    frame = reasons_frame(explained(), top=2, codes=CODES)
    assert list(frame.index) == ["a", "b"]
    assert frame.loc["a", "code_2"] == "R01" and frame.loc["b", "reason_2"] == ""
