"""The installed transfuse-text distribution: light import, listing, documented options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from transfuse import PluginManager
from transfuse_text import BagOfWordsOptions, SentenceTransformerOptions, TfidfOptions

DOCS = Path(__file__).parents[3] / "docs" / "reference" / "text.md"


def test_importing_the_plugin_pulls_no_torch_or_sentence_transformers() -> None:
    code = (
        "import sys, transfuse_text; print(sorted(m for m in sys.modules if m.split('.')[0] "
        "in {'torch', 'sentence_transformers', 'transformers', 'sklearn', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_installed_plugin_is_active_with_its_encoders() -> None:
    records = {r.name: r for r in PluginManager().records()}
    assert records["text"].status == "active", records["text"].error
    assert records["text"].distribution == "transfuse-text"
    names = sorted(c.name for c in records["text"].components)
    assert names == ["text-table", "text.bag-of-words", "text.sentence-transformer", "text.tfidf"]


@pytest.mark.parametrize("options", [SentenceTransformerOptions, BagOfWordsOptions, TfidfOptions])
def test_every_option_is_in_the_reference_page_table(options: type[BaseModel]) -> None:
    text = DOCS.read_text("utf-8")
    for name in options.model_fields:
        assert f"| `{name}` |" in text, f"{name} of {options.__name__} is not in {DOCS}"
