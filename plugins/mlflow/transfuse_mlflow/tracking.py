"""Each fit as an MLflow run, fed by transfuse's events (``transfuse_on_event``).

``fit_start`` creates the run (named after the pipeline, parameters = the resolved config
flattened to dotted keys; a child of the caller's active MLflow run when there is one);
``epoch_end`` logs the epoch's training loss, validation metrics and learning rate at
``step = epoch``; ``transfer_prepared`` tags the source runs (and the MLflow run that
tracked each, when one did) and the share of weights loaded; ``run_end`` logs the best
epoch and ends the run; ``run_saved`` logs the run directory's ``report.md``, plots and
JSON/YAML files as artifacts under ``run/``, the final validation and test metrics (and
the scratch baseline's), tags the strategies, and tags the run with the directory's path,
which is how a later transfer or ``log_model`` finds it.

The client is an :class:`mlflow.MlflowClient` on :func:`~transfuse_mlflow.settings.tracking_uri`,
so tracking never changes the caller's own active run or tracking URI.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transfuse_mlflow.settings import experiment_name, tracking_uri

__all__ = ["RUN_DIR_TAG", "Tracker", "find_tracked_run", "flatten", "tracker"]

#: The tag holding a saved run directory's absolute path.
RUN_DIR_TAG = "transfuse.run_dir"
#: Top-level files of a run directory logged as artifacts (weights go with log_model).
ARTIFACT_SUFFIXES = {".md", ".png", ".json", ".yaml", ".svg", ".html", ".csv"}
_MAX_PARAM = 6000  # MLflow's limit on a parameter's value
_BATCH = 100  # parameters per log_batch call


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as dotted keys -> text (lists as JSON; empty sections kept)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple | Mapping):
        text = json.dumps(value, default=str, sort_keys=True)
    else:
        text = "" if value is None else str(value)
    return {re.sub(r"[^\w\-. /]", "_", prefix): text[:_MAX_PARAM]}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def find_tracked_run(client: Any, run_dir: str | Path) -> str | None:
    """The id of the latest MLflow run tagged with this run directory, in any experiment."""
    path = str(Path(run_dir).expanduser().resolve()).replace("'", "\\'")
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    found = client.search_runs(
        experiments,
        filter_string=f"tags.`{RUN_DIR_TAG}` = '{path}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


class Tracker:
    """Pairs transfuse's events with MLflow runs (one run per fit)."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.client: Any = None
        self.runs: dict[str, str] = {}  # fit id -> MLflow run id
        self.current: str | None = None  # the MLflow run of the fit in progress
        self.open: set[str] = set()  # MLflow runs not ended yet

    def _client(self) -> Any:
        uri = tracking_uri()
        if self.client is None or uri != self.uri:  # a new store: forget the old runs
            from mlflow import MlflowClient

            self.close()
            self.client, self.uri = MlflowClient(tracking_uri=uri), uri
            self.runs, self.current, self.open = {}, None, set()
        return self.client

    def on_event(self, event: str, payload: Mapping[str, Any]) -> None:
        """Handle one event (unknown events are ignored)."""
        handler = getattr(self, f"_on_{event}", None)
        if handler is not None:
            handler(payload)

    # -- the events ------------------------------------------------------------------
    def _on_fit_start(self, payload: Mapping[str, Any]) -> None:
        client = self._client()
        if self.current in self.open:  # the last fit raised before run_end
            client.set_terminated(self.current, "FAILED")
            self.open.discard(self.current)
        name = str(payload.get("name") or "transfuse")
        tags = {"transfuse.pipeline": name, "transfuse.fit": str(payload.get("fit"))}
        experiment = self._experiment(client)
        import mlflow

        active = mlflow.active_run()
        if active is not None:  # nest under the caller's run
            tags["mlflow.parentRunId"] = active.info.run_id
            experiment = active.info.experiment_id
        run = client.create_run(experiment, run_name=name, tags=tags)
        run_id = run.info.run_id
        self.runs[str(payload.get("fit"))] = run_id
        self.current = run_id
        self.open.add(run_id)
        self._params(run_id, flatten(payload.get("config") or {}))

    def _on_run_start(self, payload: Mapping[str, Any]) -> None:
        run_id = self._current()
        rows = payload.get("rows") or {}
        params = {f"rows.{split}": str(n) for split, n in rows.items()}
        if payload.get("start_epoch"):
            params["resumed_at_epoch"] = str(payload["start_epoch"])
        self._params(run_id, params)
        if payload.get("device") is not None:
            self._client().set_tag(run_id, "transfuse.device", str(payload["device"]))

    def _on_epoch_end(self, payload: Mapping[str, Any]) -> None:
        run_id = self._current()
        step = int(payload.get("epoch", 0))
        values: dict[str, Any] = {
            "train_loss": payload.get("train_loss"),
            "epoch_seconds": payload.get("seconds"),
        }
        for key, value in (payload.get("metrics") or {}).items():
            values[f"validation_{key}"] = value
        lr = payload.get("lr")
        if isinstance(lr, list | tuple) and lr:
            values["lr"] = lr[0]
        self._metrics(run_id, values, step)

    def _on_transfer_prepared(self, payload: Mapping[str, Any]) -> None:
        run_id = self._current()
        client = self._client()
        sources = [str(s) for s in payload.get("sources") or [payload.get("source")] if s]
        reports = payload.get("reports") or []
        tags = {
            "transfuse.transfer.sources": json.dumps(sources),
            "transfuse.transfer.loaded_fraction": json.dumps(
                [r.get("loaded_fraction") for r in reports]
            ),
        }
        tracked = [find_tracked_run(client, s) for s in sources]
        if any(tracked):  # the MLflow runs that tracked the sources
            tags["transfuse.transfer.source_runs"] = json.dumps(tracked)
            if tracked[0]:
                tags["transfuse.transfer.source_run_id"] = tracked[0]
        for key, value in tags.items():
            client.set_tag(run_id, key, value[:5000])

    def _on_run_end(self, payload: Mapping[str, Any]) -> None:
        run_id = self._current()
        metric = str(payload.get("metric") or "loss")
        values = {
            f"best_validation_{metric}": payload.get("best_value"),
            "best_epoch": payload.get("best_epoch"),
            "epochs_run": payload.get("epochs_run"),
        }
        self._metrics(run_id, values, step=0)
        client = self._client()
        client.set_tag(run_id, "transfuse.stopped_early", str(bool(payload.get("stopped_early"))))
        client.set_terminated(run_id, "FINISHED")
        self.open.discard(run_id)

    def _on_run_saved(self, payload: Mapping[str, Any]) -> None:
        client = self._client()
        run_id = self.runs.get(str(payload.get("fit")))
        if run_id is None:  # a loaded run saved again, or a fit tracked by another store
            return
        path = Path(str(payload["path"])).resolve()
        client.set_tag(run_id, RUN_DIR_TAG, str(path))
        for file in sorted(path.iterdir()):
            if file.is_file() and file.suffix.lower() in ARTIFACT_SUFFIXES:
                client.log_artifact(run_id, str(file), artifact_path="run")
        metrics_file = path / "metrics.json"
        if not metrics_file.is_file():
            return
        metrics = json.loads(metrics_file.read_text("utf-8"))
        values: dict[str, Any] = {}
        for split in ("validation", "test"):
            for key, value in (metrics.get(split) or {}).items():
                values[f"final_{split}_{key}"] = value
        for split, found in (metrics.get("baseline") or {}).items():  # transfer vs scratch
            for key, value in (found or {}).items():
                values[f"scratch_{split}_{key}"] = value
        self._metrics(run_id, values, step=0)
        transfer = metrics.get("transfer") or {}
        if transfer.get("strategies"):  # every strategy, also those that copy nothing
            strategies = json.dumps(transfer["strategies"])[:5000]
            client.set_tag(run_id, "transfuse.transfer.strategies", strategies)

    # -- helpers ---------------------------------------------------------------------
    def _experiment(self, client: Any) -> str:
        name = experiment_name()
        found = client.get_experiment_by_name(name)
        return str(found.experiment_id if found is not None else client.create_experiment(name))

    def _current(self) -> str:
        """The run of the fit in progress (one is started for a fit that began without
        ``fit_start``, e.g. a trainer used directly)."""
        if self.current is None or self.current not in self.open:
            self._on_fit_start({"fit": f"unpaired-{time.time_ns()}", "name": "transfuse"})
        assert self.current is not None
        return self.current

    def _params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items() if key]
        for start in range(0, len(items), _BATCH):
            self._client().log_batch(run_id, params=items[start : start + _BATCH])

    def _metrics(self, run_id: str, values: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(re.sub(r"[^\w\-. /]", "_", key), number, now, step)
            for key, value in values.items()
            if (number := _number(value)) is not None
        ]
        if items:
            self._client().log_batch(run_id, metrics=items)

    def close(self) -> None:
        """End the runs still open (their fit never reached ``run_end``) as KILLED."""
        for run_id in list(self.open):
            with contextlib.suppress(Exception):  # the store may be gone at exit
                self.client.set_terminated(run_id, "KILLED")
            self.open.discard(run_id)


_TRACKER: Tracker | None = None


def tracker() -> Tracker:
    """The process's tracker (created on first use; its open runs end at exit)."""
    global _TRACKER
    if _TRACKER is None:
        _TRACKER = Tracker()
        atexit.register(_TRACKER.close)
    return _TRACKER
