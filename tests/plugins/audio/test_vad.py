"""trim_silence: silero-vad's packaged model keeps the speech and drops the silence."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from transfuse_audio.mel_cnn import LOG_EPS
from transfuse_audio.vad import load_vad_model, speech_only


def test_the_packaged_model_loads_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_vad_model.cache_clear()
    model = load_vad_model()
    assert callable(model)


def test_speech_between_silences_is_kept_and_the_silence_dropped(vowel):
    rate = 16000
    speech = vowel(2.0, rate)
    wave = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)])
    kept = speech_only(wave, rate)
    assert 0.5 * rate < kept.size < 2.2 * rate  # the speech (and a little padding), not 4 s
    assert np.abs(kept[:800]).max() > 0.01  # it starts in the speech, not the silence


def test_speech_is_found_at_another_sample_rate(vowel):
    import torch
    import torchaudio.functional as F

    speech = F.resample(torch.from_numpy(vowel(2.0, 16000)), 16000, 22050).numpy()
    wave = np.concatenate([np.zeros(22050, np.float32), speech])
    kept = speech_only(wave, 22050)
    assert 0.5 * 22050 < kept.size < 2.2 * 22050


@pytest.mark.parametrize("kind", ["tone", "silence"])
def test_a_clip_without_speech_is_kept_whole(kind, tone):
    wave = tone(440, 1.0, 16000) if kind == "tone" else np.zeros(16000, np.float32)
    assert speech_only(wave, 16000) is wave


def test_trim_silence_moves_the_speech_to_the_start_of_the_window(
    transfuse_manager, audio_plugin, device_manager, write_audio, vowel
):
    rate = 16000
    wave = np.concatenate([np.zeros(2 * rate, np.float32), vowel(1.5, rate)])
    values = pd.Series([write_audio("call.wav", wave, rate)])
    entry = transfuse_manager.get("encoder", "audio.mel-cnn")

    def first_frames(trim):
        options = {"duration": 2.0, "crop": "start", "normalize": "none", "trim_silence": trim}
        encoder = entry.load()(entry.validate_options(options), device_manager)
        return encoder.prepare(values)["mel"][0, 0, :, :20].mean().item()

    silent = np.log(LOG_EPS)
    assert first_frames(False) == pytest.approx(silent, abs=0.01)  # the window is the silence
    assert first_frames(True) > silent + 3  # the window starts with the speech
