"""Explaining a table input: Integrated Gradients per column (mlp, ft-transformer),
LightGBM's own contributions (gbdt), and the values' wording for reason codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse.testing import check_explanation
from transfuse_tabular.explain import describe, reference_rows

from .conftest import build, make_frame, make_task


@pytest.mark.parametrize("name", ["tabular.mlp", "tabular.ft-transformer"])
def test_integrated_gradients_obey_the_contract(tabular, name: str) -> None:
    frame = make_frame(40)
    encoder = build(tabular, name, dim=8, embedding_dim=4)
    encoder.fit(frame)
    parts = check_explanation(encoder, frame)
    assert parts.labels[0] == encoder.column_names()
    assert parts.values[0][0] == f"{frame['annual_income'][0]:,.0f}"  # 39,161
    assert parts.delta is not None and float(np.median(parts.delta)) < 5e-3


def test_integrated_gradients_add_up_to_the_row_minus_the_reference_rows(tabular) -> None:
    frame = make_frame(20)
    encoder = build(tabular, "tabular.mlp", dim=8, embedding_dim=4)
    encoder.fit(frame)
    encoder.eval()  # fit builds the layers, in training mode
    weight = torch.randn(8, generator=torch.Generator().manual_seed(1))

    def logit(embedding: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return torch.tanh(embedding) @ weight

    parts = encoder.attribute(frame, logit)
    assert encoder.schema is not None
    with torch.no_grad():
        rows = logit(encoder(encoder.prepare(frame)), torch.arange(20))
        references = encoder(encoder.prepare(reference_rows(encoder.schema)))
        reference = logit(references, torch.zeros(len(references))).mean()
    gap = np.array([s.sum() for s in parts.scores]) - (rows - reference).numpy()
    assert np.all(np.abs(gap) <= parts.delta + 1e-5)  # the deltas bound the real gap
    assert np.abs(gap).max() < 2e-2


def test_the_column_the_label_depends_on_ranks_first(tabular, one_thread) -> None:
    frame, _ = make_task(300, seed=3)
    frame = frame.fillna({"x": 0.0})
    label = (frame["x"] > 0).astype(int)
    encoder = build(tabular, "tabular.mlp", dim=8, embedding_dim=4)
    encoder.fit(frame)
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    batch, y = encoder.prepare(frame), torch.tensor(label.to_numpy(), dtype=torch.float32)
    for _ in range(80):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(encoder(batch))[:, 0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    parts = encoder.attribute(frame, lambda e, rows: head(e)[:, 0])
    first = [labels[int(np.argmax(np.abs(s)))] for labels, s in zip(parts.labels, parts.scores)]
    clear = (frame["x"].abs() > 0.5).to_numpy()  # rows near the reference (median) are close
    assert np.mean([f == "x" for f, c in zip(first, clear) if c]) > 0.9


def test_gbdt_contributions_rank_the_signal_column_first(tabular) -> None:
    frame, _ = make_task(400, seed=1)
    frame = frame.fillna({"x": 0.0})
    label = (frame["x"] > 0.2).astype(int)
    encoder = build(tabular, "tabular.gbdt", dim=8, trees=20, leaves=4, threads=1)
    encoder.fit(frame, target=label)
    parts = check_explanation(encoder, frame)
    assert not parts.complete
    first = [labels[int(np.argmax(np.abs(s)))] for labels, s in zip(parts.labels, parts.scores)]
    assert np.mean([f == "x" for f in first]) > 0.9
    raw = encoder.raw_score(frame)
    booster = np.array([s.sum() for s in parts.scores])
    assert np.corrcoef(raw, booster)[0, 1] > 0.99  # the contributions follow the raw score


def test_values_are_described_against_the_training_rows(tabular) -> None:
    train = pd.DataFrame({"dti": np.arange(100.0), "home": ["rent"] * 70 + ["own"] * 30})
    encoder = build(tabular, "tabular.mlp", dim=8, embedding_dim=4)
    encoder.fit(train)
    rows = pd.DataFrame({"dti": [91.5, 5.0, np.nan], "home": ["own", "boat", None]})
    shown, notes = describe(encoder.schema, rows)
    assert shown[0] == ["91.5", "own"]
    assert notes[0] == ["higher than 92% of training rows", "as in 30% of training rows"]
    assert notes[1] == ["lower than 95% of training rows", "not seen in training"]
    assert shown[2] == ["missing", "missing"]


def test_a_value_many_rows_share_counts_only_the_rows_strictly_below_or_above() -> None:
    from transfuse_tabular.explain import _compare

    terms = np.array([36.0] * 76 + [60.0] * 25)  # three loans in four are 36 months
    levels = np.linspace(0, 1, len(terms))
    assert _compare(60.0, terms, levels) == "higher than 76% of training rows"  # not 100%
    assert _compare(36.0, terms, levels) == "lower than 25% of training rows"


def test_comparing_every_value_at_once_says_what_comparing_each_says():
    from transfuse_tabular.explain import _compare, _compare_all

    rng = np.random.default_rng(0)
    for _ in range(100):  # quantiles with shared values (ties), values on and between them
        quantiles = np.sort(rng.choice(np.arange(10), size=rng.integers(2, 30))).astype(float)
        levels = np.linspace(0, 1, len(quantiles))
        x = rng.choice(np.concatenate([quantiles, rng.uniform(-2, 12, 20)]), 50)
        expected = [_compare(float(v), quantiles, levels) for v in x]
        assert _compare_all(x, quantiles, levels) == expected
