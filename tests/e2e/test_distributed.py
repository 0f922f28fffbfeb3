"""Data-parallel training under ``torchrun`` on the CPU (gloo).

Two ranks train the tiny multimodal pipeline (a table row, a note, a statement image and
a call, the last two frozen and cached) with ``transfuse train`` and nothing else changed,
and must end where one process ends with the same global batch (``train.batch_size`` is
the global batch). Dropout is off so that both runs draw no random numbers during
training; what is left is the order of float sums in the gradients' all-reduce, hence
``TOLERANCE``. Every job starts with ``--standalone`` (a free port of its own) and a
timeout, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

for plugin in ("transfuse_tabular", "transfuse_text", "transfuse_image", "transfuse_audio"):
    pytest.importorskip(plugin)

import transfuse  # noqa: E402
from transfuse.plugins import reset_plugin_manager  # noqa: E402

# slow; skipped where 127.0.0.1 cannot be reached (torchrun would wait for its peers forever)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_loopback")]

ROOT = Path(__file__).resolve().parents[2]
#: Two ranks against one process: metrics, losses (absolute difference).
TOLERANCE = 1e-4
TIMEOUT = 300  # seconds for one torchrun job; a hang ends the test, not the suite

PIPELINE = """
name: distributed-tiny
task: {type: binary, target: bad}
data: {path: rows.csv, test_size: 0.25, validation_size: 0.25}
inputs:
  applicant: {encoder: tabular.mlp, columns: [income, employment], options: {dropout: 0.0}}
  note: {encoder: text.bag-of-words, column: note, options: {buckets: 512}}
  statement: {encoder: image.timm, column: statement, options: {image_size: 32, frozen: true}}
  call:
    encoder: audio.mel-cnn
    column: call
    options: {duration: 0.5, channels: [4, 8], dim: 16, frozen: true}
fusion: {method: fusion.concat, options: {dim: 16, dropout: 0.0}}
train: {epochs: 3, batch_size: 32, lr: 3.0e-3, progress: false, seed: 0, device: cpu}
"""

TRANSFER = """
transfer:
  from: single
  strategies: [layer-map, {gradual-unfreeze: {every_epochs: 1}}, {l2sp: {alpha: 0.01}}]
"""


def make_rows(folder: Path, n: int) -> None:
    """The quickstart's applicants (examples/quickstart/make_data.py) as ``rows.csv``."""
    path = ROOT / "examples" / "quickstart" / "make_data.py"
    spec = importlib.util.spec_from_file_location("quickstart_make_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = module.make_frame(n, folder, seed=0)
    for column in ("statement", "call"):
        frame[column] = frame[column].map(lambda v: str(folder / v) if isinstance(v, str) else None)
    frame.to_csv(folder / "rows.csv", index=False)


def torchrun(args: list[str], folder: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """Two CPU ranks on this machine, on a port of their own."""
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    env["TRANSFUSE_CACHE"] = str(cache)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return subprocess.run(
        [*command, "--nproc_per_node=2", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def transfuse_command() -> str:
    """The installed ``transfuse`` script, as a user hands it to torchrun."""
    script = Path(sys.executable).with_name("transfuse")
    return str(script) if script.exists() else str(ROOT / "core" / "transfuse" / "cli.py")


def cache_shards(cache: Path) -> dict[str, list[np.ndarray]]:
    """Each frozen encoder's cache folder -> the keys of each of its shards."""
    return {
        folder.name: [np.load(p) for p in sorted(folder.glob("shard-*.keys.npy"))]
        for folder in sorted((cache / "embeddings").iterdir())
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process and two ranks train the same pipeline, each with a fresh cache."""
    folder = tmp_path_factory.mktemp("distributed")
    make_rows(folder, 240)
    (folder / "pipeline.yaml").write_text(PIPELINE, "utf-8")
    reset_plugin_manager(None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFUSE_CACHE", str(folder / "cache-single"))
        single = transfuse.Pipeline.from_yaml(folder / "pipeline.yaml").fit()
        single.save(folder / "single")
    job = torchrun(
        [transfuse_command(), "train", "pipeline.yaml", "--out", "ranks"],
        folder,
        folder / "cache-ranks",
    )
    assert job.returncode == 0, job.stderr[-3000:]
    return {"folder": folder, "single": single, "job": job}


def assert_close(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    assert set(ours) == set(theirs), where
    for name, value in theirs.items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        assert abs(ours[name] - value) <= TOLERANCE, f"{where} {name}: {ours[name]} vs {value}"


def test_two_ranks_end_with_the_metrics_of_one_process(runs):
    ranks = json.loads((runs["folder"] / "ranks" / "metrics.json").read_text("utf-8"))
    single = runs["single"].metrics
    for split in ("validation", "test"):
        assert_close(ranks[split], single[split], split)
    assert ranks["best_epoch"] == single["best_epoch"]
    for ours, theirs in zip(ranks["history"], single["history"], strict=True):
        assert abs(ours["train_loss"] - theirs["train_loss"]) <= TOLERANCE
        assert abs(ours["validation"]["loss"] - theirs["validation"]["loss"]) <= TOLERANCE


def test_only_rank_zero_writes_the_run_and_reports(runs):
    folder, job = runs["folder"], runs["job"]
    assert job.stdout.count("trained distributed-tiny") == 1, job.stdout
    assert (folder / "ranks" / "report.md").is_file()
    env = json.loads((folder / "ranks" / "environment.json").read_text("utf-8"))
    assert env["device"]["world_size"] == 2 and env["device"]["backend"] == "gloo"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".ranks")]


def test_the_ranks_fill_the_embedding_cache_with_each_row_once(runs):
    folder = runs["folder"]
    single, ranks = cache_shards(folder / "cache-single"), cache_shards(folder / "cache-ranks")
    assert set(ranks) == set(single) and len(ranks) == 2  # the image and the call encoder
    for name, shards in ranks.items():
        keys = np.concatenate(shards)
        assert len(np.unique(keys)) == len(keys)  # no row embedded twice
        assert set(keys.tolist()) == set(np.concatenate(single[name]).tolist())
    # Who embedded which rows cannot be read from the shards here (rank 0 merges them after
    # a fill); test_cache_compact checks that each rank embeds its stride of the misses.


def test_strategies_that_freeze_groups_and_add_a_loss_match_one_process(runs):
    folder = runs["folder"]
    (folder / "target.yaml").write_text(PIPELINE + TRANSFER, "utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFUSE_CACHE", str(folder / "cache-single"))
        single = transfuse.transfer(folder / "target.yaml", folder / "single").pipeline
    job = torchrun(
        [transfuse_command(), "train", "target.yaml", "--out", "ranks-transfer"],
        folder,
        folder / "cache-ranks",
    )
    assert job.returncode == 0, job.stderr[-3000:]
    ranks = json.loads((folder / "ranks-transfer" / "metrics.json").read_text("utf-8"))
    assert ranks["transfer"]["strategies"] == single.metrics["transfer"]["strategies"]
    assert_close(ranks["test"], single.metrics["test"], "test")
    assert ranks["best_epoch"] == single.metrics["best_epoch"]


FAILING_RANK = """
import os
import numpy as np
import pandas as pd
import transfuse
from transfuse import NoOptions
from transfuse.bases import TransferStrategy

class FailOnRankOne(TransferStrategy):
    def on_step_end(self, step):
        if os.environ["RANK"] == "1" and step == 1:
            raise RuntimeError("rank 1 fails on purpose at step 1")

rng = np.random.default_rng(0)
frame = pd.DataFrame({"x": rng.normal(size=200), "z": rng.normal(size=200)})
frame["y"] = (frame["x"] > 0).astype(int)
config = {
    "name": "failing",
    "task": {"type": "binary", "target": "y"},
    "inputs": {"row": {"encoder": "tabular.mlp", "columns": ["x", "z"]}},
    "train": {"epochs": 50, "batch_size": 16, "progress": False, "device": "cpu"},
}
pipeline = transfuse.Pipeline.from_config(config)
pipeline.fit(frame, strategies=[FailOnRankOne(NoOptions(), None)])
"""


def test_a_rank_that_raises_ends_the_whole_job_with_its_error(tmp_path):
    (tmp_path / "failing.py").write_text(textwrap.dedent(FAILING_RANK), "utf-8")
    job = torchrun(["failing.py"], tmp_path, tmp_path / "cache")  # a hang: TimeoutExpired
    assert job.returncode != 0
    assert "rank 1 fails on purpose at step 1" in job.stdout + job.stderr
