"""Event histories: parsing, field inference, scaling, vocabularies, truncation, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transfuse import ConfigError, DataError
from transfuse_sequence import SequenceOptions
from transfuse_sequence.events import PAD, UNKNOWN, EventSchema, parse_history

EVENTS = [{"amount": 12.5, "mcc": "5411"}, {"amount": 250.0, "mcc": "5812"}]


@pytest.mark.parametrize(
    "value", [EVENTS, tuple(EVENTS), json.dumps(EVENTS), np.array(EVENTS, dtype=object)]
)
def test_lists_json_text_and_arrays_parse_to_the_same_events(value):
    assert parse_history(value) == EVENTS


@pytest.mark.parametrize("value", [None, float("nan"), [], "", "  ", "[]"])
def test_missing_and_empty_histories_parse_to_none(value):
    assert parse_history(value) is None


def test_malformed_json_is_a_data_error_naming_the_row():
    with pytest.raises(DataError, match=r"row 3: event history is not valid JSON"):
        parse_history('[{"amount": 1}', where="row 3")


@pytest.mark.parametrize(
    ("value", "what"),
    [([1, 2], "a list holding a int"), ({"amount": 1}, "a dict"), (3.5, "a float")],
)
def test_values_that_are_not_lists_of_records_are_data_errors(value, what):
    with pytest.raises(DataError, match=f"not {what}"):
        parse_history(value)


def test_fit_infers_numbers_as_numeric_and_anything_else_as_categorical():
    histories = [[{"amount": 1, "mcc": "5411", "online": True, "note": None}], [{"amount": 2.5}]]
    schema = EventSchema.fit(histories, SequenceOptions())
    assert list(schema.numeric) == ["amount"]
    assert set(schema.vocab) == {"mcc", "online"}  # a field that is always null is dropped


def test_declared_fields_override_inference_and_drop_the_rest():
    options = SequenceOptions(fields={"mcc": "numeric", "amount": "categorical"})
    schema = EventSchema.fit([[{"amount": 1, "mcc": "5411", "days_ago": 3}]], options)
    assert list(schema.numeric) == ["mcc"] and list(schema.vocab) == ["amount"]
    assert schema.vocab["amount"] == ["1"]


@pytest.mark.parametrize("options", [{"fields": {"amout": "numeric"}}, {"sort_by": "day"}])
def test_naming_a_field_the_events_lack_is_a_config_error(options):
    with pytest.raises(ConfigError, match=r"\['(amout|day)'\] do not occur.*'amount'"):
        EventSchema.fit([[{"amount": 1.0}]], SequenceOptions(**options))


def test_numeric_fields_are_standardised_on_training_events_with_missing_flags():
    train = [[{"amount": a} for a in (1.0, 10.0, 100.0)], [{"amount": 1000.0}]]
    options = SequenceOptions(max_events=4)
    schema = EventSchema.fit(train, options)
    numeric, _, mask = schema.encode(train, options, ["r0", "r1"])
    values = numeric[..., 1][mask]
    assert abs(values.mean()) < 1e-6 and abs(values.std() - 1) < 1e-5  # on log1p(amount)
    numeric, _, mask = schema.encode([[{"amount": None}, {}]], options, ["r"])
    assert numeric[0, :2].tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]  # event, value, missing
    assert numeric[0, 2:].sum() == 0 and mask[0].tolist() == [True, True, False, False]


def test_log_numeric_off_standardises_raw_values():
    train = [[{"amount": 0.0}, {"amount": 10.0}]]
    schema = EventSchema.fit(train, SequenceOptions(log_numeric=False))
    assert schema.numeric["amount"] == (5.0, 5.0)


def test_vocabulary_keeps_frequent_values_and_buckets_the_rest_as_unknown():
    train = [[{"mcc": m} for m in ["a", "a", "a", "b", "b", "c"]]]
    options = SequenceOptions(max_vocab=2, max_events=4)
    schema = EventSchema.fit(train, options)
    assert schema.vocab["mcc"] == ["a", "b"]
    _, categorical, _ = schema.encode([[{"mcc": "b"}, {"mcc": "c"}, {"mcc": None}]], options, ["r"])
    assert categorical[0, :, 0].tolist() == [3, UNKNOWN, PAD, PAD]
    rare = EventSchema.fit(train, SequenceOptions(min_count=2))
    assert rare.vocab["mcc"] == ["a", "b"]


def test_max_events_keeps_the_last_or_the_first_events():
    history = [[{"amount": float(i)} for i in range(10)]]

    def kept(**options):
        opts = SequenceOptions(max_events=3, log_numeric=False, **options)
        schema = EventSchema.fit(history, opts)
        numeric, _, _ = schema.encode(history, opts, ["r"])
        mean, std = schema.numeric["amount"]
        return (numeric[0, :, 1] * std + mean).round(4).tolist()

    assert kept() == [7.0, 8.0, 9.0]
    assert kept(keep="first") == [0.0, 1.0, 2.0]


def test_sort_by_orders_events_before_keeping_them():
    history = [[{"days_ago": d, "amount": float(d)} for d in (5, 40, 1, 12)]]
    opts = SequenceOptions(
        max_events=2,
        sort_by="days_ago",
        descending=True,
        fields={"amount": "numeric"},
        log_numeric=False,
    )
    schema = EventSchema.fit(history, opts)
    numeric, _, _ = schema.encode(history, opts, ["r"])
    mean, std = schema.numeric["amount"]
    assert (numeric[0, :, 1] * std + mean).round(4).tolist() == [5.0, 1.0]  # the most recent two


def test_a_word_in_a_numeric_field_is_a_data_error_naming_field_and_row():
    options = SequenceOptions()
    schema = EventSchema.fit([[{"amount": 3.0}]], options)
    with pytest.raises(DataError) as info:
        schema.encode([None, [{"amount": "lots"}]], options, ["row 'a'", "row 'b'"])
    assert "row 'b'" in str(info.value) and "'amount'" in str(info.value)
    assert "categorical" in str(info.value)  # says what to do


def test_schema_round_trips_through_json():
    schema = EventSchema.fit([[{"amount": 3.0, "mcc": "x"}, {"amount": 5.0}]], SequenceOptions())
    state = json.loads(json.dumps(schema.to_state()))
    assert EventSchema.from_state(state) == schema
