"""The device manager on the CPU (and on CUDA where a GPU is present)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transfuse import DeviceError, distributed
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


def test_a_world_size_without_a_rendezvous_address_says_to_use_torchrun(monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(DeviceError, match="WORLD_SIZE is 4 but MASTER_ADDR.*torchrun"):
        DeviceManager("cpu")


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


# -- torchrun: a one-rank gloo group in this process stands in for a launch -------------


@pytest.fixture
def torchrun_env(monkeypatch, needs_loopback):
    """The variables torchrun sets, for a world of one (a free port on localhost)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(name, value)
    yield
    distributed.stop()


def test_a_torchrun_launch_joins_a_gloo_group_and_close_leaves_it(torchrun_env):
    import torch.distributed as dist

    dm = DeviceManager("cpu")
    assert (dm.distributed, dm.backend, dm.is_main) == (True, "gloo", True)
    assert dist.is_initialized() and dm.describe()["backend"] == "gloo"
    assert DeviceManager("cpu").backend == "gloo"  # a second manager reuses the group
    dm.close()
    assert not dist.is_initialized() and not distributed.active()


def test_without_torchrun_nothing_is_joined_and_the_helpers_pass_through(monkeypatch):
    for name in distributed.LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    dm = DeviceManager("cpu")
    assert (dm.distributed, dm.backend) == (False, None)
    rows = torch.arange(6.0).reshape(3, 2)
    assert distributed.gather_rows(rows) is rows
    assert distributed.all_sum(2.5) == 2.5 and distributed.rank_and_size() == (0, 1)


def test_every_global_batch_is_split_over_the_ranks_without_overlap():
    batches = [[4, 0, 7, 2, 9], [1, 3, 5, 6, 8], [10]]
    shards = [distributed.shard_batches(batches, rank, 2) for rank in (0, 1)]
    for b, batch in enumerate(batches[:2]):
        rows = shards[0][0][b] + shards[1][0][b]
        assert sorted(rows) == sorted(batch)
        assert shards[0][1][b] + shards[1][1][b] == pytest.approx(1.0)
    # a batch with fewer rows than ranks: the spare rank repeats a row that counts nothing
    assert (shards[0][0][2], shards[0][1][2]) == ([10], 1.0)
    assert (shards[1][0][2], shards[1][1][2]) == ([10], 0.0)


def test_gathering_in_a_group_puts_rows_back_in_their_order(torchrun_env):
    DeviceManager("cpu")
    logits = torch.tensor([[3.0], [1.0], [2.0]])
    out = distributed.gather_in_order(logits, torch.tensor([2, 0, 1]), 3)
    assert out.flatten().tolist() == [1.0, 2.0, 3.0]
    assert distributed.all_sum(1.5) == 1.5  # one rank: its own value


def test_ddp_is_rebuilt_when_a_strategy_changes_what_trains(torchrun_env):
    dm = DeviceManager("cpu")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)
    parallel = distributed.DataParallel(model, dm)
    parallel.refresh()
    first = parallel.wrapper
    parallel.refresh()
    assert parallel.wrapper is first  # nothing changed: the same wrapper
    model[0].requires_grad_(True)  # e.g. gradual-unfreeze's next group
    parallel.refresh()
    assert parallel.wrapper is not first and parallel.forward is parallel.wrapper
    parallel.forward(torch.ones(3, 2)).sum().backward()
    assert model[0].weight.grad is not None
    model.requires_grad_(False)
    parallel.refresh()
    assert parallel.forward is model  # nothing trains: no DDP at all


def test_parameters_outside_the_model_get_averaged_gradients(torchrun_env):
    dm = DeviceManager("cpu")
    model, extra = torch.nn.Linear(2, 1), torch.nn.Parameter(torch.ones(3))
    parallel = distributed.DataParallel(model, dm, [*model.parameters(), extra])
    assert parallel.extra == [extra]  # the model's own are DDP's
    extra.grad = torch.full((3,), 4.0)
    parallel.sync_extra()
    assert extra.grad.tolist() == [4.0, 4.0, 4.0]  # the mean over one rank


def test_unused_parameter_detection_only_where_a_component_or_the_user_asks(monkeypatch):
    monkeypatch.delenv(distributed.FIND_UNUSED_ENV, raising=False)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert not distributed.needs_unused_detection(model, [])

    class SkipsInputs(torch.nn.Module):
        find_unused_parameters = True

    assert distributed.needs_unused_detection(torch.nn.Sequential(SkipsInputs()), [])
    monkeypatch.setenv(distributed.FIND_UNUSED_ENV, "1")
    assert distributed.needs_unused_detection(model, [])


def test_a_run_is_written_by_rank_zero_only(monkeypatch, tmp_path):
    from transfuse.runs import write_run

    monkeypatch.setenv("RANK", "1")
    written = write_run(tmp_path / "run", lambda out: (out / "x").write_text("x"))
    assert written == (tmp_path / "run").absolute() and not written.exists()
