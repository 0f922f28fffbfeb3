"""transfuse-audio: audio encoders for transfuse.

Registers ``audio.mel-cnn`` and recognises columns of audio file paths. Importing this
module is light: torch, torchaudio and soundfile load only when an encoder is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from transfuse import EncoderEntry, hookimpl
from transfuse_audio.options import MelCnnOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AUDIO_SUFFIXES", "MelCnnOptions", "transfuse_encoders", "transfuse_infer_modality"]

#: File name endings read as audio (what libsndfile, behind soundfile, decodes).
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

# Enough rows to be sure of a column's kind without scanning a large table.
_SAMPLE_ROWS = 1000


@hookimpl
def transfuse_encoders() -> list[EncoderEntry]:
    """The audio encoders."""
    return [
        EncoderEntry(
            name="audio.mel-cnn",
            modality="audio",
            factory="transfuse_audio.mel_cnn:MelCnnEncoder",
            options=MelCnnOptions,
            description="Audio (path, bytes or array) -> log-mel spectrogram -> small CNN.",
        )
    ]


@hookimpl
def transfuse_infer_modality(column: pd.Series) -> str | None:
    """``"audio"`` when every non-missing value is a path ending in an audio suffix."""
    values = column.dropna().head(_SAMPLE_ROWS)
    if not len(values) or not all(isinstance(v, str | os.PathLike) for v in values):
        return None
    names = (str(os.fspath(v)).strip().lower() for v in values)
    return "audio" if all(n.endswith(AUDIO_SUFFIXES) for n in names) else None
