"""The derived demo assets: a statement chart and a call clip per row, cached on disk.

``enrich`` adds the columns ``statement_png`` and ``call_wav`` (file paths) to a table.
Files are named ``<key>-<digest>.<ext>`` where the digest hashes the generator's code, the
figure scales and the row's values, so a changed generator or row gets a new file and an
unchanged one is reused. Writes are atomic (temporary file, then rename), so a killed run
leaves no half-written file behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transfuse import DataError
from transfuse_finance import render
from transfuse_finance.render import Figure

__all__ = ["AUDIO_COLUMN", "IMAGE_COLUMN", "AssetSpec", "Enrichment", "cache_root", "enrich"]

IMAGE_COLUMN = "statement_png"
AUDIO_COLUMN = "call_wav"
#: Rows to generate before a process pool pays for its start-up.
PARALLEL_MIN = 1500
_CHUNK = 250


def _generator_digest() -> str:
    """A hash of the drawing code: editing it invalidates every cached file."""
    code = Path(render.__file__).read_bytes()
    return hashlib.sha256(code).hexdigest()


_GENERATOR = _generator_digest()


@dataclass(frozen=True)
class AssetSpec:
    """What a source's assets show: its folder name, its row key and its figures."""

    name: str
    key: str
    figures: tuple[Figure, ...]

    def fingerprint(self) -> bytes:
        """Bytes that change when the generator or the figure scales change."""
        return f"{_GENERATOR}|{self.figures!r}".encode()


@dataclass(frozen=True)
class Enrichment:
    """What one ``enrich`` call did: files written, files reused, where, how long."""

    generated: int
    reused: int
    directory: Path
    seconds: float


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder for generated files: ``cache_dir``, else ``$TRANSFUSE_CACHE/finance``,
    else the user cache folder (``platformdirs``) ``.../transfuse/finance``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TRANSFUSE_CACHE")
    if env:
        return Path(env).expanduser() / "finance"
    import platformdirs

    return Path(platformdirs.user_cache_dir("transfuse")) / "finance"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render_jobs(figures: tuple[Figure, ...], jobs: Sequence[tuple[list[float], str, str]]) -> int:
    """Write the PNG and WAV of each job (values, png path or '', wav path or '');
    returns the number of files written. Runs in pool workers too."""
    written = 0
    for values, png, wav in jobs:
        if png:
            _write_atomic(Path(png), render.statement_png(figures, values))
            written += 1
        if wav:
            _write_atomic(Path(wav), render.call_wav(figures, values))
            written += 1
    return written


def _left_out(
    spec: AssetSpec, keys: Sequence[object], modality: str, fraction: float
) -> np.ndarray:
    """Rows whose asset of ``modality`` is left out (None), chosen by a hash of the key."""
    if fraction <= 0:
        return np.zeros(len(keys), dtype=bool)
    draws = [
        int(hashlib.sha256(f"{spec.name}:{key}:{modality}".encode()).hexdigest()[:8], 16) / 2**32
        for key in keys
    ]
    return np.asarray(draws) < fraction


def enrich(
    frame: pd.DataFrame,
    spec: AssetSpec,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    missing: float = 0.0,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[pd.DataFrame, Enrichment]:
    """Add ``statement_png`` and ``call_wav`` path columns, generating missing files.

    ``missing`` leaves that fraction of rows without an image and (independently) without
    audio, to exercise missing modalities. ``workers`` bounds the process pool used for
    large batches (default: the CPU count).
    """
    start = time.perf_counter()
    columns = [f.column for f in spec.figures]
    absent = [c for c in [spec.key, *columns] if c not in frame.columns]
    if absent:
        raise DataError(
            f"cannot draw assets: columns {absent} are missing",
            where=spec.name,
            fix="enrich the table the source returned, before dropping columns",
        )
    directory = cache_root(cache_dir) / spec.name
    directory.mkdir(parents=True, exist_ok=True)
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    keys = frame[spec.key].tolist()
    no_image = _left_out(spec, keys, "image", missing)
    no_audio = _left_out(spec, keys, "audio", missing)
    prefix = spec.fingerprint()
    images: list[str | None] = []
    sounds: list[str | None] = []
    jobs: list[tuple[list[float], str, str]] = []
    reused = 0
    for i, key in enumerate(keys):
        digest = hashlib.sha256(prefix + values[i].tobytes()).hexdigest()[:16]
        png = "" if no_image[i] else str(directory / f"{key}-{digest}.png")
        wav = "" if no_audio[i] else str(directory / f"{key}-{digest}.wav")
        images.append(png or None)
        sounds.append(wav or None)
        todo_png = png if png and not os.path.exists(png) else ""
        todo_wav = wav if wav and not os.path.exists(wav) else ""
        reused += bool(png and not todo_png) + bool(wav and not todo_wav)
        if todo_png or todo_wav:
            jobs.append((values[i].tolist(), todo_png, todo_wav))
    generated = _run(spec, jobs, progress=progress, workers=workers)
    text = pd.StringDtype(na_value=np.nan)
    out = frame.assign(
        **{
            IMAGE_COLUMN: pd.Series(images, index=frame.index, dtype=text),
            AUDIO_COLUMN: pd.Series(sounds, index=frame.index, dtype=text),
        }
    )
    report = Enrichment(generated, reused, directory, time.perf_counter() - start)
    return out, report


def _run(
    spec: AssetSpec,
    jobs: list[tuple[list[float], str, str]],
    *,
    progress: bool,
    workers: int | None,
) -> int:
    """Generate the files of ``jobs``, in a process pool when there are many."""
    if not jobs:
        return 0
    from rich.progress import Progress

    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    written = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"drawing {spec.name} statements and calls", total=len(jobs))
        if workers == 1 or len(jobs) < PARALLEL_MIN:
            for chunk in chunks:
                written += _render_jobs(spec.figures, chunk)
                bar.advance(task, len(chunk))
            return written
        # fork: the workers need no re-import of the caller's script (spawn would).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [(pool.submit(_render_jobs, spec.figures, c), len(c)) for c in chunks]
            for future, size in futures:
                written += future.result()
                bar.advance(task, size)
    return written
