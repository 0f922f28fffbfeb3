"""strategy.coral and strategy.dann: domain alignment with unlabeled target rows."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse import TransferError
from transfuse_strategies import CoralOptions, DannOptions
from transfuse_strategies.alignment import Coral, Dann, coral_loss, grad_reverse, merge_batches


def domains(kit, n: int = 256):
    """Source rows ~ N(0, 1); unlabeled target rows shifted and stretched."""
    rng = np.random.default_rng(0)
    source = pd.DataFrame({c: rng.standard_normal(n) for c in "abc"}).astype("float32")
    target = pd.DataFrame(
        {
            "a": rng.standard_normal(n) * 3 + 2,
            "b": rng.standard_normal(n) * 0.3,
            "c": rng.standard_normal(n),
        }
    )
    target = target.astype("float32")
    model = kit.table_model(source, ["a", "b", "c"], seed=0)
    ctx = kit.context(
        model,
        model,
        target.iloc[:32],
        unlabeled=target,
        source_data=source,
        batches=kit.batches_for(model),
        epochs=2,
        steps_per_epoch=10,
    )
    return model, ctx, source, target


def test_coral_loss_is_zero_for_one_domain_and_positive_for_two():
    x = torch.randn(200, 4)
    assert coral_loss(x, x).item() == pytest.approx(0.0, abs=1e-9)
    assert coral_loss(x, x * 3).item() > 0.1


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.25).sum().backward()
    assert x.grad.tolist() == [-0.25, -0.25, -0.25]


@pytest.mark.parametrize("factory", [Coral, Dann])
def test_alignment_without_unlabeled_rows_says_to_pass_them(kit, factory):
    _, ctx, _, _ = domains(kit)
    ctx.unlabeled = None
    options = CoralOptions() if factory is Coral else DannOptions()
    with pytest.raises(TransferError, match="--unlabeled FILE"):
        factory(options, kit.device()).prepare(ctx)


def test_coral_training_brings_the_domains_together(kit):
    model, ctx, source, target = domains(kit)
    coral = Coral(CoralOptions(weight=10.0, batch_size=64), kit.device())
    coral.prepare(ctx)
    everything = (kit.batch_of(model, source), kit.batch_of(model, target))

    def gap() -> float:
        with torch.no_grad():
            return coral_loss(*(model(b)["features"] for b in everything)).item()

    before = gap()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(30):
        loss = coral.extra_loss({}, {}, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert gap() < 0.3 * before, (before, gap())


def test_dann_ramp_goes_from_zero_to_max_lambda(kit):
    _, ctx, _, _ = domains(kit)
    dann = Dann(DannOptions(max_lambda=0.5), kit.device())
    dann.prepare(ctx)
    ramp = [dann.reversal(s) for s in range(0, 21)]
    assert ramp[0] == 0.0 and ramp[-1] == pytest.approx(0.5, abs=1e-4)
    assert all(a < b for a, b in itertools.pairwise(ramp))


def test_dann_trains_its_discriminator_and_reverses_the_features_gradient(kit):
    model, ctx, _, _ = domains(kit)
    dann = Dann(DannOptions(lr_mult=2.0), kit.device())
    dann.prepare(ctx)
    groups = dann.param_groups(
        model, [{"name": "default", "params": list(model.parameters()), "lr": 1e-3}]
    )
    assert groups[-1]["name"] == "dann.discriminator" and groups[-1]["lr"] == pytest.approx(2e-3)
    assert len(groups[-1]["params"]) == len(list(dann.discriminator.parameters()))

    def rewind() -> None:  # the same batches again (the test's batches are seeded per pass)
        model.zero_grad()
        dann.discriminator.zero_grad()
        for stream in dann.streams:
            stream.iterator, stream.passes = None, 0

    step = 5
    rewind()
    dann.extra_loss({}, {}, step).backward()
    reversed_grad = model.fusion.proj.weight.grad.clone()
    disc_grad = dann.discriminator[0].weight.grad.clone()
    rewind()
    source, target = dann.domain_features()
    features = torch.cat([source, target])
    labels = torch.cat([torch.zeros(len(source)), torch.ones(len(target))])
    logits = dann.discriminator(features).squeeze(1)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
    lam = dann.reversal(step)
    assert 0 < lam < 1
    assert torch.allclose(reversed_grad, -lam * model.fusion.proj.weight.grad, atol=1e-7)
    assert torch.allclose(disc_grad, dann.discriminator[0].weight.grad, atol=1e-7)


def test_merge_batches_concatenates_or_declines():
    a = {
        "inputs": {"t": {"x": torch.zeros(2, 3)}},
        "present": {"t": torch.ones(2, dtype=torch.bool)},
    }
    b = {
        "inputs": {"t": {"x": torch.ones(4, 3)}},
        "present": {"t": torch.ones(4, dtype=torch.bool)},
    }
    merged = merge_batches(a, b)
    assert merged["inputs"]["t"]["x"].shape == (6, 3) and merged["present"]["t"].shape == (6,)
    c = {
        "inputs": {"t": {"x": torch.ones(4, 5)}},
        "present": {"t": torch.ones(4, dtype=torch.bool)},
    }
    assert merge_batches(a, c) is None
