"""Tensors and training state on disk: safetensors for every tensor, JSON for the rest.

Never pickle: model weights, the best weights so far and the optimizer's moments are
safetensors files; the epoch, history, scheduler and optimizer groups are ``state.json``.
Every file is written to a temporary name and moved into place with ``os.replace``, and
``state.json`` goes last, so a killed run leaves the previous complete checkpoint.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transfuse.errors import CheckpointError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
    "load_partial",
    "load_tensors",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "save_checkpoint",
    "save_tensors",
    "state_tensors",
]

STATE = "state.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def state_tensors(module: nn.Module, *, exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A module's state as independent, contiguous CPU tensors (shared ones cloned)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in module.state_dict().items():
        if any(name.startswith(prefix) for prefix in exclude):
            continue
        t = tensor.detach().to("cpu").contiguous()
        if t.untyped_storage().data_ptr() in seen:  # safetensors refuses shared storage
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], meta: dict[str, str] | None = None
) -> None:
    """Write tensors as a safetensors file, atomically."""
    from safetensors.torch import save

    atomic_write_bytes(path, save(dict(tensors), metadata=meta))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing", where=str(path.parent))
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file: {exc}",
            where=str(path.parent),
            fix="the file is damaged; train again or restore it",
        ) from None


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (``state.<i>.<name>``) and JSON groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = json.loads(json.dumps(sd["param_groups"], default=str))
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> None:
    """Restore :func:`optimizer_to_tensors` into an optimizer with the same groups."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [dict(g) for g in meta["param_groups"]]
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise CheckpointError(
            "the checkpoint's optimizer groups do not match this model's",
            where="checkpoint/optimizer.safetensors",
            fix="resume with the same pipeline and strategies, or train without --resume",
        )
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot restore the optimizer: {exc}",
            where="checkpoint/optimizer.safetensors",
            fix="train without --resume",
        ) from None


def save_checkpoint(
    directory: Path,
    *,
    model: Mapping[str, torch.Tensor],
    best: Mapping[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write ``model``/``best``/``optimizer`` safetensors, then ``state.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / "model.safetensors", model)
    if best is not None:
        save_tensors(directory / "best.safetensors", best)
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    save_tensors(directory / "optimizer.safetensors", opt_tensors)
    payload = {**state, "optimizer": opt_meta, "has_best": best is not None}
    atomic_write_text(directory / STATE, json.dumps(payload, indent=1, default=_json_default))
    return directory / STATE


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """Read a checkpoint: ``state`` (JSON) plus ``model``, ``best``, ``optimizer`` tensors."""
    path = directory / STATE
    if not path.is_file():
        raise CheckpointError(
            "there is no checkpoint to resume from",
            where=str(directory),
            fix="train without --resume",
        )
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{STATE} is unreadable: {exc}", where=str(directory)) from None
    return {
        "state": state,
        "model": load_tensors(directory / "model.safetensors"),
        "best": load_tensors(directory / "best.safetensors") if state.get("has_best") else None,
        "optimizer": load_tensors(directory / "optimizer.safetensors"),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def load_partial(model: nn.Module, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Load a checkpoint's tensors (a subset: frozen encoders are left out); a tensor the
    model lacks or of another shape is a CheckpointError."""
    own = model.state_dict()
    wrong = [k for k, v in tensors.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    unknown = [k for k in tensors if k not in own]
    if wrong or unknown:
        detail = (
            f"{len(wrong)} tensors of another shape (e.g. {wrong[0]})"
            if wrong
            else f"{len(unknown)} tensors this model lacks (e.g. {unknown[0]})"
        )
        raise CheckpointError(f"the checkpoint does not fit this model: {detail}", where=where)
    model.load_state_dict(dict(tensors), strict=False)
