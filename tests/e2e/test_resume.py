"""Crashes and determinism: a training run killed with SIGKILL in the middle of an epoch
resumes with ``--resume`` to the same ``metrics.json`` as a run that was never stopped,
and the same pipeline, data and seed on a CPU always give the same ``metrics.json``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
import runtime_kit as kit

DRIVER = Path(__file__).with_name("resume_driver.py")
STEPS_PER_EPOCH = 4  # 200 rows: 40 test, 32 validation, 128 training rows in batches of 32


@pytest.fixture
def project(tmp_path):
    kit.frame(200).to_csv(tmp_path / "rows.csv", index=False)
    config = kit.config(
        data={"path": "rows.csv"},
        inputs={
            "a": {"encoder": "test.blocking", "column": "a"},
            "b": {"encoder": "test.numeric", "column": "b"},
        },
        fusion={"method": "fusion.concat", "options": {"dim": 16, "dropout": 0.2}},
        train={"epochs": 4, "batch_size": 32, "patience": 10},
    )
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _env(project: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TRANSFUSE_CACHE": str(project / "cache"), **extra}


def _train(project: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(DRIVER), "train", "pipeline.yaml", "--out", out, *extra]
    return subprocess.run(
        args, cwd=project, env=_env(project), capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_metrics_of_an_uninterrupted_run(project):
    marker = project / "blocked"
    block_at = STEPS_PER_EPOCH + 3  # the third step of the second epoch
    child = subprocess.Popen(
        [sys.executable, str(DRIVER), "train", "pipeline.yaml", "--out", "killed"],
        cwd=project,
        env=_env(project, RESUME_BLOCK_AT_STEP=str(block_at), RESUME_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached the step it should be killed at"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    state = project / ".killed.checkpoint" / "checkpoint" / "state.json"
    assert yaml.safe_load(state.read_text())["epoch"] == 0  # the last complete epoch
    assert not (project / "killed").exists()

    resumed = _train(project, "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = _train(project, "straight")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    killed_metrics = (project / "killed" / "metrics.json").read_text()
    assert killed_metrics == (project / "straight" / "metrics.json").read_text()
    assert len(yaml.safe_load(killed_metrics)["history"]) == 4
    assert not (project / ".killed.checkpoint").exists()
    assert not [p.name for p in project.iterdir() if ".tmp" in p.name]


def test_the_same_pipeline_data_and_seed_give_the_same_metrics_json(tmp_path, monkeypatch):
    from transfuse import Pipeline, PluginManager

    monkeypatch.setenv("TRANSFUSE_CACHE", str(tmp_path / "cache"))  # shared: hits differ
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    config = kit.config(
        inputs={
            "a": {"encoder": "test.numeric", "column": "a"},
            "f": {"encoder": "test.frozen", "column": "b", "options": {"dim": 4}},
        },
        fusion={"method": "fusion.attention", "options": {"dim": 16, "dropout": 0.3}},
        train={"epochs": 3, "seed": 7},
    )
    texts = []
    for name in ("first", "second"):
        pipeline = Pipeline.from_config(config, manager=manager).fit(kit.frame(160, seed=2))
        texts.append((pipeline.save(tmp_path / name) / "metrics.json").read_text())
    assert texts[0] == texts[1]
    logs = [yaml.safe_load((tmp_path / n / "log.json").read_text()) for n in ("first", "second")]
    assert logs[0]["epochs"][0]["cache"] != logs[1]["epochs"][0]["cache"]  # second run: hits
    other = kit.config(**{**config, "train": {**config["train"], "seed": 8}})
    changed = Pipeline.from_config(other, manager=manager).fit(kit.frame(160, seed=2))
    assert (changed.save(tmp_path / "third") / "metrics.json").read_text() != texts[0]
