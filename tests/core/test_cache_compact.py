"""The embedding cache at scale: shards merged into one file, rows located once a split."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import cache as cache_module
from transfuse.cache import EmbeddingCache, FrozenEmbedder, row_keys
from transfuse.data import FrameBatches, InputPlan
from transfuse.testing import cpu_device


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def _keys(n: int, prefix: str = "row") -> np.ndarray:
    return row_keys(pd.Series([f"{prefix}{i}" for i in range(n)]))


def _rows(n: int, dim: int = 3, start: int = 0) -> np.ndarray:
    return np.arange(start * dim, (start + n) * dim, dtype=np.float32).reshape(n, dim)


def _shards(cache: EmbeddingCache) -> list[Path]:
    return sorted(cache.folder.glob("shard-*.keys.npy"))


def _write(cache: EmbeddingCache, keys: np.ndarray, rows: np.ndarray, every: int) -> None:
    """Write ``keys`` as shards of ``every`` rows."""
    for start in range(0, len(keys), every):
        cache.put(keys[start : start + every], rows[start : start + every])
        cache.flush()


def test_compacting_merges_small_shards_into_one_file_with_the_same_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_FLUSH_ROWS", 4)  # the merged file written in chunks
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    keys, rows = _keys(23), _rows(23)
    _write(cache, keys, rows, every=5)
    assert len(_shards(cache)) == 5
    assert cache.compact() == 5
    assert len(_shards(cache)) == 1 and len(list(cache.folder.glob("shard-*.npy"))) == 2
    wanted = np.array([22, 0, 7, 7, 13])
    assert np.array_equal(cache.fetch(keys[wanted])[0], rows[wanted])
    reopened = EmbeddingCache("enc", 3, root=tmp_path)
    assert len(reopened._shards) == 1 and isinstance(reopened._shards[0], np.memmap)
    out, hit = reopened.fetch(keys)
    assert hit.all() and np.array_equal(out, rows)
    assert reopened.compact() == 0, "one shard: nothing to merge"


def test_a_large_shard_is_kept_and_only_the_small_ones_merged(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    keys, rows = _keys(40), _rows(40)
    _write(cache, keys[:30], rows[:30], every=30)
    (large,) = _shards(cache)
    _write(cache, keys[30:], rows[30:], every=2)
    assert cache.compact() == 5
    assert large in _shards(cache) and len(_shards(cache)) == 2
    assert np.array_equal(cache.fetch(keys)[0], rows)
    cache.put(_keys(1, "new"), _rows(1))
    cache.flush()
    assert cache.compact() == 0, "a new shard smaller than the rest waits"


def test_rows_are_located_once_and_reused_while_their_shards_hold(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    keys, rows = _keys(12), _rows(12)
    _write(cache, keys, rows, every=4)
    where = cache.locate(keys)
    assert cache.locate(keys, where) is where
    take = np.array([11, 3, 3, 0])
    out, hit = cache.gather(where, take)
    assert hit.all() and np.array_equal(out, rows[take])
    cache.put(_keys(1, "other"), _rows(1))
    cache.flush()
    assert cache.locate(keys, where) is where, "a new shard moves no row"
    cache.compact()
    again = cache.locate(keys, where)
    assert again is not where and len(again.arrays) == 1, "merged: located anew, one shard"
    assert np.array_equal(cache.gather(again, take)[0], rows[take])
    assert np.array_equal(cache.gather(where, take)[0], rows[take]), "old mapping still reads"


def test_positions_with_misses_are_located_again_once_the_rows_are_stored(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    keys, rows = _keys(6), _rows(6)
    _write(cache, keys[:4], rows[:4], every=4)
    where = cache.locate(keys)
    out, hit = cache.gather(where, np.arange(6))
    assert hit.tolist() == [True] * 4 + [False] * 2 and not out[4:].any()
    _write(cache, keys[4:], rows[4:], every=2)
    again = cache.locate(keys, where)
    assert again is not where and again.complete
    assert np.array_equal(cache.gather(again, np.arange(6))[0], rows)


def test_the_data_path_locates_a_split_once_and_reads_no_key_per_batch(kit_manager, monkeypatch):
    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 3}), cpu_device())
    df = kit.frame(40)
    encoder.fit(df["b"])
    embedder = FrozenEmbedder.for_encoder(encoder, cpu_device())
    data = FrameBatches(df, [InputPlan("b", ["b"], encoder, embedder)], cpu_device(), batch_size=8)
    searched: list[int] = []
    real_find = cache_module._find
    monkeypatch.setattr(
        cache_module,
        "_find",
        lambda index, keys: searched.append(len(keys)) or real_find(index, keys),
    )
    first = list(data.batches(shuffle=True, seed=0))
    where = data._where["b"]
    searched.clear()
    second = list(data.batches(shuffle=True, seed=1))
    assert data._where["b"] is where and searched == [], "no key searched in the second pass"
    expected = encoder(encoder.prepare(df["b"])).detach().numpy()
    for batch in first + second:
        index = batch["index"].numpy()
        assert np.allclose(batch["inputs"]["b"]["embedding"].numpy(), expected[index], atol=1e-6)


def test_a_corrupt_merged_file_is_discarded_with_a_warning_and_recomputed(kit_manager, tmp_path):
    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 3}), cpu_device())
    encoder.fit(pd.Series([1.0]))
    values = pd.Series(np.arange(20, dtype=float))
    keys = row_keys(values)
    embedder = FrozenEmbedder(
        encoder, cpu_device(), EmbeddingCache("k", 3, root=tmp_path), batch_size=4
    )
    for start in range(0, 20, 5):  # four warm-ups, four shards; the fourth merges them
        embedder.warm(values.iloc[start : start + 5], keys[start : start + 5])
    (merged,) = _shards(embedder.cache)
    data = merged.with_name(merged.name.replace(".keys.npy", ".npy"))
    data.write_bytes(data.read_bytes()[:200])
    with pytest.warns(UserWarning, match="discarding corrupt embedding cache shard"):
        again = FrozenEmbedder(encoder, cpu_device(), EmbeddingCache("k", 3, root=tmp_path))
    assert not merged.exists() and not data.exists()
    kit.Frozen.calls.clear()
    assert again.warm(values, keys) == 20 and sum(kit.Frozen.calls) == 20
    expected = encoder(encoder.prepare(values)).detach().numpy()
    assert np.allclose(again.cache.fetch(keys)[0], expected, atol=1e-6)


def test_two_writers_of_the_same_rows_leave_each_row_once_after_compacting(tmp_path):
    one = EmbeddingCache("enc", 3, root=tmp_path)
    two = EmbeddingCache("enc", 3, root=tmp_path)  # opened before either wrote
    keys, rows = _keys(20), _rows(20)
    _write(one, keys, rows, every=5)
    _write(two, keys[10:], rows[10:], every=2)  # the same rows, in part
    one.compact()
    two.compact()  # merges its own shards; it never indexed one's
    assert len(_shards(one)) == 2
    third = EmbeddingCache("enc", 3, root=tmp_path)
    assert len(third) == 20 and np.array_equal(third.fetch(keys)[0], rows)
    assert third.compact() >= 1, "the shard whose rows are indexed elsewhere is dropped"
    assert len(_shards(third)) == 1
    stored = sum(len(np.load(p)) for p in _shards(third))
    assert stored == 20
    fresh = EmbeddingCache("enc", 3, root=tmp_path)
    assert np.array_equal(fresh.fetch(keys)[0], rows)
    assert np.array_equal(one.fetch(keys)[0], rows), "the first writer still reads its mapping"


def test_a_reader_opening_while_another_process_compacts_finds_every_row(tmp_path, monkeypatch):
    writer = EmbeddingCache("enc", 3, root=tmp_path)
    keys, rows = _keys(12), _rows(12)
    _write(writer, keys, rows, every=3)
    real_load = np.load
    loads: list[str] = []

    def load(path, *args, **kwargs):  # the writer merges the shards just as they are read
        loads.append(Path(path).name)
        if len(loads) == 3:
            writer.compact()
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(cache_module.np, "load", load)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vanished shard is no corrupt shard
        reader = EmbeddingCache("enc", 3, root=tmp_path)
    monkeypatch.setattr(cache_module.np, "load", real_load)
    out, hit = reader.fetch(keys)
    assert hit.all() and np.array_equal(out, rows)


def test_compacting_sweeps_what_killed_writers_left_an_hour_ago(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    _write(cache, _keys(4), _rows(4), every=2)
    stale_tmp = cache.folder / ".shard-dead.npy.0123.tmp"
    orphan = cache.folder / "shard-dead.npy"  # data written, keys never
    fresh = cache.folder / ".shard-live.npy.4567.tmp"  # a writer at work
    for path in (stale_tmp, orphan, fresh):
        path.write_bytes(b"x")
    hour_ago = time.time() - 2 * 3600
    for path in (stale_tmp, orphan):
        os.utime(path, (hour_ago, hour_ago))
    assert cache.compact() == 0, "two equal shards: nothing to merge, but a sweep"
    assert not stale_tmp.exists() and not orphan.exists() and fresh.exists()
    assert np.array_equal(cache.fetch(_keys(4))[0], _rows(4))


def test_a_shard_listed_without_its_data_is_discarded_after_a_second_look(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    _write(cache, _keys(4), _rows(4), every=2)
    first, second = _shards(cache)
    second.with_name(second.name.replace(".keys.npy", ".npy")).unlink()
    with pytest.warns(UserWarning, match="discarding corrupt embedding cache shard"):
        reopened = EmbeddingCache("enc", 3, root=tmp_path)
    assert _shards(reopened) == [first] and len(reopened) == 2


def test_under_torchrun_each_rank_embeds_its_stride_and_rank_zero_merges(
    kit_manager, tmp_path, monkeypatch
):
    """The split of a shared fill between ranks (the torchrun test sees only the merged
    cache): rank 1 embeds every second distinct missing row, rank 0 the rest, then merges."""
    from transfuse import distributed

    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 3}), cpu_device())
    encoder.fit(pd.Series([1.0]))
    values = pd.Series([float(i % 10) for i in range(14)])  # 10 distinct rows, 4 repeated
    keys, device = row_keys(values), cpu_device()  # made before torchrun is faked
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "all_sum", lambda value: value)
    monkeypatch.setattr(distributed, "barrier", lambda: None)
    # Each rank opens the cache before any writes (as at the start of a run); rank 1
    # happens to finish first. What it wrote is read by rank 0 after the barrier.
    ranks = {
        r: FrozenEmbedder(encoder, device, EmbeddingCache("k", 3, root=tmp_path)) for r in (1, 0)
    }
    embedded = {}
    for rank, embedder in ranks.items():
        monkeypatch.setattr(distributed, "rank_and_size", lambda rank=rank: (rank, 2))
        kit.Frozen.calls.clear()
        assert embedder.warm(values, keys) == 14
        embedded[rank] = sum(kit.Frozen.calls)
    assert embedded == {1: 5, 0: 5}  # each distinct row once, half each
    shards = [np.load(p) for p in _shards(embedder.cache)]  # equal halves: tiering keeps both
    assert sorted(map(len, shards)) == [5, 5] and len(np.unique(np.concatenate(shards))) == 10
    expected = encoder(encoder.prepare(values)).detach().numpy()
    assert np.allclose(EmbeddingCache("k", 3, root=tmp_path).fetch(keys)[0], expected, atol=1e-6)
