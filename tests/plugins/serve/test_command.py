"""The ``transfuse serve`` command: a real server process, and its start-up errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transfuse.cli import main

SCRIPT = [sys.executable, "-m", "transfuse.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_is_a_command_of_the_installed_plugin(capsys):
    assert main(["plugins", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    serve = next(r for r in records if r["distribution"] == "transfuse-serve")
    assert serve["status"] == "active"
    (entry,) = serve["components"]
    assert (entry["name"], entry["kind"]) == ("serve", "command")


def test_the_command_serves_a_run_until_interrupted(tabular_run, needs_loopback, tmp_path):
    import httpx

    port = free_port()
    env = {**os.environ, "TRANSFUSE_CACHE": str(tmp_path / "cache")}
    command = [*SCRIPT, "serve", str(tabular_run), "--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[0].decode()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        row = {"id": 7, "income": 41000.0, "age": 30, "purpose": "debt", "owns_home": False}
        answer = httpx.post(f"{url}/predict", json=row, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"]["id"] == 7
        assert httpx.post(f"{url}/predict", content=b"{", timeout=30).status_code == 422
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output[-2000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "{tmp}/no-run"], "RUN {tmp}/no-run: no such run directory"),
        (["serve", "{tmp}", "--port", "{port}"], "{tmp}: not a complete transfuse run"),
        (["serve", "{run}", "--root", "{tmp}/absent"], "--root {tmp}/absent: no such folder"),
        (["serve", "{run}", "--port", "0"], "--port: port 0"),
        (["serve", "{run}", "--workers", "0"], "--workers: 0 workers"),
        (["serve", "{run}", "--max-rows", "0"], "--max-rows: 0 rows per request"),
    ],
    ids=["no-run", "not-a-run", "no-root", "bad-port", "no-workers", "no-rows"],
)
def test_a_bad_start_exits_2_with_one_line(tabular_run, tmp_path, capsys, args, message):
    argv = [a.format(tmp=tmp_path, run=tabular_run, port=free_port()) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err


def test_a_port_in_use_exits_2_naming_it(tabular_run, needs_loopback, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(tabular_run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


def test_the_settings_reach_every_worker_process(tabular_run, monkeypatch):
    from transfuse_serve.app import ENV, ServeSettings, app_from_env

    settings = ServeSettings.checked(tabular_run, max_rows=7)
    monkeypatch.setenv(ENV, json.dumps(settings.__dict__))
    app = app_from_env()
    assert app.state.scorer.settings == settings
    assert Path(app.state.scorer.settings.run) == Path(tabular_run).absolute()


def test_serve_help_imports_neither_the_web_stack_nor_torch():
    probe = (
        "import sys\nfrom transfuse.cli import main\ntry:\n    main(['serve', '--help'])\n"
        "except SystemExit:\n    pass\nprint(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--root ROOT" in done.stdout
    imported = set(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))
    assert "transfuse_serve" in imported  # the command's module was imported for its help
    assert not imported & {"torch", "fastapi", "uvicorn", "starlette", "pandas", "numpy"}
