"""``FusionModel`` = the inputs' encoders + a fusion module + the task's head.

Layout (strategies and layer maps rely on it): ``inputs`` is an ``nn.ModuleDict`` from
input name to encoder, then ``fusion``, then ``head``; parameter names read
``inputs.applicant.columns.annual_income.weight``, ``fusion.proj.weight``, ``head.weight``.
This module also builds the parts from a pipeline config through the plugin manager,
inferring an input's encoder from its column when the config leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from transfuse.data import input_values
from transfuse.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from transfuse.bases import Encoder, Fusion, Task
    from transfuse.config import PipelineConfig
    from transfuse.device import DeviceManager
    from transfuse.plugins import PluginManager

__all__ = [
    "DEFAULT_ENCODERS",
    "FusionModel",
    "build_encoder",
    "build_fusion",
    "build_task",
    "infer_encoders",
]

#: The encoder used for a modality when an input names none.
DEFAULT_ENCODERS = {
    "text": "text.sentence-transformer",
    "image": "image.timm",
    "audio": "audio.mel-cnn",
    "tabular": "tabular.mlp",
    "sequence": "sequence.gru",
}


class FusionModel(nn.Module):
    """Encoders per input, a fusion module and a head: ``model(batch)`` gives
    ``{"logits": [B, K], "features": [B, fusion.output_dim]}``."""

    def __init__(self, inputs: Mapping[str, Encoder], fusion: Fusion, num_outputs: int) -> None:
        super().__init__()
        self.inputs = nn.ModuleDict(dict(inputs))
        self.fusion = fusion
        self.head: nn.Module = (
            nn.Identity() if fusion.produces_logits else nn.Linear(fusion.output_dim, num_outputs)
        )
        self.num_outputs = num_outputs
        for encoder in self.frozen_inputs().values():
            encoder.requires_grad_(False)

    def frozen_inputs(self) -> dict[str, Encoder]:
        """The inputs whose encoder is frozen (their outputs come from the cache)."""
        return {
            name: enc  # type: ignore[misc]
            for name, enc in self.inputs.items()
            if getattr(enc, "frozen", False)
        }

    def train(self, mode: bool = True) -> FusionModel:
        """Training mode, except for frozen encoders, which always stay in eval mode."""
        super().train(mode)
        for encoder in self.frozen_inputs().values():
            encoder.eval()
        return self

    def encoders(self) -> dict[str, Encoder]:
        """The encoders by input name."""
        return dict(self.inputs.items())  # type: ignore[arg-type]

    def embeddings(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Each input's ``[B, D]`` embedding; a cached input's is taken as given."""
        out: dict[str, Tensor] = {}
        for name, encoder in self.inputs.items():
            sub = batch["inputs"][name]
            if getattr(encoder, "frozen", False) and "embedding" in sub:
                out[name] = sub["embedding"]
            else:
                out[name] = encoder(sub)
        return out

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Logits and fused features of a device batch."""
        embeddings = self.embeddings(batch)
        features = self.fusion(embeddings, batch["present"])
        return {"logits": self.head(features), "features": features}


# -- building -----------------------------------------------------------------------------


def infer_encoders(
    config: PipelineConfig, frame: pd.DataFrame, manager: PluginManager
) -> PipelineConfig:
    """A copy of ``config`` in which every input names its encoder (inferred from data)."""
    inputs = {}
    for name, spec in config.inputs.items():
        if spec.encoder is None:
            spec = spec.model_copy(
                update={"encoder": _infer(name, spec.column_list, frame, manager)}
            )
        inputs[name] = spec
    return config.model_copy(update={"inputs": inputs})


def _infer(name: str, columns: list[str], frame: pd.DataFrame, manager: PluginManager) -> str:
    if len(columns) > 1:
        modality: str | None = "tabular"
    else:
        modality = manager.infer_modality(frame[columns[0]])
    if modality is None:
        raise ConfigError(
            f"cannot tell what column {columns[0]!r} holds",
            where=f"inputs.{name}.encoder",
            fix="name its encoder (see `transfuse plugins` for the installed ones)",
        )
    default = DEFAULT_ENCODERS.get(modality)
    encoders = manager.components("encoder")
    if default not in encoders:
        choices = sorted(n for n, e in encoders.items() if getattr(e, "modality", None) == modality)
        if not choices:
            raise ConfigError(
                f"column {columns[0]!r} looks like {modality}, and no {modality} encoder is "
                "installed",
                where=f"inputs.{name}.encoder",
                fix=f"install a plugin with a {modality} encoder, or name one",
            )
        default = choices[0]
    assert default is not None
    return default


def build_encoder(
    config: PipelineConfig, name: str, manager: PluginManager, device: DeviceManager
) -> Encoder:
    """An unfitted encoder for input ``name`` (its encoder must be named or inferred)."""
    spec = config.inputs[name]
    if spec.encoder is None:
        raise ConfigError("no encoder named", where=f"inputs.{name}.encoder")
    entry = manager.get("encoder", spec.encoder, where=f"inputs.{name}.encoder")
    options = entry.validate_options(spec.options, f"inputs.{name}.options")
    encoder: Encoder = entry.load()(options, device)
    return encoder


def fit_encoder(
    encoder: Encoder,
    frame: pd.DataFrame,
    columns: list[str],
    *,
    target: str | None = None,
    valid: pd.DataFrame | None = None,
) -> None:
    """Fit an encoder on training rows only; an encoder whose ``fit`` takes ``target``
    (and ``valid``) also gets the training labels (and the validation rows)."""
    import inspect

    params = inspect.signature(encoder.fit).parameters
    kwargs: dict[str, Any] = {}
    if target is not None and "target" in params:
        kwargs["target"] = frame[target]
        if valid is not None and "valid" in params:
            kwargs["valid"] = (input_values(valid, columns), valid[target])
    encoder.fit(input_values(frame, columns), **kwargs)


def build_task(config: PipelineConfig, manager: PluginManager, device: DeviceManager) -> Task:
    """The task named by ``task.type``, unfitted."""
    entry = manager.get("task", config.task.type, where="task.type")
    options = entry.validate_options(config.task.options, "task.options")
    task: Task = entry.load()(options, device)
    return task


def build_fusion(
    config: PipelineConfig,
    encoders: Mapping[str, Encoder],
    num_outputs: int,
    manager: PluginManager,
    device: DeviceManager,
) -> Fusion:
    """The fusion module over the encoders' output widths."""
    entry = manager.get("fusion", config.fusion.method, where="fusion.method")
    options = entry.validate_options(config.fusion.options, "fusion.options")
    dims = {name: int(enc.output_dim) for name, enc in encoders.items()}
    fusion: Fusion = entry.load()(options, device, input_dims=dims, num_outputs=num_outputs)
    return fusion


def parameter_count(model: nn.Module) -> dict[str, int]:
    """Parameters: total and trainable."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def to_device(model: FusionModel, device: DeviceManager) -> FusionModel:
    """Place the model on the run's device (in place)."""
    moved = model.to(device.device)
    assert isinstance(moved, FusionModel)
    return moved
