"""transfuse-serve: ``transfuse serve RUN``, an HTTP scoring server for a trained run.

Registers the ``serve`` command through ``transfuse_commands``. Importing this package
loads neither FastAPI nor torch: :mod:`transfuse_serve.app` does, when the server starts.
"""

from __future__ import annotations

from transfuse import CommandEntry, hookimpl

__all__ = ["transfuse_commands"]


@hookimpl
def transfuse_commands() -> list[CommandEntry]:
    """The ``serve`` command."""
    return [
        CommandEntry(
            name="serve",
            factory="transfuse_serve.cli:configure",
            description="score a trained run over HTTP (FastAPI + uvicorn)",
        )
    ]
