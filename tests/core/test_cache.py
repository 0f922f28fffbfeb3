"""The embedding cache of frozen encoders: keys, hits, invalidation, corruption."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse.cache import EmbeddingCache, FrozenEmbedder, cache_root, row_keys
from transfuse.testing import cpu_device


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


def test_equal_rows_give_equal_keys_and_different_rows_different_keys():
    keys = row_keys(pd.Series(["a", "b", "a", None, np.nan]))
    assert keys[0] == keys[2] and keys[0] != keys[1]
    assert keys[3] == keys[4]
    frame = pd.DataFrame({"x": [1, 1, 2], "y": ["u", "u", "u"]})
    fkeys = row_keys(frame)
    assert fkeys[0] == fkeys[1] != fkeys[2]


def test_a_changed_file_behind_a_path_changes_its_key(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"one")
    before = row_keys(pd.Series([str(path)]))[0]
    path.write_bytes(b"other content")
    os.utime(path, ns=(1, 1))
    assert row_keys(pd.Series([str(path)]))[0] != before


def test_a_text_column_gets_the_same_keys_as_row_by_row_hashing(tmp_path, monkeypatch):
    import hashlib

    from transfuse import cache

    (tmp_path / "notes").write_text("a file named like a word")
    monkeypatch.chdir(tmp_path)
    values = pd.Series(["paid on time", "notes", "late.", "a b", None, "paid on time", np.nan])
    one_by_one = [hashlib.blake2b(cache._content(v), digest_size=16).digest() for v in values]
    assert row_keys(values).tolist() == one_by_one  # "notes" keyed as the file it names
    assert row_keys(values.astype("string")).tolist() == one_by_one


def test_free_text_is_hashed_without_looking_for_a_file(monkeypatch):
    looked: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: looked.append(p) or real_stat(p, *a, **k))
    keys = row_keys(pd.Series(["paid on time", "two words", "paid on time", "x.png", "dir/a"]))
    assert looked == ["x.png", "dir/a"]  # one-word, dotted or slashed strings only
    assert keys[0] == keys[2] != keys[1]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFUSE_CACHE", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    monkeypatch.delenv("TRANSFUSE_CACHE")
    assert cache_root().name == "transfuse"


def test_rows_put_are_found_after_reopening_and_read_memory_mapped(tmp_path):
    cache = EmbeddingCache("enc", 3, root=tmp_path)
    keys = row_keys(pd.Series(["a", "b"]))
    cache.put(keys, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    cache.flush()
    again = EmbeddingCache("enc", 3, root=tmp_path)
    rows, hit = again.fetch(row_keys(pd.Series(["b", "c"])))
    assert hit.tolist() == [True, False]
    assert rows[0].tolist() == [4, 5, 6] and rows[1].tolist() == [0, 0, 0]
    assert again.stats() == {"hits": 1, "misses": 1}
    assert isinstance(again._shards[0], np.memmap)


def test_another_encoder_key_or_width_uses_another_folder(tmp_path):
    one = EmbeddingCache("enc:{'dim': 8}", 3, root=tmp_path)
    assert one.folder != EmbeddingCache("enc:{'dim': 16}", 3, root=tmp_path).folder
    assert one.folder != EmbeddingCache("enc:{'dim': 8}", 4, root=tmp_path).folder


@pytest.mark.parametrize("damage", ["truncate", "garbage", "keys"])
def test_a_corrupt_shard_is_discarded_with_a_warning_not_fatal(tmp_path, damage):
    cache = EmbeddingCache("enc", 4, root=tmp_path)
    keys = row_keys(pd.Series(list("abcdef")))
    cache.put(keys, np.ones((6, 4), dtype=np.float32))
    cache.flush()
    (data,) = cache.folder.glob("shard-*[0-9a-f].npy")
    keys_file = data.with_name(data.name.replace(".npy", ".keys.npy"))
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:100])
    elif damage == "garbage":
        data.write_bytes(b"not a numpy file at all")
    else:
        keys_file.write_bytes(b"broken keys")
    with pytest.warns(UserWarning, match="discarding corrupt embedding cache shard"):
        reopened = EmbeddingCache("enc", 4, root=tmp_path)
    assert reopened.fetch(keys)[1].sum() == 0
    assert not data.exists() and not keys_file.exists()


def test_frozen_embedder_computes_only_misses_and_matches_the_encoder(kit_manager, tmp_path):
    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 5}), cpu_device())
    encoder.fit(pd.Series([1.0]))
    embedder = FrozenEmbedder.for_encoder(encoder, cpu_device(), root=tmp_path)
    values = pd.Series([1.0, 2.0, 3.0, np.nan])
    keys = row_keys(values)
    first = embedder.embed(values, keys)
    assert kit.Frozen.calls == [4]
    second = embedder.embed(values.iloc[[2, 0]], keys[[2, 0]])
    assert kit.Frozen.calls == [4], "cached rows must not run the encoder again"
    assert np.array_equal(second.numpy(), first.numpy()[[2, 0]])
    direct = encoder(encoder.prepare(values)).detach().numpy()
    assert np.allclose(first.numpy(), direct)
    assert embedder.cache.stats() == {"hits": 2, "misses": 4}


def test_float16_storage_returns_the_same_values_when_computed_and_when_cached(
    kit_manager, tmp_path
):
    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": 5, "scale": 1.37}), cpu_device())
    encoder.fit(pd.Series([1.0]))
    cache = EmbeddingCache(encoder.cache_key(), 5, root=tmp_path, dtype="float16")
    embedder = FrozenEmbedder(encoder, cpu_device(), cache)
    values = pd.Series([0.123, 4.567])
    computed = embedder.embed(values, row_keys(values))
    cache.flush()
    cached = FrozenEmbedder(
        encoder,
        cpu_device(),
        EmbeddingCache(encoder.cache_key(), 5, root=tmp_path, dtype="float16"),
    ).embed(values, row_keys(values))
    assert np.array_equal(computed.numpy(), cached.numpy())


def _sized_frozen(kit_manager, dim=3):
    """A test.frozen encoder that declares lengths (the value itself), recording batches."""
    entry = kit_manager.get("encoder", "test.frozen")
    encoder = entry.load()(entry.validate_options({"dim": dim}), cpu_device())
    encoder.fit(pd.Series([1.0]))
    seen: list[list[float]] = []
    original = encoder.prepare

    def prepare(values):
        seen.append(values.tolist())
        return original(values)

    encoder.prepare = prepare
    encoder.lengths = lambda values: np.asarray(values, dtype=float).astype(np.int64)
    return encoder, seen


def test_fetch_reads_rows_from_several_shards_and_pending_rows_in_one_call(tmp_path):
    cache = EmbeddingCache("enc", 2, root=tmp_path)
    keys = row_keys(pd.Series([f"row{i}" for i in range(6)]))
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    cache.put(keys[:2], rows[:2])
    cache.flush()
    cache.put(keys[2:4], rows[2:4])
    cache.flush()
    cache.put(keys[4:5], rows[4:5])  # pending, not yet written
    wanted = keys[[4, 0, 5, 3, 0]]
    out, hit = cache.fetch(wanted)
    assert hit.tolist() == [True, True, False, True, True]
    assert out.tolist() == [[8, 9], [0, 1], [0, 0], [6, 7], [0, 1]]
    assert len(cache._shards) == 2 and len(cache) == 5


def test_a_key_put_again_is_stored_once_and_keeps_the_last_pending_row(tmp_path):
    cache = EmbeddingCache("enc", 2, root=tmp_path)
    key = row_keys(pd.Series(["same"]))
    cache.put(key, np.array([[1, 1]], dtype=np.float32))
    cache.put(key, np.array([[2, 2]], dtype=np.float32))
    assert cache.fetch(key)[0].tolist() == [[2, 2]]
    cache.flush()
    cache.put(key, np.array([[3, 3]], dtype=np.float32))
    cache.flush()
    reopened = EmbeddingCache("enc", 2, root=tmp_path)
    assert len(reopened) == 1 and reopened.fetch(key)[0].tolist() == [[2, 2]]
    assert len(list(reopened.folder.glob("shard-*.keys.npy"))) == 1, "nothing new to write"


def test_repeated_rows_are_embedded_once_and_each_gets_its_row(kit_manager, tmp_path):
    encoder = _sized_frozen(kit_manager)[0]
    embedder = FrozenEmbedder.for_encoder(encoder, cpu_device(), root=tmp_path)
    values = pd.Series([2.0, 5.0, 2.0, 2.0, 5.0])
    out = embedder.embed(values, row_keys(values)).numpy()
    assert kit.Frozen.calls == [2]
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[1], out[4])
    assert np.allclose(out, encoder(encoder.prepare(values)).detach().numpy())


def test_misses_are_embedded_in_length_sorted_batches_with_row_order_results(kit_manager, tmp_path):
    encoder, seen = _sized_frozen(kit_manager)
    embedder = FrozenEmbedder(
        encoder, cpu_device(), EmbeddingCache("k", 3, root=tmp_path), batch_size=2
    )
    values = pd.Series([3.0, 9.0, 1.0, 7.0, 5.0])
    out = embedder.embed(values, row_keys(values)).numpy()
    assert seen == [[9.0, 7.0], [5.0, 3.0], [1.0]], "longest first, two rows a batch"
    assert np.allclose(out, encoder(encoder.prepare(values)).detach().numpy(), atol=1e-6)


def test_warm_fills_the_cache_in_bulk_and_counts_each_row_once(kit_manager, tmp_path):
    encoder = _sized_frozen(kit_manager)[0]
    embedder = FrozenEmbedder.for_encoder(encoder, cpu_device(), root=tmp_path)
    values = pd.Series([1.0, 2.0, 3.0, 1.0])
    keys = row_keys(values)
    assert embedder.warm(values, keys) == 4
    assert embedder.warm(values, keys) == 0
    assert kit.Frozen.calls == [3]
    assert embedder.cache.stats() == {"hits": 4, "misses": 4}
    assert len(list(embedder.cache.folder.glob("shard-*.keys.npy"))) == 1
    embedder.embed(values, keys, count=False)
    assert kit.Frozen.calls == [3] and embedder.cache.stats() == {"hits": 4, "misses": 4}
