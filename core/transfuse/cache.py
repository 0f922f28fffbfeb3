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
distinct content, in length-sorted batches (the encoder's ``lengths`` hook), written in bulk;
then small shards are merged into one file (:meth:`EmbeddingCache.compact`). The data path
finds a split's rows once (:meth:`EmbeddingCache.locate`), so that a batch is a gather from
one mapped array, not a search over a million keys and dozens of shards.

The root is ``$TRANSFUSE_CACHE`` when set, else ``platformdirs.user_cache_dir("transfuse")``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
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

__all__ = ["EmbeddingCache", "FrozenEmbedder", "Positions", "cache_root", "row_keys"]

KEY_BYTES = 16
_FLUSH_ROWS = 16384
_RELIST = 5  # listings of a folder whose shards vanish while read (merged)


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


class Positions:
    """Where the rows of some keys lie in a cache: a shard id (``-1``: not cached) and a row
    per key, with the shards' mapped arrays. Resolved once per split by
    :meth:`EmbeddingCache.locate`, so that a batch costs one gather
    (:meth:`EmbeddingCache.gather`) instead of a search over every key. The arrays stay
    readable after :meth:`EmbeddingCache.compact` merged their files away."""

    __slots__ = ("arrays", "complete", "row", "shard")

    def __init__(self, shard: np.ndarray, row: np.ndarray, arrays: dict[int, np.ndarray]) -> None:
        self.shard = shard
        self.row = row
        self.arrays = arrays
        self.complete = bool((shard >= 0).all())

    def __len__(self) -> int:
        return len(self.shard)


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
        self._shards: dict[int, np.ndarray] = {}  # shard id -> its memory-mapped rows
        self._stems: dict[int, str] = {}  # shard id -> its file name without ".npy"
        self._next_id = 0
        self._pending_keys: list[np.ndarray] = []
        self._pending_rows: list[np.ndarray] = []
        self._pending_index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._encoder_key = encoder_key
        self._seen: set[str] = set()  # shard files read; refresh() reads only new ones
        self._open()

    # -- reading -------------------------------------------------------------------
    def _open(self) -> None:
        """Index the shards not read yet. A shard whose file vanishes while being read was
        merged by another process (:meth:`compact`), which wrote the merged file first:
        the folder is listed again. One still listed without its data is corrupt."""
        gone: set[str] = set()  # keys files whose data was missing once
        for _ in range(_RELIST):
            if not self.folder.is_dir():
                return
            loaded: list[tuple[str, np.ndarray, np.ndarray]] = []
            vanished = False
            for keys_path in sorted(self.folder.glob("shard-*.keys.npy")):
                if keys_path.name in self._seen:
                    continue
                stem = keys_path.name.removesuffix(".keys.npy")
                data_path = keys_path.with_name(f"{stem}.npy")
                try:
                    loaded.append((stem, *self._read(keys_path, data_path)))
                    self._seen.add(keys_path.name)
                    continue
                except FileNotFoundError as exc:
                    if keys_path.name not in gone:
                        gone.add(keys_path.name)
                        vanished = True
                        continue
                    error: Exception = exc
                except (OSError, ValueError, EOFError) as exc:
                    error = exc
                warnings.warn(
                    f"discarding corrupt embedding cache shard {data_path}: {error}",
                    stacklevel=3,
                )
                for path in (keys_path, data_path):
                    path.unlink(missing_ok=True)
            # The largest first: rows two processes both wrote are indexed from the larger
            # shard, so the smaller holds copies only and :meth:`compact` drops it.
            self._add_shards(sorted(loaded, key=lambda shard: -len(shard[2])))
            if not vanished:
                return

    def _read(self, keys_path: Path, data_path: Path) -> tuple[np.ndarray, np.ndarray]:
        """A shard's rows (memory-mapped) and keys, checked against this cache's shape."""
        keys = np.load(keys_path, allow_pickle=False)
        data = np.load(data_path, mmap_mode="r", allow_pickle=False)
        if keys.ndim != 1 or data.shape != (len(keys), self.dim):
            raise ValueError(f"shape {data.shape} for {len(keys)} keys")
        if data.dtype != self.dtype:
            raise ValueError(f"dtype {data.dtype}, expected {self.dtype}")
        return data, _as_keys(keys)

    def _add_shards(self, shards: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Merge shards' keys into the sorted index in one pass (a key already indexed, or
        met in an earlier shard of the list, keeps its row)."""
        if not shards:
            return
        ids = []
        for stem, data, _ in shards:
            ids.append(self._next_id)
            self._shards[self._next_id] = data
            self._stems[self._next_id] = stem
            self._next_id += 1
        keys = np.concatenate([k for _, _, k in shards])
        sizes = [len(k) for *_, k in shards]
        shard = np.repeat(np.asarray(ids, dtype=np.int32), sizes)
        row = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])
        keys, first = np.unique(keys, return_index=True)  # stable: the first shard wins
        _, known = _find(self._keys, keys)
        keys, first = keys[~known], first[~known]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._shard = np.insert(self._shard, at, shard[first])
        self._row = np.insert(self._row, at, row[first])

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

    def locate(self, keys: np.ndarray, previous: Positions | None = None) -> Positions:
        """Where ``keys`` lie on disk (pending rows are not: :meth:`flush` first).

        ``previous``, the answer of an earlier call for the same keys, is returned as it is
        while it still holds: it found every key and no shard it names was merged away."""
        if previous is not None and previous.complete and self._holds(previous):
            return previous
        pos, hit = _find(self._keys, _as_keys(keys))
        if not len(self._keys):
            return Positions(np.full(len(keys), -1, np.int32), np.zeros(len(keys), np.int64), {})
        shard = np.where(hit, self._shard[pos], -1).astype(np.int32)
        row = np.where(hit, self._row[pos], 0).astype(np.int64)
        return Positions(shard, row, self._arrays(shard[hit]))

    def _holds(self, where: Positions) -> bool:
        """Whether every shard ``where`` reads is still one of this cache's shards."""
        return all(self._shards.get(sid) is data for sid, data in where.arrays.items())

    def _arrays(self, shard: np.ndarray) -> dict[int, np.ndarray]:
        return {sid: self._shards[sid] for sid in np.unique(shard).tolist()}

    def gather(self, where: Positions, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of keys ``take`` (indices into ``where``'s keys) as float32 ``[n, dim]``
        and a hit mask (misses are 0). Rows of one shard are one sorted gather."""
        shard, row = where.shard[take], where.row[take]
        out = np.empty((len(shard), self.dim), dtype=np.float32)
        hit = shard >= 0
        everything = bool(hit.all())
        ids = list(where.arrays) if everything and len(where.arrays) == 1 else None
        for sid in ids if ids is not None else np.unique(shard[hit]).tolist():
            sel = None if ids is not None else np.flatnonzero(shard == sid)
            rows = row if sel is None else row[sel]
            order = np.argsort(rows, kind="stable")  # ascending reads of the mapped file
            out[order if sel is None else sel[order]] = where.arrays[sid][rows[order]]
        if not everything:
            out[~hit] = 0.0
        return out, hit

    def fetch(self, keys: np.ndarray, *, count: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Cached rows for ``keys`` as float32 ``[n, dim]`` and a hit mask (misses are 0)."""
        keys = _as_keys(keys)
        out, hit = self.gather(self.locate(keys), np.arange(len(keys)))
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
        stem = f"shard-{uuid.uuid4().hex}"
        try:
            self._write_key_file()
            _atomic_write(self.folder / f"{stem}.npy", lambda f: np.save(f, data))
            _atomic_write(self.folder / f"{stem}.keys.npy", lambda f: np.save(f, keys))
        except OSError as exc:  # a full or read-only disk costs speed, never the run
            warnings.warn(f"cannot write the embedding cache in {self.folder}: {exc}", stacklevel=2)
            return
        self._seen.add(f"{stem}.keys.npy")
        self._add_shards([(stem, np.load(self.folder / f"{stem}.npy", mmap_mode="r"), keys)])

    def _write_key_file(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.txt"
        if not key_file.exists():
            _atomic_write(key_file, lambda f: f.write(self._encoder_key.encode()))

    def compact(self) -> int:
        """Merge small shards into one file, so that a pass reads few large mapped arrays.

        Which shards: :meth:`_to_merge`. The merged file is
        written in chunks (data, then keys, each under a temp name, then renamed), before
        the merged shards are deleted; a process still reading them keeps its mapping, and
        one opening the folder meanwhile lists it again (:meth:`_open`). Returns the
        number of shards merged (0: nothing to do)."""
        merge = self._to_merge()
        if not merge:
            self._sweep()
            return 0
        at = np.flatnonzero(np.isin(self._shard, merge))
        at = at[np.lexsort((self._row[at], self._shard[at]))]  # each shard read in order
        stem = f"shard-{uuid.uuid4().hex}"
        try:
            if len(at):
                self._write_key_file()
                _atomic_write(self.folder / f"{stem}.npy", lambda f: self._write_rows(f, at))
                keys = self._keys[at]
                _atomic_write(self.folder / f"{stem}.keys.npy", lambda f: np.save(f, keys))
        except OSError as exc:
            warnings.warn(
                f"cannot compact the embedding cache in {self.folder}: {exc}", stacklevel=2
            )
            return 0
        if len(at):
            self._seen.add(f"{stem}.keys.npy")
            sid = self._next_id
            self._next_id += 1
            self._shards[sid] = np.load(self.folder / f"{stem}.npy", mmap_mode="r")
            self._stems[sid] = stem
            self._shard[at] = sid
            self._row[at] = np.arange(len(at), dtype=np.int64)
        for old in merge:
            del self._shards[old]
            old_stem = self._stems.pop(old)
            for name in (f"{old_stem}.keys.npy", f"{old_stem}.npy"):  # keys first: unlisted
                # Mapped elsewhere where that forbids deleting (Windows): a later compact.
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink(missing_ok=True)
        self._sweep()
        return len(merge)

    def _to_merge(self) -> list[int]:
        """The shards :meth:`compact` merges (none, or at least two, or one to clean).

        Tiered, so that a row is rewritten a few times (logarithmic in the number of
        shards) over the cache's life, not once per new shard: from the largest shard down,
        a shard is kept while it holds at least half as many rows as all smaller ones
        together; it and all smaller ones are merged from the first that does not. A shard
        whose rows are mostly indexed from another shard (two processes wrote the same
        rows) is merged too, which drops its copies."""
        live = np.bincount(self._shard, minlength=self._next_id)
        merge = [sid for sid, data in self._shards.items() if 2 * live[sid] < len(data)]
        clean = sorted((s for s in self._shards if s not in merge), key=lambda s: (-live[s], s))
        rest = int(sum(live[s] for s in clean))
        for i, sid in enumerate(clean):
            rest -= int(live[sid])
            if 2 * live[sid] < rest:
                merge += clean[i:]
                break
        if len(merge) == 1 and 2 * live[merge[0]] >= len(self._shards[merge[0]]):
            return []
        return merge

    def _write_rows(self, f: Any, at: np.ndarray) -> None:
        """Write index entries ``at``'s rows as one ``.npy``, a chunk at a time: the cache
        never enters memory whole."""
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (len(at), self.dim),
        }
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(at), _FLUSH_ROWS):
            chunk = at[start : start + _FLUSH_ROWS]
            shard = self._shard[chunk]
            where = Positions(shard, self._row[chunk], self._arrays(shard))
            rows = self.gather(where, np.arange(len(chunk)))[0]
            f.write(np.ascontiguousarray(rows.astype(self.dtype, copy=False)).tobytes())

    def _sweep(self) -> None:
        """Delete leftovers of killed writers: temp files and data files without keys, not
        modified for an hour (a live writer touches its file as it writes)."""
        old = time.time() - 3600
        for path in self.folder.glob("*"):
            name = path.name
            orphan = name.startswith("shard-") and not name.endswith(".keys.npy")
            if orphan and path.with_name(name.removesuffix(".npy") + ".keys.npy").exists():
                continue
            if orphan or (name.startswith(".") and name.endswith(".tmp")):
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < old:
                        path.unlink()

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
        batch, then merge small shards (:meth:`EmbeddingCache.compact`); counts each row
        as a hit or a miss. Returns the number of rows missed."""
        hit = self.cache.contains(keys)
        from transfuse import distributed

        if distributed.active():
            return self._warm_shared(values, keys, hit)
        miss = np.flatnonzero(~hit)
        if len(miss):
            self.fill(values.iloc[miss], keys[miss])
            self.cache.flush()
        self.cache.compact()
        return len(miss)

    def _warm_shared(self, values: pd.Series | pd.DataFrame, keys: np.ndarray, hit: Any) -> int:
        """Under torchrun: each rank embeds its stride of the distinct missing rows and
        writes them; after a barrier every rank reads what all of them wrote, and rank 0
        alone merges shards (the others keep reading the files they mapped)."""
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
        if rank == 0:
            self.cache.compact()
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
