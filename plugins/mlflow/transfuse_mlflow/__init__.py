"""MLflow for transfuse: experiment tracking and a pyfunc model flavour.

Tracking is opt-in: with ``TRANSFUSE_MLFLOW=1`` (or ``MLFLOW_TRACKING_URI`` set and
``TRANSFUSE_MLFLOW`` not ``0``) every fit becomes an MLflow run through
``transfuse_on_event``: the resolved config as parameters, each epoch's metrics, the
test metrics, ``report.md``, the plots and the run's JSON files as artifacts once the run
is saved, and the transfer lineage as tags. Without either variable nothing is tracked
and mlflow is never imported.

``log_model(run_dir)`` / ``save_model(run_dir, path)`` (or ``transfuse mlflow RUN
[--save DIR] [--register NAME]``) package a run directory as an MLflow pyfunc model
("models from code": nothing is pickled), so that ``mlflow.pyfunc.load_model(uri)
.predict(frame)`` returns what ``transfuse predict`` writes, and
``mlflow.pyfunc.spark_udf`` scores it on Spark.

This module imports neither mlflow nor torch; both load on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transfuse import CommandEntry, hookimpl

if TYPE_CHECKING:
    from transfuse_mlflow.flavor import TransfuseModel, log_model, save_model

__all__ = [
    "TransfuseModel",
    "log_model",
    "save_model",
    "tracking_enabled",
    "transfuse_commands",
    "transfuse_on_event",
]

_LAZY = {
    "TransfuseModel": "transfuse_mlflow.flavor",
    "log_model": "transfuse_mlflow.flavor",
    "save_model": "transfuse_mlflow.flavor",
}


def tracking_enabled() -> bool:
    """Whether fits are tracked: ``TRANSFUSE_MLFLOW`` on (``1``, ``true``, ``yes``, ``on``),
    or unset while ``MLFLOW_TRACKING_URI`` is set; ``TRANSFUSE_MLFLOW=0`` turns it off."""
    from transfuse_mlflow.settings import tracking_enabled as enabled

    return enabled()


@hookimpl
def transfuse_on_event(event: str, payload: Mapping[str, Any]) -> None:
    """Forward the run's events to the MLflow tracker (when tracking is on)."""
    if not tracking_enabled():
        return
    from transfuse_mlflow.tracking import tracker

    tracker().on_event(event, payload)


@hookimpl
def transfuse_commands() -> list[CommandEntry]:
    """``transfuse mlflow RUN``: save or log a run as a pyfunc model."""
    return [
        CommandEntry(
            name="mlflow",
            factory="transfuse_mlflow.cli:configure",
            description="save or log a trained run as an MLflow pyfunc model (and register it)",
        )
    ]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transfuse_mlflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
