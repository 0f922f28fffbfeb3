"""The MLflow pyfunc flavour of a transfuse run.

A run directory becomes an MLflow model whose only artifact is the run directory itself
(``config.yaml``, ``model.safetensors``, the encoders' JSON state) and whose code is
:mod:`transfuse_mlflow.model_code` ("models from code", MLflow >= 2.12): no object is
pickled, not even the :class:`TransfuseModel` wrapper. Loading the model restores the run
with :func:`transfuse.load`; ``predict(frame)`` returns what ``transfuse predict`` writes
for the same rows (the ``data.key`` column when the rows have it, then the score
columns), through the same per-chunk scorer (:func:`transfuse.scoring.score_rows`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from transfuse import CheckpointError

__all__ = ["MODEL_CODE", "TransfuseModel", "log_model", "requirements", "save_model"]

#: The file MLflow executes to build the model.
MODEL_CODE = Path(__file__).with_name("model_code.py")


class TransfuseModel(PythonModel):
    """Scores rows with the transfuse run shipped as the model's ``run`` artifact.

    ``model_config`` may name the ``device`` (default: the run's ``train.device``). As
    with ``transfuse predict``, the ``data.key`` column is kept when the rows have it.
    """

    #: MLflow reads ``predict``'s type hints as an input schema and wraps it to validate
    #: them; ``predict`` has none on purpose (rows come as a DataFrame or records and the
    #: signature comes from ``input_example``), so skip that instead of warning at import.
    _skip_type_hint_validation = True

    def __init__(self) -> None:
        self.pipeline: Any = None

    def load_context(self, context: Any) -> None:
        """Restore the run (weights from safetensors, encoders from JSON)."""
        import transfuse

        config = dict(getattr(context, "model_config", None) or {})
        self.pipeline = transfuse.load(context.artifacts["run"], device=config.get("device"))

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """The kept columns and one score column per class, a row per input row (a
        DataFrame, or what makes one: records, a dict of columns).

        Left without type hints on purpose: MLflow reads ``predict``'s hints as a schema
        (and warns on ``Any``); the signature comes from ``input_example`` instead."""
        from transfuse.scoring import score_rows

        if self.pipeline is None:
            self.load_context(context)
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        key = self.pipeline.config.data.key
        keep = [key] if key and key in frame.columns else []
        return score_rows(self.pipeline, frame, keep=keep)


def _run_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir).expanduser().absolute()
    if not (path / "config.yaml").is_file() or not (path / "model.safetensors").is_file():
        raise CheckpointError(
            "not a transfuse run directory (no config.yaml and model.safetensors)",
            where=str(path),
            fix="give a directory written by `transfuse train` or Pipeline.save",
        )
    return path


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def requirements(run_dir: str | Path) -> list[str]:
    """pip requirements of a run: transfuse, the distributions of the components it uses
    (their versions at training time, from ``environment.json``), torch, this plugin and
    mlflow-skinny."""
    env_file = _run_dir(run_dir) / "environment.json"
    env = json.loads(env_file.read_text("utf-8")) if env_file.is_file() else {}
    pins: dict[str, str | None] = {"transfuse": env.get("transfuse") or _version("transfuse")}
    for origin in (env.get("components") or {}).values():
        if origin.get("distribution"):
            pins[origin["distribution"]] = origin.get("version")
    torch = (env.get("libraries") or {}).get("torch") or _version("torch")
    pins["torch"] = torch.split("+")[0] if torch else None  # no local build tag (+cu130)
    pins["transfuse-mlflow"] = _version("transfuse-mlflow")
    pins["mlflow-skinny"] = _version("mlflow-skinny")
    return [f"{name}=={version}" if version else name for name, version in pins.items()]


def _arguments(
    run_dir: str | Path,
    device: str | None,
    input_example: Any,
    signature: Any,
    pip_requirements: Sequence[str] | None,
    metadata_: dict[str, Any] | None,
) -> dict[str, Any]:
    path = _run_dir(run_dir)
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {"run": str(path)},
        "model_config": {"device": device} if device else None,
        "input_example": input_example,
        "signature": signature,
        "pip_requirements": list(pip_requirements or requirements(path)),
        "metadata": {"transfuse_run": path.name, **(metadata_ or {})},
    }


def save_model(
    run_dir: str | Path,
    path: str | Path,
    *,
    device: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    pip_requirements: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the run as an MLflow pyfunc model folder at ``path`` (which must not exist).

    ``input_example`` (a few rows) lets MLflow record a signature, which
    ``mlflow.pyfunc.spark_udf`` uses for its result type; ``device`` is where the model
    scores (default: the run's ``train.device``).
    """
    import mlflow

    kwargs = _arguments(run_dir, device, input_example, signature, pip_requirements, metadata)
    mlflow.pyfunc.save_model(path=str(path), **kwargs)
    return Path(path)


def log_model(
    run_dir: str | Path,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    run_id: str | None = None,
    device: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    pip_requirements: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Log the run as a pyfunc model to MLflow (and register it as
    ``registered_model_name``); returns MLflow's ``ModelInfo``, whose ``model_uri``
    ``mlflow.pyfunc.load_model`` takes.

    The model goes into ``run_id``, else the caller's active MLflow run, else the run
    that tracked the training of ``run_dir`` (tag ``transfuse.run_dir``), else a new run.
    Without a tracking URI set, MLflow's store is the ``mlruns`` folder, as for tracking.
    """
    import mlflow

    from transfuse_mlflow.settings import tracking_uri
    from transfuse_mlflow.tracking import find_tracked_run

    if not mlflow.tracking.is_tracking_uri_set():
        mlflow.set_tracking_uri(tracking_uri())
    kwargs = _arguments(run_dir, device, input_example, signature, pip_requirements, metadata)
    if run_id is None and mlflow.active_run() is None:
        run_id = find_tracked_run(mlflow.MlflowClient(), run_dir)
    if mlflow.active_run() is not None and run_id in (None, mlflow.active_run().info.run_id):
        return mlflow.pyfunc.log_model(
            name=name, registered_model_name=registered_model_name, **kwargs
        )
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else _run_dir(run_dir).name):
        return mlflow.pyfunc.log_model(
            name=name, registered_model_name=registered_model_name, **kwargs
        )
