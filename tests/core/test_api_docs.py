"""The documentation site builds with ``mkdocs build --strict``: the API reference is read
from the public classes' docstrings, and a broken reference fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (the core `dev` extra has it)")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (the `dev` extra)")


def build(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=config.parent,
    )


def test_the_site_builds_strictly_with_the_api_reference(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    transfer = (tmp_path / "site" / "api" / "transfer" / "index.html").read_text("utf-8")
    for name in ("TransferStrategy", "TransferContext", "TransferReport", "TensorFate"):
        assert f'id="transfuse.bases.{name}"' in transfer, name
    assert "copies nothing, such as a freeze" in transfer  # the fates, from the docstring
    entries = (tmp_path / "site" / "api" / "entries" / "index.html").read_text("utf-8")
    assert 'id="transfuse.components.StrategyEntry.copies_weights"' in entries
    hooks = (tmp_path / "site" / "api" / "hooks" / "index.html").read_text("utf-8")
    assert 'id="transfuse.hookspecs.transfuse_encoders"' in hooks


def test_every_api_page_is_in_the_nav_and_the_guides_link_to_it():
    config = (ROOT / "mkdocs.yml").read_text("utf-8")
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        assert f"api/{page.name}" in config, page.name
    for guide in ("plugins.md", "hooks.md", "strategies.md"):
        assert "(api/" in (ROOT / "docs" / guide).read_text("utf-8"), guide


def test_a_broken_reference_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    (docs / "api").mkdir(parents=True)
    (docs / "index.md").write_text("# t\n", "utf-8")
    (docs / "api" / "x.md").write_text("# x\n\n::: transfuse.bases.NoSuchClass\n", "utf-8")
    config = (ROOT / "mkdocs.yml").read_text("utf-8")
    config = config.split("nav:")[0] + "plugins:" + config.split("plugins:", 1)[1]
    config = config.replace("paths: [core]", f"paths: [{ROOT / 'core'}]")
    (tmp_path / "mkdocs.yml").write_text(config, "utf-8")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "NoSuchClass" in done.stderr
    shutil.rmtree(tmp_path / "site", ignore_errors=True)
