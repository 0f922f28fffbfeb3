"""transfuse: a plugin platform for multimodal models and model transfer.

Importing transfuse is light (no torch): the model-building names below are loaded on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transfuse.components import (
    CommandEntry,
    ComponentEntry,
    DataSourceEntry,
    EncoderEntry,
    FusionEntry,
    NoOptions,
    Options,
    PipelineEntry,
    StrategyEntry,
    TaskEntry,
)
from transfuse.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    PluginConflictError,
    PluginError,
    TransferError,
    TransfuseError,
    UnknownComponentError,
)
from transfuse.hookspecs import hookimpl, hookspec
from transfuse.plugins import PluginManager, get_plugin_manager

if TYPE_CHECKING:
    from transfuse.bases import (
        Batch,
        DataSource,
        Encoder,
        Fusion,
        Task,
        TransferContext,
        TransferReport,
        TransferStrategy,
    )
    from transfuse.device import DeviceManager

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "Batch": "transfuse.bases",
    "DataSource": "transfuse.bases",
    "Encoder": "transfuse.bases",
    "Fusion": "transfuse.bases",
    "Task": "transfuse.bases",
    "TransferContext": "transfuse.bases",
    "TransferReport": "transfuse.bases",
    "TransferStrategy": "transfuse.bases",
    "DeviceManager": "transfuse.device",
    "Pipeline": "transfuse.pipeline",
    "load": "transfuse.pipeline",
    "transfer": "transfuse.workflow",
    "read_rows": "transfuse.tables",
}

__all__ = [
    "Batch",
    "CheckpointError",
    "CommandEntry",
    "ComponentEntry",
    "ConfigError",
    "DataError",
    "DataSource",
    "DataSourceEntry",
    "DeviceError",
    "DeviceManager",
    "Encoder",
    "EncoderEntry",
    "Fusion",
    "FusionEntry",
    "NoOptions",
    "Options",
    "Pipeline",
    "PipelineEntry",
    "PluginConflictError",
    "PluginError",
    "PluginManager",
    "StrategyEntry",
    "Task",
    "TaskEntry",
    "TransferContext",
    "TransferError",
    "TransferReport",
    "TransferStrategy",
    "TransfuseError",
    "UnknownComponentError",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load",
    "read_rows",
    "transfer",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transfuse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
