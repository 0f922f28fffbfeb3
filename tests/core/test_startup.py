"""The installed ``transfuse`` script starts without the heavy stack (bench/startup.py times it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {"torch", "pandas", "numpy", "scipy", "sklearn", "timm", "sentence_transformers", "yaml"}
SCRIPT = Path(sys.executable).parent / "transfuse"


def imported(*args: str) -> set[str]:
    """Top-level packages the console script imports, read from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("import time:")]
    return {ln.rsplit("|", 1)[1].strip().split(".")[0] for ln in lines[1:]}


@pytest.mark.skipif(not SCRIPT.exists(), reason="the transfuse console script is not installed")
@pytest.mark.parametrize("args", [["--help"], ["plugins"]], ids=["help", "plugins"])
def test_console_script_imports_no_heavy_library(args: list[str]) -> None:
    modules = imported(*args)
    assert "transfuse" in modules  # the probe sees the script's imports at all
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_options_models_build_their_validators_on_first_use() -> None:
    from pydantic import ValidationError

    from transfuse import Options

    class Probe(Options):
        size: int = 1

    assert not Probe.__pydantic_complete__  # deferred: listing plugins never builds it
    assert Probe(size=3).size == 3
    with pytest.raises(ValidationError):
        Probe(size="three")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Probe(colour=1)  # type: ignore[call-arg]
