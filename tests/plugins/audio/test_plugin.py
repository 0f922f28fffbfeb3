"""The audio plugin as installed: entry point, light import, modality inference, docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from transfuse_audio import MelCnnOptions, transfuse_infer_modality

ROOT = Path(__file__).resolve().parents[3]


def test_installed_plugin_is_listed_as_active_with_its_encoder():
    out = subprocess.run(
        [sys.executable, "-m", "transfuse.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    record = next(r for r in json.loads(out) if r["name"] == "audio")
    assert record["status"] == "active", record["error"]
    assert record["distribution"] == "transfuse-audio"
    found = next(c for c in record["components"] if c["name"] == "audio.mel-cnn")
    assert (found["kind"], found["modality"]) == ("encoder", "audio")
    assert found["options"]["type"] == "object"  # its options' JSON Schema


def test_importing_the_plugin_pulls_no_heavy_module():
    code = (
        "import sys, transfuse_audio; "
        "print([m for m in ('torch', 'torchaudio', 'soundfile', 'silero_vad') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a/call.wav", "b/CALL.FLAC", None, "c.mp3 ", "d.ogg"], "audio"),
        ([Path("x.wav"), Path("y.opus")], "audio"),
        (["call.wav", "statement.png"], None),
        (["hello", "world"], None),
        ([None, None], None),
    ],
)
def test_transfuse_infer_modality_answers_audio_for_audio_paths_only(values, expected):
    assert transfuse_infer_modality(pd.Series(values, dtype=object)) == expected


def test_the_manager_asks_the_plugin_before_the_core_fallback(transfuse_manager, audio_plugin):
    calls = pd.Series(["a.wav", "b.wav", "a.wav"] * 10)  # repeated: the core would say tabular
    assert transfuse_manager.infer_modality(calls) == "audio"
    assert transfuse_manager.infer_modality(pd.Series([1.0, 2.0])) == "tabular"


def test_the_reference_page_documents_every_option():
    page = (ROOT / "docs" / "reference" / "audio.md").read_text("utf-8")
    rows = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.M))
    assert rows == set(MelCnnOptions.model_fields)
