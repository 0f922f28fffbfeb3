"""Rows at scale: a generated table + short-text dataset at 10k, 100k and 1M rows.

Each size runs in its own process (so its peak memory is its own): generate the frame in
chunks (eight numeric application columns, a categorical, a short free-text note of 3-12
words, nearly every note distinct, a label that depends on columns and words), train a
pipeline for four epochs (a small ``tabular.mlp`` + the note through a frozen text
encoder, concat fusion: a light model, so that the data path shows; epoch 1 fills the
embedding cache, epochs 2-4 read it memory-mapped; their median is the cached figure, as
one 0.2 s epoch at 10k rows is at the mercy of a loaded machine), then predict 10% new
rows (new notes: cache misses). Rows per second are compared with the smallest size
measured in the same run; memory is compared with the data's size. A last table times the
cache lookup alone: a batch's rows by a key search (what the data path did per batch
before) against rows located once per split and gathered, before and after shards merge.

The frozen text encoder is ``bench.hashed-text``, defined here: hashed word unigrams ->
a fixed random EmbeddingBag -> L2-normalised 384-wide rows (MiniLM's width, so the cache
holds as many bytes per row as it would with MiniLM). MiniLM itself embeds about 200-500
short texts a second on 2 CPU cores, so a million distinct notes would take 1-2 hours
of MiniLM alone; this encoder costs microseconds a row, which leaves the platform's own
per-row work (hashing, dedupe, cache writes and reads, batching, training) to measure.
``--encoder minilm`` uses the packaged all-MiniLM-L6-v2 instead (for small sizes).

    python bench/scale.py                        # 10k, 100k, 1M rows; 3-4 min on 2 cores
    python bench/scale.py --sizes 10000 100000
    python bench/scale.py --device cuda --precision bf16

``--predict 1000000 10000000`` measures streaming batch scoring instead: one run trained
on 20,000 rows (``--train-rows``), then a generated parquet file per size (written in
chunks, with an ``id`` column) scored by :func:`transfuse.scoring.predict_file` (what
``transfuse predict`` runs) in a child process per size: rows per second and peak memory
(RSS and anonymous heap), which should stay flat as the file grows tenfold.

    python bench/scale.py --predict 1000000 10000000     # 20-25 min on 2 loaded cores
    python bench/scale.py --predict 2000 8000 --encoder minilm --train-rows 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from perfkit import add_device_args, print_table

NUMERIC = [
    "annual_income",
    "debt_to_income",
    "emp_length",
    "credit_limit",
    "credit_utilized",
    "open_lines",
    "inquiries",
    "loan_amount",
]
WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "manager teacher nurse driver engineer owner sales clerk analyst director assistant "
    "supervisor technician officer consultant accountant operator mechanic specialist "
    "coordinator administrator developer cashier server cook pilot agent broker designer "
    "retired self employed contractor student part time full senior junior lead chief "
    "night shift county city state federal school hospital bank store warehouse office "
    "repair medical legal retail construction trucking farm restaurant hotel software "
    "consolidate debt credit card pay off medical bills home improvement car vacation "
    "wedding moving business expansion equipment inventory taxes refinance lower rate "
    "kitchen roof bathroom tuition loan payday emergency family baby holiday solar"
).split()
RISKY = {"payday", "emergency", "taxes", "student", "moving"}


# -- the cheap frozen text encoder ------------------------------------------------------


def _encoder_classes() -> tuple[type, type]:
    """``bench.hashed-text``'s options and encoder (built lazily: torch is heavy)."""
    import torch
    from pydantic import Field
    from torch import nn

    from transfuse import Options
    from transfuse.bases import Encoder

    class HashedTextOptions(Options):
        dim: int = Field(default=384, ge=1)
        buckets: int = Field(default=2**14, ge=16)

    class HashedTextEncoder(Encoder):
        """Hashed word unigrams -> fixed random EmbeddingBag -> L2-normalised rows."""

        frozen = True

        def __init__(self, options: HashedTextOptions, device: Any) -> None:
            super().__init__(options, device)
            self.output_dim = options.dim
            self.bag = nn.EmbeddingBag(options.buckets, options.dim, mode="sum")
            with torch.no_grad():
                gen = torch.Generator().manual_seed(0)
                self.bag.weight.copy_(torch.randn(options.buckets, options.dim, generator=gen))
            self.bag.requires_grad_(False)
            from sklearn.feature_extraction.text import HashingVectorizer

            self.hasher = HashingVectorizer(
                n_features=options.buckets, alternate_sign=False, norm=None
            )

        def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
            return values.isna().to_numpy()

        def lengths(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
            return values.fillna("").astype(str).str.len().to_numpy()

        def prepare(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
            counts = self.hasher.transform(values.fillna("").astype(str).tolist()).tocsr()
            return {
                "ids": torch.from_numpy(counts.indices.astype(np.int64)),
                "offsets": torch.from_numpy(counts.indptr[:-1].astype(np.int64)),
                "weights": torch.from_numpy(counts.data.astype(np.float32)),
            }

        def forward(self, batch: dict[str, Any]) -> Any:
            out = self.bag(batch["ids"], batch["offsets"], per_sample_weights=batch["weights"])
            return torch.nn.functional.normalize(out, dim=1)

    return HashedTextOptions, HashedTextEncoder


def __getattr__(name: str) -> Any:  # the entry's factory names this module's classes
    if name in ("HashedTextOptions", "HashedTextEncoder"):
        options, encoder = _encoder_classes()
        globals().update(HashedTextOptions=options, HashedTextEncoder=encoder)
        return globals()[name]
    raise AttributeError(name)


def register_encoder() -> None:
    """Register ``bench.hashed-text`` with the default plugin manager."""
    from transfuse import EncoderEntry, get_plugin_manager, hookimpl

    module = sys.modules[__name__]
    options = module.HashedTextOptions

    class Plugin:
        @hookimpl
        def transfuse_encoders(self) -> list[EncoderEntry]:
            return [
                EncoderEntry(
                    name="bench.hashed-text",
                    modality="text",
                    factory=f"{__name__}:HashedTextEncoder",
                    options=options,
                    description="Hashed words -> fixed random projection (bench/scale.py).",
                )
            ]

    get_plugin_manager().register(Plugin(), name="bench-scale", distribution="bench-scale")


# -- data ---------------------------------------------------------------------------------


def generate(n: int, seed: int, chunk: int = 200_000) -> pd.DataFrame:
    """``n`` rows, built ``chunk`` rows at a time with vectorised numpy."""
    parts = []
    words = np.array(WORDS, dtype=object)
    risky = np.isin(words, list(RISKY))
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)  # Zipf-like word frequencies
    weights /= weights.sum()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, len(NUMERIC))).astype(np.float32)
        count = rng.integers(3, 13, size=m)
        picks = rng.choice(len(WORDS), size=(m, 12), p=weights)
        used = np.arange(12)[None, :] < count[:, None]
        has_risky = (risky[picks] & used).any(axis=1)
        number = rng.integers(0, 100_000, size=m).astype(str)  # makes nearly every note distinct
        notes = [
            " ".join(row[:k]) + " " + num
            for row, k, num in zip(words[picks].tolist(), count.tolist(), number, strict=True)
        ]
        logit = 0.8 * x[:, 0] - 0.6 * x[:, 1] + 0.4 * x[:, 7] + 1.2 * has_risky - 0.5
        y = (rng.random(m) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        frame = pd.DataFrame(x, columns=NUMERIC)
        frame["purpose"] = pd.Categorical.from_codes(
            rng.integers(0, 6, size=m), ["car", "card", "debt", "home", "medical", "other"]
        )
        frame["note"] = notes
        frame["bad"] = y
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def config(args: argparse.Namespace) -> dict[str, Any]:
    encoder = "bench.hashed-text" if args.encoder == "hashed" else "text.sentence-transformer"
    return {
        "name": "scale",
        "task": {"type": "binary", "target": "bad"},
        "data": {"test_size": 0.1, "validation_size": 0.1},
        "inputs": {
            "applicant": {
                "encoder": "tabular.mlp",
                "columns": [*NUMERIC, "purpose"],
                "options": {"dim": 32, "hidden": 64, "embedding_dim": 8},
            },
            "note": {"encoder": encoder, "column": "note"},
        },
        "fusion": {"method": "fusion.concat", "options": {"dim": 64}},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": 1e-3,
            "patience": 1000,
            "device": args.device,
            "precision": args.precision,
            "progress": False,
            "seed": 0,
        },
    }


# -- memory -------------------------------------------------------------------------------


class PeakAnon:
    """Samples this process's anonymous resident memory (heap, not mapped files) and keeps
    the peak: the memory-mapped cache's pages are file-backed and the kernel can drop them."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak = 0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __enter__(self) -> PeakAnon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- one size (in a child process) ----------------------------------------------------------


def one_size(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, fit and predict ``args.rows`` rows; the figures as a dict."""
    work = Path(tempfile.mkdtemp(prefix="transfuse-scale-"))
    import torch

    from transfuse import Pipeline

    torch.set_num_threads(args.threads)
    register_encoder()
    os.environ["TRANSFUSE_CACHE"] = str(work / "warm-up")
    Pipeline.from_config(config(args)).fit(generate(2000, seed=2))  # imports, allocator
    os.environ["TRANSFUSE_CACHE"] = str(work / "cache")  # empty: epoch 1 is cold
    base_anon = PeakAnon.now()  # after imports and a 2,000-row fit
    started = time.perf_counter()
    frame = generate(args.rows, seed=0)
    generated = time.perf_counter() - started
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    new = generate(max(1, args.rows // 10), seed=1).drop(columns=["bad"])
    frame_anon = PeakAnon.now()  # the rows are in memory: what the pipeline adds is measured
    with PeakAnon() as anon:
        started, cpu = time.perf_counter(), time.process_time()
        pipeline = Pipeline.from_config(config(args)).fit(frame)
        fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        scores = pipeline.predict(new)
        predict_s, predict_cpu = time.perf_counter() - started, time.process_time() - cpu
    history = pipeline.metrics["history"]
    train_rows = len(pipeline.splits.train)
    return {
        "rows": args.rows,
        "train_rows": train_rows,
        "generate_s": generated,
        "fit_s": fit_s,
        "fit_cpu": fit_cpu,
        "epoch_s": [h["seconds"] for h in history],
        "predict_rows": len(new),
        "predict_s": predict_s,
        "predict_cpu": predict_cpu,
        "auc": pipeline.metrics["test"].get("roc_auc"),
        "scored": int(np.isfinite(scores.to_numpy()).all(axis=1).sum()),
        "frame_bytes": frame_bytes,
        "cache_bytes": folder_bytes(work / "cache"),
        "base_anon": base_anon,
        "frame_anon": frame_anon,
        "peak_anon": anon.peak,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(),
    }


# -- streaming batch scoring ----------------------------------------------------------------


def write_parquet(path: Path, n: int, seed: int, chunk: int = 200_000) -> int:
    """``n`` generated rows (no label, an ``id``) written ``chunk`` rows at a time, so a
    10M-row file never sits in memory; returns the file's size in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part = generate(m, seed=seed * 100_003 + start, chunk=m).drop(columns=["bad"])
        part.insert(0, "id", np.arange(start, start + m, dtype=np.int64))
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path.stat().st_size


def score_file(args: argparse.Namespace) -> dict[str, Any]:
    """Score ``args.data`` with the run in ``args.run`` (in a child process)."""
    import torch

    import transfuse
    from transfuse.scoring import predict_file

    torch.set_num_threads(args.threads)
    register_encoder()
    pipeline = transfuse.load(args.run, device=args.device)
    out = Path(args.data).with_name(Path(args.data).stem + "-scores.parquet")
    base_anon, base_rss = PeakAnon.now(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with PeakAnon() as anon:
        started, cpu = time.perf_counter(), time.process_time()
        summary = predict_file(pipeline, args.data, out, keep=["id"], chunk_rows=args.chunk_rows)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    import pyarrow.parquet as pq

    written = pq.ParquetFile(out).metadata.num_rows
    out.unlink()
    return {
        "rows": summary.rows,
        "written": written,
        "chunks": summary.chunks,
        "seconds": seconds,
        "cpu": cpu,
        "base_anon": base_anon,
        "peak_anon": anon.peak,
        "base_rss": base_rss * 1024,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(),
    }


def predict_mode(args: argparse.Namespace) -> None:
    """Train one run, generate a parquet file per size and score each in a child."""
    from perfkit import machine

    from transfuse import Pipeline

    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="transfuse-scale-predict-"))
    register_encoder()
    os.environ["TRANSFUSE_CACHE"] = str(work / "cache")
    train_args = argparse.Namespace(**{**vars(args), "epochs": 2})
    pipeline = Pipeline.from_config(config(train_args)).fit(generate(args.train_rows, seed=0))
    pipeline.save(work / "run")
    results = []
    for size in args.predict:
        data = work / f"rows-{size}.parquet"
        started = time.perf_counter()
        file_bytes = write_parquet(data, size, seed=1)
        made = time.perf_counter() - started
        cmd = [sys.executable, __file__, "--score", str(data), "--run", str(work / "run")]
        cmd += ["--device", args.device, "--precision", args.precision, "--encoder", args.encoder]
        cmd += ["--threads", str(args.threads), "--chunk-rows", str(args.chunk_rows)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        data.unlink()
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            raise SystemExit(f"scoring {size} rows failed (exit {done.returncode})")
        r = json.loads(lines[-1].removeprefix("RESULT "))
        r["file_bytes"], r["generate_s"] = file_bytes, made
        results.append(r)
        print(
            f"  {size:,} rows ({mb(file_bytes)} MB parquet, made in {made:.0f} s): scored in "
            f"{r['seconds']:.0f} s, peak RSS {mb(r['peak_rss'])} MB, load "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
    base = results[0]
    rows = []
    for r in results:
        assert r["written"] == r["rows"]
        rate = r["rows"] / r["seconds"]
        rss = r["peak_rss"] - r["base_rss"]
        rows.append(
            [
                f"{r['rows']:,}",
                mb(r["file_bytes"]),
                f"{r['chunks']:,}",
                f"{rate:,.0f} ({rate / (base['rows'] / base['seconds']):.2f})",
                f"{r['rows'] / r['cpu']:,.0f}",
                mb(r["base_rss"]),
                f"{mb(r['peak_rss'])} ({r['peak_rss'] / base['peak_rss']:.2f})",
                f"{mb(rss)}",
                f"{mb(r['peak_anon'] - r['base_anon'])}",
            ]
        )
    header = [
        "rows scored",
        "parquet MB",
        "chunks",
        "rows/s wall (x smallest)",
        "rows per CPU s",
        "RSS after load MB",
        "peak RSS MB (x smallest)",
        "peak RSS added by scoring MB",
        "peak heap added MB",
    ]
    print_table(
        f"Streaming batch scoring (transfuse predict's path): {args.encoder} text encoder "
        f"(frozen) + tabular.mlp, concat fusion, parquet in -> parquet out, "
        f"{args.chunk_rows:,}-row chunks, {args.threads} torch thread(s)",
        header,
        rows,
    )


# -- the cache lookup alone -----------------------------------------------------------------


def lookup(rows: int, batch: int, dim: int = 384, reps: int = 200) -> list[str]:
    """Milliseconds a batch to read ``batch`` random rows of a ``rows``-row cache written in
    16,384-row shards: by key search (:meth:`EmbeddingCache.fetch`), and from rows located
    once (:meth:`~EmbeddingCache.locate`, :meth:`~EmbeddingCache.gather`), before and after
    the shards merge (:meth:`~EmbeddingCache.compact`); interleaved, best of three."""
    from transfuse.cache import EmbeddingCache

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="transfuse-lookup-") as root:
        cache = EmbeddingCache("lookup", dim, root=Path(root))
        keys = np.frombuffer(rng.bytes(16 * rows), dtype="S16")
        for start in range(0, rows, 16384):
            part = keys[start : start + 16384]
            cache.put(part, rng.standard_normal((len(part), dim), dtype=np.float32))
        cache.flush()
        shards = len(cache._shards)
        started = time.perf_counter()
        where = cache.locate(keys)
        locate_s = time.perf_counter() - started
        takes = [rng.integers(0, rows, batch) for _ in range(reps)]

        def per_batch(read: Any) -> float:
            started = time.perf_counter()
            for take in takes:
                read(take)
            return (time.perf_counter() - started) / reps * 1e3

        search = lambda take: cache.fetch(keys[take], count=False)  # noqa: E731
        spread = lambda take: cache.gather(where, take)  # noqa: E731
        for take in takes:  # the pages in memory, as after a cold epoch
            spread(take)
        timed = [(per_batch(search), per_batch(spread)) for _ in range(3)]
        cache.compact()
        merged = cache.locate(keys)
        one = min(per_batch(lambda take: cache.gather(merged, take)) for _ in range(3))
    best = [min(t[i] for t in timed) for i in range(2)]
    return [
        f"{rows:,}",
        f"{shards}",
        f"{best[0]:.2f}",
        f"{best[1]:.2f}",
        f"{one:.2f}",
        f"{best[0] / one:.1f}x",
        f"{locate_s * 1e3:,.0f}",
    ]


# -- the driver ----------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=4, help="epoch 1 cold, the rest cached")
    parser.add_argument("--encoder", choices=["hashed", "minilm"], default="hashed")
    parser.set_defaults(threads=1)  # one torch thread: CPU seconds measure the work
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)  # one size, in a child
    parser.add_argument(
        "--predict", type=int, nargs="+", help="measure streaming batch scoring at these sizes"
    )
    parser.add_argument("--chunk-rows", type=int, default=65_536, help="rows scored at a time")
    parser.add_argument(
        "--train-rows", type=int, default=20_000, help="rows the --predict run is trained on"
    )
    parser.add_argument("--score", help=argparse.SUPPRESS)  # a parquet file, in a child
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows is not None:
        print("RESULT " + json.dumps(one_size(args)))
        return
    if args.score is not None:
        args.data = args.score
        print("RESULT " + json.dumps(score_file(args)))
        return
    if args.predict:
        predict_mode(args)
        return
    from perfkit import machine

    print(f"machine: {machine()}")
    results = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--rows", str(size), "--batch-size", str(args.batch_size)]
        cmd += ["--epochs", str(args.epochs)]
        cmd += ["--device", args.device, "--precision", args.precision, "--encoder", args.encoder]
        cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            raise SystemExit(f"the {size}-row run failed (exit {done.returncode})")
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
        r = results[-1]
        print(
            f"  {size:,} rows: fit {r['fit_s']:.1f} s ({r['fit_cpu']:.1f} s CPU), epochs "
            f"{', '.join(f'{e:.1f}' for e in r['epoch_s'])} s, predict {r['predict_s']:.1f} s, "
            f"peak heap {mb(r['peak_anon'])} MB, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    base = results[0]

    def per_s(r: dict[str, Any]) -> dict[str, float]:
        cold, warm = r["epoch_s"][0], float(np.median(r["epoch_s"][1:]))
        return {
            "fit": r["rows"] / r["fit_s"],
            "fit_cpu": r["rows"] / r["fit_cpu"],
            "cold": r["train_rows"] / cold,
            "warm": r["train_rows"] / warm,
            "predict": r["predict_rows"] / r["predict_s"],
            "predict_cpu": r["predict_rows"] / r["predict_cpu"],
        }

    b = per_s(base)
    rows = []
    for r in results:
        s = per_s(r)
        rows.append(
            [
                f"{r['rows']:,}",
                f"{s['fit_cpu']:,.0f} ({s['fit_cpu'] / b['fit_cpu']:.2f})",
                f"{s['fit']:,.0f} ({s['fit'] / b['fit']:.2f})",
                f"{s['cold']:,.0f} ({s['cold'] / b['cold']:.2f})",
                f"{s['warm']:,.0f} ({s['warm'] / b['warm']:.2f})",
                f"{s['predict_cpu']:,.0f} ({s['predict_cpu'] / b['predict_cpu']:.2f})",
                f"{s['predict']:,.0f} ({s['predict'] / b['predict']:.2f})",
                f"{r['auc']:.3f}",
            ]
        )
    header = [
        "rows",
        "fit rows per CPU s (x smallest)",
        "fit rows/s wall (x)",
        "epoch 1 wall, cold cache (x)",
        f"cached epochs 2-{args.epochs} wall, median (x)",
        "predict rows per CPU s (x)",
        "predict rows/s wall (x)",
        "test AUC",
    ]
    title = (
        f"Throughput: {args.encoder} text encoder (frozen), tabular.mlp, concat fusion, "
        f"batch {args.batch_size}, {args.epochs} epochs, {args.threads} torch thread(s); ratios "
        "against the "
        f"{base['rows']:,}-row run"
    )
    print_table(title, header, rows)
    mem = []
    for r in results:
        data = r["frame_bytes"] + r["cache_bytes"]
        extra = r["peak_anon"] - r["frame_anon"]
        base_extra = base["peak_anon"] - base["frame_anon"]
        mem.append(
            [
                f"{r['rows']:,}",
                mb(r["frame_bytes"]),
                mb(r["cache_bytes"]),
                f"{data / (base['frame_bytes'] + base['cache_bytes']):.0f}x",
                mb(extra),
                f"{extra / base_extra:.1f}x",
                f"{extra / data:.2f}",
                mb(r["peak_rss"]),
            ]
        )
    header = [
        "rows",
        "frame MB",
        "embedding cache on disk MB",
        "data: frame + cache (x smallest)",
        "peak heap added by fit + predict MB",
        "added heap (x smallest)",
        "added heap / data",
        "peak RSS MB (incl. libraries, mapped cache)",
    ]
    print_table(
        f"Memory (heap after imports and a 2,000-row warm-up fit: {mb(base['base_anon'])} MB; "
        "the generated rows are in memory before fit starts)",
        header,
        mem,
    )
    header = [
        "cached rows",
        "shards",
        "key search a batch ms (before)",
        "located once, gather ms",
        "merged into one file, gather ms (now)",
        "before / now",
        "locating every row once ms",
    ]
    table = [lookup(size, args.batch_size) for size in args.sizes]
    print_table(
        f"Cache lookup alone: {args.batch_size} random rows a batch, 384 wide, 16,384-row shards",
        header,
        table,
    )


if __name__ == "__main__":
    main()
