"""The transfer workflow end to end: source run -> strategies -> target run -> report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import transfuse
from transfuse.cli import main
from transfuse.pipeline import Pipeline

COLUMNS = [f"x{i}" for i in range(6)]


def domain(n: int, shift: float, seed: int) -> pd.DataFrame:
    """Rows of a domain whose label depends on the same (non-linear) rule everywhere; the
    target domain's features are shifted."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 6))
    cat = rng.choice(["a", "b", "c", "d"], size=n)
    w = np.array([1.5, -1.0, 0.8, 0.0, 0.6, -0.7])
    bump = np.select([cat == "a", cat == "b", cat == "c"], [1.0, -1.0, 0.5], -0.5)
    z = x @ w - 0.5 * shift + bump + 0.8 * np.sin(2 * x[:, 0]) * x[:, 1]
    frame = pd.DataFrame(x, columns=COLUMNS)
    frame["cat"] = cat
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


def config(name: str, seed: int = 0, epochs: int = 25) -> dict:
    return {
        "name": name,
        "task": {"type": "binary", "target": "y"},
        "data": {"test_size": 0.2, "validation_size": 0.25},
        "inputs": {"table": {"encoder": "tabular.mlp", "columns": [*COLUMNS, "cat"]}},
        "train": {
            "epochs": epochs,
            "batch_size": 64,
            "lr": 3e-3,
            "patience": 5,
            "seed": seed,
            "progress": False,
        },
    }


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    Pipeline.from_config(config("source", epochs=20)).fit(domain(1500, 0.0, 1)).save(out)
    return out


@pytest.mark.slow
def test_transfer_beats_training_from_scratch_across_five_seeds(source_run):
    # Measured (docs/strategies.md): mean ROC-AUC gain 0.08 over 5 seeds with 64 labels.
    test = domain(1500, 0.7, 99)
    gains = []
    for seed in range(5):
        result = transfuse.transfer(
            config("target", seed),
            source_run,
            ["finetune"],
            data=domain(64, 0.7, 100 + seed),
            test=test,
            baseline="scratch",
        )
        gains.append(result.comparison["roc_auc"]["difference"])
    assert np.mean(gains) > 0.03, gains


def test_transfer_cli_with_scratch_baseline_writes_both_side_by_side(source_run, tmp_path):
    data = tmp_path / "target.csv"
    domain(300, 0.7, 5).to_csv(data, index=False)
    pipeline = tmp_path / "target.yaml"
    import yaml

    pipeline.write_text(yaml.safe_dump(config("target", epochs=4)), "utf-8")
    out = tmp_path / "transferred"
    code = main(
        ["transfer", str(pipeline), "--from", str(source_run), "--out", str(out),
         "--data", str(data), "--baseline", "scratch", "--strategy", "layer-map",
         "--strategy", "gradual-unfreeze", "--strategy", "l2sp"]
    )  # fmt: skip
    assert code == 0
    report = (out / "report.md").read_text("utf-8")
    assert "## Transfer against training from scratch" in report
    assert "| roc_auc |" in report and "strategy.layer-map" in report
    reports = json.loads((out / "transfer.json").read_text("utf-8"))
    assert reports[0]["loaded_fraction"] == pytest.approx(1.0)
    metrics = json.loads((out / "metrics.json").read_text("utf-8"))
    assert metrics["transfer"]["strategies"] == [
        "strategy.layer-map",
        "strategy.gradual-unfreeze",
        "strategy.l2sp",
    ]
    assert "roc_auc" in metrics["baseline"]["test"]
    assert (out / "baseline" / "model.safetensors").is_file()
    reloaded = transfuse.load(out)
    assert reloaded.predict(domain(5, 0.7, 6)).shape == (5, 2)


def test_a_pipeline_with_a_transfer_section_trains_by_transfer(source_run, tmp_path):
    data = tmp_path / "target.csv"
    domain(200, 0.7, 7).to_csv(data, index=False)
    raw = config("target", epochs=2)
    raw["transfer"] = {
        "from": str(source_run),
        "strategies": [{"freeze": {"include": ["inputs.*"]}}],
    }
    import yaml

    pipeline = tmp_path / "target.yaml"
    pipeline.write_text(yaml.safe_dump(raw), "utf-8")
    assert main(["train", str(pipeline), "--out", str(tmp_path / "run"), "--data", str(data)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text("utf-8"))
    assert metrics["transfer"]["strategies"] == ["strategy.layer-map", "strategy.freeze"]


def test_the_example_strategy_is_used_by_name_in_a_transfer(source_run):
    target = config("target", epochs=5)
    target["train"]["lr"] = 0.03
    # The shifted domain needs other biases: the validation loss (not the AUC, which a
    # bias barely moves) lets a trained epoch beat the transferred starting weights.
    target["train"]["metric"] = "loss"
    result = transfuse.transfer(target, source_run, ["bias-only"], data=domain(200, 0.7, 8))
    assert result.pipeline.metrics["transfer"]["strategies"][-1] == "strategy.bias-only"
    assert result.pipeline.metrics["best_epoch"] >= 0
    source = transfuse.load(source_run).model.state_dict()
    target = result.pipeline.model.state_dict()
    weights = [
        n for n in target if n.endswith("weight") and "embedding" not in n and n[:4] != "head"
    ]
    biases = [n for n in target if n.endswith("bias") and not n.startswith("head")]
    assert all(target[n].equal(source[n]) for n in weights)  # frozen: still the source's
    assert not all(target[n].equal(source[n]) for n in biases)  # trained


def test_a_missing_source_run_is_one_clear_line(tmp_path):
    import yaml

    pipeline = tmp_path / "t.yaml"
    pipeline.write_text(yaml.safe_dump(config("t")), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "transfer", str(pipeline),
         "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nope" in result.stderr and "Traceback" not in result.stderr


def test_the_report_has_a_domain_shift_section_and_stack_runs_through_the_workflow(
    source_run, tmp_path
):
    source_rows = domain(600, 0.0, 1)
    result = transfuse.transfer(
        config("target", epochs=2), source_run, ["stack"],
        data=domain(300, 1.0, 8), source_data=source_rows,
    )  # fmt: skip
    pipeline = result.pipeline
    shift = pipeline.metrics["transfer"]["shift"]
    assert shift["domain_auc"] > 0.7  # every column moved by 1 sd
    assert pipeline.metrics["transfer"]["strategies"] == ["strategy.layer-map", "strategy.stack"]
    assert pipeline.metrics["best_epoch"] == -1  # then: keep, nothing trained afterwards
    out = result.save(tmp_path / "run")
    report = (out / "report.md").read_text("utf-8")
    assert "## Domain shift: source -> target" in report and "| x0 |" in report
    assert "penalty chosen by" in report


def test_without_source_rows_the_shift_section_says_why(source_run):
    result = transfuse.transfer(config("target", epochs=1), source_run, ["freeze"],
                                data=domain(120, 0.5, 9))  # fmt: skip
    assert "not measured" in result.pipeline.shift


def test_a_transfer_that_keeps_the_source_model_keeps_its_calibrator(source_run):
    source = transfuse.load(source_run)
    result = transfuse.transfer(
        config("target", epochs=0), source_run, ["finetune"], data=domain(400, 0.0, 11)
    )
    kept = result.pipeline.calibration
    assert kept is not None and kept.note.startswith("the source run's calibrator")
    assert (kept.slope, kept.intercept) == (source.calibration.slope, source.calibration.intercept)
    scores = result.pipeline.predict_scores(domain(50, 0.0, 12))
    assert np.allclose(scores, source.predict_scores(domain(50, 0.0, 12)), atol=1e-6)


def test_target_rows_that_reject_the_source_calibrator_get_their_own(source_run):
    data = domain(400, 0.0, 13)
    rng = np.random.default_rng(0)
    data["y"] = np.where(rng.random(len(data)) < 0.6, 1, data["y"])  # far more positives
    result = transfuse.transfer(config("target", epochs=0), source_run, ["finetune"], data=data)
    fitted = result.pipeline.calibration
    assert fitted is not None and fitted.note == ""
    assert fitted.rows == result.pipeline.splits.sizes()["validation"]


def test_a_transfer_to_another_model_fits_its_own_calibrator(source_run):
    raw = config("target", epochs=0)  # a column the source never saw: another model
    raw["inputs"]["table"]["columns"] = [*COLUMNS, "cat", "extra"]
    data = domain(400, 0.0, 14)
    data["extra"] = np.random.default_rng(1).normal(size=len(data))
    result = transfuse.transfer(raw, source_run, ["layer-map"], data=data)
    fitted = result.pipeline.calibration
    assert fitted is not None and fitted.note == ""
    assert fitted.rows == result.pipeline.splits.sizes()["validation"]
