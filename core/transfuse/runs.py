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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    "check_compatible",
    "check_destination",
    "component_origins",
    "environment",
    "is_run",
    "load_state_into",
    "read_run",
    "refuse_pickle",
    "split_run_log",
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


def check_destination(path: Path, *, overwrite: bool = True) -> None:
    """Refuse to write a run over a file, a non-empty folder that is not a run, or (unless
    ``overwrite``) an earlier run."""
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
    if not overwrite and is_run(path):
        raise CheckpointError(
            "a run already exists here; refusing to overwrite it",
            where=str(path),
            fix="pass --overwrite to replace it, or choose another --out",
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
    """Let ``write`` fill a temporary sibling folder, then move it to ``path``.

    Under ``torchrun`` only rank 0 writes; the other ranks return the path at once.
    """
    from transfuse.distributed import is_main_process

    path = Path(path).expanduser().absolute()
    if not is_main_process():
        return path
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


def environment(
    manager: PluginManager, device: DeviceManager | None, config: PipelineConfig | None = None
) -> dict[str, Any]:
    """Python, transfuse and every plugin distribution's version, the device and (with
    ``config``) which distribution and version provided each component the run uses."""
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
        **({"components": component_origins(config, manager)} if config is not None else {}),
    }


def _used(config: PipelineConfig) -> list[tuple[str, str, str]]:
    """(config key, kind, name) of every component the config names."""
    used = [("task.type", "task", config.task.type)]
    used += [
        (f"inputs.{name}.encoder", "encoder", spec.encoder)
        for name, spec in config.inputs.items()
        if spec.encoder is not None
    ]
    return [*used, ("fusion.method", "fusion", config.fusion.method)]


def component_origins(config: PipelineConfig, manager: PluginManager) -> dict[str, Any]:
    """Config key -> the component's full name, distribution and version."""
    out = {}
    for key, kind, name in _used(config):
        entry = manager.get(kind, name, where=key)
        out[key] = {
            "name": entry.name,
            "distribution": entry.distribution,
            "version": entry.version,
        }
    return out


def check_compatible(files: RunFiles, manager: PluginManager) -> list[str]:
    """Check that every component the run uses is installed (a CheckpointError naming the
    missing one and where it came from); returns what differs in versions since training."""
    from transfuse import __version__

    recorded = files.environment.get("components", {})
    differences = []
    if files.environment.get("transfuse") not in (None, __version__):
        differences.append(f"transfuse {files.environment['transfuse']} -> {__version__}")
    for key, kind, name in _used(files.config):
        was = recorded.get(key, {})
        origin = f" (it came from {was.get('distribution')} {was.get('version')})" if was else ""
        try:
            entry = manager.get(kind, name, where=key)
        except TransfuseError as exc:
            installed = manager.record_of(str(was.get("distribution"))) if was else None
            if installed is not None and installed.status in {"failed", "problem"}:
                fix = (
                    f"{installed.distribution} {installed.version} is installed but "
                    f"{installed.status}: fix it (`transfuse plugins --check` says what is wrong)"
                )
            elif was:
                fix = f"install {was.get('distribution')}=={was.get('version')}"
            else:
                fix = "install the plugin that provides it"
            raise CheckpointError(
                f"the run needs {kind} {name!r}{origin}, which cannot be used here: {exc.what}",
                where=f"{files.path / 'config.yaml'} {key}",
                fix=fix,
            ) from None
        if was and (was.get("distribution"), was.get("version")) != (
            entry.distribution,
            entry.version,
        ):
            differences.append(
                f"{entry.name}: {was.get('distribution')} {was.get('version')} -> "
                f"{entry.distribution} {entry.version}"
            )
    return differences


@dataclass
class RunFiles:
    """A run directory's contents, checked and parsed (weights not yet loaded)."""

    path: Path
    config: PipelineConfig
    task: dict[str, Any]
    metrics: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)

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
    if path.is_file():
        refuse_pickle(path)
        raise CheckpointError(
            "is a file, not a run directory",
            where=str(path),
            fix="give the --out folder of a `transfuse train` run",
        )
    if not path.is_dir():
        raise CheckpointError(
            "no such run directory", where=str(path), fix="give the --out folder of a train run"
        )
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if "model.safetensors" in missing and pickles:
        raise CheckpointError(
            f"the folder holds pickled weights ({', '.join(pickles[:3])}) and no "
            "model.safetensors; transfuse never loads pickles, which can run code",
            where=str(path),
            fix="give a run written by `transfuse train`, or convert the weights to safetensors",
        )
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
    env_file = path / "environment.json"
    env = _read_json(env_file) if env_file.is_file() else {}
    return RunFiles(path=path, config=config, task=task, metrics=metrics, environment=env)


#: Suffixes of files that hold (or usually hold) Python pickles.
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".bin"}
# A pickle starts with the PROTO opcode; torch.save writes a zip holding data.pkl.
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def refuse_pickle(path: Path) -> None:
    """A CheckpointError for a file that is, or is named like, a pickle; it is never opened
    with pickle (reading one can run arbitrary code)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        head = b""
    zipped = head.startswith(b"PK\x03\x04") and path.suffix.lower() != ".safetensors"
    if path.suffix.lower() in PICKLE_SUFFIXES or head.startswith(_PICKLE_MAGIC) or zipped:
        raise CheckpointError(
            "is a pickle (or torch.save) file; transfuse never loads pickles, which can run code",
            where=str(path),
            fix="give a run directory written by `transfuse train` (weights in safetensors)",
        )


def split_run_log(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a run's metrics into what is reproducible (``metrics.json``: the same data,
    pipeline and seed on a CPU give the same file) and what is not (``log.json``: wall-clock
    seconds and embedding-cache hits per epoch, and any ``log`` entries)."""
    results = {k: v for k, v in metrics.items() if k not in {"seconds", "log"}}
    log: dict[str, Any] = {"seconds": metrics.get("seconds"), "epochs": []}
    history = []
    for record in metrics.get("history", []):
        kept = {k: v for k, v in record.items() if k not in {"seconds", "cache"}}
        history.append(kept)
        log["epochs"].append(
            {
                "epoch": record.get("epoch"),
                **{k: record[k] for k in ("seconds", "cache") if k in record},
            }
        )
    if "history" in metrics:
        results["history"] = history
    log.update(metrics.get("log", {}))
    return results, log


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is unreadable: {exc}", where=str(path.parent)) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} is not a JSON object", where=str(path.parent))
    return data


def load_state_into(
    model: torch.nn.Module,
    tensors: Mapping[str, torch.Tensor],
    where: str,
    *,
    differences: Sequence[str] = (),
) -> None:
    """Load weights, or a CheckpointError listing missing, unexpected and reshaped tensors
    (and, given ``differences``, the versions that changed since the run was written).
    Weights that fit despite changed versions load with a warning naming them."""
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
    if problems and differences:
        problems.append(f"versions changed since training: {', '.join(differences)}")
    elif differences:
        import warnings

        warnings.warn(
            f"{where}: the run was written with other versions ({', '.join(differences)}); "
            "its weights fit, but check its predictions",
            stacklevel=3,
        )
    if problems:
        raise CheckpointError(
            "the weights do not fit the model the config builds: " + "; ".join(problems),
            where=where,
            fix="the run's files disagree (edited config or other plugin versions?); "
            "train again or reinstall the versions in environment.json",
        )
    model.load_state_dict(dict(tensors), strict=True)
