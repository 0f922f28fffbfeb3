"""A pytest plugin for plugin authors: fixtures and conformance checks.

Installed with transfuse (entry point ``pytest11``), so a plugin's tests can use::

    def test_my_encoder_conforms(transfuse_manager, register_plugin):
        register_plugin(my_plugin)
        entry = transfuse_manager.get("encoder", "text.mine")
        check_encoder(entry, pd.Series(["a", "b", None]))

The checks import torch only when called.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from transfuse.components import (
    ComponentEntry,
    DataSourceEntry,
    EncoderEntry,
    FusionEntry,
    StrategyEntry,
    TaskEntry,
)
from transfuse.plugins import PluginManager, reset_plugin_manager

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.device import DeviceManager

__all__ = [
    "check_data_source",
    "check_encoder",
    "check_explanation",
    "check_fusion",
    "check_strategy",
    "check_task",
    "cpu_device",
]


@pytest.fixture
def transfuse_manager() -> Iterator[PluginManager]:
    """A plugin manager with the core's components only (installed plugins not loaded).

    It is also the process-wide manager for the test, so code under test that calls
    ``get_plugin_manager()`` sees it.
    """
    manager = PluginManager(autoload=False)
    reset_plugin_manager(manager)
    yield manager
    reset_plugin_manager(None)


@pytest.fixture
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


@pytest.fixture
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

    device = device or cpu_device()
    assert isinstance(entry, EncoderEntry), f"{entry.name} is not an encoder entry"
    encoder = _build(entry, options, device)
    encoder.fit(values)
    encoder = encoder.to(device.device)
    assert isinstance(encoder.output_dim, int) and encoder.output_dim > 0, "output_dim unset"
    missing = encoder.missing(values)
    assert missing.shape == (len(values),), "missing() must give one flag per row"
    batch = encoder.prepare(values)
    assert isinstance(batch, dict) and batch, "prepare must return a non-empty dict of tensors"
    for key, tensor in batch.items():
        assert isinstance(tensor, torch.Tensor), f"prepare()[{key!r}] is not a tensor"
        assert tensor.shape[0] == len(values), f"prepare()[{key!r}] has {tensor.shape[0]} rows"
    encoder.eval()
    with torch.no_grad():
        out = encoder(device.move(batch))
    assert tuple(out.shape) == (len(values), encoder.output_dim), (
        f"forward gave {tuple(out.shape)}, expected {(len(values), encoder.output_dim)}"
    )
    present = ~missing
    assert torch.isfinite(out[torch.as_tensor(present)]).all(), "non-finite embeddings"
    if encoder.frozen:
        with torch.no_grad():
            again = encoder(device.move(encoder.prepare(values)))
        assert torch.allclose(out, again), "a frozen encoder must be deterministic"
    else:
        encoder.train()
        trainable = [p for p in encoder.parameters() if p.requires_grad]
        assert trainable, "a trainable encoder has no trainable parameters"
        encoder(device.move(batch))[torch.as_tensor(present)].float().pow(2).mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), (
            "no gradient reached the encoder's parameters"
        )
        encoder.zero_grad()
        encoder.eval()
        with torch.no_grad():  # training mode may have moved batch-norm statistics
            out = encoder(device.move(batch))
    with tempfile.TemporaryDirectory() as tmp:
        encoder.save_fitted(Path(tmp))
        fresh = _build(entry, options, device)
        fresh.load_fitted(Path(tmp))
    fresh.load_state_dict(encoder.state_dict())
    fresh = fresh.to(device.device).eval()
    with torch.no_grad():
        restored = fresh(device.move(fresh.prepare(values)))
    assert torch.allclose(
        out[torch.as_tensor(present)], restored[torch.as_tensor(present)], atol=1e-5
    ), "outputs changed after saving and loading"
    assert isinstance(encoder.cache_key(), str) and encoder.cache_key(), "cache_key is empty"
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

    device = device or cpu_device()
    dims = {"a": 8, "b": 5, "c": 3}
    fusion = _build(entry, options, device, input_dims=dims, num_outputs=num_outputs)
    n = 6
    emb = {k: torch.randn(n, d) for k, d in dims.items()}
    present = {k: torch.ones(n, dtype=torch.bool) for k in dims}
    present["b"][1] = False
    present["a"][2] = False
    present["c"][2] = False
    fusion.eval()
    out = fusion(emb, present)
    width = num_outputs if fusion.produces_logits else fusion.output_dim
    assert tuple(out.shape) == (n, width), f"fusion gave {tuple(out.shape)}, expected {(n, width)}"
    assert torch.isfinite(out).all(), "non-finite output with a modality missing"
    # A missing modality's embedding must not matter.
    emb2 = dict(emb)
    emb2["b"] = emb["b"].clone()
    emb2["b"][1] = 1e3
    assert torch.allclose(fusion(emb2, present)[1], out[1], atol=1e-4), (
        "the embedding of a missing modality changed the output"
    )
    fusion.train()
    fusion(emb, present).pow(2).mean().backward()
    assert any(p.grad is not None for p in fusion.parameters()), "no gradient reached the fusion"
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
    assert loss.ndim == 0 and torch.isfinite(loss), "loss must be a finite scalar"
    loss.backward()
    scores = task.scores(logits.detach())
    assert scores.shape == (len(labels), len(task.score_columns())), "scores/columns mismatch"
    metrics = task.metrics(labels, scores)
    assert task.default_metric in metrics or task.default_metric == "loss", "no default metric"
    restored = _build(entry, options, cpu_device())
    restored.load_state(task.state())
    assert restored.num_outputs == k, "task state does not round-trip"
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
    optimizer groups a strategy returns must still hold every parameter exactly once.
    """
    import torch
    from torch import nn

    from transfuse.bases import TransferContext, TransferReport, TransferStrategy

    device = context.device if context is not None else cpu_device()
    strategy = _build(entry, options, device)
    assert isinstance(strategy, TransferStrategy), f"{entry.name} is not a TransferStrategy"

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
    report = strategy.prepare(ctx)
    assert report is None or isinstance(report, TransferReport)
    params = [p for p in target.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"name": "default", "params": list(params), "lr": 1e-3}]
    groups = strategy.param_groups(target, groups)
    assert isinstance(groups, list) and all("params" in g and "lr" in g for g in groups)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)), "param_groups put a parameter in two groups"
    assert {id(p) for p in params} <= set(seen), "param_groups lost parameters"
    strategy.on_epoch_start(0)
    if ctx.batches is not None:
        batch = next(iter(ctx.batches(ctx.target_data, 4)))
        out = target(batch)
    else:
        batch = {}
        out = {"logits": torch.zeros(2, 1), "features": torch.zeros(2, 8)}
    extra = strategy.extra_loss(batch, out, 0)
    assert extra is None or (isinstance(extra, torch.Tensor) and extra.ndim == 0)
    if extra is not None:
        assert torch.isfinite(extra), "extra_loss is not finite"
        if extra.requires_grad:
            extra.backward()
    strategy.on_step_end(0)
    strategy.finalize(target)
    return strategy


def check_data_source(entry: DataSourceEntry, *, options: Mapping[str, Any] | None = None) -> Any:
    """Check a data source loads a non-empty DataFrame holding its declared target."""
    import pandas as pd

    source = entry.load()(entry.validate_options(options or {}))
    frame = source.load()
    assert isinstance(frame, pd.DataFrame) and len(frame), "load() must return rows"
    if source.target is not None:
        assert source.target in frame.columns, f"target {source.target!r} not in the table"
    return frame


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
