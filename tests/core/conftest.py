"""Fixtures for the core's tests: fake installed distributions."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Make a fake installed distribution (a ``dist-info`` folder with ``entry_points.txt``
    and a module) in a folder on ``sys.path``; returns that folder."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        dist: str, module: str, code: str, *, version: str = "1.0", entry: str | None = None
    ) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(code), "utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", "utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[transfuse]\n{entry or module} = {module}\n", "utf-8"
        )
        return site

    return make


def entry_points_in(site: Path) -> list[metadata.EntryPoint]:
    """The ``transfuse`` entry points of the distributions in one folder only."""
    return [
        ep
        for dist in metadata.distributions(path=[str(site)])
        for ep in dist.entry_points
        if ep.group == "transfuse"
    ]


@pytest.fixture
def site_entry_points() -> Callable[[Path], list[metadata.EntryPoint]]:
    """``entry_points_in`` as a fixture."""
    return entry_points_in


GOOD_PLUGIN = """
from transfuse import hookimpl, EncoderEntry

@hookimpl
def transfuse_encoders():
    return [EncoderEntry(name="image.timm", modality="image",
                         factory="good_plugin:Encoder", description="A fake image encoder.")]
"""
