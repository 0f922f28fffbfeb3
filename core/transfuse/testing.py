"""A kit for plugin authors: conformance checks, and pytest fixtures.

``pip install "transfuse[testing]"`` brings pytest; transfuse registers this module as a
pytest plugin (entry point ``pytest11``), so a plugin's tests get the fixtures without
importing them. One call checks every component a plugin registers::

    import transfuse_mine
    from transfuse.testing import check_plugin

    def test_every_component_conforms():
        check_plugin(transfuse_mine)   # or check_plugin("transfuse-mine"), the distribution

or one component at a time::

    import pandas as pd
    from transfuse.testing import check_encoder

    def test_my_encoder_conforms(transfuse_manager, register_plugin):
        register_plugin(transfuse_mine)
        entry = transfuse_manager.get("encoder", "text.mine")
        check_encoder(entry, pd.Series(["a", "b", None]))

A failed check raises :class:`ConformanceError` (an ``AssertionError``) whose message
says which component broke which rule, in words. The checks import torch only when
called; the checks work without pytest, the fixtures need it.
"""

from __future__ import annotations

import tempfile
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfuse.components import (
    ComponentEntry,
    DataSourceEntry,
    EncoderEntry,
    FusionEntry,
    StrategyEntry,
    TaskEntry,
)
from transfuse.plugins import PluginManager, reset_plugin_manager

try:  # the fixtures need pytest; the checks do not
    import pytest
except ImportError:  # pragma: no cover - pytest is in the `testing` extra
    pytest = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.device import DeviceManager

__all__ = [
    "ConformanceError",
    "check_data_source",
    "check_encoder",
    "check_explanation",
    "check_fusion",
    "check_plugin",
    "check_strategy",
    "check_task",
    "cpu_device",
]


def _fixture(function: Callable[..., Any]) -> Any:
    """``pytest.fixture`` when pytest is installed; the plain function otherwise."""
    return pytest.fixture(function) if pytest is not None else function


class ConformanceError(AssertionError):
    """A component breaks its contract; the message says which rule, in words."""


def _require(condition: object, entry: ComponentEntry, what: str) -> None:
    """Fail with ``kind 'name': what`` unless ``condition`` holds."""
    if not condition:
        raise ConformanceError(f"{entry.kind} {entry.name!r}: {what}")


@_fixture
def transfuse_manager() -> Iterator[PluginManager]:
    """A plugin manager with the core's components only (installed plugins not loaded).

    It is also the process-wide manager for the test, so code under test that calls
    ``get_plugin_manager()`` sees it.
    """
    manager = PluginManager(autoload=False)
    reset_plugin_manager(manager)
    yield manager
    reset_plugin_manager(None)


@_fixture
def register_plugin(transfuse_manager: PluginManager) -> Callable[..., object]:
    """Register a module (or object with hook implementations) for one test."""

    def register(plugin: object, name: str | None = None, version: str = "0.0.test") -> object:
        name = name or getattr(plugin, "__name__", "test-plugin")
        transfuse_manager.register(plugin, name=name, distribution=name, version=version)
        return plugin

    return register


def cpu_device(seed: int = 0) -> DeviceManager:
    """A CPU, fp32 device manager for tests."""
    from transfuse.device import DeviceManager

    return DeviceManager("cpu", "fp32", seed=seed)


@_fixture
def device_manager() -> DeviceManager:
    """A seeded CPU device manager."""
    return cpu_device()


def _build(entry: ComponentEntry, options: Mapping[str, Any] | None, *args: Any, **kw: Any) -> Any:
    factory = entry.load()
    return factory(entry.validate_options(options or {}), *args, **kw)


def check_encoder(
    entry: EncoderEntry,
    values: pd.Series | pd.DataFrame,
    *,
    options: Mapping[str, Any] | None = None,
    device: DeviceManager | None = None,
) -> Any:
    """Check an encoder against the contract on sample ``values`` (include a missing one).

    Builds it, fits it, embeds the values, checks the shape, that missing rows still get
    a row, that fitted state and weights round-trip into a fresh instance with identical
    outputs, that a frozen encoder is deterministic and a trainable one gets gradients.
    Returns the fitted encoder.
    """
    import torch

    from transfuse.bases import Encoder

    device = device or cpu_device()
    _require(isinstance(entry, EncoderEntry), entry, "is not an EncoderEntry")
    encoder = _build(entry, options, device)
    _require(isinstance(encoder, Encoder), entry, "its factory must derive from transfuse.Encoder")
    _require(
        getattr(encoder, "options", None) is not None,
        entry,
        "self.options is unset: call super().__init__(options, device) first in __init__",
    )
    encoder.fit(values)
    encoder = encoder.to(device.device)
    _require(
        isinstance(getattr(encoder, "output_dim", None), int) and encoder.output_dim > 0,
        entry,
        "output_dim must be a positive int once __init__ or fit has run "
        f"(it is {getattr(encoder, 'output_dim', 'unset')!r})",
    )
    missing = encoder.missing(values)
    _require(
        getattr(missing, "shape", None) == (len(values),),
        entry,
        f"missing() must give one flag per row ({len(values)}), "
        f"got shape {getattr(missing, 'shape', type(missing).__name__)}",
    )
    batch = encoder.prepare(values)
    _require(
        isinstance(batch, dict) and batch,
        entry,
        f"prepare() must return a non-empty dict of tensors, not {type(batch).__name__}",
    )
    for key, tensor in batch.items():
        _require(
            isinstance(tensor, torch.Tensor),
            entry,
            f"prepare()[{key!r}] is a {type(tensor).__name__}, not a torch.Tensor",
        )
        _require(
            tensor.shape[0] == len(values),
            entry,
            f"prepare()[{key!r}] has {tensor.shape[0]} rows for {len(values)} values "
            "(one row per value, a missing one included)",
        )
        _require(
            tensor.device.type == "cpu",
            entry,
            f"prepare()[{key!r}] is on {tensor.device}; prepare returns host (CPU) tensors "
            "and the runtime moves them",
        )
    encoder.eval()
    with torch.no_grad():
        out = encoder(device.move(batch))
    _require(
        isinstance(out, torch.Tensor) and tuple(out.shape) == (len(values), encoder.output_dim),
        entry,
        f"forward gave {tuple(getattr(out, 'shape', ()))}, expected "
        f"{(len(values), encoder.output_dim)} ([rows, output_dim])",
    )
    present = ~missing
    _require(
        torch.isfinite(out[torch.as_tensor(present)]).all(),
        entry,
        "forward gave non-finite embeddings (NaN or inf) for rows that are present",
    )
    if encoder.frozen:
        with torch.no_grad():
            again = encoder(device.move(encoder.prepare(values)))
        _require(
            torch.allclose(out, again), entry, "a frozen encoder must give the same output twice"
        )
    else:
        encoder.train()
        trainable = [p for p in encoder.parameters() if p.requires_grad]
        _require(
            trainable,
            entry,
            "a trainable encoder has no trainable parameters (set frozen = True if it "
            "never trains)",
        )
        encoder(device.move(batch))[torch.as_tensor(present)].float().pow(2).mean().backward()
        _require(
            any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable),
            entry,
            "no gradient reached the encoder's parameters (is forward detached?)",
        )
        encoder.zero_grad()
        encoder.eval()
        with torch.no_grad():  # training mode may have moved batch-norm statistics
            out = encoder(device.move(batch))
    with tempfile.TemporaryDirectory() as tmp:
        encoder.save_fitted(Path(tmp))
        fresh = _build(entry, options, device)
        fresh.load_fitted(Path(tmp))
    try:
        fresh.load_state_dict(encoder.state_dict())
    except RuntimeError as exc:
        raise ConformanceError(
            f"encoder {entry.name!r}: the saved weights do not load into a fresh instance "
            "after load_fitted; load_fitted (or load_fitted_state) must create every "
            f"parameter with its final shape: {str(exc).splitlines()[0]}"
        ) from None
    fresh = fresh.to(device.device).eval()
    with torch.no_grad():
        restored = fresh(device.move(fresh.prepare(values)))
    _require(
        torch.allclose(
            out[torch.as_tensor(present)], restored[torch.as_tensor(present)], atol=1e-5
        ),
        entry,
        "outputs changed after save_fitted/load_fitted and the weights: save what fit "
        "learned in save_fitted (or fitted_state)",
    )
    _require(
        isinstance(encoder.cache_key(), str) and encoder.cache_key(), entry, "cache_key is empty"
    )
    return encoder


def check_fusion(
    entry: FusionEntry,
    *,
    options: Mapping[str, Any] | None = None,
    device: DeviceManager | None = None,
    num_outputs: int = 1,
) -> Any:
    """Check a fusion module: shapes, a row with a modality missing, a row with all but one
    missing, gradients, and modality dropout in training mode."""
    import torch

    from transfuse.bases import Fusion

    device = device or cpu_device()
    dims = {"a": 8, "b": 5, "c": 3}
    fusion = _build(entry, options, device, input_dims=dims, num_outputs=num_outputs)
    _require(isinstance(fusion, Fusion), entry, "its factory must derive from transfuse.Fusion")
    n = 6
    emb = {k: torch.randn(n, d) for k, d in dims.items()}
    present = {k: torch.ones(n, dtype=torch.bool) for k in dims}
    present["b"][1] = False
    present["a"][2] = False
    present["c"][2] = False
    fusion.eval()
    out = fusion(emb, present)
    width = num_outputs if fusion.produces_logits else fusion.output_dim
    _require(
        tuple(out.shape) == (n, width),
        entry,
        f"forward gave {tuple(out.shape)}, expected {(n, width)} ([rows, "
        + ("num_outputs" if fusion.produces_logits else "output_dim")
        + "])",
    )
    _require(torch.isfinite(out).all(), entry, "non-finite output with a modality missing")
    # A missing modality's embedding must not matter.
    emb2 = dict(emb)
    emb2["b"] = emb["b"].clone()
    emb2["b"][1] = 1e3
    _require(
        torch.allclose(fusion(emb2, present)[1], out[1], atol=1e-4),
        entry,
        "the embedding of a missing modality changed the output (mask it with `present`)",
    )
    fusion.train()
    fusion(emb, present).pow(2).mean().backward()
    _require(
        any(p.grad is not None for p in fusion.parameters()),
        entry,
        "no gradient reached the fusion's parameters",
    )
    return fusion


def check_task(
    entry: TaskEntry, labels: pd.Series, *, options: Mapping[str, Any] | None = None
) -> Any:
    """Check a task: fit, encode, loss, scores and metrics on sample labels."""
    import torch

    task = _build(entry, options, cpu_device())
    task.fit(labels)
    k = task.num_outputs
    logits = torch.randn(len(labels), k, requires_grad=True)
    loss = task.loss(logits, task.encode(labels))
    _require(
        isinstance(loss, torch.Tensor) and loss.ndim == 0 and torch.isfinite(loss),
        entry,
        "loss must be a finite scalar tensor",
    )
    loss.backward()
    scores = task.scores(logits.detach())
    _require(
        scores.shape == (len(labels), len(task.score_columns())),
        entry,
        f"scores have shape {scores.shape}, expected one column per score_columns() "
        f"{(len(labels), len(task.score_columns()))}",
    )
    metrics = task.metrics(labels, scores)
    _require(
        task.default_metric in metrics or task.default_metric == "loss",
        entry,
        f"metrics() lacks the default metric {task.default_metric!r}",
    )
    restored = _build(entry, options, cpu_device())
    restored.load_state(task.state())
    _require(restored.num_outputs == k, entry, "task state does not round-trip (num_outputs)")
    return task


def check_strategy(
    entry: StrategyEntry,
    *,
    options: Mapping[str, Any] | None = None,
    context: Any = None,
) -> Any:
    """Check a strategy builds from its options and its hooks accept the trainer's calls.

    ``context`` (a :class:`~transfuse.bases.TransferContext`) replaces the two tiny
    stand-in models, for strategies that need real data (``batches``, ``unlabeled``); with
    one that has ``batches``, ``extra_loss`` gets a real batch and its outputs. The
    optimizer groups a strategy returns must still hold every parameter exactly once;
    ``extra_loss`` must return ``None`` or a finite scalar tensor; after ``finalize`` every
    parameter that trained before ``prepare`` must train again; ``copies_weights`` on the
    class must agree with the entry's.
    """
    import torch
    from torch import nn

    from transfuse.bases import TransferContext, TransferReport, TransferStrategy

    device = context.device if context is not None else cpu_device()
    strategy = _build(entry, options, device)
    _require(
        isinstance(strategy, TransferStrategy),
        entry,
        "its factory must derive from transfuse.TransferStrategy",
    )
    _require(
        bool(type(strategy).copies_weights) == bool(entry.copies_weights),
        entry,
        f"the class says copies_weights = {type(strategy).copies_weights} and the entry "
        f"says {entry.copies_weights}; declare the same on both",
    )

    def model() -> nn.Module:
        m = nn.Module()
        m.inputs = nn.ModuleDict({"x": nn.Linear(4, 8)})
        m.fusion = nn.Linear(8, 8)
        m.head = nn.Linear(8, 1)
        return m

    import pandas as pd

    if context is None:
        context = TransferContext(model(), model(), device, pd.DataFrame({"x": [1.0, 2.0]}))
    ctx = context
    target = ctx.target_model
    trained = {n for n, p in target.named_parameters() if p.requires_grad}
    report = strategy.prepare(ctx)
    _require(
        report is None or isinstance(report, TransferReport),
        entry,
        f"prepare() returned a {type(report).__name__}; return a TransferReport or None",
    )
    params = [p for p in target.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"name": "default", "params": list(params), "lr": 1e-3}]
    groups = strategy.param_groups(target, groups)
    _require(
        isinstance(groups, list)
        and all(isinstance(g, dict) and "params" in g and "lr" in g for g in groups),
        entry,
        "param_groups() must return a list of dicts, each with 'params' and 'lr'",
    )
    seen = [id(p) for g in groups for p in g["params"]]
    _require(len(seen) == len(set(seen)), entry, "param_groups put a parameter in two groups")
    _require(
        {id(p) for p in params} <= set(seen),
        entry,
        "param_groups lost parameters: keep every parameter it receives, in one group",
    )
    strategy.on_epoch_start(0)
    if ctx.batches is not None:
        batch = next(iter(ctx.batches(ctx.target_data, 4)))
        out = target(batch)
    else:
        batch = {}
        out = {"logits": torch.zeros(2, 1), "features": torch.zeros(2, 8)}
    extra = strategy.extra_loss(batch, out, 0)
    if extra is not None:
        _require(
            isinstance(extra, torch.Tensor),
            entry,
            f"extra_loss returned a {type(extra).__name__}; return a scalar tensor (one "
            "that carries gradients) or None",
        )
        _require(
            extra.ndim == 0,
            entry,
            f"extra_loss returned a tensor of shape {tuple(extra.shape)}; return a scalar "
            "(reduce it, e.g. with .sum() or .mean())",
        )
        _require(torch.isfinite(extra), entry, f"extra_loss is not finite ({extra.item()})")
        if extra.requires_grad:
            extra.backward()
    strategy.on_step_end(0)
    strategy.finalize(target)
    still_frozen = sorted(n for n, p in target.named_parameters() if n in trained)
    still_frozen = [n for n in still_frozen if not dict(target.named_parameters())[n].requires_grad]
    _require(
        not still_frozen,
        entry,
        f"finalize left {len(still_frozen)} parameter(s) frozen that trained before "
        f"prepare ({', '.join(still_frozen[:3])}); make them trainable again in finalize",
    )
    return strategy


def check_data_source(entry: DataSourceEntry, *, options: Mapping[str, Any] | None = None) -> Any:
    """Check a data source loads a non-empty DataFrame holding its declared target."""
    import pandas as pd

    source = entry.load()(entry.validate_options(options or {}))
    frame = source.load()
    _require(
        isinstance(frame, pd.DataFrame) and len(frame),
        entry,
        f"load() must return a DataFrame with rows, not {type(frame).__name__}"
        + (f" of {len(frame)} rows" if isinstance(frame, pd.DataFrame) else ""),
    )
    if source.target is not None:
        _require(
            source.target in frame.columns,
            entry,
            f"its target {source.target!r} is not a column of the table it loads",
        )
    return frame


# -- one call for a whole plugin --------------------------------------------------------


#: Sample values per modality for :func:`check_plugin` (others must be given).
def _samples(modality: str) -> Any:
    import pandas as pd

    if modality == "text":
        return pd.Series(["a cheap loan", "late payment again", None, "steady income", "car"])
    if modality == "tabular":
        return pd.DataFrame(
            {
                "income": [1.0, None, 3.5, 4.0, 2.0, 8.0],
                "purpose": ["car", "home", None, "car", "home", "car"],
            }
        )
    return None


def check_plugin(
    plugin: types.ModuleType | str,
    *,
    values: Mapping[str, Any] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    labels: pd.Series | None = None,
    contexts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check every component a plugin registers; returns them built, by name.

    ``plugin`` is the plugin's module (``import transfuse_mine``), or the name of its
    installed distribution (``"transfuse-mine"``) or entry-point module. Each entry is
    checked: its factory imports and derives from the right base class, its options model
    is a :class:`~transfuse.Options`, it clashes with no other name, and then the kind's
    own check (:func:`check_encoder` on ``values[name]``, or sample text and tabular
    values for those modalities; :func:`check_fusion`; :func:`check_strategy`;
    :func:`check_task` on ``labels``; :func:`check_data_source`; a pipeline preset must
    parse and name installed components). ``options`` gives options per component name,
    ``contexts`` a :class:`~transfuse.bases.TransferContext` per strategy that needs real
    data (see :func:`check_strategy`).
    Every entry is checked; a :class:`ConformanceError` then lists every failure.
    """
    from transfuse.components import Options, PipelineEntry

    manager = PluginManager(autoload=False)
    label = _register(manager, plugin)
    record = next(r for r in manager.records() if r.name == label)
    failures: list[str] = []
    if record.status == "failed":
        raise ConformanceError(f"plugin {label!r} failed: {record.error}")
    failures += [f"plugin {label!r}: {problem}" for problem in record.problems]
    entries = list(record.components)
    if not entries and not record.problems:
        failures.append(f"plugin {label!r} registers no component (are its hooks decorated "
                        "with @transfuse.hookimpl?)")  # fmt: skip
    built: dict[str, Any] = {}
    for entry in entries:
        given = dict((options or {}).get(entry.name, {}))
        try:
            _require(
                isinstance(entry.options, type) and issubclass(entry.options, Options),
                entry,
                "its options model must subclass transfuse.Options",
            )
            _require(entry.description.strip(), entry, "its description is empty")
            if isinstance(entry, EncoderEntry):
                sample = (values or {}).get(entry.name)
                if sample is None:
                    sample = _samples(entry.modality)
                _require(
                    sample is not None,
                    entry,
                    f"no sample values for modality {entry.modality!r}: pass "
                    f"check_plugin(..., values={{{entry.name!r}: a Series or DataFrame}})",
                )
                built[entry.name] = check_encoder(entry, sample, options=given)
            elif isinstance(entry, FusionEntry):
                built[entry.name] = check_fusion(entry, options=given)
            elif isinstance(entry, StrategyEntry):
                context = (contexts or {}).get(entry.name)
                built[entry.name] = check_strategy(entry, options=given, context=context)
            elif isinstance(entry, TaskEntry):
                import pandas as pd

                sample_labels = labels if labels is not None else pd.Series([0, 1, 1, 0, 1, 0])
                built[entry.name] = check_task(entry, sample_labels, options=given)
            elif isinstance(entry, DataSourceEntry):
                built[entry.name] = check_data_source(entry, options=given)
            elif isinstance(entry, PipelineEntry):
                built[entry.name] = _check_preset(entry)
        except ConformanceError as exc:
            failures.append(str(exc))
        except Exception as exc:  # the component raised: say which one and what
            failures.append(f"{entry.kind} {entry.name!r} raised {type(exc).__name__}: {exc}")
    if failures:
        lines = "\n".join(f"- {f}" for f in failures)
        raise ConformanceError(f"{len(failures)} problem(s) in plugin {label!r}:\n{lines}")
    return built


def _register(manager: PluginManager, plugin: types.ModuleType | str) -> str:
    """Register the plugin on ``manager``; its record's name."""
    from importlib import import_module, metadata

    if isinstance(plugin, types.ModuleType):
        name = plugin.__name__
        manager.register(plugin, name=name, distribution=name, version="0.0.test")
        return name
    try:
        dist = metadata.distribution(plugin)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        eps = [ep for ep in dist.entry_points if ep.group == "transfuse"]
        if not eps:
            raise ConformanceError(
                f"distribution {plugin!r} has no entry point in the 'transfuse' group; add "
                "[project.entry-points.transfuse] to its pyproject.toml and reinstall it"
            )
        manager.load_entry_points(eps)
        return eps[0].name
    try:
        module = import_module(plugin)
    except ImportError as exc:
        raise ConformanceError(
            f"{plugin!r} is neither an installed distribution nor an importable module: {exc}"
        ) from None
    return _register(manager, module)


def _check_preset(entry: Any) -> Any:
    """A preset parses and names components the installed plugins have."""
    from transfuse.config import _yaml, parse_config, resolve
    from transfuse.plugins import get_plugin_manager

    config = parse_config(_yaml(entry.read_text(), entry.resource), f"preset {entry.name}")
    resolve(config, get_plugin_manager())
    return config


def check_explanation(
    encoder: Any, values: pd.Series | pd.DataFrame, *, tolerance: float = 1e-3
) -> Any:
    """Check a fitted encoder's explanation against the contract (``docs/plugins.md``).

    Gives ``attribute`` a logit that is a fixed linear map of the embedding and checks one
    list of part labels and one finite score per part for every row, fixed parts
    (``explain_parts``) equal to the labels, the same scores when asked again, a method
    and a baseline named, and, where the method is complete and reports a convergence
    delta, a delta within ``tolerance``. Returns the ``Parts`` (``None`` for the default:
    the input is one part).
    """
    from transfuse.explain import check_explanation as check

    return check(encoder, values, tolerance=tolerance)
