"""Explaining an event sequence event by event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from transfuse.testing import check_explanation


def test_events_are_parts_and_obey_the_contract(build, histories) -> None:
    values, _ = histories(12)
    values = pd.concat([values, pd.Series([None], dtype=object)], ignore_index=True)
    encoder = build("sequence.gru", dim=8, hidden=8, max_events=8)
    encoder.fit(values)
    parts = check_explanation(encoder, values)
    assert parts.labels[-1] == []  # a missing history has no parts
    kept = min(len(values[0]), 8)
    assert parts.labels[0] == [f"event {k + 1}" for k in range(kept)]
    assert parts.values[0][0].startswith("amount=")


def test_the_large_transaction_ranks_first(build, histories) -> None:
    values, label = histories(80, seed=2)
    encoder = build("sequence.gru", dim=8, hidden=16, max_events=20)
    encoder.fit(values)
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=0.02)
    batch, y = encoder.prepare(values), torch.from_numpy(label)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(encoder(batch))[:, 0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    positive = np.flatnonzero(label == 1)[:20]
    rows = values.iloc[positive].reset_index(drop=True)
    parts = encoder.attribute(rows, lambda e, at: head(e)[:, 0])
    hits = []
    for history, scores, shown in zip(rows, parts.scores, parts.values):
        top = shown[int(np.argmax(scores))]
        largest = max(history, key=lambda e: e["amount"])["amount"]
        hits.append(top.startswith(f"amount={largest}"))
    assert np.mean(hits) >= 0.8
