"""The bad-config corpus: every file in ``bad_configs/`` is refused with one line, exit 2.

Each file says what its error must contain in ``# expect:`` comment lines (the key path
and, for a misspelled name, the closest valid choices). Both ``config validate`` and
``train`` are asked, so validation refuses what training would, and neither writes a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from transfuse import EncoderEntry, Options, StrategyEntry
from transfuse.cli import main
from transfuse.plugins import make_module

CORPUS = Path(__file__).parent / "bad_configs"
FILES = sorted(CORPUS.glob("*.yaml"))
#: Expectations of files that cannot hold a comment.
NO_COMMENT = {
    "00-empty.yaml": ["the config is empty"],
    "54-not-utf8.yaml": ["54-not-utf8.yaml:1: not UTF-8 text (byte 9)", "save the file as UTF-8"],
}


class MlpOptions(Options):
    """Options shaped like tabular.mlp's."""

    dim: int = Field(default=64, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [64])


class L2spOptions(Options):
    """Options shaped like strategy.l2sp's."""

    alpha: float = Field(default=0.01, ge=0)


def _entries() -> object:
    """Registration-only entries (config checks never import a factory, so none exists)."""
    encoders = [
        EncoderEntry(name="tabular.mlp", modality="tabular", factory="absent:Mlp",
                     options=MlpOptions, description="tabular MLP"),
        EncoderEntry(name="text.bag-of-words", modality="text", factory="absent:Bow",
                     description="bag of words"),
    ]  # fmt: skip
    strategies = [
        StrategyEntry(name="strategy.layer-map", factory="absent:Map", copies_weights=True,
                      description="copy weights"),
        StrategyEntry(name="strategy.finetune", factory="absent:Tune", description="tune"),
        StrategyEntry(name="strategy.l2sp", factory="absent:L2", options=L2spOptions,
                      description="anchor"),
    ]  # fmt: skip
    return make_module(
        "corpus_plugin",
        transfuse_encoders=lambda: encoders,
        transfuse_strategies=lambda: strategies,
    )


def expectations(path: Path) -> list[str]:
    found = [
        line.split(":", 1)[1].strip()
        for line in path.read_text("utf-8", errors="replace").splitlines()
        if line.startswith("# expect:")
    ]
    return found or NO_COMMENT[path.name]


@pytest.fixture
def corpus_manager(register_plugin, transfuse_manager):
    register_plugin(_entries(), name="corpus-plugin")
    return transfuse_manager


def test_the_corpus_has_at_least_30_files_and_each_says_what_it_expects():
    assert len(FILES) >= 30
    for path in FILES:
        assert expectations(path), path.name


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("transfuse: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_config_validate_refuses_it_with_one_line(path, corpus_manager, capsys):
    assert main(["config", "validate", str(path)]) == 2
    line = _one_error_line(capsys)
    for expected in expectations(path):
        assert expected in line, f"{expected!r} not in {line!r}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_train_refuses_it_the_same_way_and_writes_nothing(path, corpus_manager, tmp_path, capsys):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys)
    for expected in expectations(path):
        assert expected in line, f"{expected!r} not in {line!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# 53: the real strategy.layer-map entry declares copies_weights, so the order check covers it.
@pytest.mark.parametrize(
    "name", ["20-unknown-device.yaml", "51-alias-bomb.yaml", "53-layer-map-after-l2sp.yaml"]
)
def test_the_installed_command_refuses_it_too(name, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "train", str(CORPUS / name), "--out", "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TRANSFUSE_CACHE": str(tmp_path / "cache")},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expectations(CORPUS / name)[0] in result.stderr
    assert list(tmp_path.iterdir()) == []
