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
