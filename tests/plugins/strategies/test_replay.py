"""strategy.replay: the source task's loss on labelled source rows, added at every step."""

from __future__ import annotations

import pytest
import torch

import transfuse_strategies
from transfuse import TransferError
from transfuse.testing import check_strategy
from transfuse_strategies import ReplayOptions
from transfuse_strategies.replay import Replay


@pytest.fixture
def manager(transfuse_manager, register_plugin):
    register_plugin(transfuse_strategies, name="transfuse-strategies")
    return transfuse_manager


class BCE:
    """The one method of a task replay uses."""

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), target)


def setting(kit, *, label: str | None = "y"):
    source = kit.toy_frame(256, seed=0)
    target = kit.toy_frame(16, seed=1)
    model = kit.table_model(source, ["a", "b", "c"])
    ctx = kit.context(
        model,
        model,
        target,
        source_data=source,
        batches=kit.batches_for(model, "y"),
        extra={"label": label, "task": BCE()},
    )
    return model, ctx, source


def test_the_extra_loss_is_the_weighted_task_loss_on_a_source_batch(kit):
    model, ctx, source = setting(kit)
    replay = Replay(ReplayOptions(weight=0.5, batch_size=256), kit.device())
    replay.prepare(ctx)
    loss = replay.extra_loss({}, {}, 0)
    batch = kit.batch_of(model, source, "y")  # one batch of every row, in another order
    expected = 0.5 * BCE().loss(model(batch)["logits"], batch["target"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_replay_alone_learns_the_source_task(kit):
    model, ctx, source = setting(kit)
    replay = Replay(ReplayOptions(batch_size=64), kit.device())
    replay.prepare(ctx)
    batch = kit.batch_of(model, source, "y")

    def error() -> float:
        with torch.no_grad():
            logits = model(batch)["logits"].reshape(-1)
            return float(((logits > 0).float() != batch["target"]).float().mean())

    before = error()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for step in range(80):
        loss = replay.extra_loss({}, {}, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert error() < min(0.1, before), (before, error())


def test_source_rows_without_the_label_column_are_a_clear_error(kit):
    _, ctx, _ = setting(kit, label="grade")
    with pytest.raises(TransferError, match="label column 'grade'"):
        Replay(ReplayOptions(), kit.device()).prepare(ctx)


def test_conformance(manager, kit):
    _, ctx, _ = setting(kit)
    check_strategy(manager.get("strategy", "replay"), options={"batch_size": 8}, context=ctx)
