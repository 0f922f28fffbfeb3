"""Explicit, seeded initialisation of target tensors that a transfer does not load.

A tensor takes the initialisation of the module that owns it: a copy of that module is
``reset_parameters()``-ed on the CPU under a fixed seed and the tensor read back (so a
Linear gets PyTorch's Kaiming-uniform, an Embedding N(0, 1), a LayerNorm ones and zeros).
A module without ``reset_parameters`` falls back on the name and shape: biases zero,
scales one, matrices Kaiming-uniform, vectors (learned embeddings, missing-value vectors)
U(-1/sqrt(d), 1/sqrt(d)).
"""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["fresh_tensor"]


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    prefix, _, attr = name.rpartition(".")
    return (model.get_submodule(prefix) if prefix else model), attr


def fresh_tensor(model: nn.Module, name: str, seed: int = 0) -> Tensor:
    """A newly initialised value (on the CPU) for the parameter or buffer ``name``.

    The seed mixes ``seed`` with the name, so two same-shaped layers differ.
    """
    owner, attr = _owner(model, name)
    current = getattr(owner, attr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        reset = getattr(owner, "reset_parameters", None)
        if callable(reset) and _is_small(owner):
            clone: Any = copy.deepcopy(owner).to("cpu")
            try:
                clone.reset_parameters()
                value = getattr(clone, attr)
                if isinstance(value, Tensor) and value.shape == current.shape:
                    return value.detach().clone()
            except Exception:  # an odd reset_parameters: use the fallback below
                pass
        return _fallback(attr, tuple(current.shape), current.dtype)


def _is_small(module: nn.Module) -> bool:
    """Whether copying the module to reset it is cheap (its own tensors only, no children)."""
    return not any(True for _ in module.children())


def _fallback(attr: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    out = torch.empty(shape, dtype=torch.float32)
    lowered = attr.lower()
    if "bias" in lowered or "running_mean" in lowered:
        out.zero_()
    elif any(k in lowered for k in ("scale", "gamma", "running_var")):
        out.fill_(1.0)
    elif len(shape) >= 2:
        nn.init.kaiming_uniform_(out, a=math.sqrt(5))
    elif len(shape) == 1:
        bound = 1 / math.sqrt(max(1, shape[0]))
        nn.init.uniform_(out, -bound, bound)
    else:
        nn.init.normal_(out, std=0.02)
    return out.to(dtype)
