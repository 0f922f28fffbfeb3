"""The device manager on the CPU (and on CUDA where a GPU is present)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transfuse import DeviceError
from transfuse.device import DeviceManager

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_picks_cpu_and_fp32_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dm = DeviceManager("auto", "auto")
    assert dm.device.type in {"cpu", "mps"}
    assert dm.precision == "fp32"
    assert dm.autocast_dtype is None


def test_unknown_device_and_precision_are_clear_errors():
    with pytest.raises(DeviceError, match="unknown device 'gpu0'.*auto, cpu, cuda"):
        DeviceManager("gpu0")
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        DeviceManager("cpu", "fp8")


def test_fp16_on_cpu_is_refused():
    with pytest.raises(DeviceError, match="fp16 autocast is not supported on the CPU"):
        DeviceManager("cpu", "fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_asking_for_cuda_without_one_says_what_to_do():
    with pytest.raises(DeviceError, match="no CUDA device is visible; use device: auto or cpu"):
        DeviceManager("cuda")


def test_seeding_makes_python_numpy_and_torch_repeat():
    def draw():
        DeviceManager("cpu", seed=7)
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert draw() == draw()


def test_bf16_autocast_on_cpu_runs_matmuls_in_bf16():
    dm = DeviceManager("cpu", "bf16")
    a = torch.randn(4, 4)
    with dm.autocast():
        assert (a @ a).dtype == torch.bfloat16
    with DeviceManager("cpu", "fp32").autocast():
        assert (a @ a).dtype == torch.float32


def test_move_handles_nested_batches():
    dm = DeviceManager("cpu")
    batch = {"inputs": {"a": {"x": torch.ones(2)}}, "list": [torch.zeros(1)], "n": 3}
    moved = dm.move(batch)
    assert moved["inputs"]["a"]["x"].device == dm.device
    assert moved["n"] == 3 and isinstance(moved["list"], list)


def test_distributed_state_is_read_from_the_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    dm = DeviceManager("cpu")
    assert (dm.rank, dm.world_size, dm.distributed, dm.is_main) == (2, 4, True, False)


def test_grad_scaler_is_a_pass_through_outside_fp16():
    assert not DeviceManager("cpu", "fp32").grad_scaler().is_enabled()


def test_compile_on_request_wraps_the_module():
    module = torch.nn.Linear(2, 2)
    assert DeviceManager("cpu").prepare_module(module) is module
    compiled = DeviceManager("cpu", compile=True).prepare_module(torch.nn.Linear(2, 2))
    assert compiled is not module and hasattr(compiled, "_orig_mod")


def test_memory_report_and_description():
    dm = DeviceManager("cpu", seed=1)
    assert dm.memory_report()["peak_rss_mib"] > 0
    assert dm.describe()["device"] == "cpu"


@cuda
def test_cuda_auto_uses_bf16_and_pinned_non_blocking_copies():
    dm = DeviceManager("auto", "auto")
    assert dm.device.type == "cuda"
    if torch.cuda.is_bf16_supported():
        assert dm.precision == "bf16"
        a = torch.randn(8, 8, device=dm.device)
        with dm.autocast():
            assert (a @ a).dtype == torch.bfloat16
    moved = dm.move({"x": torch.arange(10)})
    torch.cuda.synchronize()
    assert moved["x"].device.type == "cuda"
    assert moved["x"].sum().item() == 45


@cuda
def test_fp16_uses_an_active_grad_scaler():
    assert DeviceManager("cuda", "fp16").grad_scaler().is_enabled()
