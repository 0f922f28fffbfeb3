"""Runs ``transfuse`` with the runtime kit's encoders, for the kill-and-resume test (not a
test module). With ``RESUME_BLOCK_AT_STEP=N`` the ``a`` input's encoder writes
``RESUME_MARKER`` at training step N and then waits, so the test can SIGKILL the process
in the middle of an epoch, at a known place."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
import runtime_kit as kit

from transfuse import EncoderEntry, hookimpl
from transfuse.cli import main
from transfuse.plugins import PluginManager, reset_plugin_manager


class Blocking(kit.Numeric):
    """``kit.Numeric`` that stops for the kill at a chosen training step."""

    steps = 0

    def forward(self, batch: Any) -> Any:
        if self.training:
            Blocking.steps += 1
            if Blocking.steps == int(os.environ.get("RESUME_BLOCK_AT_STEP", "0")):
                Path(os.environ["RESUME_MARKER"]).write_text(str(Blocking.steps))
                time.sleep(300)
        return super().forward(batch)


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The blocking encoder."""
    return [
        EncoderEntry(
            name="test.blocking",
            modality="tabular",
            factory="resume_driver:Blocking",
            options=kit.NumericOptions,
            description="Numeric, stopping at a chosen step (tests).",
        )
    ]


if __name__ == "__main__":
    manager = PluginManager(autoload=False)
    manager.register(kit, name="runtime-kit", distribution="runtime-kit", version="0.0.test")
    manager.register(sys.modules[__name__], name="resume-driver", distribution="resume-driver")
    reset_plugin_manager(manager)
    sys.exit(main(sys.argv[1:]))
