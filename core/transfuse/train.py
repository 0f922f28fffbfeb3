"""The training and evaluation loop: AdamW, warm-up + cosine, early stopping, checkpoints.

:class:`Trainer` trains a :class:`~transfuse.model.FusionModel` on prepared batches
(:class:`~transfuse.data.FrameBatches`). The optimizer's parameter groups start as one per
encoder ``param_groups()`` name plus ``default`` (biases and norms without weight decay),
then each transfer strategy reshapes them in order. Mixed precision goes through the
device manager. After every epoch a checkpoint is written atomically, so ``resume=True``
continues a killed run; at the end the best weights (by the validation metric) are restored.
With ``start_candidate`` (the transfer workflow sets it) the weights training starts from
are scored on the validation rows first and compete with every epoch, so a transferred
model is kept as it came unless training beats it on validation (``best_epoch`` -1).
Then a fusion with a ``refit`` method may refit its combination on the validation rows
(:mod:`transfuse.refit`); ``TrainResult.refit`` records what it chose. With ``epochs: 0``
there is no optimizer and no pass: the model is scored once as its encoders fitted it
(warm starts), and the refit still runs.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from transfuse.checkpoint import (
    load_checkpoint,
    load_partial,
    optimizer_from_tensors,
    save_checkpoint,
    state_tensors,
)
from transfuse.distributed import all_sum
from transfuse.errors import CheckpointError, ConfigError, DeviceError

if TYPE_CHECKING:
    from transfuse.bases import Task, TransferStrategy
    from transfuse.config import TrainConfig
    from transfuse.data import FrameBatches
    from transfuse.device import DeviceManager
    from transfuse.distributed import DataParallel
    from transfuse.model import FusionModel
    from transfuse.plugins import PluginManager

__all__ = ["TrainResult", "Trainer", "default_param_groups", "evaluate", "predict_logits"]


def _no_decay(name: str, param: torch.nn.Parameter) -> bool:
    lowered = name.lower()
    return param.ndim <= 1 or lowered.endswith(".bias") or "norm" in lowered


def default_param_groups(
    model: FusionModel, lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """One group per encoder ``param_groups()`` name plus ``default``; biases and norms go
    in a ``<name>.no_decay`` twin. Each group has ``name``, ``params``, ``param_names``,
    ``lr`` and ``weight_decay``. Frozen (cached) encoders are left out. An encoder may
    give some of its groups their own learning rate with an optional
    ``param_group_lrs() -> {label: lr}`` (a fine-tuned transformer's, for instance)."""
    claimed: dict[int, str] = {}
    group_lr: dict[str, float] = {}
    frozen = tuple(f"inputs.{name}." for name in model.frozen_inputs())
    for name, encoder in model.encoders().items():
        if getattr(encoder, "frozen", False):
            continue
        own = getattr(encoder, "param_group_lrs", None)
        for label, value in (own() if callable(own) else {}).items():
            group_lr[f"inputs.{name}.{label}"] = float(value)
        for label, params in encoder.param_groups().items():
            for p in params:
                claimed[id(p)] = f"inputs.{name}.{label}"
    groups: dict[str, dict[str, Any]] = {}
    for pname, param in model.named_parameters():
        if pname.startswith(frozen):
            continue
        base = claimed.get(id(param), "default")
        no_decay = _no_decay(pname, param)
        key = f"{base}.no_decay" if no_decay else base
        group = groups.setdefault(
            key,
            {
                "name": key,
                "params": [],
                "param_names": [],
                "lr": group_lr.get(base, lr),
                "weight_decay": 0.0 if no_decay else weight_decay,
            },
        )
        group["params"].append(param)
        group["param_names"].append(pname)
    return list(groups.values())


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Any:
    """The learning-rate factor per step: linear warm-up, then cosine decay to zero."""
    warmup = round(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def predict_logits(
    model: FusionModel, data: FrameBatches, device: DeviceManager, *, masked: Sequence[str] = ()
) -> np.ndarray:
    """Logits ``[N, K]`` for every row of ``data``, in row order (eval mode, no grad).

    Inputs named in ``masked`` are marked missing for every row, as if the rows lacked them.
    """
    model.eval()
    parts, rows = [], []
    rank, world = (device.rank, device.world_size) if device.distributed else (0, 1)
    with device.inference():
        for batch in data.batches(rank=rank, world_size=world):
            if masked:
                present = dict(batch["present"])
                for name in masked:
                    present[name] = torch.zeros_like(present[name])
                batch = {**batch, "present": present}
            parts.append(model(batch)["logits"].float().cpu())
            rows.append(batch["index"].cpu())
    if device.distributed:  # each rank scored its stride of every batch: put them together
        from transfuse.distributed import gather_in_order

        logits = torch.cat(parts) if parts else torch.zeros((0, model.num_outputs))
        index = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        return gather_in_order(logits, index, len(data.frame)).numpy()
    if not parts:
        return np.zeros((0, model.num_outputs), dtype=np.float32)
    return torch.cat(parts).numpy()


def evaluate(
    model: FusionModel, data: FrameBatches, task: Task, device: DeviceManager
) -> dict[str, float]:
    """The task's metrics on ``data`` plus the mean ``loss``."""
    logits = predict_logits(model, data, device)
    labels = data.labels()
    metrics = dict(task.metrics(labels, task.scores(torch.from_numpy(logits))))
    with torch.no_grad():
        metrics["loss"] = float(task.loss(torch.from_numpy(logits), task.encode(labels)))
    return metrics


@dataclass
class TrainResult:
    """What training found: the history per epoch and the best epoch by the metric."""

    metric: str
    best_epoch: int
    best_value: float
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    start_value: float | None = None  # the starting weights' metric, with start_candidate
    refit: dict[str, Any] | None = None  # what a fusion's ``refit`` chose on validation rows


class Trainer:
    """Trains one model; see the module docstring."""

    def __init__(
        self,
        model: FusionModel,
        task: Task,
        config: TrainConfig,
        device: DeviceManager,
        manager: PluginManager,
        *,
        strategies: Sequence[TransferStrategy] = (),
        checkpoint_dir: Path | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        start_candidate: bool = False,
    ) -> None:
        self.model = model
        self.start_candidate = start_candidate
        self.task = task
        self.config = config
        self.device = device
        self.manager = manager
        self.strategies = list(strategies)
        self.checkpoint_dir = checkpoint_dir
        self.fingerprint = dict(fingerprint or {})
        self.forward = device.prepare_module(model) if config.compile else model
        self.parallel: DataParallel | None = None  # DDP under torchrun, while fit runs
        self._frozen = tuple(f"inputs.{name}." for name in model.frozen_inputs())

    # -- pieces --------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """The default groups, reshaped by each strategy in order."""
        groups = default_param_groups(self.model, self.config.lr, self.config.weight_decay)
        for strategy in self.strategies:
            groups = strategy.param_groups(self.model, groups)
        groups = [dict(g) for g in groups if g["params"]]
        # torch wants every group named or none: name the parameters a strategy left unnamed.
        names = {id(p): n for n, p in self.model.named_parameters()}
        for g in groups:
            if "param_names" not in g:
                label = g.get("name", "group")
                g["param_names"] = [
                    names.get(id(p), f"{label}.{i}") for i, p in enumerate(g["params"])
                ]
        return groups

    def metric_name(self, metrics: Mapping[str, float]) -> str:
        """The validation metric that drives early stopping."""
        name = self.config.metric or self.task.default_metric
        if name in metrics:
            return name
        if self.config.metric:
            raise ConfigError(
                f"metric {name!r} is not one the task reports",
                where="train.metric",
                fix=f"use one of: {', '.join(sorted(metrics))}",
            )
        return "loss"

    def _better(self, metric: str, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        if self.task.greater_is_better(metric):
            return value > best
        return value < best

    def _emit(self, event: str, payload: Mapping[str, Any]) -> None:
        if self.device.is_main:
            self.manager.emit(event, payload)

    def _best_state(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in state_tensors(self.model, exclude=self._frozen).items()}

    def _untrained(
        self, train: FrameBatches, validation: FrameBatches, started: float
    ) -> TrainResult:
        """``epochs: 0``: no joint training (no optimizer); the model stays as its encoders
        fitted it (a warm-started ``text.tfidf``, ``tabular.gbdt``'s leaf values), scored
        once on the validation rows, and a fusion with ``refit`` still refits its
        combination there."""
        from transfuse.refit import refit_fusion

        self._emit(
            "run_start",
            {
                "epochs": 0,
                "start_epoch": 0,
                "rows": {"train": len(train.frame), "validation": len(validation.frame)},
                "device": self.device.describe(),
            },
        )
        val = evaluate(self.model, validation, self.task, self.device)
        metric = self.metric_name(val)
        value = float(val.get(metric, float("nan")))
        refit = refit_fusion(
            self.model, validation, self.task, self.device, metric, self.config.seed
        )
        result = TrainResult(
            metric=metric,
            best_epoch=-1,
            best_value=value,
            history=[],
            stopped_early=False,
            seconds=time.perf_counter() - started,
            start_value=value,
            refit=refit,
        )
        self._emit(
            "run_end",
            {"metric": metric, "best_epoch": -1, "best_value": value, "stopped_early": False,
             "epochs_run": 0},
        )  # fmt: skip
        return result

    # -- the loop ------------------------------------------------------------------
    def fit(
        self, train: FrameBatches, validation: FrameBatches, *, resume: bool = False
    ) -> TrainResult:
        """Train with early stopping on ``validation``; returns the history."""
        cfg = self.config
        started = time.perf_counter()
        if cfg.epochs == 0 and not resume:
            return self._untrained(train, validation, started)
        steps_per_epoch = max(1, len(train))
        total = cfg.epochs * steps_per_epoch
        optimizer = torch.optim.AdamW(self.param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, cfg.warmup))
        scaler = self.device.grad_scaler()
        plain_forward = self.forward
        if self.device.distributed:
            self.parallel = self._data_parallel(optimizer)
        history: list[dict[str, Any]] = []
        best_value: float | None = None
        best_loss = math.inf
        best_epoch = -1
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        start_epoch = 0
        step = 0
        if resume:
            restored = self._restore(optimizer, scheduler)
            history = restored["history"]
            best_value, best_epoch = restored["best_value"], restored["best_epoch"]
            best_state, bad_epochs = restored["best_state"], restored["bad_epochs"]
            best_loss = restored["best_loss"]
            start_epoch, step = restored["epoch"] + 1, restored["step"]
        metric = history[-1]["metric"] if history else None
        start_value = None
        if self.start_candidate and not resume:
            val = evaluate(self.model, validation, self.task, self.device)
            metric = self.metric_name(val)
            start_value = best_value = float(val.get(metric, float("nan")))
            best_loss, best_state = val["loss"], self._best_state()
        self._emit(
            "run_start",
            {
                "epochs": cfg.epochs,
                "start_epoch": start_epoch,
                "rows": {"train": len(train.frame), "validation": len(validation.frame)},
                "device": self.device.describe(),
            },
        )
        stopped_early = bad_epochs >= cfg.patience
        progress = cfg.progress and sys.stderr.isatty() and self.device.is_main
        for epoch in range(start_epoch, cfg.epochs if not stopped_early else start_epoch):
            epoch_started = time.perf_counter()
            torch.manual_seed(cfg.seed * 1000 + epoch)
            for strategy in self.strategies:
                strategy.on_epoch_start(epoch)
            for encoder in self.model.encoders().values():  # optional, e.g. LP-FT's probe
                hook = getattr(encoder, "on_epoch_start", None)
                if callable(hook):
                    hook(epoch)
            if self.parallel is not None:  # DDP anew when a strategy changed what trains
                self.parallel.refresh()
                self.forward = self.parallel.forward
            self.model.train()
            cache_before = _cache_counts(train)
            losses: list[float] = []
            shared: list[float] = []  # each loss times this rank's share of its batch
            bar = _bar(progress, steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
            last = {f"val_{metric}": f"{history[-1]['value']:.4f}"} if metric and history else {}
            rank, world = self.device.rank, self.device.world_size
            for batch in train.batches(
                shuffle=True, seed=cfg.seed * 1000 + epoch, rank=rank, world_size=world
            ):
                shared.append(float(batch.get("share", 1.0)))
                loss = self._step(batch, optimizer, scaler, step, epoch)
                shared[-1] *= loss
                scheduler.step()
                for strategy in self.strategies:
                    strategy.on_step_end(step)
                step += 1
                losses.append(loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", **last)
            train_cache = _cache_delta(cache_before, _cache_counts(train))
            val = evaluate(self.model, validation, self.task, self.device)
            metric = metric or self.metric_name(val)
            value = float(val.get(metric, float("nan")))
            improved = self._better(metric, value, best_value) or (
                value == best_value and val["loss"] < best_loss  # a tie: lower loss wins
            )
            if improved:
                best_value, best_epoch, bad_epochs = value, epoch, 0
                best_loss = val["loss"]
                best_state = self._best_state()
            else:
                bad_epochs += 1
            record = {
                "epoch": epoch,
                "train_loss": all_sum(sum(shared)) / len(shared) if shared else float("nan"),
                "validation": val,
                "metric": metric,
                "value": value,
                "lr": [float(g["lr"]) for g in optimizer.param_groups],
                "seconds": time.perf_counter() - epoch_started,
                "cache": train_cache,
                "improved": improved,
            }
            history.append(record)
            if bar is not None:
                bar.close(f"loss {record['train_loss']:.4f}, validation {metric} {value:.4f}")
            self._emit("epoch_end", {**record, "metrics": val})
            if self.checkpoint_dir is not None and self.device.is_main:
                path = save_checkpoint(
                    self.checkpoint_dir,
                    model=state_tensors(self.model, exclude=self._frozen),
                    best=best_state,
                    optimizer=optimizer,
                    state={
                        "epoch": epoch,
                        "step": step,
                        "history": history,
                        "best_value": best_value,
                        "best_epoch": best_epoch,
                        "best_loss": best_loss,
                        "bad_epochs": bad_epochs,
                        "scheduler": {"last_epoch": scheduler.last_epoch},
                        "scaler": {k: v for k, v in scaler.state_dict().items()},
                        "fingerprint": self.fingerprint,
                    },
                )
                self._emit("checkpoint", {"epoch": epoch, "path": str(path)})
            if bad_epochs >= cfg.patience:
                stopped_early = epoch < cfg.epochs - 1
                break
        if self.parallel is not None:
            self.parallel.close()
            self.parallel, self.forward = None, plain_forward
        if best_state is not None:
            self.model.load_state_dict(best_state, strict=False)
        for strategy in self.strategies:
            strategy.finalize(self.model)
        refit = None
        if metric is not None:  # a fusion with ``refit`` fits its combination on held-out rows
            from transfuse.refit import refit_fusion

            refit = refit_fusion(self.model, validation, self.task, self.device, metric, cfg.seed)
        result = TrainResult(
            metric=metric or "loss",
            best_epoch=best_epoch,
            best_value=float("nan") if best_value is None else best_value,
            history=history,
            stopped_early=stopped_early,
            seconds=time.perf_counter() - started,
            start_value=start_value,
            refit=refit,
        )
        self._emit(
            "run_end",
            {
                "metric": result.metric,
                "best_epoch": result.best_epoch,
                "best_value": result.best_value,
                "stopped_early": result.stopped_early,
                "epochs_run": len(history),
            },
        )
        return result

    def _step(
        self,
        batch: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        step: int,
        epoch: int,
    ) -> float:
        with self.device.autocast():
            outputs = self._forward(batch)
            loss = self.task.loss(outputs["logits"], batch["target"])
            auxiliary = getattr(self.model.fusion, "auxiliary_loss", None)
            if auxiliary is not None:  # e.g. fusion.stack's per-input head losses
                aux = auxiliary(batch["target"], self.task.loss)
                if aux is not None:
                    loss = loss + aux
            for strategy in self.strategies:
                extra = strategy.extra_loss(batch, outputs, step)
                if extra is not None:
                    loss = loss + extra
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ConfigError(
                f"training diverged: the loss is {value} at epoch {epoch + 1}, step {step}",
                where="train.lr",
                fix="lower the learning rate or check the inputs for extreme values",
            )
        if "share" in batch:  # DDP averages the ranks' gradients: weigh this rank's rows
            loss = loss * (batch["share"] * self.device.world_size)
        scaler.scale(loss).backward()
        if self.parallel is not None:
            self.parallel.sync_extra()
        if self.config.grad_clip is not None:
            scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return value

    def _data_parallel(self, optimizer: torch.optim.Optimizer) -> DataParallel:
        """The DDP wrapper; the optimizer's parameters outside the model are synced too."""
        from transfuse.distributed import DataParallel, needs_unused_detection

        return DataParallel(
            self.model,
            self.device,
            [p for group in optimizer.param_groups for p in group["params"]],
            find_unused=needs_unused_detection(self.model, self.strategies),
            skip=self._frozen,
            compile=self.config.compile,
        )

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        try:
            outputs: dict[str, Any] = self.forward(batch)
        except RuntimeError as exc:
            if self.parallel is None or "finished reduction" not in str(exc):
                raise
            raise DeviceError(
                "a trainable parameter got no gradient in a step, which DDP does not allow "
                "unless asked to look for such parameters",
                where="torchrun",
                fix="set TRANSFUSE_DDP_FIND_UNUSED=1, or give the component that skips "
                "parameters find_unused_parameters = True",
            ) from None
        return outputs

    def _restore(
        self, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR
    ) -> dict[str, Any]:
        if self.checkpoint_dir is None:
            raise CheckpointError("resuming needs a checkpoint folder", fix="give --out DIR")
        saved = load_checkpoint(self.checkpoint_dir)
        state = saved["state"]
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                "the checkpoint was made from other data or another pipeline",
                where=str(self.checkpoint_dir),
                fix="resume with the same pipeline and data, or train without --resume",
            )
        load_partial(self.model, saved["model"], str(self.checkpoint_dir / "model.safetensors"))
        optimizer_from_tensors(optimizer, saved["optimizer"], state["optimizer"])
        scheduler.last_epoch = int(state["scheduler"]["last_epoch"])
        factor = scheduler.lr_lambdas[0]
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * factor(scheduler.last_epoch)
        return {
            "history": state["history"],
            "best_value": state["best_value"],
            "best_epoch": state["best_epoch"],
            "best_loss": state.get("best_loss", math.inf),
            "best_state": saved["best"],
            "bad_epochs": state["bad_epochs"],
            "epoch": state["epoch"],
            "step": state["step"],
        }


def _cache_counts(data: FrameBatches) -> dict[str, dict[str, int]]:
    from transfuse.data import cache_stats

    return cache_stats(data.inputs)


def _cache_delta(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    return {
        name: {k: after[name][k] - before.get(name, {}).get(k, 0) for k in after[name]}
        for name in after
    }


class _Bar:
    """A rich progress bar on stderr for one epoch, showing the loss and the val metric."""

    def __init__(self, total: int, desc: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task(desc, total=total, info="")
        self.desc = desc
        self.progress.start()

    def update(self, steps: int) -> None:
        self.progress.advance(self.task, steps)

    def set_postfix(self, **fields: str) -> None:
        info = " ".join(f"{k} {v}" for k, v in fields.items())
        self.progress.update(self.task, info=info)

    def close(self, summary: str) -> None:
        self.progress.stop()
        self.progress.console.print(f"{self.desc}: {summary}", highlight=False)


def _bar(enabled: bool, total: int, desc: str) -> _Bar | None:
    return _Bar(total, desc) if enabled else None
