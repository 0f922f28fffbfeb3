"""The device manager: the one object that decides where and how a run computes.

It picks the device (``auto``: cuda, then mps, then cpu) and precision (``auto``: bf16
autocast on GPUs that support it, fp32 elsewhere), seeds every generator, moves nested
batches, compiles on request and holds the distributed state. Under ``torchrun`` it
joins the process group (``gloo`` on the CPU, ``nccl`` on CUDA; see
:mod:`transfuse.distributed`) and pins each rank to the GPU ``LOCAL_RANK`` names.
Plugins receive it; no plugin calls ``.to("cuda")`` itself.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from transfuse import distributed
from transfuse.errors import DeviceError

__all__ = ["DeviceManager"]

_PRECISIONS = {"auto", "fp32", "bf16", "fp16"}


class DeviceManager:
    """Placement, precision, seeding and distributed state for one run."""

    def __init__(
        self,
        device: str = "auto",
        precision: str = "auto",
        *,
        seed: int | None = None,
        compile: bool = False,
    ) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.launched = distributed.launched()
        if distributed.active():  # a group set up by a host (Ray Train) knows best
            self.rank, self.world_size = distributed.rank_and_size()
        if self.world_size > 1 and not self.launched:
            raise DeviceError(
                f"WORLD_SIZE is {self.world_size} but MASTER_ADDR/MASTER_PORT are not set",
                where="the environment",
                fix="start several processes with torchrun, or unset WORLD_SIZE",
            )
        self.device = self._pick_device(device)
        #: The process group's backend under torchrun (``gloo``/``nccl``), else ``None``.
        self.backend = distributed.start(self.device) if self.launched else None
        self.precision = self._pick_precision(precision)
        self.compile_enabled = compile
        self.seed = seed
        if seed is not None:
            self.seed_everything(seed)

    # -- choices -------------------------------------------------------------------
    def _pick_device(self, name: str) -> torch.device:
        name = name.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                index = self.local_rank if self.launched else torch.cuda.current_device()
                if index >= torch.cuda.device_count():
                    raise DeviceError(
                        f"LOCAL_RANK {index} has no GPU ({torch.cuda.device_count()} visible)",
                        where="torchrun --nproc_per_node",
                        fix="start at most one process per visible GPU",
                    )
                return torch.device("cuda", index)
            if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(
                f"unknown device {name!r}",
                where="train.device",
                fix="use auto, cpu, cuda, cuda:N or mps",
            ) from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise DeviceError(
                    "CUDA was asked for but no CUDA device is visible",
                    where="train.device",
                    fix="use device: auto or cpu",
                )
            index = device.index if device.index is not None else self.local_rank
            if self.launched and self.world_size > 1 and index != self.local_rank:
                raise DeviceError(
                    f"{name} puts every rank on one GPU (this rank's is cuda:{self.local_rank})",
                    where="train.device",
                    fix="use device: cuda or auto under torchrun; each rank takes its LOCAL_RANK",
                )
            if index >= torch.cuda.device_count():
                raise DeviceError(
                    f"cuda:{index} asked for, {torch.cuda.device_count()} device(s) visible",
                    where="train.device",
                    fix="pick an index below the device count",
                )
            return torch.device("cuda", index)
        if device.type == "mps" and not (
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ):
            raise DeviceError("MPS was asked for but is not available", where="train.device")
        if device.type not in {"cpu", "cuda", "mps"}:
            raise DeviceError(f"unsupported device {name!r}", where="train.device")
        return device

    def _pick_precision(self, precision: str) -> str:
        precision = precision.lower()
        if precision not in _PRECISIONS:
            raise DeviceError(
                f"unknown precision {precision!r}",
                where="train.precision",
                fix="use auto, fp32, bf16 or fp16",
            )
        if precision == "auto":
            if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
                return "bf16"
            return "fp32"
        if precision == "fp16" and self.device.type == "cpu":
            raise DeviceError(
                "fp16 autocast is not supported on the CPU",
                where="train.precision",
                fix="use bf16 or fp32 on the CPU",
            )
        return precision

    # -- state ---------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        """Whether this process is a rank of a ``torchrun`` process group (even of one)."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints progress."""
        return self.rank == 0

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for full precision."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def seed_everything(self, seed: int) -> None:
        """Seed python, numpy and torch (every device)."""
        self.seed = seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed (for samplers and splits)."""
        gen = torch.Generator()
        gen.manual_seed((self.seed or 0) + offset)
        return gen

    # -- work ----------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for forward passes (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler: active for fp16, a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def move(self, batch: Any) -> Any:
        """Move a nested structure of tensors to the device.

        On CUDA, host tensors are pinned and copied with ``non_blocking=True`` so the copy
        overlaps with compute.
        """
        if isinstance(batch, torch.Tensor):
            if batch.device == self.device:
                return batch
            if self.device.type == "cuda" and batch.device.type == "cpu":
                if not batch.is_pinned():
                    batch = batch.pin_memory()
                return batch.to(self.device, non_blocking=True)
            return batch.to(self.device)
        if isinstance(batch, Mapping):
            return {k: self.move(v) for k, v in batch.items()}
        if isinstance(batch, tuple):
            return tuple(self.move(v) for v in batch)
        if isinstance(batch, list):
            return [self.move(v) for v in batch]
        return batch

    def prepare_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """Place a module on the device (and compile it when asked)."""
        module = module.to(self.device)
        if self.compile_enabled:
            module = torch.compile(module)  # type: ignore[assignment]
        return module

    def memory_report(self) -> dict[str, float]:
        """Memory in use, in MiB: allocated and peak on CUDA, resident set size on CPU."""
        if self.device.type == "cuda":
            return {
                "allocated_mib": torch.cuda.memory_allocated(self.device) / 2**20,
                "reserved_mib": torch.cuda.memory_reserved(self.device) / 2**20,
                "peak_mib": torch.cuda.max_memory_allocated(self.device) / 2**20,
            }
        try:
            import resource

            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return {"peak_rss_mib": peak_kib / 1024}
        except ImportError:  # pragma: no cover - Windows
            return {}

    def describe(self) -> dict[str, Any]:
        """What a run's ``environment.json`` records about the device."""
        info: dict[str, Any] = {
            "device": str(self.device),
            "precision": self.precision,
            "rank": self.rank,
            "world_size": self.world_size,
            "backend": self.backend,
            "torch": torch.__version__,
            "compile": self.compile_enabled,
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

    def close(self) -> None:
        """Leave the torchrun process group now (it is also left at exit, after an error
        too); a no-op outside one."""
        if self.backend is not None:
            distributed.stop()
            self.backend = None

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """No gradients, autocast on: for evaluation and frozen encoders."""
        with torch.inference_mode(), self.autocast():
            yield

    def __repr__(self) -> str:
        return (
            f"DeviceManager(device={self.device}, precision={self.precision}, "
            f"rank={self.rank}/{self.world_size})"
        )
