"""The fitted column schema: kinds, overrides, vocabularies, scaling, bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfuse.errors import ConfigError, DataError
from transfuse_tabular.columns import MISSING, UNKNOWN, TableSchema
from transfuse_tabular.numeric import piecewise_linear, quantile_normal

from .conftest import make_frame


def test_kinds_are_inferred_from_dtypes_numbers_first():
    schema = TableSchema.fit(make_frame())
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "annual_income": "numeric",
        "age": "numeric",
        "debt.ratio": "numeric",
        "purpose": "categorical",
        "owns_home": "boolean",
    }
    assert [c.kind for c in schema.columns][:3] == ["numeric"] * 3


def test_overrides_change_a_columns_kind():
    frame = make_frame()
    frame["grade"] = np.arange(len(frame)) % 3
    frame["verified"] = np.where(np.arange(len(frame)) % 2, "yes", "no")
    schema = TableSchema.fit(frame, categorical=["grade"], boolean=["verified"])
    assert schema.column("grade").kind == "categorical"
    assert schema.column("grade").vocabulary == ["0", "1", "2"]
    assert schema.column("verified").kind == "boolean"
    codes = schema.codes(frame.iloc[:2])[:, [c.name for c in schema.categorical].index("verified")]
    assert codes.tolist() == [2, 3]  # no -> false row, yes -> true row


def test_an_override_naming_an_absent_column_is_a_config_error():
    with pytest.raises(ConfigError, match="'nope'"):
        TableSchema.fit(make_frame(), numeric=["nope"])


def test_a_column_listed_twice_is_a_config_error():
    with pytest.raises(ConfigError, match="both"):
        TableSchema.fit(make_frame(), numeric=["age"], categorical=["age"])


def test_vocabulary_is_by_frequency_then_value_and_drops_rare_categories():
    frame = pd.DataFrame({"c": ["b"] * 3 + ["a"] * 3 + ["z"] * 5 + ["rare"]})
    column = TableSchema.fit(frame, min_frequency=2).column("c")
    assert column.vocabulary == ["z", "a", "b"]
    assert column.counts == [5, 3, 3]


def test_unseen_rare_and_missing_categories_get_their_own_codes():
    frame = pd.DataFrame({"c": ["a", "a", "b", "b", "rare"]})
    schema = TableSchema.fit(frame, min_frequency=2)
    codes = schema.codes(pd.DataFrame({"c": ["a", "b", "rare", "never seen", None]}))[:, 0]
    assert codes.tolist() == [2, 3, UNKNOWN, UNKNOWN, MISSING]


def test_integer_valued_floats_and_ints_share_category_keys():
    schema = TableSchema.fit(pd.DataFrame({"c": [1, 2, 2, 1]}), categorical=["c"])
    codes = schema.codes(pd.DataFrame({"c": [1.0, 2.0, np.nan]}))[:, 0]
    assert codes.tolist() == [2, 3, MISSING]


def test_statistics_come_from_the_fitted_rows_only():
    schema = TableSchema.fit(pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan]}))
    column = schema.column("x")
    assert column.mean == pytest.approx(2.0)
    assert column.missing_fraction == pytest.approx(0.25)
    later = schema.numbers(pd.DataFrame({"x": [100.0, None, np.inf]}))[:, 0]
    assert later[0] == 100.0 and np.isnan(later[1:]).all()


def test_a_text_value_in_a_numeric_column_names_the_column_and_row():
    schema = TableSchema.fit(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(DataError, match="'x'.*row 1"):
        schema.numbers(pd.DataFrame({"x": ["3", "three"]}))


def test_a_missing_input_column_is_a_data_error():
    schema = TableSchema.fit(make_frame())
    with pytest.raises(DataError, match="'purpose' is missing"):
        schema.codes(make_frame().drop(columns="purpose"))


def test_column_keys_are_safe_for_module_dicts_and_unique():
    frame = pd.DataFrame({"a.b": [1.0], "a__b": [2.0], "train": [3.0], "": [4.0]})
    keys = [c.key for c in TableSchema.fit(frame).columns]
    assert keys == ["a__b", "a__b_2", "col_train", "_"]


def test_state_round_trips_through_json():
    import json

    schema = TableSchema.fit(make_frame(), min_frequency=1)
    restored = TableSchema.from_state(json.loads(json.dumps(schema.to_state())))
    frame = make_frame(seed=1)
    np.testing.assert_array_equal(restored.codes(frame), schema.codes(frame))
    np.testing.assert_array_equal(restored.numbers(frame), schema.numbers(frame))


def test_quantile_scaling_matches_scikit_learn():
    from sklearn.preprocessing import QuantileTransformer

    x = np.random.default_rng(0).lognormal(size=300)
    x[:60] = 1.0  # a heavy tie
    fitted = QuantileTransformer(n_quantiles=300, output_distribution="normal").fit(x[:, None])
    new = np.array([0.01, 1.0, 2.5, 50.0])
    expected = fitted.transform(new[:, None])[:, 0]
    np.testing.assert_allclose(
        quantile_normal(new, list(fitted.quantiles_[:, 0])), expected, atol=1e-6
    )


def test_piecewise_linear_encoding_fills_bins_left_of_the_value():
    out = piecewise_linear(np.array([0.5, 1.5, 2.0, -1.0, 4.0]), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(out, [[0.5, 0, 0], [1, 0.5, 0], [1, 1, 0], [-1, 0, 0], [1, 1, 2]])


def test_ple_bins_are_training_quantiles():
    x = np.arange(101, dtype=float)
    column = TableSchema.fit(pd.DataFrame({"x": x}), bins=4).column("x")
    assert column.edges == [0.0, 25.0, 50.0, 75.0, 100.0]
