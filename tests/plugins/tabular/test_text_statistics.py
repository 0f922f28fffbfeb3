"""A free-text column in a table read as statistics (``options.text_statistics``): what
each counts, how the schema fits and reads them, and every tabular encoder learning,
saving and explaining from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfuse.errors import ConfigError, DataError
from transfuse.testing import check_explanation
from transfuse_tabular.columns import TEXT_STATISTICS, TableSchema, _text_statistics

from .conftest import build, train_and_score


def _shouting(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """The label is whether the note shouts ('!' and capitals); its words carry nothing."""
    rng = np.random.default_rng(seed)
    words = rng.choice(["paid", "late", "called", "branch", "limit", "card"], (n, 4))
    label = pd.Series(rng.integers(0, 2, n))
    notes = [" ".join(w) for w in words]
    notes = [t.upper() + "!!" if y else t for t, y in zip(notes, label)]
    frame = pd.DataFrame({"note": notes, "income": rng.normal(size=n)})
    frame.loc[3, "note"] = None
    return frame, label


def test_each_statistic_counts_what_its_name_says() -> None:
    texts = pd.Series(['"Great" deal!! see https://x.io #A @b 42?', "ÉCOLE Été", "", None])
    out = _text_statistics(texts)
    assert list(out.columns) == list(TEXT_STATISTICS)
    first = out.iloc[0].to_dict()
    assert first == {
        "characters": 41.0, "words": 7.0, "capitals": 2.0, "digits": 2.0,
        "punctuation": 11.0, "exclamations": 2.0, "questions": 1.0, "quotes": 2.0,
        "mentions": 1.0, "hashtags": 1.0, "link": 1.0, "leading_quote": 1.0,
    }  # fmt: skip
    assert out.loc[1, "capitals"] == 6.0  # accented capitals count, lower-case ones not
    assert out.loc[2].tolist() == [0.0] * len(TEXT_STATISTICS)  # empty: zeros
    assert out.loc[3].isna().all()  # missing: missing


def test_a_text_column_becomes_numeric_columns_named_after_it() -> None:
    frame, _ = _shouting(50, seed=0)
    schema = TableSchema.fit(frame, text_statistics=["note"])
    names = [c.name for c in schema.columns]
    assert names == [f"note:{s}" for s in TEXT_STATISTICS] + ["income"]
    assert all(c.kind == "numeric" for c in schema.columns)
    assert schema.by_name["note:words"].source == "note"
    assert schema.by_name["note:words"].statistic == "words"
    numbers = schema.numbers(frame)
    assert np.array_equal(numbers[:, 1], _text_statistics(frame["note"])["words"], equal_nan=True)
    restored = TableSchema.from_state(schema.to_state())
    assert np.array_equal(restored.numbers(frame), numbers, equal_nan=True)


def test_a_frame_with_the_statistics_themselves_is_read_as_it_is() -> None:
    # Reference rows (explanations) carry each statistic's value, not a text.
    frame, _ = _shouting(50, seed=0)
    schema = TableSchema.fit(frame, text_statistics=["note"])
    given = pd.DataFrame({c.name: [float(i)] for i, c in enumerate(schema.columns)})
    assert schema.numbers(given)[0].tolist() == [float(i) for i in range(len(schema.columns))]


def test_bad_text_statistics_options_are_clear_errors() -> None:
    frame, _ = _shouting(20, seed=0)
    with pytest.raises(ConfigError, match="'text_statistics' names column 'memo'"):
        TableSchema.fit(frame, text_statistics=["memo"])
    with pytest.raises(ConfigError, match="listed as both categorical and text_statistics"):
        TableSchema.fit(frame, categorical=["note"], text_statistics=["note"])
    clash = frame.assign(**{"note:words": 1.0})
    with pytest.raises(DataError, match="a text statistic's name is also a column's name"):
        TableSchema.fit(clash, text_statistics=["note"])
    schema = TableSchema.fit(frame, text_statistics=["note"])
    with pytest.raises(DataError, match="column 'note' is missing"):
        schema.numbers(frame.drop(columns="note"))


def test_gbdt_learns_from_the_statistics_saves_and_explains_them(tabular, tmp_path) -> None:
    frame, label = _shouting(400, seed=1)
    options = {"dim": 8, "trees": 20, "leaves": 4, "min_rows_per_leaf": 5, "threads": 1}
    encoder = build(tabular, "tabular.gbdt", text_statistics=["note"], **options)
    encoder.fit(frame.iloc[:300], target=label.iloc[:300])
    raw = encoder.raw_score(frame.iloc[300:])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(label.iloc[300:], raw) > 0.95
    encoder.save_fitted(tmp_path)
    again = build(tabular, "tabular.gbdt", text_statistics=["note"], **options)
    again.load_fitted(tmp_path)
    assert np.allclose(again.raw_score(frame.iloc[300:]), raw)
    parts = check_explanation(encoder, frame.iloc[300:320])
    first = {labels[int(np.argmax(np.abs(s)))] for labels, s in zip(parts.labels, parts.scores)}
    assert first <= {"note:capitals", "note:exclamations", "note:punctuation", "note:characters"}


@pytest.mark.parametrize("name", ["tabular.mlp", "tabular.ft-transformer"])
def test_neural_table_encoders_learn_from_the_statistics(tabular, one_thread, name: str) -> None:
    frame, label = _shouting(200, seed=2)
    encoder = build(tabular, name, dim=8, embedding_dim=8, text_statistics=["note"])
    encoder.fit(frame.iloc[:150])
    assert train_and_score(encoder, frame, label) > 0.9
    parts = check_explanation(encoder, frame.iloc[:10])
    assert parts.labels[0][:2] == ["note:characters", "note:words"]
