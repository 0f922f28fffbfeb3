"""Fixtures for transfuse-serve: tiny runs trained here, and real uvicorn servers on the
loopback interface (in a thread of the test process)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import transfuse
from transfuse_serve.app import ServeSettings, create_app


def applicants(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Loan applicants: numbers (with gaps), a category (with a gap), a yes/no column, a
    key, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + n),
            "income": rng.lognormal(10.5, 0.5, n).round(2),
            "age": rng.integers(18, 80, n),
            "purpose": rng.choice(["car", "home", "debt"], n),
            "owns_home": rng.random(n) > 0.5,
        }
    )
    frame.loc[frame.index % 11 == 3, "income"] = np.nan
    frame.loc[frame.index % 13 == 5, "purpose"] = None
    score = np.log(frame["income"].fillna(30_000)) - 10.5 + (frame["purpose"] == "debt") * 0.8
    frame["bad"] = (score + 0.3 * rng.normal(size=n) > 0.2).astype(int)
    return frame


@pytest.fixture(name="applicants")
def applicants_fixture() -> Any:
    """:func:`applicants`, for tests (conftest is not importable under importlib mode)."""
    return applicants


TRAIN = {"epochs": 2, "batch_size": 32, "lr": 0.01, "progress": False, "seed": 0, "device": "cpu"}


def train(config: dict[str, Any], frame: pd.DataFrame, out: Path) -> Path:
    """Fit and save a run (the installed plugins provide the encoders)."""
    pipeline = transfuse.Pipeline.from_config(config).fit(frame)
    return pipeline.save(out)


@pytest.fixture(scope="session")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary run over one tabular.mlp input, with a key column."""
    config = {
        "name": "serve-tabular",
        "task": {"type": "binary", "target": "bad"},
        "data": {"key": "id"},
        "inputs": {
            "applicant": {
                "encoder": "tabular.mlp",
                "columns": ["income", "age", "purpose", "owns_home"],
            }
        },
        "fusion": {"method": "fusion.concat", "options": {"dim": 8, "dropout": 0.0}},
        "train": TRAIN,
    }
    return train(config, applicants(), tmp_path_factory.mktemp("serve") / "tabular-run")


def png(kind: int, size: int = 24) -> bytes:
    """A tiny PNG: a dark or a light square."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (40, 40, 40) if kind else (220, 220, 220)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run with an image input (image.timm, a small random network) read from files, and
    the folder the files lie in."""
    base = tmp_path_factory.mktemp("serve-image")
    root = base / "scans"
    root.mkdir()
    frame = applicants(80, seed=1)
    paths = []
    for i, bad in enumerate(frame["bad"]):
        path = root / f"scan_{i}.png"
        path.write_bytes(png(int(bad)))
        paths.append(str(path))
    frame["scan"] = paths
    config = {
        "name": "serve-image",
        "task": {"type": "binary", "target": "bad"},
        "inputs": {
            "applicant": {"encoder": "tabular.mlp", "columns": ["income", "purpose"]},
            "scan": {
                "encoder": "image.timm",
                "column": "scan",
                "options": {"model": "resnet10t", "weights": "none", "image_size": 32},
            },
        },
        "fusion": {"method": "fusion.concat", "options": {"dim": 8, "dropout": 0.0}},
        "train": {**TRAIN, "epochs": 1},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFUSE_CACHE", str(base / "cache"))
        run = train(config, frame, base / "image-run")
    return run, root


class ThreadServer:
    """A real uvicorn server for an app, on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def start(settings: ServeSettings) -> ThreadServer:
    """A server for ``settings`` (the run loaded in this process)."""
    return ThreadServer(create_app(settings))


@pytest.fixture(name="serve_app", scope="session")
def serve_app_fixture() -> Any:
    """:func:`start`, for tests."""
    return start


@pytest.fixture(scope="module")
def tabular_server(tabular_run: Path, needs_loopback: None) -> Iterator[ThreadServer]:
    """The tabular run served with small limits (50 rows, 64 KiB per request)."""
    settings = ServeSettings.checked(tabular_run, max_rows=50, max_body_bytes=64 * 1024)
    server = start(settings)
    yield server
    server.close()


@pytest.fixture
def client(tabular_server: ThreadServer) -> Iterator[Any]:
    """An httpx client of the tabular server."""
    import httpx

    with httpx.Client(base_url=tabular_server.url, timeout=60) as http:
        yield http
