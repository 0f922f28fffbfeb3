"""strategy.stack: the source logit as an offset plus a correction shrunk by k-fold CV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import transfuse_strategies
from transfuse import TransferError
from transfuse_strategies.stack import Stack, fit_offset_logistic


@pytest.fixture
def manager(transfuse_manager, register_plugin):
    register_plugin(transfuse_strategies, name="transfuse-strategies")
    return transfuse_manager


def build(manager, **options):
    entry = manager.get("strategy", "stack")
    return entry.load()(entry.validate_options(options), None)


def logits(kit, model, frame):
    with torch.no_grad():
        return model(kit.batch_of(model, frame))["logits"].reshape(-1).numpy()


def source_and_target(kit, label_rule):
    """A source model trained on ``b + c > 0``, and a target copy of it."""
    source_rows = kit.toy_frame(400, 0)
    source = kit.table_model(source_rows, list("abc"))
    kit.train(source, source_rows, "y")
    target = kit.table_model(source_rows, list("abc"))
    target.load_state_dict(source.state_dict())
    rows = kit.toy_frame(300, 1)
    rows["y"] = label_rule(rows).astype("float32")
    return source, target, rows


def test_an_infinite_penalty_keeps_the_source_ranking(manager, kit):
    source, target, rows = source_and_target(kit, lambda f: f["b"] + f["c"] > 0)
    ctx = kit.context(source, target, rows, batches=kit.batches_for(target, "y"))
    build(manager, penalties=[1e12]).prepare(ctx)
    fresh = kit.toy_frame(200, 2)
    before, after = logits(kit, source, fresh), logits(kit, target, fresh)
    assert np.corrcoef(before, after)[0, 1] > 0.999999  # a positive affine map: same ranking


def test_labels_the_source_cannot_explain_get_a_correction_that_generalises(manager, kit):
    source, target, rows = source_and_target(kit, lambda f: f["a"] > 0)
    ctx = kit.context(source, target, rows, batches=kit.batches_for(target, "y"))
    strategy = build(manager, repeats=1)
    report = strategy.prepare(ctx)
    assert not math.isinf(strategy.chosen)
    assert "penalty chosen" in report.notes[0]
    fresh = kit.toy_frame(500, 3)
    truth = (fresh["a"] > 0).to_numpy()
    gain = roc_auc_score(truth, logits(kit, target, fresh)) - roc_auc_score(
        truth, logits(kit, source, fresh)
    )
    assert gain > 0.02  # measured: +0.04 (the features were learned for b + c)


def test_the_rewritten_head_gives_the_fitted_logits(manager, kit):
    source, target, rows = source_and_target(kit, lambda f: f["a"] > 0)
    ctx = kit.context(source, target, rows, batches=kit.batches_for(target, "y"))
    strategy = build(manager, penalties=[10.0], repeats=1)
    strategy.prepare(ctx)
    scoring = kit.context(source, source, rows, batches=kit.batches_for(source, "y"))
    offset, feats, y = strategy._score(scoring, rows)
    x = np.column_stack([offset, feats])
    mean, sd = x.mean(0), x.std(0)
    beta = fit_offset_logistic((x - mean) / sd, y, offset, strategy.chosen)
    expected = offset + beta[0] + (x - mean) / sd @ beta[1:]
    np.testing.assert_allclose(logits(kit, target, rows), expected, atol=1e-4)


def test_validation_rows_count_as_labelled_rows(manager, kit):
    source, target, rows = source_and_target(kit, lambda f: f["a"] > 0)
    ctx = kit.context(source, target, rows.iloc[:200], validation_data=rows.iloc[200:],
                      batches=kit.batches_for(target, "y"))  # fmt: skip
    build(manager, repeats=1).prepare(ctx)
    assert ctx.extra["stack"]["rows"] == 300


def test_then_keep_sets_every_learning_rate_to_zero(manager, kit):
    model = kit.table_model(kit.toy_frame(20, 0), list("abc"))
    groups = [{"name": "default", "params": list(model.parameters()), "lr": 1e-3}]
    out = build(manager).param_groups(model, groups)
    assert [g["lr"] for g in out] == [0.0]
    again = [{"name": "default", "params": list(model.parameters()), "lr": 1e-3}]
    assert build(manager, then="train").param_groups(model, again)[0]["lr"] == 1e-3


def test_too_few_positives_keep_the_source_ranking(manager, kit):
    source, target, rows = source_and_target(kit, lambda f: f["a"] > 10)  # no positives...
    rows.loc[rows.index[0], "y"] = 1.0  # ...but one
    ctx = kit.context(source, target, rows, batches=kit.batches_for(target, "y"))
    strategy = Stack(manager.get("strategy", "stack").validate_options({}), None)
    report = strategy.prepare(ctx)
    assert "too few for k-fold" in report.notes[0]
    assert math.isinf(strategy.chosen)


def test_a_head_with_several_outputs_is_a_clear_error(manager, kit):
    frame = kit.toy_frame(30, 0)
    encoder = kit.ColumnEncoder()
    encoder.fit(frame[list("abc")])
    model = kit.TinyModel({"t": encoder}, outputs=3)
    ctx = kit.context(model, model, frame, batches=kit.batches_for(model, "y"))
    with pytest.raises(TransferError, match="binary task's linear head"):
        build(manager).prepare(ctx)


def test_penalties_must_be_positive(manager):
    with pytest.raises(Exception, match="penalties"):
        manager.get("strategy", "stack").validate_options({"penalties": [0.0]})
