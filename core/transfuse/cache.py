"""The on-disk cache of frozen encoders' outputs, memory-mapped when read.

A frozen encoder never trains, so embedding a row twice is wasted work (for a sentence
transformer or an image backbone, most of a run's time). Each encoder gets a folder named
by a hash of its :meth:`~transfuse.bases.Encoder.cache_key` and output width; inside, rows
are stored in shards (``shard-*.npy`` + ``shard-*.keys.npy``) keyed by a hash of the row's
content (a file path counts with its size and modification time). A changed encoder option
gives a different folder; a corrupt shard is discarded with a warning and recomputed.

Lookups are vectorised: the keys of all shards form one sorted array searched with
:func:`numpy.searchsorted`, so fetching a batch costs no Python loop over its rows.
:meth:`FrozenEmbedder.warm` fills the cache before a pass: every missing row, once per
distinct content, in length-sorted batches (the encoder's ``lengths`` hook), written in bulk.

The root is ``$TRANSFUSE_CACHE`` when set, else ``platformdirs.user_cache_dir("transfuse")``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

    from transfuse.bases import Encoder
    from transfuse.device import DeviceManager

__all__ = ["EmbeddingCache", "FrozenEmbedder", "cache_root", "row_keys"]

KEY_BYTES = 16
_FLUSH_ROWS = 16384


def cache_root() -> Path:
    """Where embeddings are cached: ``$TRANSFUSE_CACHE`` or the user cache folder."""
    env = os.environ.get("TRANSFUSE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("transfuse"))


def _content(value: Any) -> bytes:
    """The bytes that identify a value: a file path by its path, size and mtime."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return b"\x00missing"
    if isinstance(value, bytes | bytearray | memoryview):
        return b"bytes:" + hashlib.blake2b(bytes(value), digest_size=KEY_BYTES).digest()
    if isinstance(value, np.ndarray):
        head = f"array:{value.dtype}:{value.shape}:".encode()
        return head + hashlib.blake2b(np.ascontiguousarray(value).tobytes()).digest()
    if isinstance(value, str):
        if 0 < len(value) < 1024 and "\n" not in value:
            try:
                stat = os.stat(value)
            except (OSError, ValueError):
                stat = None
            if stat is not None and os.path.isfile(value):
                path = os.path.abspath(value)
                return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()
        return b"str:" + value.encode("utf-8", "surrogatepass")
    return f"{type(value).__name__}:{value!r}".encode()


def _may_name_file(value: str) -> bool:
    """Whether a string may be a file path: it has a path separator, a dot near its end
    (an extension) or no space. Other strings (free text) are hashed without a stat call."""
    return "/" in value or "\\" in value or "." in value[-9:] or " " not in value


def row_keys(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """One content hash per row (``S16``); equal rows give equal keys.

    A column of strings is hashed once per distinct value, and only strings that may name
    a file (:func:`_may_name_file`) are looked up on disk: a million short texts cost about a
    second, not the several of one ``stat`` per row.
    """
    if isinstance(values, pd.DataFrame):
        rows: Iterable[bytes] = (
            b"\x1f".join(_content(v) for v in row)
            for row in values.itertuples(index=False, name=None)
        )
    else:
        fast = _string_keys(values)
        if fast is not None:
            return fast
        rows = (_content(v) for v in values.tolist())
    keys = [hashlib.blake2b(r, digest_size=KEY_BYTES).digest() for r in rows]
    return np.array(keys, dtype=f"S{KEY_BYTES}")


def _string_keys(values: pd.Series) -> np.ndarray | None:
    """:func:`row_keys` of a column of strings (and missing values), or ``None`` when the
    column holds anything else."""
    if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    if not all(isinstance(v, str) for v in distinct.tolist()):
        return None
    blake = hashlib.blake2b
    keys = [
        blake(
            _content(v) if _may_name_file(v) else b"str:" + v.encode("utf-8", "surrogatepass"),
            digest_size=KEY_BYTES,
        ).digest()
        for v in distinct.tolist()
    ]
    keys.append(blake(_content(None), digest_size=KEY_BYTES).digest())  # code -1: missing
    table = np.array(keys, dtype=f"S{KEY_BYTES}")
    return table[codes]


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in ``sorted_keys`` and a mask of those found there."""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return pos, sorted_keys[pos] == keys


def _as_keys(keys: np.ndarray) -> np.ndarray:
    return np.asarray(keys, dtype=f"S{KEY_BYTES}")


class EmbeddingCache:
    """Rows of one frozen encoder's outputs on disk, by content key.

    ``hits`` and ``misses`` count looked-up rows, so a caller can tell that a second
    pass over the same rows read the cache.
    """

    def __init__(
        self, encoder_key: str, dim: int, *, root: Path | None = None, dtype: str = "float32"
    ) -> None:
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        digest = hashlib.sha256(f"{encoder_key}|{self.dim}|{self.dtype}".encode()).hexdigest()
        self.folder = (root or cache_root()) / "embeddings" / digest[:24]
        self.hits = 0
        self.misses = 0
        # The index: every stored key, sorted, with the shard and row that hold it.
        self._keys = np.zeros(0, dtype=f"S{KEY_BYTES}")
        self._shard = np.zeros(0, dtype=np.int32)
        self._row = np.zeros(0, dtype=np.int64)
        self._shards: list[np.ndarray] = []
        self._pending_keys: list[np.ndarray] = []
        self._pending_rows: list[np.ndarray] = []
        self._pending_index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._encoder_key = encoder_key
        self._seen: set[str] = set()  # shard files read; refresh() reads only new ones
        self._open()

    # -- reading -------------------------------------------------------------------
    def _open(self) -> None:
        if not self.folder.is_dir():
            return
        for keys_path in sorted(self.folder.glob("shard-*.keys.npy")):
            if keys_path.name in self._seen:
                continue
            self._seen.add(keys_path.name)
            data_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".npy"))
            try:
                keys = np.load(keys_path, allow_pickle=False)
                data = np.load(data_path, mmap_mode="r", allow_pickle=False)
                if keys.ndim != 1 or data.shape != (len(keys), self.dim):
                    raise ValueError(f"shape {data.shape} for {len(keys)} keys")
                if data.dtype != self.dtype:
                    raise ValueError(f"dtype {data.dtype}, expected {self.dtype}")
                keys = _as_keys(keys)
            except (OSError, ValueError, EOFError) as exc:
                warnings.warn(
                    f"discarding corrupt embedding cache shard {data_path}: {exc}",
                    stacklevel=2,
                )
                for path in (keys_path, data_path):
                    path.unlink(missing_ok=True)
                continue
            self._add_shard(data, keys)

    def _add_shard(self, data: np.ndarray, keys: np.ndarray) -> None:
        """Merge a shard's keys into the sorted index (keys already indexed keep their row)."""
        shard = len(self._shards)
        self._shards.append(data)
        keys, rows = np.unique(keys, return_index=True)
        _, known = _find(self._keys, keys)
        keys, rows = keys[~known], rows[~known]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._shard = np.insert(self._shard, at, np.full(len(keys), shard, dtype=np.int32))
        self._row = np.insert(self._row, at, rows.astype(np.int64))

    def __len__(self) -> int:
        pending = self._pending()
        if pending is None:
            return len(self._keys)
        _, on_disk = _find(self._keys, pending[0])
        return len(self._keys) + int((~on_disk).sum())

    def _pending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Pending rows as (sorted unique keys, their rows in the stacked block, block)."""
        if not self._pending_keys:
            return None
        if self._pending_index is None:
            keys = np.concatenate(self._pending_keys)
            block = np.concatenate(self._pending_rows)
            # The last put of a key wins: unique over the reversed keys finds it first.
            rev_keys, rev_first = np.unique(keys[::-1], return_index=True)
            self._pending_index = (rev_keys, len(keys) - 1 - rev_first, block)
            self._pending_keys, self._pending_rows = [keys], [block]
        return self._pending_index

    def contains(self, keys: np.ndarray, *, count: bool = True) -> np.ndarray:
        """A mask, true where ``keys`` are cached (or pending); counts hits and misses."""
        keys = _as_keys(keys)
        _, hit = _find(self._keys, keys)
        pending = self._pending()
        if pending is not None and not hit.all():
            _, in_pending = _find(pending[0], keys)
            hit |= in_pending
        if count:
            self.count(hits=int(hit.sum()), misses=len(keys) - int(hit.sum()))
        return hit

    def count(self, *, hits: int = 0, misses: int = 0) -> None:
        """Add to the lookup counters (a caller that checked rows itself says what it found)."""
        self.hits += hits
        self.misses += misses

    def fetch(self, keys: np.ndarray, *, count: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Cached rows for ``keys`` as float32 ``[n, dim]`` and a hit mask (misses are 0)."""
        keys = _as_keys(keys)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        pos, hit = _find(self._keys, keys)
        found = np.flatnonzero(hit)
        shards, rows = self._shard[pos[found]], self._row[pos[found]]
        for shard in np.unique(shards).tolist():
            sel = shards == shard
            order = np.argsort(rows[sel], kind="stable")  # sequential reads of the memmap
            targets = found[sel][order]
            out[targets] = self._shards[shard][rows[sel][order]]
        pending = self._pending()
        if pending is not None and not hit.all():
            missing = np.flatnonzero(~hit)
            where, in_pending = _find(pending[0], keys[missing])
            take = missing[in_pending]
            out[take] = pending[2][pending[1][where[in_pending]]]
            hit[take] = True
        if count:
            found_n = int(hit.sum())
            self.count(hits=found_n, misses=len(keys) - found_n)
        return out, hit

    # -- writing -------------------------------------------------------------------
    def put(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Remember new rows; they are written at :meth:`flush` (or when many pile up)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape != (len(keys), self.dim):
            raise ValueError(f"rows of shape {rows.shape} for {len(keys)} keys, dim {self.dim}")
        self._pending_keys.append(_as_keys(keys).copy())
        self._pending_rows.append(rows.astype(self.dtype))  # a copy in the stored dtype
        self._pending_index = None
        if sum(len(k) for k in self._pending_keys) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write pending rows as a new shard: data, then keys, each to a temp name first."""
        pending = self._pending()
        if pending is None:
            return
        keys, where, block = pending
        _, on_disk = _find(self._keys, keys)
        keys, data = keys[~on_disk], np.ascontiguousarray(block[where[~on_disk]])
        self._pending_keys, self._pending_rows, self._pending_index = [], [], None
        if not len(keys):
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            key_file = self.folder / "key.txt"
            if not key_file.exists():
                _atomic_write(key_file, lambda f: f.write(self._encoder_key.encode()))
            stem = f"shard-{uuid.uuid4().hex}"
            _atomic_write(self.folder / f"{stem}.npy", lambda f: np.save(f, data))
            _atomic_write(self.folder / f"{stem}.keys.npy", lambda f: np.save(f, keys))
        except OSError as exc:  # a full or read-only disk costs speed, never the run
            warnings.warn(f"cannot write the embedding cache in {self.folder}: {exc}", stacklevel=2)
            return
        self._seen.add(f"{stem}.keys.npy")
        self._add_shard(np.load(self.folder / f"{stem}.npy", mmap_mode="r"), keys)

    def refresh(self) -> None:
        """Read the shards other processes (the other ranks) wrote since this one opened."""
        self._open()

    def stats(self) -> dict[str, int]:
        """Hits and misses so far."""
        return {"hits": self.hits, "misses": self.misses}


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FrozenEmbedder:
    """Embeds rows with a frozen encoder through its cache: only misses are computed.

    Misses are embedded once per distinct key, in batches of ``batch_size`` rows sorted by
    the encoder's :meth:`~transfuse.bases.Encoder.lengths` (when it declares them), so a
    batch pads to texts of similar length instead of the longest text of a random batch.
    """

    def __init__(
        self,
        encoder: Encoder,
        device: DeviceManager,
        cache: EmbeddingCache,
        *,
        batch_size: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.device = device
        self.cache = cache
        option = getattr(getattr(encoder, "options", None), "batch_size", None)
        self.batch_size = int(batch_size or option or 64)

    @classmethod
    def for_encoder(
        cls, encoder: Encoder, device: DeviceManager, root: Path | None = None
    ) -> FrozenEmbedder:
        """An embedder using the encoder's cache folder under ``root`` (default root); the
        precision is part of the key, since bf16 and fp32 give slightly different rows."""
        key = f"{encoder.cache_key()}|precision={device.precision}"
        return cls(encoder, device, EmbeddingCache(key, encoder.output_dim, root=root))

    def embed(
        self, values: pd.Series | pd.DataFrame, keys: np.ndarray, *, count: bool = True
    ) -> torch.Tensor:
        """Host float32 ``[B, D]`` embeddings of ``values`` (whose content keys are ``keys``)."""
        import torch

        out, hit = self.cache.fetch(keys, count=count)
        if not hit.all():
            miss = np.flatnonzero(~hit)
            out[miss] = self.compute(values.iloc[miss], keys[miss])
        return torch.from_numpy(out)

    def warm(self, values: pd.Series | pd.DataFrame, keys: np.ndarray) -> int:
        """Embed and store every row not cached yet, before a pass reads them batch by
        batch; counts each row as a hit or a miss. Returns the number of rows missed."""
        hit = self.cache.contains(keys)
        from transfuse import distributed

        if distributed.active():
            return self._warm_shared(values, keys, hit)
        if hit.all():
            return 0
        miss = np.flatnonzero(~hit)
        self.fill(values.iloc[miss], keys[miss])
        self.cache.flush()
        return len(miss)

    def _warm_shared(self, values: pd.Series | pd.DataFrame, keys: np.ndarray, hit: Any) -> int:
        """Under torchrun: each rank embeds its stride of the distinct missing rows and
        writes them; after a barrier every rank reads what all of them wrote."""
        from transfuse import distributed

        miss = np.flatnonzero(~hit)
        _, first = np.unique(keys[miss], return_index=True)
        todo = miss[np.sort(first)]
        if distributed.all_sum(len(todo)) == 0:  # the same answer on every rank
            return 0
        rank, world = distributed.rank_and_size()
        mine = todo[rank::world]
        if len(mine):
            self.fill(values.iloc[mine], keys[mine])
        self.cache.flush()
        distributed.barrier()
        self.cache.refresh()
        return len(miss)

    def compute(self, values: pd.Series | pd.DataFrame, keys: np.ndarray) -> np.ndarray:
        """Run the encoder on ``values`` (each distinct key once, length-sorted batches),
        store the rows and return them as float32 ``[n, D]`` in the given order."""
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rows = np.zeros((len(first), self.encoder.output_dim), dtype=np.float32)
        for chunk, emb in self._embed_distinct(values.iloc[first], unique):
            rows[chunk] = emb
        return rows[inverse.reshape(-1)]

    def fill(self, values: pd.Series | pd.DataFrame, keys: np.ndarray) -> None:
        """Like :meth:`compute`, but only store the rows: a warm-up of a million rows
        holds one batch of embeddings in memory, not all of them twice over."""
        unique, first = np.unique(keys, return_index=True)
        for _ in self._embed_distinct(values.iloc[first], unique):
            pass

    def _embed_distinct(
        self, distinct: pd.Series | pd.DataFrame, unique: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Embed rows with distinct keys ``unique`` in length-sorted batches; store each
        batch and yield (positions in ``distinct``, rows rounded through the stored dtype)."""
        lengths = self.encoder.lengths(distinct)
        if lengths is None:
            order = np.arange(len(distinct))
        else:  # longest first (as sentence-transformers does): the peak memory shows early
            order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        self.encoder.eval()
        with self.device.inference():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.encoder.prepare(distinct.iloc[chunk])
                emb = self.encoder(self.device.move(batch)).detach().float().cpu().numpy()
                self.cache.put(unique[chunk], emb)
                # Round through the stored dtype, so a computed row equals its cached copy.
                yield chunk, emb.astype(self.cache.dtype).astype(np.float32)
