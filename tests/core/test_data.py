"""The data path: reading, filtering, joining, splitting and batching a table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import ConfigError, DataError
from transfuse.config import parse_config
from transfuse.data import (
    FrameBatches,
    InputPlan,
    check_columns,
    load_frame,
    read_table,
    split_frame,
)
from transfuse.testing import cpu_device


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def cfg(**overrides):
    return parse_config(kit.config(**overrides))


def test_split_holds_out_disjoint_stratified_test_and_validation_rows():
    df = kit.frame(500)
    splits = split_frame(df, cfg(data={"test_size": 0.2, "validation_size": 0.25}))
    sets = [set(splits.train.index), set(splits.validation.index), set(splits.test.index)]
    assert sum(map(len, sets)) == 500
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(splits.test) == 100 and len(splits.validation) == 100
    rate = df["y"].mean()
    for part in (splits.train, splits.validation, splits.test):
        assert abs(part["y"].mean() - rate) < 0.02


def test_split_is_seeded():
    df = kit.frame(200)
    one = split_frame(df, cfg(train={"seed": 3}))
    two = split_frame(df, cfg(train={"seed": 3}))
    other = split_frame(df, cfg(train={"seed": 4}))
    assert list(one.test.index) == list(two.test.index)
    assert list(one.test.index) != list(other.test.index)


def test_label_budget_limits_training_rows_but_not_the_test_rows():
    df = kit.frame(400)
    splits = split_frame(df, cfg(data={"label_budget": 50}))
    assert len(splits.train) + len(splits.validation) == 50
    assert len(splits.test) == 80


def test_given_test_frame_replaces_the_held_out_split():
    df, test = kit.frame(200), kit.frame(30, seed=1)
    splits = split_frame(df, cfg(), test=test)
    assert splits.test is test or splits.test.equals(test)
    assert len(splits.train) + len(splits.validation) == 200


def test_rows_without_label_are_dropped_with_a_warning():
    df = kit.frame(200)
    df["y"] = df["y"].astype(float)
    df.loc[:9, "y"] = np.nan
    with pytest.warns(UserWarning, match="10 rows have no 'y' label"):
        splits = split_frame(df, cfg())
    assert splits.unlabeled is not None and len(splits.unlabeled) == 10
    assert splits.train["y"].notna().all() and splits.test["y"].notna().all()


def test_missing_target_column_names_column_key_and_existing_columns():
    with pytest.raises(DataError) as info:
        check_columns(kit.frame(10).drop(columns="y"), cfg())
    message = str(info.value)
    assert "'y'" in message and "task.target" in message and "a, b, noise" in message


def test_missing_input_column_names_the_input_key():
    with pytest.raises(DataError, match=r"inputs\.b\.column: column 'b' is not in the table"):
        check_columns(kit.frame(10).drop(columns="b"), cfg())


def test_too_few_rows_to_split_is_a_data_error():
    with pytest.raises(DataError, match="too few"):
        split_frame(kit.frame(2), cfg())


def test_load_frame_reads_a_csv_path_relative_to_the_base_dir_and_filters_rows(
    tmp_path, kit_manager
):
    df = kit.frame(50)
    df["kind"] = ["x", "y"] * 25
    df.to_csv(tmp_path / "rows.csv", index=False)
    data = cfg(data={"path": "rows.csv", "where": {"kind": ["x"]}}).data
    loaded = load_frame(data, kit_manager, base_dir=tmp_path)
    assert len(loaded) == 25 and set(loaded["kind"]) == {"x"}


def test_where_that_keeps_nothing_is_a_data_error(tmp_path, kit_manager):
    kit.frame(10).to_csv(tmp_path / "rows.csv", index=False)
    data = cfg(data={"path": str(tmp_path / "rows.csv"), "where": {"y": [7]}}).data
    with pytest.raises(DataError, match="no rows left"):
        load_frame(data, kit_manager)


def test_no_data_configured_is_a_config_error(kit_manager):
    with pytest.raises(ConfigError, match="no data"):
        load_frame(cfg().data, kit_manager)


def test_unknown_file_suffix_is_a_data_error(tmp_path, kit_manager):
    with pytest.raises(DataError, match="cannot tell the format"):
        read_table(None, str(tmp_path / "rows.xlsx"), {}, kit_manager)


def test_relative_file_paths_in_a_table_are_made_absolute(tmp_path, kit_manager, monkeypatch):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "1.png").write_bytes(b"x")
    pd.DataFrame({"pic": ["img/1.png", None], "note": ["hello", "img/none.png"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    monkeypatch.chdir(tmp_path.parent)
    frame = read_table(None, str(tmp_path / "t.csv"), {}, kit_manager)
    assert frame["pic"][0] == str(tmp_path / "img" / "1.png")
    assert frame["note"].tolist() == ["hello", "img/none.png"]


def test_joins_merge_one_to_one_columns_and_aggregate_one_to_many_events(tmp_path, kit_manager):
    pd.DataFrame({"id": [1, 2, 3], "y": [0, 1, 0]}).to_csv(tmp_path / "main.csv", index=False)
    pd.DataFrame({"cid": [1, 2], "score": [600, 700]}).to_csv(tmp_path / "bureau.csv", index=False)
    pd.DataFrame(
        {"cid": [1, 1, 1, 2], "day": [3, 1, 2, 5], "amount": [30.0, 10.0, 20.0, 5.0]}
    ).to_csv(tmp_path / "tx.csv", index=False)
    data = cfg(
        data={
            "path": str(tmp_path / "main.csv"),
            "key": "id",
            "join": [
                {"name": "bureau", "path": str(tmp_path / "bureau.csv"), "key": "cid"},
                {
                    "name": "tx",
                    "path": str(tmp_path / "tx.csv"),
                    "key": "cid",
                    "relation": "one-to-many",
                    "order_by": "day",
                    "max_events": 2,
                },
            ],
        }
    ).data
    frame = load_frame(data, kit_manager)
    assert frame["bureau_score"].tolist()[:2] == [600, 700] and np.isnan(frame["bureau_score"][2])
    assert frame["tx"][0] == [{"day": 2, "amount": 20.0}, {"day": 3, "amount": 30.0}]
    assert frame["tx"][1] == [{"day": 5, "amount": 5.0}]
    assert frame["tx"][2] is None


def test_one_to_one_join_with_repeated_keys_is_a_data_error(tmp_path, kit_manager):
    pd.DataFrame({"id": [1], "y": [0]}).to_csv(tmp_path / "main.csv", index=False)
    pd.DataFrame({"id": [1, 1], "v": [1, 2]}).to_csv(tmp_path / "side.csv", index=False)
    data = cfg(
        data={
            "path": str(tmp_path / "main.csv"),
            "key": "id",
            "join": [{"name": "side", "path": str(tmp_path / "side.csv"), "key": "id"}],
        }
    ).data
    with pytest.raises(DataError, match="one-to-many"):
        load_frame(data, kit_manager)


def _plans(kit_manager, handles_missing=False):
    entry = kit_manager.get("encoder", "test.numeric")
    encoder = entry.load()(
        entry.validate_options({"handles_missing": handles_missing}), cpu_device()
    )
    df = kit.frame(10, missing=0.5)
    encoder.fit(df["b"])
    return df, [InputPlan("b", ["b"], encoder)]


def test_batches_prepare_rows_and_mark_missing_values_absent(kit_manager):
    df, plans = _plans(kit_manager)
    data = FrameBatches(df, plans, cpu_device(), batch_size=4)
    batches = list(data.batches())
    assert len(batches) == len(data) == 3
    present = np.concatenate([b["present"]["b"].numpy() for b in batches])
    assert (present == df["b"].notna().to_numpy()).all()
    assert np.concatenate([b["index"].numpy() for b in batches]).tolist() == list(range(10))
    assert batches[0]["inputs"]["b"]["x"].shape == (4, 1)


def test_encoders_that_handle_missing_values_keep_rows_present(kit_manager):
    df, plans = _plans(kit_manager, handles_missing=True)
    batch = next(FrameBatches(df, plans, cpu_device(), batch_size=10).batches())
    assert batch["present"]["b"].all()


def test_shuffled_batches_follow_the_seed(kit_manager):
    df, plans = _plans(kit_manager)
    data = FrameBatches(df, plans, cpu_device(), batch_size=10)

    def order(seed):
        return next(data.batches(shuffle=True, seed=seed))["index"].tolist()

    assert order(1) == order(1) and order(1) != order(2)
    assert sorted(order(1)) == list(range(10))


def test_length_buckets_give_every_row_once_in_batches_of_similar_length():
    from transfuse.data import LengthBuckets

    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    batches = list(LengthBuckets(lengths, batch_size=10, seed=3, pool=20))
    assert len(batches) == len(LengthBuckets(lengths, 10, 3)) == 100
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[i : i + 10]) for i in range(0, 1000, 10)])
    assert spread < random_spread / 4


def test_length_buckets_follow_the_seed():
    from transfuse.data import LengthBuckets

    lengths = np.arange(100) % 7
    assert list(LengthBuckets(lengths, 8, seed=1)) == list(LengthBuckets(lengths, 8, seed=1))
    assert list(LengthBuckets(lengths, 8, seed=1)) != list(LengthBuckets(lengths, 8, seed=2))


def test_shuffled_batches_are_bucketed_when_a_trainable_encoder_declares_lengths(kit_manager):
    df, plans = _plans(kit_manager)
    df = kit.frame(200)
    plans[0].encoder.lengths = lambda values: (np.abs(values.to_numpy()) * 100).astype(np.int64)
    data = FrameBatches(df, plans, cpu_device(), batch_size=10)
    sizes = (np.abs(df["b"].to_numpy()) * 100).astype(np.int64)
    batches = [b["index"].numpy() for b in data.batches(shuffle=True, seed=0)]
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    assert np.mean([np.ptp(sizes[b]) for b in batches]) < np.ptp(sizes) / 5
    in_order = np.concatenate([b["index"].numpy() for b in data.batches()])
    assert in_order.tolist() == list(range(200)), "unshuffled passes keep row order"


def test_a_frozen_input_is_embedded_in_one_bulk_pass_before_the_first_batch(kit_manager):
    from transfuse.cache import FrozenEmbedder

    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 3}), cpu_device())
    df = kit.frame(40)
    encoder.fit(df["b"])
    plan = InputPlan("b", ["b"], encoder, FrozenEmbedder.for_encoder(encoder, cpu_device()))
    data = FrameBatches(df, [plan], cpu_device(), batch_size=8)
    first = list(data.batches(shuffle=True, seed=0))
    assert kit.Frozen.calls == [40], "one length-sorted pass, not one call per batch"
    again = list(data.batches(shuffle=True, seed=0))
    assert kit.Frozen.calls == [40]
    assert torch_equal(first, again) and plan.embedder.cache.stats() == {"hits": 40, "misses": 40}


def torch_equal(one, two):
    return all(
        (a["inputs"]["b"]["embedding"] == b["inputs"]["b"]["embedding"]).all()
        for a, b in zip(one, two)
    )
