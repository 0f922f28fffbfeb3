"""Where and whether to track: environment variables only (no mlflow import)."""

from __future__ import annotations

import os
from pathlib import Path

from transfuse import ConfigError

__all__ = ["DEFAULT_EXPERIMENT", "experiment_name", "tracking_enabled", "tracking_uri"]

DEFAULT_EXPERIMENT = "transfuse"
_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off", ""}


def tracking_enabled() -> bool:
    """``TRANSFUSE_MLFLOW`` on, or unset with ``MLFLOW_TRACKING_URI`` set."""
    flag = os.environ.get("TRANSFUSE_MLFLOW")
    if flag is None:
        return bool(os.environ.get("MLFLOW_TRACKING_URI", "").strip())
    value = flag.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigError(
        f"TRANSFUSE_MLFLOW={flag!r} is neither on nor off",
        where="environment variable TRANSFUSE_MLFLOW",
        fix="set it to 1 (track every fit in MLflow) or 0 (do not), or unset it",
    )


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else a ``mlruns`` folder in the working directory (a
    ``file:`` store, which MLflow 3 keeps in maintenance mode: it is allowed here by
    setting ``MLFLOW_ALLOW_FILE_STORE`` unless the user set it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        uri = (Path.cwd() / "mlruns").as_uri()
    if uri.startswith("file:") or ":" not in uri:  # a file store (a plain path is one)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def experiment_name() -> str:
    """``MLFLOW_EXPERIMENT_NAME``, else ``transfuse``."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or DEFAULT_EXPERIMENT
