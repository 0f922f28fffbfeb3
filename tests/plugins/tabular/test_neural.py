"""tabular.mlp and tabular.ft-transformer: the contract, fitted state, per-column parameters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse.errors import CheckpointError, ConfigError, DataError
from transfuse.testing import check_encoder
from transfuse_tabular.embeddings import NumericEmbedding

from .conftest import build, make_frame, make_task, train_and_score

NEURAL = ["tabular.mlp", "tabular.ft-transformer"]
EMBEDDINGS = ["linear", "ple", "periodic"]
SMALL = {"dim": 8, "embedding_dim": 8, "min_frequency": 1}


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_encoder_passes_the_conformance_check(tabular, name, embedding):
    entry = tabular.get("encoder", name)
    options = {**SMALL, "numeric_embedding": embedding}
    encoder = check_encoder(entry, make_frame(), options=options)
    assert encoder.handles_missing


@pytest.mark.parametrize("name", NEURAL)
def test_a_one_column_input_may_arrive_as_a_series(tabular, name):
    encoder = build(tabular, name, **SMALL)
    encoder.fit(make_frame()["purpose"])
    assert tuple(encoder(encoder.prepare(make_frame()["purpose"])).shape) == (60, 8)


@pytest.mark.parametrize("name", NEURAL)
def test_parameters_are_named_by_column(tabular, name):
    encoder = build(tabular, name, **SMALL)
    encoder.fit(make_frame())
    names = {n for n, _ in encoder.named_parameters()}
    assert "columns.purpose.embedding.weight" in names
    assert "columns.annual_income.missing" in names
    assert "columns.debt__ratio.weight" in names  # linear by default; "." -> "__"
    assert encoder.column_state("debt.ratio")["key"] == "debt__ratio"
    assert not {n for n in names if not n.startswith(("columns.", "trunk."))}


def test_column_parameters_do_not_depend_on_the_other_columns(tabular):
    one = build(tabular, "tabular.ft-transformer", **SMALL)
    one.fit(make_frame()[["purpose", "age"]])
    two = build(tabular, "tabular.ft-transformer", **SMALL)
    two.fit(make_frame())
    assert one.columns["purpose"].embedding.weight.shape == (5, 8)
    assert two.columns["purpose"].embedding.weight.shape == (5, 8)
    assert one.category_index("purpose") == two.category_index("purpose")
    trunk_one = {n: p.shape for n, p in one.trunk.named_parameters()}
    assert trunk_one == {n: p.shape for n, p in two.trunk.named_parameters()}


@pytest.mark.parametrize("name", NEURAL)
def test_fitted_state_round_trips_through_json(tabular, name, tmp_path):
    encoder = build(tabular, name, **SMALL)
    encoder.fit(make_frame())
    encoder.save_fitted(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    restored = build(tabular, name, **SMALL)
    restored.load_fitted_state(state)
    assert {n: p.shape for n, p in restored.named_parameters()} == {
        n: p.shape for n, p in encoder.named_parameters()
    }
    restored.load_state_dict(encoder.state_dict())
    encoder.eval(), restored.eval()
    other = make_frame(seed=3)  # other rows: unseen values, the same statistics
    with torch.no_grad():
        assert torch.equal(encoder(encoder.prepare(other)), restored(restored.prepare(other)))


def test_a_state_of_another_version_is_a_checkpoint_error(tabular):
    encoder = build(tabular, "tabular.mlp", **SMALL)
    with pytest.raises(CheckpointError, match="version"):
        encoder.load_fitted_state({"version": 99, "columns": []})


def test_using_an_unfitted_encoder_says_to_fit_it(tabular):
    with pytest.raises(DataError, match="fit"):
        build(tabular, "tabular.mlp").prepare(make_frame())


def test_unknown_category_takes_the_unknown_row(tabular):
    encoder = build(tabular, "tabular.mlp", **SMALL)
    encoder.fit(make_frame())
    frame = make_frame().iloc[:3].copy()
    frame["purpose"] = ["car", "never seen", None]
    column = [c.name for c in encoder.schema.categorical].index("purpose")
    codes = encoder.prepare(frame)["categorical"][:, column].tolist()
    assert codes == [encoder.category_index("purpose")["car"], 1, 0]
    table = encoder.columns["purpose"].embedding.weight
    tokens = encoder.tokens(encoder.prepare(frame))
    position = encoder.column_names().index("purpose")
    assert torch.equal(tokens[1, position], table[1])  # the unknown bucket's vector
    assert torch.equal(tokens[2, position], table[0])  # the missing vector


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_missing_number_takes_the_columns_learned_indicator(tabular, embedding):
    encoder = build(tabular, "tabular.ft-transformer", **SMALL, numeric_embedding=embedding)
    encoder.fit(make_frame())
    frame = make_frame().iloc[:2].copy()
    frame["annual_income"] = [np.nan, 50_000.0]
    batch = encoder.prepare(frame)
    position = encoder.column_names().index("annual_income")
    assert batch["numeric_missing"][:, position].tolist() == [True, False]
    tokens = encoder.tokens(batch)
    missing = encoder.columns["annual_income"].missing
    assert torch.equal(tokens[0, position], missing)
    assert not torch.equal(tokens[1, position], missing)
    tokens[0, position].sum().backward()
    assert missing.grad is not None and missing.grad.abs().sum() > 0


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_batched_tokens_equal_each_columns_own_module(tabular, embedding):
    encoder = build(tabular, "tabular.mlp", **SMALL, numeric_embedding=embedding, bins=6)
    encoder.fit(make_frame())
    batch = encoder.prepare(make_frame(seed=2))
    tokens = encoder.tokens(batch)
    for j, column in enumerate(encoder.schema.numeric):
        module: NumericEmbedding = encoder.columns[column.key]
        ple = batch["ple"][:, j] if "ple" in batch else None
        own = module(batch["numeric"][:, j], batch["numeric_missing"][:, j], ple)
        torch.testing.assert_close(tokens[:, j], own)


def test_quantile_scaling_is_fitted_on_training_rows(tabular):
    encoder = build(tabular, "tabular.mlp", **SMALL, numeric_embedding="linear")
    train = pd.DataFrame({"x": np.arange(100.0)})
    encoder.fit(train)
    scaled = encoder.prepare(pd.DataFrame({"x": [49.5, 1e9]}))["numeric"][:, 0]
    assert abs(float(scaled[0])) < 1e-3  # the training median maps to 0
    assert 5.0 < float(scaled[1]) < 5.3  # far above training rows: clipped, not 1e9


def test_heads_must_divide_the_token_width(tabular):
    entry = tabular.get("encoder", "tabular.ft-transformer")
    with pytest.raises(ConfigError, match="heads"):
        entry.validate_options({"embedding_dim": 30, "heads": 4})


def test_unknown_option_is_rejected(tabular):
    with pytest.raises(ConfigError, match="unknown key"):
        tabular.get("encoder", "tabular.mlp").validate_options({"widht": 3})


@pytest.mark.parametrize(
    ("name", "embedding"),
    [
        ("tabular.mlp", "linear"),
        ("tabular.mlp", "ple"),
        ("tabular.mlp", "periodic"),
        ("tabular.ft-transformer", "ple"),
    ],
)
def test_encoder_learns_a_toy_task(tabular, one_thread, name, embedding):
    torch.manual_seed(0)
    frame, label = make_task(400, seed=1)
    small = {"hidden": 32} if name == "tabular.mlp" else {"layers": 1, "heads": 2}
    encoder = build(
        tabular,
        name,
        dim=8,
        embedding_dim=8,
        numeric_embedding=embedding,
        min_frequency=1,
        dropout=0.0,
        **small,
    )
    encoder.fit(frame.iloc[:300])
    assert train_and_score(encoder, frame, label, epochs=40) > 0.9


@pytest.mark.parametrize("layers", [0, 2])
def test_mlp_names_the_matrix_that_holds_the_column_blocks(tabular, layers):
    encoder = build(tabular, "tabular.mlp", **SMALL, layers=layers, hidden=16)
    encoder.fit(make_frame())
    [(name, width)] = encoder.column_inputs().items()
    matrix = dict(encoder.named_parameters())[name]
    assert width == 8 and matrix.shape[1] == len(encoder.column_names()) * width
