"""The plugin manager: discovery, isolation, blocking, conflicts and suggestions."""

from __future__ import annotations

import pytest

from transfuse import (
    EncoderEntry,
    PluginConflictError,
    PluginError,
    UnknownComponentError,
    hookimpl,
)
from transfuse.plugins import PluginManager, make_module

GOOD = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="image.timm", modality="image",
                         factory="good_plugin:Encoder", description="A fake image encoder.")]
"""

RAISES = """
raise RuntimeError("boom at import")
"""

SAME_NAME = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="image.timm", modality="image",
                         factory="other_plugin:Encoder", description="Another one.")]
"""


def load(site_eps, site) -> PluginManager:
    manager = PluginManager(autoload=False)
    manager.load_entry_points(site_eps(site))
    return manager


def test_a_good_plugin_is_active_with_its_components(fake_dists, site_entry_points):
    site = fake_dists("good-plugin", "good_plugin", GOOD, version="1.2")
    manager = load(site_entry_points, site)
    record = next(r for r in manager.records() if r.distribution == "good-plugin")
    assert record.status == "active"
    assert record.version == "1.2"
    assert [c.name for c in record.components] == ["image.timm"]
    entry = manager.get("encoder", "image.timm")
    assert entry.distribution == "good-plugin" and entry.version == "1.2"


def test_a_plugin_that_raises_on_import_is_recorded_and_the_rest_work(
    fake_dists, site_entry_points
):
    fake_dists("good-plugin", "good_plugin", GOOD)
    site = fake_dists("bad-plugin", "bad_plugin", RAISES)
    manager = load(site_entry_points, site)
    by_dist = {r.distribution: r for r in manager.records()}
    assert by_dist["bad-plugin"].status == "failed"
    assert "boom at import" in by_dist["bad-plugin"].error
    assert by_dist["good-plugin"].status == "active"
    assert "image.timm" in manager.components("encoder")


def test_strict_mode_raises_on_a_failing_plugin(fake_dists, site_entry_points, monkeypatch):
    site = fake_dists("bad-plugin", "bad_plugin", RAISES)
    monkeypatch.setenv("TRANSFUSE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="bad_plugin.*boom at import"):
        load(site_entry_points, site)


@pytest.mark.parametrize("blocked", ["good_plugin", "good-plugin"])
def test_a_plugin_is_blocked_by_entry_point_or_distribution_name(
    fake_dists, site_entry_points, monkeypatch, blocked
):
    site = fake_dists("good-plugin", "good_plugin", GOOD)
    monkeypatch.setenv("TRANSFUSE_DISABLE_PLUGINS", f"other, {blocked}")
    manager = load(site_entry_points, site)
    record = next(r for r in manager.records() if r.distribution == "good-plugin")
    assert record.status == "disabled"
    assert "image.timm" not in manager.components("encoder")


def test_two_distributions_registering_one_name_is_an_error_naming_both(
    fake_dists, site_entry_points
):
    fake_dists("good-plugin", "good_plugin", GOOD, version="1.0")
    site = fake_dists("other-plugin", "other_plugin", SAME_NAME, version="2.5")
    manager = load(site_entry_points, site)
    assert "image.timm" not in manager.components("encoder")
    with pytest.raises(PluginConflictError) as info:
        manager.get("encoder", "image.timm", where="inputs.scan.encoder")
    message = str(info.value)
    assert "good-plugin 1.0" in message and "other-plugin 2.5" in message
    assert "image.timm" in message and message.startswith("inputs.scan.encoder: ")


def test_a_name_clash_leaves_the_rest_working_and_both_plugins_say_why(
    fake_dists, site_entry_points
):
    fake_dists("good-plugin", "good_plugin", GOOD, version="1.0")
    site = fake_dists("other-plugin", "other_plugin", SAME_NAME, version="2.5")
    manager = load(site_entry_points, site)
    by_dist = {r.distribution: r for r in manager.records()}
    assert by_dist["good-plugin"].problems == [
        "encoder 'image.timm' is also registered by other-plugin 2.5; neither is used"
    ]
    assert "good-plugin 1.0" in by_dist["other-plugin"].problems[0]
    assert manager.get("fusion", "attention").name == "fusion.attention"


def test_a_plugin_cannot_take_a_name_from_the_core(register_plugin, transfuse_manager):
    from transfuse import FusionEntry

    def transfuse_fusions():
        return [FusionEntry(name="fusion.concat", factory="m:F", description="mine")]

    register_plugin(make_module("squatter", transfuse_fusions=transfuse_fusions))
    assert transfuse_manager.get("fusion", "concat").distribution == "transfuse"
    record = next(r for r in transfuse_manager.records() if r.name == "squatter")
    assert "is the core's own" in record.problems[0]


NEEDS_NEWER = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="text.future", modality="text", factory="future_plugin:Enc",
                         description="Needs a newer core.", requires_core=">=99.0"),
            EncoderEntry(name="text.today", modality="text", factory="future_plugin:Enc",
                         description="Works with this core.", requires_core=">=0.1")]
"""


def test_an_entry_that_needs_a_newer_core_is_listed_and_refused_when_used(
    fake_dists, site_entry_points
):
    site = fake_dists("future-plugin", "future_plugin", NEEDS_NEWER, version="3.0")
    manager = load(site_entry_points, site)
    record = next(r for r in manager.records() if r.distribution == "future-plugin")
    assert record.status == "problem" and [c.name for c in record.components] == ["text.today"]
    assert record.error == record.problems[0]  # a CI check on status or error sees it
    assert len(record.problems) == 1 and "needs transfuse>=99.0" in record.problems[0]
    with pytest.raises(PluginError, match=r"inputs\.t\.encoder: future-plugin 3\.0: .*>=99\.0"):
        manager.get("encoder", "text.future", where="inputs.t.encoder")


def test_an_invalid_requires_core_is_a_listed_problem(register_plugin, transfuse_manager):
    def transfuse_encoders():
        return [
            EncoderEntry(
                name="text.odd", modality="text", factory="m:E", description="", requires_core="new"
            )
        ]

    register_plugin(make_module("odd", transfuse_encoders=transfuse_encoders))
    record = next(r for r in transfuse_manager.records() if r.name == "odd")
    assert "not a version specifier" in record.problems[0]
    assert "text.odd" not in transfuse_manager.components("encoder")


def test_an_unknown_name_suggests_the_closest(fake_dists, site_entry_points):
    site = fake_dists("good-plugin", "good_plugin", GOOD)
    manager = load(site_entry_points, site)
    with pytest.raises(
        UnknownComponentError, match=r"unknown encoder 'image.tim'; did you mean 'image.timm'\?"
    ):
        manager.get("encoder", "image.tim")


def test_short_names_are_completed_with_the_kind_prefix(transfuse_manager):
    assert transfuse_manager.get("fusion", "attention").name == "fusion.attention"


def test_the_core_registers_its_components_through_the_hooks(transfuse_manager):
    record = next(r for r in transfuse_manager.records() if r.name == "transfuse")
    kinds = {c.kind for c in record.components}
    assert {"task", "fusion", "data_source"} <= kinds
    assert {"binary", "multiclass", "regression"} <= set(transfuse_manager.components("task"))
    assert {"csv", "parquet"} <= set(transfuse_manager.components("data_source"))


def test_a_hook_that_returns_the_wrong_type_fails_only_that_plugin(
    register_plugin, transfuse_manager
):
    def transfuse_encoders():
        return ["not an entry"]

    register_plugin(make_module("sloppy", transfuse_encoders=transfuse_encoders))
    record = next(r for r in transfuse_manager.records() if r.name == "sloppy")
    assert record.status == "failed"
    assert "expected EncoderEntry" in record.error
    assert "fusion.concat" in transfuse_manager.components("fusion")


def test_a_plugin_with_a_misspelled_hook_is_rejected(transfuse_manager):
    class Plugin:
        @hookimpl
        def transfuse_encoder(self):  # missing "s"
            return []

    with pytest.raises(PluginError, match="does not match the hook specs"):
        transfuse_manager.register(Plugin(), name="typo")


def test_infer_modality_takes_the_first_answer(register_plugin, transfuse_manager):
    import pandas as pd

    def transfuse_infer_modality(column):
        return "audio" if column.astype(str).str.endswith(".wav").all() else None

    register_plugin(make_module("wav", transfuse_infer_modality=transfuse_infer_modality))
    assert transfuse_manager.infer_modality(pd.Series(["a.wav", "b.wav"])) == "audio"
    assert transfuse_manager.infer_modality(pd.Series([1.0, 2.0])) == "tabular"


def test_events_reach_observers_and_an_observer_error_only_warns(
    register_plugin, transfuse_manager
):
    seen = []

    def transfuse_on_event(event, payload):
        seen.append((event, dict(payload)))

    def broken(event, payload):
        raise ValueError("observer bug")

    register_plugin(make_module("observer", transfuse_on_event=transfuse_on_event))
    register_plugin(make_module("broken", transfuse_on_event=broken))
    with pytest.warns(UserWarning, match="observer bug"):
        transfuse_manager.emit("epoch_end", {"epoch": 1})
    assert seen == [("epoch_end", {"epoch": 1})]


def test_entries_reject_bad_names_and_factories():
    with pytest.raises(PluginError, match="invalid encoder name"):
        EncoderEntry(name="Image Timm", modality="image", factory="a:B", description="")
    with pytest.raises(PluginError, match="package.module:ClassName"):
        EncoderEntry(name="image.x", modality="image", factory="a.B", description="")


def test_pipelines_hook_reads_a_preset_from_package_data(register_plugin, transfuse_manager):
    from transfuse import PipelineEntry
    from transfuse.config import load_pipeline

    def transfuse_pipelines():
        return [PipelineEntry(name="demo-preset", resource="transfuse:py.typed", description="")]

    register_plugin(make_module("presets", transfuse_pipelines=transfuse_pipelines))
    entry = transfuse_manager.get("pipeline", "demo-preset")
    assert entry.read_text() == ""  # py.typed is empty: read through importlib.resources
    with pytest.raises(Exception, match="demo-preset: the config is empty"):
        load_pipeline("demo-preset", transfuse_manager)


def test_hooks_for_every_registration_kind_are_collected(register_plugin, transfuse_manager):
    from transfuse import DataSourceEntry, FusionEntry, StrategyEntry, TaskEntry

    hooks = {
        "transfuse_fusions": lambda: [
            FusionEntry(name="fusion.mine", factory="m:F", description="")
        ],
        "transfuse_strategies": lambda: [
            StrategyEntry(name="strategy.mine", factory="m:S", description="")
        ],
        "transfuse_tasks": lambda: [TaskEntry(name="ordinal", factory="m:T", description="")],
        "transfuse_data_sources": lambda: [
            DataSourceEntry(name="mine", factory="m:D", description="")
        ],
    }
    register_plugin(make_module("many", **hooks))
    assert transfuse_manager.get("fusion", "mine").distribution == "many"
    assert transfuse_manager.get("strategy", "mine").name == "strategy.mine"
    assert transfuse_manager.get("task", "ordinal").kind == "task"
    assert transfuse_manager.get("data_source", "mine").kind == "data_source"
