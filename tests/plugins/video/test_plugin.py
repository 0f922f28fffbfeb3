"""The video plugin as installed: entry point, light import, modality inference, docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from transfuse_video import VideoFramesOptions, transfuse_infer_modality

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "reference" / "video.md"


def test_the_plugins_command_lists_video_frames_as_active() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = next(r for r in json.loads(out) if r["name"] == "video")
    assert record["status"] == "active", record["error"]
    assert record["distribution"] == "transfuse-video"
    found = next(c for c in record["components"] if c["name"] == "video.frames")
    assert (found["kind"], found["modality"]) == ("encoder", "video")
    assert found["options"]["type"] == "object"  # its options' JSON Schema


def test_importing_the_plugin_pulls_no_heavy_module() -> None:
    code = (
        "import sys, transfuse_video; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'torch', 'timm', 'av', 'PIL', 'transfuse_image'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_building_the_encoder_never_imports_the_image_plugin() -> None:
    code = (
        "import sys; from transfuse_video.encoder import VideoFramesEncoder; "
        "print(sorted(m for m in sys.modules if m.startswith('transfuse_image')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a/interview.mp4", "b/ID-CHECK.MOV", None, "c.avi ", "d.mkv", "e.webm"], "video"),
        ([Path("x.mp4"), Path("y.m4v")], "video"),
        (["call.mp4", "statement.png"], None),
        (["https://example.com/a.mp4"], None),
        (["hello", "world"], None),
        ([None, None], None),
    ],
)
def test_transfuse_infer_modality_answers_video_for_video_paths_only(
    values: list[Any], expected: str | None
) -> None:
    assert transfuse_infer_modality(pd.Series(values, dtype=object)) == expected


def test_the_manager_asks_the_plugin_before_the_core_fallback(video_manager: Any) -> None:
    clips = pd.Series(["a.mp4", "b.webm", "a.mp4"] * 10)  # repeated: the core would say tabular
    assert video_manager.infer_modality(clips) == "video"
    assert video_manager.infer_modality(pd.Series([1.0, 2.0])) == "tabular"


def test_every_option_is_in_the_reference_page_table() -> None:
    text = DOCS.read_text("utf-8")
    for name in VideoFramesOptions.model_fields:
        assert f"| `{name}` |" in text, f"{name} is not documented in {DOCS}"
