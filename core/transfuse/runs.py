"""Run directories: what a trained pipeline leaves on disk, and reading it back.

A run holds ``run.json`` (marker and format version), ``config.yaml`` (the resolved
pipeline), ``model.safetensors``, ``encoders/<input>/`` (each encoder's fitted state),
``task.json``, ``metrics.json``, ``environment.json`` and ``report.md`` with its plots.
A run is written into a temporary sibling folder and renamed into place, so a crash never
leaves half a run, and an existing folder is replaced only when it is itself a run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfuse.errors import CheckpointError, TransfuseError

if TYPE_CHECKING:
    import torch

    from transfuse.config import PipelineConfig
    from transfuse.device import DeviceManager
    from transfuse.plugins import PluginManager

__all__ = [
    "FORMAT",
    "RunFiles",
    "check_destination",
    "environment",
    "is_run",
    "load_state_into",
    "read_run",
    "write_json",
    "write_run",
]

FORMAT = "transfuse-run"
FORMAT_VERSION = 1
REQUIRED = ("run.json", "config.yaml", "model.safetensors", "task.json")


def is_run(path: Path) -> bool:
    """Whether ``path`` is a transfuse run directory (has a ``run.json`` marker)."""
    marker = path / "run.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def check_destination(path: Path) -> None:
    """Refuse to write a run over a non-empty folder that is not a run (or over a file)."""
    if path.is_file():
        raise CheckpointError(
            "is a file, not a run directory", where=str(path), fix="choose another --out"
        )
    if path.is_dir() and any(path.iterdir()) and not is_run(path):
        raise CheckpointError(
            "the folder is not empty and is not a transfuse run; refusing to overwrite it",
            where=str(path),
            fix="choose an empty or new folder for --out",
        )


def write_json(path: Path, data: Any) -> None:
    """Write JSON with stable formatting (NaN and infinities become null)."""
    path.write_text(json.dumps(_finite(data), indent=2, default=str) + "\n", "utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_run(path: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary sibling folder, then move it to ``path``."""
    path = Path(path).expanduser().absolute()
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        marker = {"format": FORMAT, "version": FORMAT_VERSION, "created": time.time()}
        write_json(tmp / "run.json", marker)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def environment(manager: PluginManager, device: DeviceManager | None) -> dict[str, Any]:
    """Python, transfuse and every plugin distribution's version, and the device."""
    from transfuse import __version__

    plugins = {}
    for record in manager.records():
        plugins[record.name] = {
            "distribution": record.distribution,
            "version": record.version,
            "status": record.status,
        }
    libraries = {}
    for name in ("torch", "numpy", "pandas", "scikit-learn", "safetensors", "pydantic"):
        try:
            from importlib import metadata

            libraries[name] = metadata.version(name)
        except Exception:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "transfuse": __version__,
        "plugins": plugins,
        "libraries": libraries,
        "device": device.describe() if device is not None else None,
    }


@dataclass
class RunFiles:
    """A run directory's contents, checked and parsed (weights not yet loaded)."""

    path: Path
    config: PipelineConfig
    task: dict[str, Any]
    metrics: dict[str, Any]

    def encoder_dir(self, name: str) -> Path:
        """Where input ``name``'s fitted encoder state lives."""
        return self.path / "encoders" / name

    def tensors(self) -> dict[str, torch.Tensor]:
        """The model weights."""
        from transfuse.checkpoint import load_tensors

        return load_tensors(self.path / "model.safetensors")


def read_run(path: str | Path) -> RunFiles:
    """Open a run directory; a missing or unreadable file is a CheckpointError naming it."""
    from transfuse.config import load_config

    path = Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(
            "no such run directory", where=str(path), fix="give the --out folder of a train run"
        )
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"not a complete transfuse run: {', '.join(missing)} missing",
            where=str(path),
            fix="give the --out folder of a finished `transfuse train`",
        )
    if not is_run(path):
        raise CheckpointError("run.json is not a transfuse run marker", where=str(path))
    marker = json.loads((path / "run.json").read_text("utf-8"))
    if int(marker.get("version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"the run was written by a newer transfuse (format {marker.get('version')})",
            where=str(path),
            fix="upgrade transfuse",
        )
    try:
        config = load_config(path / "config.yaml")
    except TransfuseError as exc:
        raise CheckpointError(f"config.yaml is invalid: {exc.what}", where=str(path)) from None
    task = _read_json(path / "task.json")
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    for name in config.inputs:
        if not (path / "encoders" / name).is_dir():
            raise CheckpointError(
                f"the fitted state of input {name!r} is missing",
                where=str(path / "encoders" / name),
                fix="the run is incomplete; train it again",
            )
    return RunFiles(path=path, config=config, task=task, metrics=metrics)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is unreadable: {exc}", where=str(path.parent)) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} is not a JSON object", where=str(path.parent))
    return data


def load_state_into(
    model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], where: str
) -> None:
    """Load weights, or a CheckpointError listing missing, unexpected and reshaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    reshaped = [
        f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if reshaped:
        problems.append(f"{len(reshaped)} of another shape (e.g. {reshaped[0]})")
    if problems:
        raise CheckpointError(
            "the weights do not fit the model the config builds: " + "; ".join(problems),
            where=where,
            fix="the run's files disagree (edited config or other plugin versions?); "
            "train again or reinstall the versions in environment.json",
        )
    model.load_state_dict(dict(tensors), strict=True)
