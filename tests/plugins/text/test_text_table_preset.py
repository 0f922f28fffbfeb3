"""The text-table preset: registered by the text plugin, valid, and it trains once named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import transfuse_text
from transfuse.config import load_pipeline


@pytest.fixture
def manager(transfuse_manager: Any, register_plugin: Any) -> Any:
    import transfuse_tabular

    register_plugin(transfuse_text, name="text")
    register_plugin(transfuse_tabular, name="tabular")
    return transfuse_manager


def test_the_preset_is_registered_and_names_the_recipe(manager: Any) -> None:
    entry = manager.get("pipeline", "text-table")
    config = load_pipeline("text-table", manager)
    assert entry.resource == "transfuse_text.presets:text_table.yaml"
    assert config.inputs["text"].encoder == "text.tfidf"
    assert config.inputs["table"].encoder == "tabular.gbdt"
    assert config.fusion.method == "fusion.stack" and config.fusion.options["linear_heads"]
    for name in ("text", "table"):  # every option the preset sets is one the encoder takes
        spec = config.inputs[name]
        manager.get("encoder", spec.encoder).validate_options(spec.options, name)
    manager.get("fusion", "fusion.stack").validate_options(config.fusion.options, "fusion")


def test_with_its_columns_named_it_trains_and_logs_the_refit(manager: Any) -> None:
    import transfuse

    rng = np.random.default_rng(0)
    rows = 300
    label = rng.integers(0, 2, rows)
    words = np.where(label[:, None] == 1, "late missed overdue", "paid on time")
    noisy = rng.random(rows) < 0.3
    frame = pd.DataFrame(
        {
            "note": [w if not n else "no remark" for w, n in zip(words[:, 0], noisy)],
            "income": rng.normal(size=rows) - label,
            "age": rng.normal(size=rows),
            "bad": label,
        }
    )
    config = load_pipeline("text-table", manager).to_dict()
    template = config["inputs"]["text"]["column"]
    config["task"]["target"] = "bad"
    config["inputs"]["text"] = {**config["inputs"]["text"], "column": "note",
                                "options": {"min_df": 1}}  # fmt: skip
    table = config["inputs"]["table"]  # the note's statistics beside the table, as shipped
    assert table["options"]["text_statistics"] == [template]
    config["inputs"]["table"] = {**table, "columns": ["note", "income", "age"],
                                 "options": {"text_statistics": ["note"], "trees": 20}}  # fmt: skip
    config["train"].update(epochs=2, batch_size=64, device="cpu", progress=False)
    pipeline = transfuse.Pipeline.from_config(config, manager=manager).fit(frame)
    assert "note:words" in pipeline.model.encoders()["table"].schema.by_name
    refit = pipeline.metrics["log"]["fusion_refit"]
    assert set(refit["weights"]) == {"text", "table"}
    assert pipeline.metrics["test"]["roc_auc"] > 0.8
