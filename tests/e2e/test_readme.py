"""README.md's commands, run in order as a new user would (issue 22), with smaller
settings so that the suite stays within its time budget on a 2-core CPU.

What is changed, and only this: ``./dev demo`` (install + ``transfuse demo``) runs as
``transfuse demo --epochs 1 --sample 800`` (the install is what the suite itself runs in);
``./dev test`` is this suite; the quickstart makes 200 rows and trains 1 epoch (its copied
pipeline file says so); ``demo-target`` is the preset with 1 epoch on an 800-loan sample,
written beside the copied examples. Every other line runs as written, from a fresh folder
that holds only a copy of ``examples/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

for plugin in ("transfuse_finance", "transfuse_tabular", "transfuse_text", "transfuse_image"):
    pytest.importorskip(plugin)

# slow: the demo and every example on small settings, a few minutes on 2 idle cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE, EPOCHS = 800, 1


def blocks(section: str) -> dict[str, str]:
    """The first bash and python code blocks under README.md's ``## {section}``."""
    text = (ROOT / "README.md").read_text("utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    found = {}
    for language, code in re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S):
        found.setdefault(language, code)
    return found


def commands(block: str) -> list[str]:
    """Each command line of a bash block, without its trailing comment."""
    out = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def smaller(line: str) -> str:
    if "make_data.py" in line:
        return f"{line} --rows 200 --new 20"
    return line.replace("demo-target", "demo-target.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh working folder: a copy of examples/, the smaller settings, the demo run."""
    here = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples" / "quickstart", here / "examples" / "quickstart")
    pipeline = here / "examples" / "quickstart" / "pipeline.yaml"
    config = yaml.safe_load(pipeline.read_text("utf-8"))
    config["train"].update(epochs=EPOCHS, progress=False)
    pipeline.write_text(yaml.safe_dump(config), "utf-8")
    from transfuse.config import load_pipeline

    target = load_pipeline("demo-target").to_dict()
    target["train"]["epochs"] = EPOCHS
    target["data"]["options"]["sample"] = SAMPLE
    (here / "demo-target.yaml").write_text(yaml.safe_dump(target), "utf-8")
    setup = blocks("Set-up: the two commands")["bash"]
    assert commands(setup) == ["./dev demo", "./dev test"], "the README's two commands moved"
    run(here, f"transfuse demo --out runs/demo --epochs {EPOCHS} --sample {SAMPLE}")
    return here


def run(here: Path, line: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRANSFUSE_CACHE": str(here / "cache"), "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        line, shell=True, cwd=here, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_demo_compares_four_models_and_says_what_the_labels_changed(folder: Path) -> None:
    report = (folder / "runs" / "demo" / "report.md").read_text("utf-8")
    answer = report.split("## Answer", 1)[1].split("## How it was made", 1)[0]
    for arm in ("source model, unchanged", "pooled LightGBM", "from scratch", "| transfer |"):
        assert arm in answer, arm
    assert "target labels" in answer  # the one sentence on what the labels changed
    assert re.search(r"\| transfer \| \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", answer)
    riskiest = report.split("## Why the three riskiest", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^\d\. `", riskiest, flags=re.M)) == 3


def test_every_example_command_runs_in_order(folder: Path) -> None:
    example = blocks("A short example")
    for line in commands(example["bash"]):
        if line.startswith(". "):  # activating the venv: the suite already runs in it
            continue
        run(folder, smaller(line))
    scores = pd.read_csv(folder / "scores.csv")
    assert list(scores.columns[:1]) == ["applicant_id"] and len(scores) == 20
    reasons = pd.read_csv(folder / "reasons.csv")
    assert len(reasons) == 20 and "reason_1" in reasons.columns
    target = (folder / "runs" / "target" / "report.md").read_text("utf-8")
    assert target.index("## Summary") < target.index("## Inputs")
    script = folder / "example.py"
    script.write_text(smaller(example["python"]).replace('"demo-target"', '"demo-target.yaml"'))
    printed = run(folder, f"{sys.executable} example.py").stdout
    assert "p_1" in printed  # scores.head()
    assert printed.strip().splitlines()[-1].startswith("TransferResult(")
