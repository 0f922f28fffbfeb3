"""Fixtures for the text plugin's tests: the packaged all-MiniLM-L6-v2, loaded once."""

from __future__ import annotations

from typing import Any

import pytest

import transfuse_text


@pytest.fixture(scope="session")
def minilm() -> Any:
    """A frozen text.sentence-transformer with the default (packaged) model, shared."""
    from transfuse.testing import cpu_device
    from transfuse_text.sentence import SentenceTransformerEncoder

    return SentenceTransformerEncoder(transfuse_text.SentenceTransformerOptions(), cpu_device())


@pytest.fixture
def text_manager(transfuse_manager: Any, register_plugin: Any) -> Any:
    """A plugin manager with the core and the text plugin registered."""
    register_plugin(transfuse_text, name="text")
    return transfuse_manager
