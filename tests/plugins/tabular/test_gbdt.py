"""tabular.gbdt: LightGBM leaves embedded; booster saved as text; continued boosting."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse.errors import DataError
from transfuse.testing import check_encoder

from .conftest import build, make_frame, make_task, train_and_score

SMALL = {
    "dim": 8,
    "trees": 20,
    "leaves": 4,
    "min_rows_per_leaf": 5,
    "min_frequency": 1,
    "threads": 1,
}


@pytest.fixture
def task() -> tuple[pd.DataFrame, pd.Series]:
    return make_task(400, seed=1)


@pytest.fixture
def fitted(tabular, task):
    frame, label = task
    encoder = build(tabular, "tabular.gbdt", **SMALL)
    encoder.fit(frame.iloc[:300], target=label.iloc[:300])
    return encoder


def test_encoder_passes_the_conformance_check(tabular):
    # Without labels (the base contract's fit) the trees split on random targets.
    with pytest.warns(UserWarning, match="without labels"):
        encoder = check_encoder(tabular.get("encoder", "tabular.gbdt"), make_frame(), options=SMALL)
    assert encoder.handles_missing and encoder.objective == "regression"


def test_fit_trains_lightgbm_on_the_labels(fitted):
    assert fitted.objective == "binary"
    assert fitted.classes == ["0", "1"]
    assert len(fitted.leaves_per_tree) == 20
    assert fitted.leaf_embedding.weight.shape == (sum(fitted.leaves_per_tree), 8)


def test_validation_rows_stop_boosting_early(tabular, task):
    frame, label = task
    encoder = build(
        tabular,
        "tabular.gbdt",
        **{**SMALL, "trees": 400, "learning_rate": 0.3, "early_stopping": 5},
    )
    encoder.fit(
        frame.iloc[:300], target=label.iloc[:300], valid=(frame.iloc[300:], label.iloc[300:])
    )
    assert 1 <= len(encoder.leaves_per_tree) < 400


def test_auto_objective_follows_the_labels(tabular):
    frame = make_frame(90)
    for labels, objective, classes in [
        (pd.Series(["a", "b", "c"] * 30), "multiclass", ["a", "b", "c"]),
        (pd.Series(np.linspace(0, 1, 90)), "regression", []),
        (pd.Series([10, 2] * 45), "binary", ["2", "10"]),
    ]:
        encoder = build(tabular, "tabular.gbdt", **{**SMALL, "trees": 3})
        encoder.fit(frame, target=labels)
        assert (encoder.objective, encoder.classes) == (objective, classes)
        assert encoder.prepare(frame)["leaves"].shape[1] == len(encoder.leaves_per_tree)


def test_binary_objective_with_three_classes_is_a_data_error(tabular):
    encoder = build(tabular, "tabular.gbdt", **{**SMALL, "objective": "binary"})
    with pytest.raises(DataError, match="2 classes"):
        encoder.fit(make_frame(90), target=pd.Series(["a", "b", "c"] * 30))


def test_leaves_are_offset_into_one_table(fitted, task):
    leaves = fitted.prepare(task[0])["leaves"]
    offsets = fitted.leaf_offsets()
    assert offsets[0] == 0 and offsets[1] == fitted.leaves_per_tree[0]
    assert leaves.shape == (400, 20)
    raw = fitted.leaf_ids(task[0])
    assert torch.equal(leaves, torch.from_numpy(raw + np.array(offsets)))
    bounds = torch.tensor([*offsets[1:], sum(fitted.leaves_per_tree)])
    assert (leaves >= torch.tensor(offsets)).all() and (leaves < bounds).all()


def test_leaf_values_sum_to_the_boosters_raw_score(fitted, task):
    raw = fitted.leaf_ids(task[0])
    values = fitted.leaf_values()
    assert len(values) == len(fitted.leaves_per_tree)
    summed = sum(np.array([values[t][i] for i in raw[:, t]]) for t in range(len(values)))
    x = fitted._matrix(task[0])
    np.testing.assert_allclose(summed, fitted.booster.predict(x, raw_score=True), atol=1e-9)
    assert fitted.leaf_values(first=5) == values[5:]


def test_leaf_value_init_starts_at_lightgbms_raw_score(fitted, task):
    frame = task[0]
    with torch.no_grad():
        first = fitted(fitted.prepare(frame))[:, 0].numpy()
    raw = fitted.raw_score(frame)
    np.testing.assert_allclose(first, raw, rtol=1e-4, atol=1e-4)


def test_booster_text_round_trip_gives_identical_leaf_ids(tabular, fitted, task, tmp_path):
    fitted.save_fitted(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["booster.txt", "state.json"]
    assert (tmp_path / "booster.txt").read_text().startswith("tree")
    json.loads((tmp_path / "state.json").read_text())
    restored = build(tabular, "tabular.gbdt", **SMALL)
    restored.load_fitted(tmp_path)
    assert torch.equal(restored.prepare(task[0])["leaves"], fitted.prepare(task[0])["leaves"])
    restored.load_state_dict(fitted.state_dict())
    with torch.no_grad():
        assert torch.equal(restored(restored.prepare(task[0])), fitted(fitted.prepare(task[0])))


def test_unknown_and_missing_categories_reach_lightgbm_as_missing(fitted):
    frame = make_task(3, seed=5)[0]
    frame["kind"] = ["never seen", None, "a"]
    matrix = fitted._matrix(frame)
    column = len(fitted.schema.numeric) + [c.name for c in fitted.schema.categorical].index("kind")
    assert np.isnan(matrix[:2, column]).all()
    assert matrix[2, column] == fitted.schema.column("kind").vocabulary.index("a")


def test_continue_boosting_keeps_old_trees_and_embeddings(fitted, task):
    frame, label = task
    before_ids = fitted.leaf_ids(frame)
    old = fitted.leaf_embedding.weight.detach().clone()
    old_offsets = fitted.leaf_offsets()
    added = fitted.continue_boosting(frame.iloc[300:], label.iloc[300:], trees=7)
    assert added == 7
    after_ids = fitted.leaf_ids(frame)
    assert after_ids.shape == (400, 27)
    np.testing.assert_array_equal(after_ids[:, :20], before_ids)
    assert fitted.leaf_offsets()[:20] == old_offsets
    weight = fitted.leaf_embedding.weight
    assert weight.shape == (sum(fitted.leaves_per_tree), 8)
    assert torch.equal(weight[: len(old)], old)
    new = weight[len(old) :].detach()
    # New rows start at the old rows' mean, except the leaf-value coordinate.
    torch.testing.assert_close(new[:, 1:], old.mean(0)[1:].expand_as(new[:, 1:]))
    assert not torch.equal(new[:, 0], old.mean(0)[0].expand(len(new)))


def test_continue_boosting_rejects_labels_of_unknown_classes(fitted, task):
    with pytest.raises(DataError, match="not one of the fitted classes"):
        fitted.continue_boosting(task[0].iloc[:10], pd.Series([2] * 10), trees=1)


def test_copy_fitted_from_takes_the_source_trees(tabular, fitted, task):
    target = build(tabular, "tabular.gbdt", **SMALL)
    target.copy_fitted_from(fitted)
    target.load_state_dict(fitted.state_dict())
    assert torch.equal(target.prepare(task[0])["leaves"], fitted.prepare(task[0])["leaves"])


def test_encoder_learns_a_toy_task(tabular, one_thread, task):
    torch.manual_seed(0)
    frame, label = task
    encoder = build(tabular, "tabular.gbdt", **{**SMALL, "leaf_value_init": False})
    encoder.fit(frame.iloc[:300], target=label.iloc[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_and_score(encoder, frame, label, epochs=40, lr=0.05) > 0.9
