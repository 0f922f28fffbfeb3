"""Data-parallel training under ``torchrun``: the process group and what the ranks share.

``torchrun`` starts one process per device and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`start` (called by the :class:`~transfuse.device.DeviceManager`) joins them into one
process group, ``nccl`` for CUDA and ``gloo`` otherwise, once per process, and registers
:func:`stop` at exit, so the group is torn down after a normal end and after an error
alike. The rest are the few collective steps the runtime needs: sharding each global
batch (:func:`shard_batches`), gathering prediction rows, summing a number, a barrier (the
embedding cache's shard-wise fill uses the last two), and :class:`DataParallel`, the
``DistributedDataParallel`` wrapper the trainer uses. Every helper is a no-op outside a
process group.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from transfuse.errors import DeviceError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from transfuse.device import DeviceManager

__all__ = [
    "DataParallel",
    "active",
    "all_sum",
    "barrier",
    "gather_in_order",
    "gather_rows",
    "is_main_process",
    "launched",
    "rank_and_size",
    "shard_batches",
    "start",
    "stop",
]

#: What ``torchrun`` (and any launcher that speaks its ``env://`` protocol) sets.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: Set to 1 to make DDP look for parameters without a gradient in every step.
FIND_UNUSED_ENV = "TRANSFUSE_DDP_FIND_UNUSED"


def launched() -> bool:
    """Whether this process is one of a data-parallel job: started by ``torchrun`` (the
    rendezvous variables are set), or in a process group a host set up (Ray Train)."""
    return all(os.environ.get(name) for name in LAUNCH_ENV) or active()


def active() -> bool:
    """Whether this process has joined a process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    if active():
        import torch.distributed as dist

        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of ranks (``(0, 1)`` outside a process group)."""
    if not active():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices (where built), ``gloo`` for everything else."""
    import torch.distributed as dist

    return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"


def start(device: torch.device) -> str:
    """Join the ``torchrun`` process group once per process; returns its backend.

    A CUDA rank is pinned to its device first (``torch.cuda.set_device``), so collectives
    and new tensors land on the GPU ``LOCAL_RANK`` names.
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise DeviceError(
            "this torch build has no torch.distributed",
            where="torchrun",
            fix="install a torch build with distributed support or run without torchrun",
        )
    if device.type == "mps":
        raise DeviceError(
            "data-parallel training does not run on MPS",
            where="train.device",
            fix="use device: cpu (gloo) or CUDA GPUs (nccl) under torchrun",
        )
    if active():
        return str(dist.get_backend())
    backend = backend_for(device)
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    try:
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceError(
            f"cannot join the torchrun process group ({backend}): {first}",
            where="MASTER_ADDR/MASTER_PORT",
            fix="launch with torchrun --standalone (one machine) or check the "
            "--rdzv-endpoint every node can reach",
        ) from None
    atexit.register(stop)
    return backend


def stop() -> None:
    """Leave the process group (safe to call twice; runs at exit, also after an error)."""
    if active():
        import torch.distributed as dist

        with contextlib.suppress(Exception):  # best effort at interpreter exit
            dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here."""
    if active():
        import torch.distributed as dist

        dist.barrier()


def _comm_device() -> torch.device:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(value: float) -> float:
    """The sum of ``value`` over the ranks (the value itself outside a process group)."""
    if not active():
        return float(value)
    import torch
    import torch.distributed as dist

    total = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(total)
    return float(total.item())


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's ``rows`` (any number each, same trailing shape), concatenated in rank
    order, on every rank."""
    if not active():
        return rows
    import torch
    import torch.distributed as dist

    device = _comm_device()
    local = rows.to(device)
    count = torch.tensor([local.shape[0]], dtype=torch.long, device=device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]).to(rows.device)


def gather_in_order(rows: torch.Tensor, index: torch.Tensor, total: int) -> torch.Tensor:
    """``[total, ...]`` on every rank: each rank's ``rows`` put at their row positions
    ``index`` (a row scored by two ranks, as :func:`shard_batches` may give, is the same)."""
    found, where = gather_rows(rows), gather_rows(index)
    out = rows.new_zeros((total, *rows.shape[1:]))
    out[where.long()] = found
    return out


def shard_batches(
    batches: Iterable[Sequence[int]], rank: int, world_size: int
) -> tuple[list[list[int]], list[float]]:
    """This rank's stride ``batch[rank::world_size]`` of every global batch, and the
    fraction of the batch's rows it holds.

    The ranks together see exactly the batches one process would, so ``train.batch_size``
    is the global batch. A batch with fewer rows than ranks gives the ranks left over its
    first row again with a share of 0 (their loss is scaled to nothing), so every rank
    takes the same number of steps.
    """
    local: list[list[int]] = []
    shares: list[float] = []
    for batch in batches:
        rows = list(batch)
        mine = rows[rank::world_size]
        shares.append(len(mine) / len(rows) if rows else 0.0)
        local.append(mine or rows[:1])
    return local, shares


def needs_unused_detection(model: nn.Module, strategies: Iterable[Any]) -> bool:
    """Whether DDP must look for parameters left without a gradient in a step: a module of
    the model or a strategy says so (``find_unused_parameters = True``), or the
    ``TRANSFUSE_DDP_FIND_UNUSED`` environment variable asks for it."""
    if os.environ.get(FIND_UNUSED_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return True
    parts = [*model.modules(), *strategies]
    return any(getattr(part, "find_unused_parameters", False) is True for part in parts)


class DataParallel:
    """``DistributedDataParallel`` around the model, rebuilt whenever the set of trainable
    parameters changes (a strategy freezing or unfreezing a group between epochs), since DDP
    fixes the parameters it reduces when it is built. Trainable parameters outside the model
    (a strategy's own module, such as DANN's discriminator) are broadcast from rank 0 once
    and their gradients averaged by :meth:`sync_extra`."""

    def __init__(
        self,
        model: nn.Module,
        device: DeviceManager,
        extra: Sequence[torch.nn.Parameter] = (),
        *,
        find_unused: bool = False,
        skip: Sequence[str] = (),
        compile: bool = False,
    ) -> None:
        import torch.distributed as dist

        self.model = model
        self.device = device
        self.find_unused = find_unused
        self.compile = compile
        self.skip = tuple(skip)
        owned = {id(p) for p in model.parameters()}
        self.extra = [p for p in extra if id(p) not in owned]
        for param in self.extra:
            dist.broadcast(param.data, src=0)
        self.wrapper: Any = None
        self._trainable: tuple[int, ...] | None = None

    @property
    def forward(self) -> Any:
        """What the training step calls: the DDP wrapper (the bare model if nothing trains)."""
        return self.wrapper if self.wrapper is not None else self.model

    def refresh(self) -> None:
        """(Re)build the wrapper when the trainable parameters differ from its own."""
        trainable = tuple(id(p) for p in self.model.parameters() if p.requires_grad)
        if trainable == self._trainable:
            return
        self.close()
        self._trainable = trainable
        if not trainable:
            return
        from torch.nn.parallel import DistributedDataParallel

        ignore = [
            name
            for name, _ in [*self.model.named_parameters(), *self.model.named_buffers()]
            if self.skip and name.startswith(self.skip)
        ]
        set_ignored = getattr(
            DistributedDataParallel, "_set_params_and_buffers_to_ignore_for_model", None
        )
        if ignore and set_ignored is not None:
            set_ignored(self.model, ignore)  # frozen encoders are alike on every rank
        ids = [self.device.device.index] if self.device.device.type == "cuda" else None
        wrapper: Any = DistributedDataParallel(
            self.model,
            device_ids=ids,
            output_device=ids[0] if ids else None,
            find_unused_parameters=self.find_unused,
        )
        if self.compile:
            import torch

            wrapper = torch.compile(wrapper)
        self.wrapper = wrapper

    def sync_extra(self) -> None:
        """Average the gradients of the trainable parameters DDP does not own (one
        all-reduce; a parameter no rank has a gradient for keeps ``None``)."""
        if not self.extra:
            return
        import torch
        import torch.distributed as dist

        device = self.extra[0].device
        flags = torch.tensor(
            [p.grad is not None for p in self.extra], dtype=torch.float32, device=device
        )
        grads = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in self.extra
        ]
        flat = torch.cat([flags, *grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = len(self.extra)
        for i, param in enumerate(self.extra):
            n = param.numel()
            if flat[i] > 0:
                param.grad = flat[offset : offset + n].view_as(param).to(param.dtype)
            offset += n

    def close(self) -> None:
        """Drop the wrapper (and with it DDP's gradient hooks on the model)."""
        self.wrapper = None
        import gc

        gc.collect()
