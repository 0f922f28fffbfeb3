"""``image.timm``: any timm architecture as a feature extractor.

``prepare`` reads each value (path, bytes, PIL image, array) as RGB and applies timm's
eval transform for the model (resize, centre crop, normalise, from its data config);
``forward`` returns the pooled features. The network is a submodule, so its weights are
part of a run's ``model.safetensors`` even when frozen (a few MB for EfficientNet-Lite0,
and random-init weights could not be rebuilt otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from transfuse import DataError
from transfuse.badfiles import BadFiles, is_file_value, row_where
from transfuse.bases import Batch, Encoder
from transfuse_image.images import is_missing_image, to_rgb_image
from transfuse_image.options import TimmOptions
from transfuse_image.weights import load_timm_model, resolve_weights

if TYPE_CHECKING:
    from transfuse.device import DeviceManager

__all__ = ["TimmEncoder", "image_transform"]


def image_transform(model: nn.Module, image_size: int | None = None) -> tuple[dict[str, Any], Any]:
    """timm's data config for ``model`` (with an optional square size) and its eval transform."""
    from timm.data import create_transform, resolve_data_config

    overrides = {"input_size": (3, image_size, image_size)} if image_size else {}
    config = resolve_data_config(overrides, model=model)
    return config, create_transform(**config, is_training=False)


def _column(values: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise DataError(
                f"an image encoder reads one column, got {values.shape[1]}: {list(values.columns)}",
                where="inputs",
                fix="give the input a single `column:`, or one input per image column",
            )
        return values.iloc[:, 0]
    return values


class TimmEncoder(Encoder):
    """Pooled timm features of an image: ``[B, num_features]``."""

    options: TimmOptions

    def __init__(self, options: TimmOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.model = load_timm_model(options.model, options.weights, 0, options.pool)
        self.weights_path = resolve_weights(options.model, options.weights)
        self.data_config, self.transform = image_transform(self.model, options.image_size)
        self.input_size: tuple[int, int, int] = tuple(self.data_config["input_size"])
        self.model.eval()
        with torch.no_grad():
            self.output_dim = int(self.model(torch.zeros(1, *self.input_size)).shape[-1])
        self.frozen = options.frozen
        if self.frozen:
            self.model.requires_grad_(False)
        self.bad_files = BadFiles(options.on_bad_file, "image")

    def train(self, mode: bool = True) -> TimmEncoder:
        """Training mode; a frozen network stays in eval mode (batch norm statistics fixed)."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing: None/NaN, an empty string or empty bytes; with ``on_bad_file: skip``
        also a file that is absent or cannot be decoded (each file is read once here)."""
        column = _column(values)
        out = np.array([is_missing_image(v) for v in column.tolist()], dtype=bool)
        return self.bad_files.mark_unreadable(column, out, to_rgb_image)

    def data_report(self, values: pd.Series | pd.DataFrame) -> dict[str, Any]:
        """Under ``on_bad_file: skip``: how many rows' files were skipped, the first paths."""
        if not self.bad_files.skipping:
            return {}
        self.missing(values)  # judges every file not judged yet
        return self.bad_files.report(_column(values).tolist())

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Read and transform each image: ``{"image": [B, 3, H, W]}``; zeros where missing
        (or skipped under ``on_bad_file: skip``)."""
        column = _column(values)
        images = []
        for label, value in column.items():
            if is_missing_image(value) or self.bad_files.is_bad(value):
                images.append(torch.zeros(self.input_size))
                continue
            try:
                image = to_rgb_image(value, where=row_where(column, label))
            except DataError as exc:
                if not is_file_value(value):
                    raise
                self.bad_files.failed(value, exc)  # raises under on_bad_file: error
                images.append(torch.zeros(self.input_size))
                continue
            images.append(self.transform(image))
        if not images:
            return {"image": torch.zeros((0, *self.input_size))}
        return {"image": torch.stack(images)}

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Any) -> Any:
        """Integrated Gradients per region, with a saliency map (:mod:`transfuse_image.explain`)."""
        from transfuse_image.explain import integrated_gradients

        return integrated_gradients(self, values, logit)

    def forward(self, batch: Batch) -> Tensor:
        """Pooled features of the prepared images."""
        grad = torch.no_grad() if self.frozen else contextlib.nullcontext()
        with grad:
            features: Tensor = self.model(batch["image"])
        return features

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"backbone": [...]}`` when fine-tuning, so strategies can give it a smaller lr."""
        if self.frozen:
            return {}
        return {"backbone": [p for p in self.model.parameters() if p.requires_grad]}

    def cache_key(self) -> str:
        """Options, plus the weights file's path, size and modification time (or, for
        random weights, a digest of the weights themselves)."""
        key = super().cache_key()
        if self.weights_path is not None:
            stat = self.weights_path.stat()
            return f"{key}|{self.weights_path}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256()
        for name, tensor in self.model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        return f"{key}|random:{digest.hexdigest()[:32]}"
