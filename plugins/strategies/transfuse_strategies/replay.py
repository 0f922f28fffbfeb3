"""``strategy.replay``: keep learning the source task while training on the target.

Rehearsal (Robins 1995; the "joint training" baseline of the transfer literature): each
step draws a batch of labelled source rows and adds ``weight`` times the task's loss on
them, so the few target labels adjust a model that keeps seeing what the source taught it,
instead of pulling it away. It is the network's counterpart of pooling source and target
rows in one gradient-boosting fit. The source rows need the target task's label column.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport, TransferStrategy
from transfuse_strategies import ReplayOptions
from transfuse_strategies.alignment import _Stream

__all__ = ["Replay"]


class Replay(TransferStrategy):
    """Add ``weight * task_loss(model(source batch), source labels)`` at every step."""

    options: ReplayOptions
    #: The transfer workflow loads the source run's rows for strategies that say so.
    needs_source_data = True

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Check the source rows carry the label; open an endless stream of their batches."""
        self.context = ctx
        label, task = ctx.extra.get("label"), ctx.extra.get("task")
        where = "strategy.replay"
        if ctx.source_data is None or label is None or label not in ctx.source_data.columns:
            raise TransferError(
                f"replay needs the source rows with the target's label column {label!r}",
                where=where,
                fix="transfer from a run whose data has that column, or pass source_data=",
            )
        if task is None or ctx.batches is None:
            raise TransferError(
                "the transfer context has no task or batches() to score source rows with",
                where=where,
                fix="run it through `transfuse transfer` (or give ctx.extra['task'], batches=)",
            )
        rows = ctx.source_data[ctx.source_data[label].notna()]
        if len(rows) < 2:
            raise TransferError(
                f"only {len(rows)} source rows have a {label!r} label", where=where,
                fix="give source rows with labels",
            )  # fmt: skip
        wanted = [c for c in ctx.target_data.columns if c not in rows.columns]
        rows = rows.reindex(columns=[*rows.columns, *wanted])  # target-only columns: missing
        self.task = task
        self.stream = _Stream(ctx, rows, self.options.batch_size)
        return None

    def extra_loss(self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int) -> Tensor:
        """The task's loss on the next source batch, times ``weight``."""
        assert self.context is not None
        source = self.stream.next()
        with self.device_manager.autocast():
            logits = self.context.target_model(source)["logits"]
        loss: Tensor = self.task.loss(logits, source["target"])
        return self.options.weight * loss

    def finalize(self, model: Any) -> None:
        """Let go of the source stream."""
        self.stream = None  # type: ignore[assignment]
