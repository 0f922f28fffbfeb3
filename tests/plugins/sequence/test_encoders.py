"""sequence.gru and sequence.transformer: the encoder contract, masking, and a task they learn."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from transfuse import ConfigError, DataError
from transfuse.testing import check_encoder

SMALL = {"hidden": 16, "dim": 8, "embedding_dim": 4, "max_events": 8}
VALUES = pd.Series(
    [
        [{"amount": 12.5, "mcc": "5411", "days_ago": 3}, {"amount": 80.0, "mcc": "5812"}],
        None,
        json.dumps([{"amount": 1.0, "mcc": "4111", "days_ago": 30}] * 12),  # over max_events
        [],
        [{"amount": 300.0, "mcc": "9999", "days_ago": None}],
    ],
    dtype=object,
    name="transactions",
)
CASES = [
    ("sequence.gru", {"pool": "mean"}),
    ("sequence.gru", {"pool": "last"}),
    ("sequence.gru", {"pool": "max", "bidirectional": True, "layers": 2}),
    ("sequence.transformer", {"pool": "mean"}),
    ("sequence.transformer", {"pool": "last", "layers": 2}),
    ("sequence.transformer", {"pool": "max"}),
]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_conforms_to_the_encoder_contract(transfuse_manager, sequence_plugin, name, options):
    entry = transfuse_manager.get("encoder", name)
    encoder = check_encoder(entry, VALUES, options={**SMALL, **options})
    assert encoder.missing(VALUES).tolist() == [False, True, False, True, False]


@pytest.mark.parametrize("name", ["sequence.gru", "sequence.transformer"])
def test_frozen_encoder_conforms_and_trains_nothing(transfuse_manager, sequence_plugin, name):
    entry = transfuse_manager.get("encoder", name)
    encoder = check_encoder(entry, VALUES, options={**SMALL, "frozen": True})
    assert not any(p.requires_grad for p in encoder.parameters())


def test_prepare_gives_fixed_length_tensors_and_a_mask(build):
    encoder = build("sequence.gru", **SMALL)
    encoder.fit(VALUES)
    batch = encoder.prepare(VALUES)
    assert batch["numeric"].shape == (5, 8, 1 + 2 * 2)  # is-event, amount/days_ago, missing flags
    assert batch["categorical"].shape == (5, 8, 1) and batch["categorical"].dtype == torch.long
    assert batch["mask"].sum(dim=1).tolist() == [2, 0, 8, 0, 1]
    assert batch["categorical"][4, 0, 0].item() > 1  # "9999" was seen in training: not unknown
    assert batch["numeric"][4, 0, 4].item() == 1.0  # days_ago missing there


@pytest.mark.parametrize(("name", "options"), CASES)
def test_padding_positions_do_not_change_the_embedding(build, name, options):
    encoder = build(name, **SMALL, **options)
    encoder.fit(VALUES)
    encoder.eval()
    batch = encoder.prepare(VALUES)
    noisy = {k: v.clone() for k, v in batch.items()}
    noisy["numeric"][~batch["mask"]] = 1e3
    noisy["categorical"][~batch["mask"]] = 2
    with torch.no_grad():
        torch.testing.assert_close(encoder(noisy), encoder(batch))


def test_unknown_values_at_prepare_go_to_the_unknown_bucket(build):
    encoder = build("sequence.transformer", **SMALL)
    encoder.fit(VALUES)
    batch = encoder.prepare(pd.Series([[{"mcc": "never-seen", "amount": 5.0}]]))
    assert batch["categorical"][0, 0, 0].item() == 1


def test_prepare_before_fit_fails_with_a_clear_message(build):
    with pytest.raises(RuntimeError, match="fit"):
        build("sequence.gru").prepare(VALUES)


def test_fitted_schema_changes_the_cache_key(build):
    a, b = build("sequence.gru", **SMALL), build("sequence.gru", **SMALL)
    a.fit(VALUES)
    b.fit(VALUES.iloc[:2])
    assert a.cache_key() != b.cache_key()


def test_several_columns_are_a_config_error(build):
    with pytest.raises(ConfigError, match="one column"):
        build("sequence.gru").fit(pd.DataFrame({"a": [None], "b": [None]}))


def test_heads_must_divide_hidden(transfuse_manager, sequence_plugin):
    entry = transfuse_manager.get("encoder", "sequence.transformer")
    with pytest.raises(ConfigError, match="multiple of heads"):
        entry.validate_options({"hidden": 30, "heads": 4})


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("sequence.gru", {"hidden": 32, "dim": 16, "max_events": 20}),
        ("sequence.transformer", {"hidden": 32, "dim": 16, "max_events": 20}),
    ],
)
def test_learns_whether_any_amount_is_above_a_threshold(build, histories, name, options):
    """Masked max pooling over the events: 40 full-batch Adam steps on 256 entities must
    reach > 0.9 accuracy on 200 new ones."""
    train_x, train_y = histories(256, seed=0)
    test_x, test_y = histories(200, seed=1)
    torch.manual_seed(0)
    encoder = build(name, pool="max", **options)
    encoder.fit(train_x)
    head = torch.nn.Linear(encoder.output_dim, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    batch, target = encoder.prepare(train_x), torch.from_numpy(train_y)
    encoder.train()
    for _ in range(40):
        optimizer.zero_grad()
        logits = head(encoder(batch)).squeeze(1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        predicted = (head(encoder(encoder.prepare(test_x))).squeeze(1) > 0).numpy()
    accuracy = float((predicted == test_y).mean())
    assert accuracy > 0.9, f"held-out accuracy {accuracy:.2f}"


def test_a_bad_value_is_a_data_error_naming_the_column_and_row(build):
    encoder = build("sequence.gru", **SMALL)
    encoder.fit(VALUES)
    bad = pd.Series([None, "[{oops"], index=[7, 8], name="transactions")
    with pytest.raises(DataError, match=r"column 'transactions', row 8: .*not valid JSON"):
        encoder.prepare(bad)
