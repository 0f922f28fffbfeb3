"""Fixtures: one tracked fit shared by the tests, and a temporary MLflow ``file:`` store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mlflow_kit as kit


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the shared MLflow store and trained run."""
    return tmp_path_factory.mktemp("mlflow-home")


def _environment(mp: pytest.MonkeyPatch, home: Path) -> str:
    uri = (home / "mlruns").as_uri()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("TRANSFUSE_MLFLOW", "1")
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mp.setenv("TRANSFUSE_CACHE", str(home / "cache"))
    mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


@pytest.fixture(scope="session")
def trained(home: Path) -> dict[str, Any]:
    """One tracked fit, saved (shared by the tests: a fit is the slow part). The tracking
    variables are set only while it runs."""
    from transfuse import Pipeline

    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, home)
        pipeline = Pipeline.from_config(kit.config()).fit(kit.rows())
        path = pipeline.save(home / "run")
    return {"run": path, "metrics": pipeline.metrics, "fit": pipeline.fit_id}


@pytest.fixture
def store(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Tracking on, to the shared ``file:`` store (never a network); cwd is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return _environment(monkeypatch, home)
