"""Several source runs: layer-map's first/average combination and strategy.source-weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from transfuse import TransferError
from transfuse.bases import TransferContext, TransferReport
from transfuse.plugins import get_plugin_manager
from transfuse.testing import check_strategy
from transfuse_strategies import LayerMapOptions, SourceWeightsOptions
from transfuse_strategies.layermap import LayerMap
from transfuse_strategies.sourceweights import SourceWeights, softmax_weights


def runs(report) -> dict[str, str | None]:
    return {t.name: t.run for t in report.tensors}


def fresh(models):
    """Copies of the fixture's models (tests change the target), and its rows."""
    *nets, rows = models
    return (*(copy.deepcopy(m) for m in nets), rows)


def several(kit, sources, target, rows, names=("A", "B"), **kw) -> TransferContext:
    return kit.context(
        sources[0], target, rows, source_models=list(sources), source_names=list(names), **kw
    )


@pytest.fixture(scope="module")
def two_sources(kit):
    """Source A on columns a, b (trained), source B on columns b, c (trained), and a fresh
    target on a, c, d; all one input named t."""
    rows_a = kit.toy_frame(300, seed=0, columns="abc")
    a = kit.table_model(rows_a, ["a", "b"], seed=0)
    kit.train(a, rows_a, "y", steps=40)
    b = kit.table_model(rows_a, ["b", "c"], seed=1)
    kit.train(b, rows_a, "y", steps=40)
    rows_t = kit.toy_frame(200, seed=2, columns="abcd")
    target = kit.table_model(rows_t, ["a", "c", "d"], seed=2)
    return a, b, target, rows_t


def test_a_context_with_one_source_lists_it_as_its_only_source(kit, two_sources):
    a, _, target, rows = two_sources
    ctx = kit.context(a, target, rows)
    assert ctx.source_models == [a] and ctx.source_names == ["source 0"]


def test_first_takes_each_tensor_from_the_first_run_that_has_it(kit, two_sources):
    a, b, target, rows = fresh(two_sources)
    options = LayerMapOptions.model_validate({"min_loaded": 0})
    report = LayerMap(options, kit.device()).prepare(several(kit, [a, b], target, rows))
    origin = runs(report)
    assert origin["inputs.t.columns.a.weight"] == "A"  # only A has column a
    assert origin["inputs.t.columns.c.weight"] == "B"  # only B has column c
    assert origin["inputs.t.shared.weight"] == "A"  # both have it: the first wins
    assert origin["inputs.t.columns.d.weight"] is None  # nobody has d
    assert torch.equal(target.inputs.t.columns.c.weight, b.inputs.t.columns.c.weight)
    assert torch.equal(target.head.weight, a.head.weight)
    assert report.runs() == {"A": sum(v == "A" for v in origin.values()), "B": 2}
    assert "Tensors per source run: A:" in report.to_markdown()
    assert any("tensors per source run (first): A" in n for n in report.notes)


def test_the_order_given_decides_which_run_wins(kit, two_sources):
    a, b, target, rows = fresh(two_sources)
    options = LayerMapOptions.model_validate({"min_loaded": 0})
    LayerMap(options, kit.device()).prepare(several(kit, [b, a], target, rows, ("B", "A")))
    assert torch.equal(target.head.weight, b.head.weight)


def test_average_means_the_tensors_that_fit_and_says_which_did_not(kit, two_sources):
    a, b, target, rows = fresh(two_sources)
    wide = kit.TinyModel({"t": copy.deepcopy(a.inputs.t), "u": copy.deepcopy(a.inputs.t)})
    options = LayerMapOptions.model_validate({"min_loaded": 0, "combine": "average"})
    report = LayerMap(options, kit.device()).prepare(several(kit, [a, b, wide], target, rows,
                                                             ("A", "B", "W")))  # fmt: skip
    origin = runs(report)
    expected = (a.head.weight + b.head.weight + wide.head.weight) / 3
    assert torch.allclose(target.head.weight, expected)
    assert origin["head.weight"] == "A + B + W"
    # W's fusion sees two inputs (8 x 16): only A and B fit, so those two are averaged
    mean = (a.fusion.proj.weight + b.fusion.proj.weight) / 2
    assert torch.allclose(target.fusion.proj.weight, mean)
    fate = next(t for t in report.tensors if t.name == "fusion.proj.weight")
    assert fate.run == "A + B" and "left out: W reinitialised ((8, 16))" in fate.note
    assert origin["inputs.t.columns.c.weight"] == "B"  # one run only: as first


def test_one_source_keeps_the_report_as_before(kit, two_sources):
    a, _, target, rows = fresh(two_sources)
    options = LayerMapOptions.model_validate({"min_loaded": 0})
    report = LayerMap(options, kit.device()).prepare(kit.context(a, target, rows))
    assert report.loaded_fraction > 0
    assert report.runs() == {} and "per source run" not in report.to_markdown()


def test_a_report_without_runs_has_no_source_run_line():
    report = TransferReport("x")
    report.add("head.weight", "copied", 4, "head.weight")
    assert "per source run" not in report.to_markdown()
    report.add("head.bias", "copied", 1, "head.bias", run="runs/a")
    assert "Tensors per source run: runs/a: 1" in report.to_markdown()


def test_the_report_table_counts_tensors_per_fate_in_each_module():
    report = TransferReport("x")
    for i in range(3):
        report.add(f"inputs.text.model.layer{i}.weight", "copied", 10, "same")
    report.add("inputs.text.model.extra.weight", "reinitialised", 5)
    report.add("fusion.proj.weight", "kept", 4)
    report.add("head.bias", "copied", 1, "head.bias")
    table = report.to_markdown()
    assert "| module | copied | reinitialised | kept |" in table
    assert "| `inputs.text` | 3 | 1 | 0 |" in table
    assert "| `fusion` | 0 | 0 | 1 |" in table and "| `head` | 1 | 0 | 0 |" in table
    assert len(table.splitlines()) < 10


# -- strategy.source-weights -----------------------------------------------------------------
def test_softmax_weights_follow_the_scores_and_sum_to_one():
    weights = softmax_weights([0.70, 0.68], 0.02)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[0] == pytest.approx(1 / (1 + np.exp(-1)))
    assert softmax_weights([0.9, 0.6], 0.001)[0] == pytest.approx(1.0)


def indexed(batches):
    """The kit's batches with the ``index`` (row positions) the runtime's batches carry."""

    def wrapped(frame, batch_size, shuffle=False, seed=0):
        start = 0
        for batch in batches(frame, batch_size, shuffle=False):
            n = len(batch["present"]["t"])
            batch["index"] = torch.arange(start, start + n)
            start += n
            yield batch

    return wrapped


@pytest.fixture(scope="module")
def good_and_bad(kit):
    """Two sources of one schema: G learned the target's rule, R learned its reverse."""
    rows = kit.toy_frame(300, seed=0, columns="abc")
    good = kit.table_model(rows, ["a", "b", "c"], seed=0)
    kit.train(good, rows, "y", steps=60)
    reverse = rows.assign(y=1.0 - rows["y"])
    bad = kit.table_model(rows, ["a", "b", "c"], seed=1)
    kit.train(bad, reverse, "y", steps=60)
    target_rows = kit.toy_frame(120, seed=3, columns="abc")
    return good, bad, target_rows


def source_weights(kit, sources, rows, names, **options):
    good = sources[0]
    target = kit.table_model(rows, ["a", "b", "c"], seed=5)
    ctx = kit.context(good, target, rows.iloc[:80], validation_data=rows.iloc[80:],
                      source_models=list(sources), source_names=list(names),
                      batches=indexed(kit.batches_for(target, "y")))  # fmt: skip
    strategy = SourceWeights(SourceWeightsOptions.model_validate(options), kit.device())
    return strategy, strategy.prepare(ctx), target


def test_source_weights_put_the_source_that_scores_best_on_the_target_first(kit, good_and_bad):
    good, bad, rows = good_and_bad
    # given worst first: the weights, not the order given, decide
    strategy, report, target = source_weights(kit, [bad, good], rows, ["R", "G"])
    assert strategy.weights["G"] > 0.99 > 0.01 > strategy.weights["R"]
    assert torch.equal(target.head.weight, good.head.weight)  # first: the best run's
    assert runs(report)["head.weight"] == "G"
    notes = "\n".join(report.notes)
    assert (
        "G: AUC" in notes and "R: AUC" in notes and "120 labelled training and validation" in notes
    )
    assert report.strategy == "strategy.source-weights"


def test_source_weights_average_with_the_weights(kit, good_and_bad):
    good, bad, rows = good_and_bad
    strategy, report, target = source_weights(
        kit, [good, bad], rows, ["G", "R"], combine="average", temperature=10.0
    )
    w = strategy.weights
    assert 0.5 < w["G"] < 0.6  # a high temperature: nearly even
    expected = w["G"] * good.head.weight + w["R"] * bad.head.weight
    assert torch.allclose(target.head.weight, expected, atol=1e-6)
    assert runs(report)["head.weight"].startswith("G x0.5")


def test_the_distillation_loss_pulls_toward_the_weighted_sources(kit, good_and_bad):
    good, bad, rows = good_and_bad
    strategy, _, target = source_weights(kit, [good, bad], rows, ["G", "R"])
    assert strategy.teacher is not None and len(strategy.teacher) == 80
    batch = indexed(kit.batches_for(target, "y"))(rows.iloc[:80], 32).__next__()
    outputs = target(batch)
    loss = strategy.extra_loss(batch, outputs, 0)
    teacher = torch.sigmoid(strategy.teacher[:32])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        outputs["logits"].reshape(-1), teacher
    )
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    strategy.options = strategy.options.model_copy(update={"distill": 0.0})
    assert float(strategy.extra_loss(batch, outputs, 0).detach()) == 0.0


def test_source_weights_refuse_labelled_rows_of_one_class(kit, good_and_bad):
    good, bad, rows = good_and_bad
    one_class = rows.assign(y=1.0)
    with pytest.raises(TransferError, match="one class only"):
        source_weights(kit, [good, bad], one_class, ["G", "R"])


def test_source_weights_pass_the_strategy_conformance_check(kit, good_and_bad):
    good, bad, rows = good_and_bad
    target = kit.table_model(rows, ["a", "b", "c"], seed=5)
    ctx = kit.context(good, target, rows.iloc[:80], source_models=[good, bad],
                      batches=indexed(kit.batches_for(target, "y")))  # fmt: skip
    entry = get_plugin_manager().get("strategy", "source-weights")
    check_strategy(entry, context=ctx)
