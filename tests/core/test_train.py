"""The trainer: parameter groups, schedule, early stopping, events, checkpoints, resume."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import runtime_kit as kit

from transfuse import ConfigError, Pipeline, hookimpl
from transfuse.bases import TransferStrategy
from transfuse.train import default_param_groups, warmup_cosine


@pytest.fixture
def kit_manager(register_plugin, transfuse_manager, tmp_path, monkeypatch):
    return kit.install(register_plugin, transfuse_manager, tmp_path, monkeypatch)


class Events:
    """An observer plugin that records events (and can stop a run at one)."""

    def __init__(self, stop_at: tuple[str, int] | None = None) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.stop_at = stop_at

    @hookimpl
    def transfuse_on_event(self, event, payload):
        self.seen.append((event, dict(payload)))
        if self.stop_at == (event, payload.get("epoch")):
            raise KeyboardInterrupt


def fitted(kit_manager, **overrides):
    return Pipeline.from_config(kit.config(**overrides), manager=kit_manager).fit(kit.frame(200))


def test_default_groups_split_encoders_and_keep_biases_out_of_weight_decay(kit_manager):
    pipeline = fitted(kit_manager, train={"epochs": 1})
    groups = {g["name"]: g for g in default_param_groups(pipeline.model, 0.1, 0.01)}
    assert {"inputs.a.backbone", "inputs.a.backbone.no_decay", "default"} <= set(groups)
    assert groups["inputs.a.backbone"]["param_names"] == ["inputs.a.proj.0.weight"]
    assert groups["inputs.a.backbone.no_decay"]["weight_decay"] == 0.0
    assert groups["default"]["weight_decay"] == 0.01
    assert all(name.endswith("weight") for name in groups["default"]["param_names"])
    counted = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(counted) == sorted(id(p) for p in pipeline.model.parameters())


def test_schedule_warms_up_linearly_then_decays_to_zero():
    factor = warmup_cosine(100, 0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5)
    assert factor(99) < 0.01
    values = [factor(s) for s in range(10, 100)]
    assert values == sorted(values, reverse=True)


def test_training_learns_and_records_history(kit_manager):
    pipeline = fitted(kit_manager, train={"epochs": 4})
    history = pipeline.metrics["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert pipeline.metrics["metric"] == "roc_auc"
    assert pipeline.metrics["test"]["roc_auc"] > 0.85


def test_early_stopping_restores_the_best_epochs_weights(kit_manager, register_plugin):
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    holder: dict[str, Pipeline] = {}

    class Snapshot:
        @hookimpl
        def transfuse_on_event(self, event, payload):
            if event == "epoch_end":
                model = holder["p"].model
                snapshots[payload["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    register_plugin(Snapshot(), name="snapshot")
    pipeline = Pipeline.from_config(
        kit.config(train={"epochs": 12, "patience": 2, "lr": 0.3, "metric": "loss"}),
        manager=kit_manager,
    )
    holder["p"] = pipeline
    pipeline.fit(kit.frame(200))
    history = pipeline.metrics["history"]
    best = pipeline.metrics["best_epoch"]
    losses = [h["validation"]["loss"] for h in history]
    assert best == int(np.argmin(losses))
    assert len(history) - 1 - best == 2, "stops after `patience` epochs without improvement"
    final = pipeline.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snapshots[best].items())


def test_events_are_emitted_in_order(kit_manager, register_plugin, tmp_path):
    events = register_plugin(Events(), name="events")
    Pipeline.from_config(kit.config(train={"epochs": 2}), manager=kit_manager).fit(
        kit.frame(100), checkpoint_dir=tmp_path / "ck"
    )
    names = [e for e, _ in events.seen]
    assert names == [
        "fit_start", "run_start", "epoch_end", "checkpoint", "epoch_end", "checkpoint", "run_end"
    ]  # fmt: skip
    assert "roc_auc" in events.seen[2][1]["metrics"]
    assert events.seen[0][1]["config"]["train"]["epochs"] == 2


def test_saving_a_run_emits_run_saved_naming_the_fit_and_the_folder(
    kit_manager, register_plugin, tmp_path
):
    events = register_plugin(Events(), name="events")
    pipeline = Pipeline.from_config(kit.config(train={"epochs": 1}), manager=kit_manager)
    path = pipeline.fit(kit.frame(100)).save(tmp_path / "run")
    (start, started), (end, saved) = events.seen[0], events.seen[-1]
    assert (start, end) == ("fit_start", "run_saved")
    assert saved == {"fit": started["fit"], "name": "kit", "path": str(path)}
    assert (path / "report.md").is_file()  # written before trackers are told


def test_checkpoint_is_safetensors_and_json_only(kit_manager, tmp_path):
    from safetensors.torch import load_file

    fitted_ = Pipeline.from_config(kit.config(train={"epochs": 2}), manager=kit_manager)
    fitted_.fit(kit.frame(100), checkpoint_dir=tmp_path)
    folder = tmp_path / "checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == [
        "best.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 2
    assert any(k.endswith("exp_avg") for k in load_file(folder / "optimizer.safetensors"))
    assert "inputs.a.proj.0.weight" in load_file(folder / "model.safetensors")
    assert (tmp_path / "encoders" / "a" / "state.json").is_file()


def test_resuming_a_killed_run_ends_where_an_uninterrupted_run_ends(
    kit_manager, register_plugin, tmp_path
):
    config = kit.config(train={"epochs": 4})
    df = kit.frame(200)
    whole = Pipeline.from_config(config, manager=kit_manager).fit(df, checkpoint_dir=tmp_path / "a")
    register_plugin(Events(stop_at=("checkpoint", 1)), name="killer")
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_config(config, manager=kit_manager).fit(df, checkpoint_dir=tmp_path / "b")
    kit_manager.unregister("killer")
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    events = register_plugin(Events(), name="events")
    resumed = Pipeline.from_config(config, manager=kit_manager)
    resumed.fit(df, checkpoint_dir=tmp_path / "b", resume=True)
    assert [p["epoch"] for e, p in events.seen if e == "epoch_end"] == [2, 3]
    assert len(resumed.metrics["history"]) == 4
    test = kit.frame(50, seed=9)
    assert np.allclose(whole.predict(test).to_numpy(), resumed.predict(test).to_numpy(), atol=1e-6)


def test_resume_with_other_data_is_refused(kit_manager, tmp_path):
    from transfuse import CheckpointError

    config = kit.config(train={"epochs": 1})
    Pipeline.from_config(config, manager=kit_manager).fit(kit.frame(100), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="other data"):
        Pipeline.from_config(config, manager=kit_manager).fit(
            kit.frame(120), checkpoint_dir=tmp_path, resume=True
        )


def test_frozen_input_cache_is_hit_on_the_second_epoch(kit_manager):
    inputs = {
        "a": {"encoder": "test.numeric", "column": "a"},
        "f": {"encoder": "test.frozen", "column": "b", "options": {"dim": 4}},
    }
    pipeline = fitted(kit_manager, inputs=inputs, train={"epochs": 3})
    n_train = pipeline.metrics["splits"]["train"]
    history = pipeline.metrics["history"]
    assert history[0]["cache"]["f"] == {"hits": 0, "misses": n_train}
    assert history[1]["cache"]["f"] == {"hits": n_train, "misses": 0}
    assert history[2]["cache"]["f"] == {"hits": n_train, "misses": 0}
    assert sum(kit.Frozen.calls) == 200, "each row is embedded once in the whole run"


def test_a_changed_encoder_option_misses_the_cache(kit_manager):
    def run(scale):
        inputs = {"f": {"encoder": "test.frozen", "column": "b", "options": {"scale": scale}}}
        return fitted(kit_manager, inputs=inputs, train={"epochs": 1}).metrics["history"][0]

    assert run(1.0)["cache"]["f"]["hits"] == 0
    assert run(1.0)["cache"]["f"]["misses"] == 0, "same options: read from the cache"
    assert run(2.0)["cache"]["f"]["hits"] == 0, "another option: recomputed"


class Recorder(TransferStrategy):
    """A strategy that records the trainer's calls and halves the head's learning rate."""

    def __init__(self) -> None:
        super().__init__(None, None)  # type: ignore[arg-type]
        self.calls: list[str] = []

    def param_groups(self, model, groups):
        self.calls.append("param_groups")
        head = [p for n, p in model.named_parameters() if n.startswith("head.")]
        rest = [
            {**g, "params": [p for p in g["params"] if all(p is not h for h in head)]}
            for g in groups
        ]
        return [*rest, {"name": "head", "params": head, "lr": 0.001, "weight_decay": 0.0}]

    def on_epoch_start(self, epoch):
        self.calls.append(f"epoch {epoch}")

    def extra_loss(self, batch, outputs, step):
        self.calls.append("extra_loss")
        return outputs["features"].pow(2).mean() * 0.0

    def on_step_end(self, step):
        self.calls.append("step_end")

    def finalize(self, model):
        self.calls.append("finalize")


def test_strategies_are_called_in_the_documented_order(kit_manager):
    strategy = Recorder()
    seen = {}

    def init(pipeline, model, splits):
        seen["trainable"] = sum(p.numel() for p in model.parameters())
        seen["rows"] = len(splits.train)

    Pipeline.from_config(
        kit.config(train={"epochs": 2, "batch_size": 64}), manager=kit_manager
    ).fit(kit.frame(100), strategies=[strategy], init=init)
    steps = math.ceil(64 / 64)
    assert strategy.calls[0] == "param_groups" and strategy.calls[1] == "epoch 0"
    assert strategy.calls.count("extra_loss") == strategy.calls.count("step_end") == 2 * steps
    assert strategy.calls[-1] == "finalize" and "epoch 1" in strategy.calls
    assert seen["rows"] == 64 and seen["trainable"] > 0


def test_an_unknown_metric_is_a_config_error_listing_the_metrics(kit_manager):
    with pytest.raises(ConfigError, match=r"train\.metric.*roc_auc"):
        fitted(kit_manager, train={"epochs": 1, "metric": "gini"})


def test_a_diverging_loss_is_a_clear_error(kit_manager):
    inputs = {"a": {"encoder": "test.numeric", "column": "a", "options": {"scale": 1e39}}}
    with pytest.raises(ConfigError, match="diverged"):
        fitted(kit_manager, inputs=inputs, train={"epochs": 1})


def test_progress_shows_loss_and_the_validation_metric_on_a_terminal(
    kit_manager, capsys, monkeypatch
):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fitted(kit_manager, train={"epochs": 2, "progress": True})
    err = capsys.readouterr().err
    assert "epoch 1/2: loss" in err and "validation roc_auc" in err and "epoch 2/2" in err


def test_progress_is_off_when_not_a_terminal_or_when_disabled(kit_manager, capsys):
    fitted(kit_manager, train={"epochs": 1, "progress": True})
    assert "epoch 1/1" not in capsys.readouterr().err


def test_loader_workers_give_the_same_model(kit_manager):
    one = fitted(kit_manager, train={"epochs": 1, "num_workers": 0})
    two = fitted(kit_manager, train={"epochs": 1, "num_workers": 1})
    rows = kit.frame(20, seed=3)
    assert np.array_equal(one.predict(rows).to_numpy(), two.predict(rows).to_numpy())


def test_transferred_starting_weights_are_kept_unless_an_epoch_beats_them(kit_manager, tmp_path):
    good = fitted(kit_manager, train={"epochs": 6})
    start = {k: v.clone() for k, v in good.model.state_dict().items()}

    def init(pipeline, model, splits):  # a "transfer": the trained weights, copied over
        model.load_state_dict(start)

    ruin = {"epochs": 3, "lr": 5.0, "warmup": 0.0, "metric": "loss"}  # training makes it worse
    moved = Pipeline.from_config(kit.config(train=ruin), manager=kit_manager)
    moved.fit(kit.frame(200), init=init)
    history = moved.metrics["history"]
    assert moved.metrics["best_epoch"] == -1, [h["value"] for h in history]
    assert all(h["value"] > moved.result.start_value for h in history)
    final = moved.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in start.items())
    run = moved.save(tmp_path / "moved")
    report = (run / "report.md").read_text("utf-8")
    summary = report.split("## Summary", 1)[1].split("\n\n", 2)[1]  # the answer comes first
    assert "No epoch of 3 beat the transferred starting weights" in summary
    assert "did not change the model" in summary and "rests on" in summary
    assert "dotted line marks the weights kept (the starting weights, kept)" in report
    assert json.loads((run / "metrics.json").read_text("utf-8"))["start_value"] == pytest.approx(
        moved.result.start_value
    )


def test_a_run_loaded_without_the_cache_scores_the_same_and_writes_nothing(kit_manager, tmp_path):
    import os

    import transfuse

    inputs = {
        "a": {"encoder": "test.numeric", "column": "a"},
        "f": {"encoder": "test.frozen", "column": "b", "options": {"dim": 4}},
    }
    run = fitted(kit_manager, inputs=inputs, train={"epochs": 1}).save(tmp_path / "run")
    rows = kit.frame(30, seed=7).drop(columns=["y"])  # rows the run never saw
    cache = os.environ["TRANSFUSE_CACHE"]
    before = sorted(p for p, _, files in os.walk(cache) for _ in files)
    kit.Frozen.calls.clear()
    uncached = transfuse.load(run, manager=kit_manager, cache=False).predict(rows)
    assert sum(kit.Frozen.calls) == 30, "the encoder ran on every row"
    assert sorted(p for p, _, files in os.walk(cache) for _ in files) == before
    cached = transfuse.load(run, manager=kit_manager).predict(rows)
    assert np.allclose(uncached.to_numpy(), cached.to_numpy(), atol=1e-6)
