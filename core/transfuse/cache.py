"""The on-disk cache of frozen encoders' outputs, memory-mapped when read.

A frozen encoder never trains, so embedding a row twice is wasted work (for a sentence
transformer or an image backbone, most of a run's time). Each encoder gets a folder named
by a hash of its :meth:`~transfuse.bases.Encoder.cache_key` and output width; inside, rows
are stored in shards (``shard-*.npy`` + ``shard-*.keys.npy``) keyed by a hash of the row's
content (a file path counts with its size and modification time). A changed encoder option
gives a different folder; a corrupt shard is discarded with a warning and recomputed.

The root is ``$TRANSFUSE_CACHE`` when set, else ``platformdirs.user_cache_dir("transfuse")``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections.abc import Iterable
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
_FLUSH_ROWS = 4096


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


def row_keys(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """One content hash per row (``S16``); equal rows give equal keys."""
    if isinstance(values, pd.DataFrame):
        rows: Iterable[bytes] = (
            b"\x1f".join(_content(v) for v in row)
            for row in values.itertuples(index=False, name=None)
        )
    else:
        rows = (_content(v) for v in values.tolist())
    keys = [hashlib.blake2b(r, digest_size=KEY_BYTES).digest() for r in rows]
    return np.array(keys, dtype=f"S{KEY_BYTES}")


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
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._pending: dict[bytes, np.ndarray] = {}
        self._encoder_key = encoder_key
        self._open()

    # -- reading -------------------------------------------------------------------
    def _open(self) -> None:
        if not self.folder.is_dir():
            return
        for keys_path in sorted(self.folder.glob("shard-*.keys.npy")):
            data_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".npy"))
            try:
                keys = np.load(keys_path, allow_pickle=False)
                data = np.load(data_path, mmap_mode="r", allow_pickle=False)
                if keys.ndim != 1 or data.shape != (len(keys), self.dim):
                    raise ValueError(f"shape {data.shape} for {len(keys)} keys")
                if data.dtype != self.dtype:
                    raise ValueError(f"dtype {data.dtype}, expected {self.dtype}")
            except (OSError, ValueError, EOFError) as exc:
                warnings.warn(
                    f"discarding corrupt embedding cache shard {data_path}: {exc}",
                    stacklevel=2,
                )
                for path in (keys_path, data_path):
                    path.unlink(missing_ok=True)
                continue
            shard = len(self._shards)
            self._shards.append(data)
            for row, key in enumerate(keys.tolist()):
                self._index[key] = (shard, row)

    def __len__(self) -> int:
        return len(self._index.keys() | self._pending.keys())

    def fetch(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cached rows for ``keys`` as float32 ``[n, dim]`` and a hit mask (misses are 0)."""
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        hit = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys.tolist()):
            pending = self._pending.get(key)
            if pending is not None:
                out[i] = pending
                hit[i] = True
                continue
            where = self._index.get(key)
            if where is not None:
                out[i] = self._shards[where[0]][where[1]]
                hit[i] = True
        found = int(hit.sum())
        self.hits += found
        self.misses += len(keys) - found
        return out, hit

    # -- writing -------------------------------------------------------------------
    def put(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Remember new rows; they are written at :meth:`flush` (or when many pile up)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape != (len(keys), self.dim):
            raise ValueError(f"rows of shape {rows.shape} for {len(keys)} keys, dim {self.dim}")
        for key, row in zip(keys.tolist(), rows):
            self._pending[key] = row.copy()
        if len(self._pending) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write pending rows as a new shard: data, then keys, each to a temp name first."""
        if not self._pending:
            return
        keys = np.array(list(self._pending), dtype=f"S{KEY_BYTES}")
        data = np.stack(list(self._pending.values())).astype(self.dtype)
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
        shard = len(self._shards)
        self._shards.append(np.load(self.folder / f"{stem}.npy", mmap_mode="r"))
        for row, key in enumerate(keys.tolist()):
            self._index[key] = (shard, row)
        self._pending.clear()

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
    """Embeds rows with a frozen encoder through its cache: only misses are computed."""

    def __init__(self, encoder: Encoder, device: DeviceManager, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.device = device
        self.cache = cache

    @classmethod
    def for_encoder(
        cls, encoder: Encoder, device: DeviceManager, root: Path | None = None
    ) -> FrozenEmbedder:
        """An embedder using the encoder's cache folder under ``root`` (default root); the
        precision is part of the key, since bf16 and fp32 give slightly different rows."""
        key = f"{encoder.cache_key()}|precision={device.precision}"
        return cls(encoder, device, EmbeddingCache(key, encoder.output_dim, root=root))

    def embed(self, values: pd.Series | pd.DataFrame, keys: np.ndarray) -> torch.Tensor:
        """Host float32 ``[B, D]`` embeddings of ``values`` (whose content keys are ``keys``)."""
        import torch

        out, hit = self.cache.fetch(keys)
        if not hit.all():
            miss = np.flatnonzero(~hit)
            batch = self.encoder.prepare(values.iloc[miss])
            self.encoder.eval()
            with self.device.inference():
                emb = self.encoder(self.device.move(batch))
            rows = emb.detach().float().cpu().numpy()
            # Round through the stored dtype, so a computed row equals its cached copy.
            out[miss] = rows.astype(self.cache.dtype).astype(np.float32)
            self.cache.put(keys[miss], rows)
        return torch.from_numpy(out)
