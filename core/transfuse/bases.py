"""The base classes that plugins implement: Encoder, Fusion, Task, TransferStrategy, DataSource.

These import torch, so they are loaded only when a component is built (``transfuse``
itself exposes them lazily). Every component is constructed as
``Factory(options, device)`` where ``options`` is its validated options model instance
and ``device`` the run's :class:`~transfuse.device.DeviceManager`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from torch import Tensor, nn

from transfuse.components import Options

if TYPE_CHECKING:
    from transfuse.device import DeviceManager

__all__ = [
    "Batch",
    "DataSource",
    "Encoder",
    "Fusion",
    "Logit",
    "Parts",
    "Task",
    "TensorFate",
    "TransferContext",
    "TransferReport",
    "TransferStrategy",
]

Batch = dict[str, Tensor]
"""What ``Encoder.prepare`` returns: named tensors whose first dimension is the row."""


class Encoder(nn.Module):
    """Turns one input (a column, or a group of columns) into ``[B, output_dim]``.

    Life cycle: ``__init__(options, device)`` -> ``fit(values)`` on training rows (or
    ``load_fitted(directory)`` when restoring) -> ``prepare(values)`` per batch on the host
    -> ``forward(batch)`` on the device. Parameters must exist with their final shapes
    after ``fit`` or ``load_fitted``, so that saved weights load into them.

    ``values`` is a :class:`pandas.Series` for a one-column input and a
    :class:`pandas.DataFrame` for a several-column input. A missing value (None/NaN) is a
    missing modality for that row: ``prepare`` must still return a row for it (zeros do)
    and the fusion masks it out, unless ``handles_missing`` is true (tabular encoders
    impute and learn missing indicators), in which case the row counts as present.
    """

    output_dim: int
    """Width of the embedding that ``forward`` returns; set by ``__init__`` or ``fit``."""
    frozen: bool = False
    """Frozen encoders never train: their outputs are cached on disk and reused."""
    handles_missing: bool = False
    """True when the encoder deals with missing values itself (then rows stay present)."""
    rowwise_prepare: bool = False
    """True when ``prepare`` works row by row: row i of every output tensor depends on
    value i alone and the shapes do not depend on the batch (no padding to the batch's
    longest row). The data path then prepares a frame's rows once and slices them per
    batch, instead of preparing every row again each epoch.
    """

    def __init__(self, options: Options, device: DeviceManager) -> None:
        super().__init__()
        self.options: Any = options  # the component's own options model
        self.device_manager = device

    def fit(self, values: pd.Series | pd.DataFrame) -> None:
        """Learn from training rows only (vocabularies, scalers). Default: nothing.

        Supervised encoders (``tabular.gbdt`` fits a LightGBM model) may extend the
        signature additively: when ``fit`` accepts ``target``, the runtime calls
        ``fit(values, target=labels)`` with the training rows' raw labels (a Series), and
        when it also accepts ``valid``, ``fit(values, target=..., valid=(values_val,
        labels_val))`` with the validation rows (for early stopping). Test for the keyword
        with ``inspect.signature(encoder.fit).parameters``.
        """

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """A boolean array, true where the row's value is missing."""
        if isinstance(values, pd.DataFrame):
            return values.isna().all(axis=1).to_numpy()
        return values.isna().to_numpy()

    def lengths(self, values: pd.Series | pd.DataFrame) -> np.ndarray | None:
        """Optional per-row cost estimate (e.g. token count), or ``None`` (the default).

        When given, frozen rows are embedded in length-sorted batches and a trainable
        encoder's training batches are bucketed by length, so a batch pads to rows of
        similar size. It must be cheap next to ``forward`` (a tokenizer pass, ``str.len``).
        """
        return None

    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """What a user should know about these rows, for the run's ``log.json`` (empty
        when nothing): files skipped under ``on_bad_file: skip``, categories outside the
        vocabulary. Default: nothing. Called in the main process on whole splits."""
        return {}

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Turn raw values into host tensors (runs in data-loader workers)."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> Tensor:
        """Embed a prepared batch: ``[B, output_dim]`` on the device."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups (e.g. ``{"backbone": [...]}``) that strategies may give
        their own learning rate; parameters not listed fall in the default group."""
        return {}

    def cache_key(self) -> str:
        """A string that changes whenever the encoder would embed a value differently."""
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"{kind}:{self.options.model_dump_json()}"

    def save_fitted(self, directory: Path) -> None:
        """Write what ``fit`` learned (not the weights) into ``directory``."""
        state = self.fitted_state()
        if state:
            (directory / "state.json").write_text(json.dumps(state, indent=1), "utf-8")

    def load_fitted(self, directory: Path) -> None:
        """Restore what :meth:`save_fitted` wrote and build the parameters."""
        path = directory / "state.json"
        self.load_fitted_state(json.loads(path.read_text("utf-8")) if path.exists() else {})

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted state; the default save/load use this."""
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state`; must create parameters with their final shapes."""

    def explain_parts(self) -> list[str] | None:
        """The fixed parts this input splits into for explanations (a table's columns), in
        the order :meth:`attribute` gives them; ``None`` (the default) when the parts vary
        by row (words, events, frames). Fixed parts get a reason code each; otherwise the
        input has one code."""
        return None

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts | None:
        """Attribute the rows' score to this input's parts (see ``docs/explain.md``).

        ``logit(embedding, rows)`` is the model's logit (the explained output) for rows
        ``rows`` (positions into ``values``) with this input's embedding replaced by
        ``embedding`` (``[M, output_dim]`` on the device) and every other input as the row
        has it; it is differentiable, so gradient methods (captum) work through it. Return
        one score per part per row in logit units. The default, ``None``, treats the input
        as one part. Called in eval mode, outside ``torch.no_grad``.
        """
        return None


Logit = Callable[[Tensor, Tensor], Tensor]
"""``logit(embedding [M, D], rows [M]) -> [M]``: what :meth:`Encoder.attribute` attributes."""


@dataclass
class Parts:
    """One input's parts and their attributions for a batch of rows (what
    :meth:`Encoder.attribute` returns). Lists hold one entry per row; a row's entries hold
    one item per part, in the same order."""

    labels: list[list[str]]
    """Each part's name: a column, a word, ``"event 3"``, ``"0.5-1.0 s"``."""
    scores: list[np.ndarray]
    """Each part's attribution in logit units (a 1-D array per row)."""
    method: str
    """How the parts were attributed (``"integrated-gradients"``, ``"occlusion"``, ...)."""
    baseline: str
    """What the scores are measured against (``"the training median/mode row"``, ...)."""
    complete: bool = False
    """True when a row's scores add up to ``logit(row) - logit(baseline)`` by the method."""
    delta: np.ndarray | None = None
    """Per row, the completeness error the method reports (captum's convergence delta)."""
    values: list[list[str]] | None = None
    """Each part's value as the row has it, as text (``"38.2"``, ``"self"``), for reasons."""
    notes: list[list[str]] | None = None
    """How each value compares (``"higher than 91% of training rows"``), or ``""``."""
    maps: list[np.ndarray] | None = None
    """Per row, a saliency map (``[H, W]``, images) to write as a picture when asked."""


class Fusion(nn.Module):
    """Combines the inputs' embeddings into one vector per row.

    Built as ``Fusion(options, device, input_dims=..., num_outputs=...)``. ``forward``
    gets the embeddings and, per input, a boolean ``[B]`` mask that is false where the
    row lacks that modality; every fusion must give a sensible output for such rows.
    A fusion whose output already is the task's logits (late fusion) sets
    ``produces_logits``; the model then adds no head.
    """

    output_dim: int
    produces_logits: bool = False

    def __init__(
        self,
        options: Options,
        device: DeviceManager,
        *,
        input_dims: Mapping[str, int],
        num_outputs: int,
    ) -> None:
        super().__init__()
        self.options: Any = options  # the component's own options model
        self.device_manager = device
        self.input_dims = dict(input_dims)
        self.num_outputs = num_outputs

    def forward(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """Fuse: ``[B, output_dim]``."""
        raise NotImplementedError


class Task:
    """What to predict: the label encoding, the head's width, the loss and the metrics.

    Built as ``Task(options, device)``; ``fit(labels)`` on training labels learns the
    classes; ``encode`` turns labels into a tensor for the loss; ``scores`` turns logits
    into the numbers a user sees (probabilities, values).
    """

    default_metric: str = "loss"
    """The metric early stopping watches unless the config names another."""

    def __init__(self, options: Options, device: DeviceManager) -> None:
        self.options: Any = options  # the component's own options model
        self.device_manager = device

    def fit(self, labels: pd.Series) -> None:
        """Learn what the labels look like (classes, scale) from training rows."""
        raise NotImplementedError

    @property
    def num_outputs(self) -> int:
        """Width of the head's output."""
        raise NotImplementedError

    def encode(self, labels: pd.Series) -> Tensor:
        """Labels as the tensor the loss expects."""
        raise NotImplementedError

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Training loss for a batch."""
        raise NotImplementedError

    def scores(self, logits: Tensor) -> np.ndarray:
        """Logits to user-facing scores, ``[N, len(score_columns)]``."""
        raise NotImplementedError

    def score_columns(self) -> list[str]:
        """Names of the score columns ``predict`` writes."""
        raise NotImplementedError

    def metrics(self, labels: pd.Series, scores: np.ndarray) -> dict[str, float]:
        """Metrics of scores against true labels."""
        raise NotImplementedError

    def greater_is_better(self, metric: str) -> bool:
        """Whether a larger value of ``metric`` is better."""
        return metric not in {"loss", "log_loss", "brier", "rmse", "mae"}

    def state(self) -> dict[str, Any]:
        """JSON-able fitted state (classes, scale)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""


class DataSource:
    """Loads a table by name. Built as ``DataSource(options)``; ``load()`` returns it."""

    target: str | None = None
    """The label column this source provides, if it has a natural one."""

    def __init__(self, options: Options) -> None:
        self.options: Any = options  # the component's own options model

    def load(self) -> pd.DataFrame:
        """The whole table."""
        raise NotImplementedError


# -- transfer ---------------------------------------------------------------------------

Fate = Literal["copied", "reshaped", "reinitialised", "skipped", "kept"]


@dataclass(frozen=True)
class TensorFate:
    """What a transfer did to one target tensor.

    The fates: ``copied`` (loaded whole from the source), ``reshaped`` (partly loaded:
    the rows both have, the rest new), ``reinitialised`` (initialised afresh, seeded),
    ``skipped`` (left as the target was built, because a rule said so) and ``kept`` (the
    strategy left it as it found it: a strategy that copies nothing, such as a freeze,
    reports ``kept``). Only ``copied`` and ``reshaped`` count as loaded.
    """

    name: str
    fate: Fate
    numel: int
    source: str | None = None
    note: str = ""
    run: str | None = None
    """The source run it came from, when a transfer has several (``None`` with one)."""


@dataclass
class TransferReport:
    """Every target tensor's fate after a strategy's ``prepare``.

    Build it as ``TransferReport(strategy="strategy.mine")`` and call :meth:`add` once per
    target tensor (``report.add(name, "kept", param.numel())``); return it from
    ``prepare``. The run writes it to ``transfer.json`` and ``report.md``, and
    ``transfuse transfer`` prints its :meth:`headline`.

    Example::

        report = TransferReport(strategy=self.name)
        for name, param in ctx.target_model.named_parameters():
            report.add(name, "kept", param.numel(), note="frozen")
        return report
    """

    strategy: str
    tensors: list[TensorFate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        fate: Fate,
        numel: int,
        source: str | None = None,
        note: str = "",
        run: str | None = None,
    ) -> None:
        """Record one tensor's fate (``run``: which source run, when there are several)."""
        self.tensors.append(TensorFate(name, fate, numel, source, note, run))

    @property
    def loaded_fraction(self) -> float:
        """Fraction of target parameters (by element count) loaded from the source."""
        total = sum(t.numel for t in self.tensors)
        loaded = sum(t.numel for t in self.tensors if t.fate in {"copied", "reshaped"})
        return loaded / total if total else 0.0

    def counts(self) -> dict[str, int]:
        """Number of tensors per fate."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.fate] = out.get(t.fate, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, written to a run's ``transfer.json``."""
        return {
            "strategy": self.strategy,
            "loaded_fraction": self.loaded_fraction,
            "counts": self.counts(),
            "notes": list(self.notes),
            "tensors": [t.__dict__ for t in self.tensors],
        }

    def runs(self) -> dict[str, int]:
        """Tensors taken from each source run (empty when the transfer had one source)."""
        out: dict[str, int] = {}
        for t in self.tensors:
            if t.run is not None:
                out[t.run] = out.get(t.run, 0) + 1
        return out

    def by_module(self) -> dict[str, dict[str, int]]:
        """Tensors per fate within each module (``inputs.NAME``, ``fusion``, ``head``, ...)."""
        out: dict[str, dict[str, int]] = {}
        for t in self.tensors:
            parts = t.name.split(".")
            module = ".".join(parts[:2]) if parts[0] == "inputs" and len(parts) > 2 else parts[0]
            fates = out.setdefault(module, {})
            fates[t.fate] = fates.get(t.fate, 0) + 1
        return out

    def headline(self) -> str:
        """One plain line: the share of parameters loaded and the tensors per fate (a
        strategy that loads nothing says so, instead of "0.0% loaded")."""
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))
        if not any(t.fate in {"copied", "reshaped"} for t in self.tensors):
            return f"{self.strategy}: no weights loaded from the source ({counts or 'no tensors'})"
        return (
            f"{self.strategy}: {self.loaded_fraction:.1%} of target parameters loaded "
            f"from the source ({counts or 'no tensors'})"
        )

    def summary(self) -> str:
        """:meth:`headline` for ``report.md`` (the strategy's name in bold)."""
        return f"**{self.strategy}**" + self.headline().removeprefix(self.strategy)

    def to_markdown(self) -> str:
        """A table for ``report.md``: tensors per fate in each module (the per-tensor list
        stays in the run's ``transfer.json``), and the strategy's notes."""
        fates = [f for f in ("copied", "reshaped", "reinitialised", "skipped", "kept")]
        seen = [f for f in fates if any(f in row for row in self.by_module().values())]
        lines = [self.summary(), ""]
        if seen:
            lines += [
                "| module | " + " | ".join(seen) + " |",
                "| --- |" + " ---: |" * len(seen),
            ]
            for module, row in self.by_module().items():
                lines.append(
                    f"| `{module}` | " + " | ".join(str(row.get(f, 0)) for f in seen) + " |"
                )
            lines.append("")
        runs = self.runs()
        if runs:
            lines += ["Tensors per source run: " + ", ".join(f"{r}: {n}" for r, n in runs.items())]
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip()


@dataclass
class TransferContext:
    """What a strategy sees: both models, the device, and the target's data.

    ``batches(frame, batch_size, shuffle)`` turns a DataFrame into prepared device
    batches for the target model (for strategies that need extra forward passes, such as
    domain alignment); ``features(model, batch)`` returns the fused features of a batch.
    The transfer workflow puts the target's label column in ``extra["label"]``, its fitted
    task (whose ``loss(logits, target)`` scores a batch) in ``extra["task"]`` and the
    source run's config in ``extra["source_config"]``; after ``strategy.layer-map``,
    ``extra["loaded"]`` maps each loaded target parameter's name to ``None`` (loaded
    whole) or a boolean tensor of its shape, true where it was loaded.
    ``validation_data`` holds the target's labelled validation rows (for strategies that
    choose by cross-validation on every labelled row, such as ``strategy.stack``); ``None``
    when not given.

    A transfer from several source runs lists them all, in the order given, in
    ``source_models`` (with their names in ``source_names`` and configs in
    ``extra["source_configs"]``); ``source_model`` is the first, for strategies that know
    only one. With a single source both lists hold just it.
    """

    source_model: nn.Module
    target_model: nn.Module
    device: DeviceManager
    target_data: pd.DataFrame
    unlabeled: pd.DataFrame | None = None
    source_data: pd.DataFrame | None = None
    epochs: int = 1
    steps_per_epoch: int = 1
    batches: Callable[..., Iterator[dict[str, Any]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    validation_data: pd.DataFrame | None = None
    source_models: list[nn.Module] = field(default_factory=list)
    source_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.source_models:
            self.source_models = [self.source_model]
        if len(self.source_names) != len(self.source_models):
            self.source_names = [f"source {i}" for i in range(len(self.source_models))]

    def features(self, model: nn.Module, batch: Mapping[str, Any]) -> Tensor:
        """The fused features ``[B, width]`` of a prepared batch (from :attr:`batches`):
        what the head sees, ``model(batch)["features"]``."""
        out: Tensor = model(batch)["features"]
        return out


class TransferStrategy:
    """A way to carry a source model's knowledge into the target model.

    Built as ``Strategy(options, device)``. The trainer calls, in order of the
    configured strategies: ``prepare(ctx)`` once before training; ``param_groups`` to
    shape the optimizer; ``on_epoch_start``, ``extra_loss`` and ``on_step_end`` as it
    trains; ``finalize`` at the end. Every method has a do-nothing default, so a strategy
    overrides only what it needs.
    """

    copies_weights: bool = False
    """True when ``prepare`` loads the source's weights into the target (layer-map does);
    the transfer workflow puts ``strategy.layer-map`` first when no strategy does.
    """
    needs_source_data: bool = False
    """True when the strategy needs the source domain's rows (``ctx.source_data``)."""
    name: str = ""
    """The registered name; the workflow sets it when it builds the strategy."""

    def __init__(self, options: Options, device: DeviceManager) -> None:
        self.options: Any = options  # the component's own options model
        self.device_manager = device
        self.context: TransferContext | None = None

    def prepare(self, ctx: TransferContext) -> TransferReport | None:
        """Copy, map or freeze before training; report what happened to each tensor."""
        self.context = ctx
        return None

    def param_groups(self, model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Reshape the optimizer's parameter groups (each has ``params``, ``lr``, ``name``).

        Strategies compose: each receives the groups the previous one returned.
        """
        return groups

    def extra_loss(
        self, batch: dict[str, Any], outputs: dict[str, Tensor], step: int
    ) -> Tensor | None:
        """A loss term added to the task loss (``outputs`` has ``logits`` and ``features``)."""
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (0-based)."""

    def on_step_end(self, step: int) -> None:
        """Called after each optimizer step."""

    def finalize(self, model: nn.Module) -> None:
        """Called once after training (undo hooks, unfreeze...)."""
