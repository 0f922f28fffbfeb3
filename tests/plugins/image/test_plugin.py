"""The installed transfuse-image distribution: light import, listing, documented options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transfuse import PluginManager
from transfuse_image import TimmOptions

DOCS = Path(__file__).parents[3] / "docs" / "reference" / "image.md"


def test_importing_the_plugin_pulls_no_torch_timm_or_pillow() -> None:
    code = (
        "import sys, transfuse_image; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'torch', 'timm', 'PIL', 'numpy', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_installed_plugin_is_active_with_its_encoder() -> None:
    records = {r.name: r for r in PluginManager().records()}
    assert records["image"].status == "active", records["image"].error
    assert records["image"].distribution == "transfuse-image"
    assert [c.name for c in records["image"].components] == ["image.timm"]


def test_every_option_is_in_the_reference_page_table() -> None:
    text = DOCS.read_text("utf-8")
    for name in TimmOptions.model_fields:
        assert f"| `{name}` |" in text, f"{name} is not documented in {DOCS}"
