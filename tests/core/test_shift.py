"""transfuse.shift: PSI per column, a cross-validated domain classifier, the moved columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfuse.errors import DataError
from transfuse.shift import PSI_MAJOR, domain_auc, domain_shift, psi


def frame(n: int, seed: int, shift: float = 0.0, rent: float = 0.4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50 + 20 * shift, 10, n),
            "age": rng.normal(40, 8, n),
            "home": rng.choice(["rent", "own"], n, p=[rent, 1 - rent]),
        }
    )


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_moved_one():
    a, b, moved = frame(3000, 0), frame(3000, 1), frame(3000, 2, shift=1.0)
    assert psi(a["income"], b["income"]) < 0.02
    assert psi(a["income"], moved["income"]) > PSI_MAJOR


def test_psi_of_categories_and_missing_values():
    a, b = frame(2000, 0, rent=0.2), frame(2000, 1, rent=0.8)
    assert psi(a["home"], b["home"]) > PSI_MAJOR
    with_missing = b["age"].where(np.arange(len(b)) % 2 == 0)  # half missing
    assert psi(a["age"], with_missing) > PSI_MAJOR


def test_the_domain_classifier_tells_shifted_domains_apart_and_not_equal_ones():
    a, b, moved = frame(600, 0), frame(600, 1), frame(600, 2, shift=1.5)
    same = domain_auc(a, b, ["income", "age", "home"])
    apart = domain_auc(a, moved, ["income", "age", "home"])
    assert same is not None and apart is not None
    assert same[0] < 0.6 < 0.9 < apart[0]


def test_the_report_ranks_the_moved_column_first_and_lists_unshared_ones():
    source = frame(500, 0).assign(only_source=1.0)
    target = frame(500, 1, shift=1.0).assign(only_target="x")
    report = domain_shift(source, target)
    assert report.columns[0].column == "income"
    assert report.only_source == ["only_source"] and report.only_target == ["only_target"]
    text = report.to_markdown()
    assert "| income |" in text and f"{report.domain_auc:.3f}" in text
    assert report.to_dict()["verdict"] == report.verdict()


def test_frames_sharing_no_column_are_a_clear_error():
    with pytest.raises(DataError, match="share none of the columns"):
        domain_shift(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}))
