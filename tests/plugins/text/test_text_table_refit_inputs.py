"""The text-table recipe without joint epochs and with its parts refit on every
training row once the stack has weighed them (``epochs: 0``, ``refit_inputs``)."""

from __future__ import annotations

from pathlib import Path
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


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    words = np.where(label == 1, "late missed overdue", "paid on time")
    noisy = rng.random(rows) < 0.3
    return pd.DataFrame(
        {
            "note": [w if not n else "no remark" for w, n in zip(words, noisy)],
            "income": rng.normal(size=rows) - label,
            "age": rng.normal(size=rows),
            "bad": label,
        }
    )


def config(manager: Any, **fusion: Any) -> dict[str, Any]:
    out = load_pipeline("text-table", manager).to_dict()
    out["task"]["target"] = "bad"
    out["inputs"]["text"] = {**out["inputs"]["text"], "column": "note", "options": {"min_df": 1}}
    out["inputs"]["table"] = {**out["inputs"]["table"], "columns": ["income", "age"],
                              "options": {"trees": 20}}  # fmt: skip
    out["fusion"]["options"].update(fusion)
    out["train"].update(batch_size=64, device="cpu", progress=False)
    return out


def test_no_epochs_keeps_the_fitted_parts_and_still_refits_the_weights(manager: Any) -> None:
    import transfuse

    cfg = config(manager, refit_inputs=False)
    cfg["train"]["epochs"] = 0
    data = frame(300, seed=0)
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(data)
    assert pipeline.metrics["history"] == [] and pipeline.metrics["best_epoch"] == -1
    assert set(pipeline.metrics["log"]["fusion_refit"]["weights"]) == {"text", "table"}
    assert "refit_inputs" not in pipeline.metrics["log"]
    table = pipeline.model.inputs["table"]
    raw = table.raw_score(data[["income", "age"]])  # the head reads LightGBM's raw score
    out = table(table.prepare(data[["income", "age"]]))[:, 0].detach().numpy()
    assert np.allclose(out, raw, atol=1e-4)
    assert pipeline.metrics["test"]["roc_auc"] > 0.8


def test_refit_inputs_refits_both_parts_on_training_and_validation_rows(
    manager: Any, tmp_path: Path
) -> None:
    import transfuse

    cfg = config(manager, refit_inputs=True)
    cfg["train"]["epochs"] = 0
    data = frame(400, seed=1)
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(data)
    sizes = pipeline.splits.sizes()
    done = pipeline.metrics["log"]["refit_inputs"]
    labelled = sizes["train"] + sizes["validation"]
    assert done["table"]["rows"] == labelled and done["table"]["rounds"] >= 1
    assert done["text"]["rows"] == labelled  # every note has a text
    table = pipeline.model.inputs["table"]
    rows = pd.concat([pipeline.splits.train, pipeline.splits.validation])
    raw = table.raw_score(rows[["income", "age"]])
    out = table(table.prepare(rows[["income", "age"]]))[:, 0].detach().numpy()
    assert np.allclose(out, raw, atol=1e-4)  # the leaf table is the new trees'
    assert pipeline.metrics["test"]["roc_auc"] > 0.8
    # measured on the validation rows before the parts learned from them
    assert pipeline.importance["table"]["drop"] > 0 and pipeline.importance["text"]["drop"] > 0
    scores = pipeline.predict_scores(data)
    pipeline.save(tmp_path / "run")
    again = transfuse.load(tmp_path / "run", manager=manager)
    assert np.allclose(again.predict_scores(data), scores, atol=1e-6)


def test_refit_folds_weighs_the_parts_out_of_fold_on_every_labelled_row(manager: Any) -> None:
    import transfuse

    cfg = config(manager, refit_inputs=True, refit_folds=3)
    cfg["train"]["epochs"] = 0
    data = frame(400, seed=2)
    data["note"] = data["note"].sample(frac=1.0, random_state=0).to_numpy()  # the text: noise
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(data)
    sizes = pipeline.splits.sizes()
    labelled = sizes["train"] + sizes["validation"]
    refit = pipeline.metrics["log"]["fusion_refit"]
    assert refit["cross_fit"] == {"folds": 3, "rows": labelled} and refit["rows"] == labelled
    assert refit["chosen"] == "table alone"  # a noise text earns no weight
    assert pipeline.metrics["log"]["refit_inputs"]["table"]["rows"] == labelled
    # before the parts were refit on every row they were the training rows' again, so the
    # validation rows were held out for calibration and the importance
    assert pipeline.importance["table"]["drop"] > 0.2
    again = transfuse.Pipeline.from_config(cfg, manager=manager).fit(data)
    assert np.allclose(again.predict_scores(data), pipeline.predict_scores(data))


def test_refit_folds_is_skipped_when_an_input_cannot_refit_its_rows(manager: Any) -> None:
    import transfuse

    cfg = config(manager, refit_inputs=True, refit_folds=3)
    cfg["train"]["epochs"] = 0
    cfg["inputs"]["table"] = {"encoder": "tabular.mlp", "columns": ["income", "age"]}
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(frame(200, seed=3))
    refit = pipeline.metrics["log"]["fusion_refit"]
    assert refit["cross_fit"] == "skipped: ['table'] cannot refit their rows"
    assert refit["rows"] == pipeline.splits.sizes()["validation"]


def test_one_fold_is_a_config_error(manager: Any) -> None:
    import transfuse
    from transfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="refit_folds must be 0"):
        transfuse.Pipeline.from_config(config(manager, refit_folds=1), manager=manager).fit(
            frame(100, seed=4)
        )


def test_refit_folds_leaves_one_input_alone(manager: Any) -> None:
    import transfuse

    cfg = config(manager, refit_inputs=True, refit_folds=3)
    cfg["train"]["epochs"] = 0
    del cfg["inputs"]["table"]
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(frame(400, seed=5))
    refit = pipeline.metrics["log"]["fusion_refit"]
    assert "cross_fit" not in refit and refit["note"] == "one input: only the bias refit"
    assert pipeline.metrics["log"]["refit_inputs"]["text"]["rows"] == sum(
        pipeline.splits.sizes()[k] for k in ("train", "validation")
    )


def test_refit_folds_weighs_three_classes_too(manager: Any) -> None:
    import transfuse

    rng = np.random.default_rng(8)
    label = rng.integers(0, 3, 450)
    words = np.array(["late missed", "paid on time", "pending review"])[label]
    data = pd.DataFrame(
        {
            "note": [w if rng.random() > 0.3 else "no remark" for w in words],
            "income": rng.normal(size=450) - label,
            "age": rng.normal(size=450),
            "bad": np.array(["a", "b", "c"])[label],
        }
    )
    cfg = config(manager, refit_inputs=True, refit_folds=3)
    cfg["task"] = {"type": "multiclass", "target": "bad"}
    cfg["train"]["epochs"] = 0
    pipeline = transfuse.Pipeline.from_config(cfg, manager=manager).fit(data)
    refit = pipeline.metrics["log"]["fusion_refit"]
    sizes = pipeline.splits.sizes()
    assert refit["cross_fit"] == {"folds": 3, "rows": sizes["train"] + sizes["validation"]}
    assert len(refit["weights"]["text"]) == 3  # a weight per class and input
    assert pipeline.metrics["test"]["accuracy"] > 0.7
