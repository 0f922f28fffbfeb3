"""The plugin registers every strategy, imports no torch, and each passes check_strategy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import transfuse_strategies
from transfuse import ConfigError
from transfuse.testing import check_strategy

NAMES = [
    "strategy.finetune",
    "strategy.freeze",
    "strategy.lp-ft",
    "strategy.gradual-unfreeze",
    "strategy.layer-map",
    "strategy.l2sp",
    "strategy.replay",
    "strategy.pool",
    "strategy.stack",
    "strategy.source-weights",
    "strategy.coral",
    "strategy.dann",
]


@pytest.fixture
def manager(transfuse_manager, register_plugin):
    register_plugin(transfuse_strategies, name="transfuse-strategies")
    return transfuse_manager


def test_every_strategy_is_registered(manager):
    assert sorted(manager.components("strategy")) == sorted(NAMES)
    assert manager.get("strategy", "l2sp").name == "strategy.l2sp"


def test_the_package_imports_no_torch():
    code = "import sys, transfuse_strategies; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_options_reject_unknown_keys_and_bad_values(manager):
    entry = manager.get("strategy", "gradual-unfreeze")
    assert entry.validate_options({"every_epochs": 2}).every_epochs == 2
    with pytest.raises(ConfigError, match="every_epoch: unknown key"):
        entry.validate_options({"every_epoch": 2})
    with pytest.raises(ConfigError, match="min_loaded"):
        manager.get("strategy", "layer-map").validate_options({"min_loaded": 2})


def test_only_layer_map_copies_weights(manager):
    copying = [n for n in NAMES if manager.get("strategy", n).load().copies_weights]
    assert copying == ["strategy.layer-map", "strategy.source-weights"]


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in NAMES
        if n
        not in {
            "strategy.coral",
            "strategy.dann",
            "strategy.replay",
            "strategy.stack",
            "strategy.pool",  # needs a gbdt network and source rows: test_pool.py
            "strategy.source-weights",  # needs labelled rows: tests/.../test_multisource.py
        }
    ],
)
def test_conformance(manager, name):
    check_strategy(manager.get("strategy", name))


@pytest.mark.parametrize("name", ["strategy.coral", "strategy.dann"])
def test_conformance_with_unlabeled_rows(manager, kit, name):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.standard_normal(40) for c in "ab"}).astype("float32")
    model = kit.table_model(frame, ["a", "b"])
    ctx = kit.context(
        model,
        model,
        frame.iloc[:10],
        unlabeled=frame.iloc[10:] * 2,
        source_data=frame,
        batches=kit.batches_for(model),
    )
    check_strategy(manager.get("strategy", name), options={"batch_size": 8}, context=ctx)
