"""transfuse_infer_modality: free-text columns are text; others are left to other plugins."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from transfuse_text.infer import looks_like_free_text

SENTENCES = [
    "Applicant has been self-employed for six years.",
    "Two late payments on the credit card in 2019.",
    "Wants to consolidate three store cards.",
    "Moved to a new job in March with a higher salary.",
]
ROLES = [
    "nurse",
    "teacher",
    "driver",
    "clerk",
    "analyst",
    "chef",
    "welder",
    "pilot",
    "baker",
    "plumber",
]
JOB_TITLES = pd.Series(
    [f"{level} {role}" for level in ("senior", "junior", "lead") for role in ROLES]
)


@pytest.mark.parametrize(
    "column",
    [pd.Series(SENTENCES), pd.Series([*SENTENCES, None], dtype="string"), JOB_TITLES],
    ids=["sentences", "string-dtype-with-missing", "job-titles"],
)
def test_free_text_is_text(text_manager: Any, column: pd.Series) -> None:
    assert text_manager.infer_modality(column) == "text"


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (pd.Series(["RENT", "OWN", "MORTGAGE"] * 30), "tabular"),
        (pd.Series(["Debt consolidation loan", "Home improvement loan"] * 30), "tabular"),
        (pd.Series([1.5, 2.0, 3.25]), "tabular"),
        (pd.Series([f"2021-03-{d:02d}" for d in range(1, 29)]), None),
        (pd.Series([f"LC{n:07d}" for n in range(100)]), None),
        (pd.Series([f"scans/statement_{i}.png" for i in range(30)]), None),
        (pd.Series([f"https://example.com/doc/{i}" for i in range(30)]), None),
    ],
    ids=["categories", "long-categories", "numbers", "dates", "ids", "file-paths", "urls"],
)
def test_other_columns_are_not_text(
    text_manager: Any, column: pd.Series, expected: str | None
) -> None:
    assert text_manager.infer_modality(column) == expected


def test_a_single_value_or_all_missing_is_not_enough() -> None:
    assert not looks_like_free_text(pd.Series([SENTENCES[0]]))
    assert not looks_like_free_text(pd.Series([None, None], dtype=object))
