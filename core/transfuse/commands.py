"""The commands that run models: train, evaluate, predict, transfer.

Kept apart from :mod:`transfuse.cli` so the parser stays small; each command imports the
runtime (torch) only when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    """Add the runtime commands to the ``transfuse`` parser."""
    _ = (sub, argparse)
