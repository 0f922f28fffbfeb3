"""audio.mel-cnn: the encoder contract, its front end, normalisation and a task it learns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from transfuse import ConfigError, DataError
from transfuse.testing import check_encoder


@pytest.fixture
def entry(transfuse_manager, audio_plugin):
    return transfuse_manager.get("encoder", "audio.mel-cnn")


def _build(entry, device_manager, **options):
    return entry.load()(entry.validate_options(options), device_manager)


@pytest.fixture
def clips(write_audio, tone):
    """One clip per format, a stereo one, a short one and a missing value."""
    rate = 8000
    paths = [
        write_audio(f"t{i}.{suffix}", tone(freq, 0.6, rate), rate)
        for i, (suffix, freq) in enumerate([("wav", 250), ("flac", 500), ("ogg", 1000)])
    ]
    paths.append(write_audio("t3.mp3", tone(2000, 0.6, 16000), 16000))
    paths.append(write_audio("st.wav", np.stack([tone(300, 0.6, rate)] * 2, 1), rate))
    paths.append(write_audio("short.wav", tone(700, 0.1, rate), rate))
    return pd.Series([*paths, None], name="call")


def test_conforms_to_the_encoder_contract(entry, clips, small):
    encoder = check_encoder(entry, clips, options=small)
    assert encoder.output_dim == 16
    assert encoder.missing(clips).tolist() == [False] * 6 + [True]


def test_frozen_encoder_conforms_and_trains_nothing(entry, clips, small):
    encoder = check_encoder(entry, clips, options={**small, "frozen": True})
    assert encoder.frozen and not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training  # no dropout: cached outputs stay valid


def test_default_options_conform_on_four_second_clips(entry, write_audio, tone):
    values = pd.Series([write_audio("a.wav", tone(440, 5.0, 16000), 16000), None])
    encoder = check_encoder(entry, values)
    assert encoder.prepare(values)["mel"].shape == (2, 1, 64, 401)
    assert encoder.output_dim == 128


def test_prepare_gives_a_fixed_size_mel_and_zeros_for_missing_rows(
    entry, device_manager, write_audio, tone, small
):
    path = write_audio("a.wav", tone(440, 0.3, 8000), 8000)
    values = pd.Series([path, None, float("nan"), "  "])
    encoder = _build(entry, device_manager, **small)
    encoder.fit(values)
    mel = encoder.prepare(values)["mel"]
    assert mel.shape == (4, 1, 32, 1 + 4000 // 64)
    assert encoder.missing(values).tolist() == [False, True, True, True]
    assert mel[0].abs().sum() > 0 and (mel[1:] == 0).all()


def test_inputs_as_path_bytes_and_array_prepare_the_same(
    entry, device_manager, write_audio, tone, small
):
    samples = tone(600, 0.5, 8000)
    path = write_audio("a.wav", samples, 8000, subtype="FLOAT")
    with open(path, "rb") as f:
        raw = f.read()
    values = pd.Series([path, raw, samples], dtype=object)
    encoder = _build(entry, device_manager, **small, normalize="none")
    mel = encoder.prepare(values)["mel"]
    torch.testing.assert_close(mel[1], mel[0])
    torch.testing.assert_close(mel[2], mel[0])


def test_a_corrupt_file_in_a_column_names_the_file_and_the_row(
    entry, device_manager, tmp_path, small
):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00garbage" * 50)
    encoder = _build(entry, device_manager, **small, normalize="example")
    with pytest.raises(DataError) as info:
        encoder.prepare(pd.Series([None, str(bad)], index=[10, 11], name="call"))
    assert str(bad) in str(info.value) and "row 11" in str(info.value)
    assert "'call'" in str(info.value)


def test_crop_start_and_center_keep_different_parts(
    entry, device_manager, write_audio, tone, small
):
    # 1.5 s: a low tone, a high tone, a low tone; a 0.5 s window sees one of them.
    rate = 8000
    samples = np.concatenate([tone(200, 0.5, rate), tone(2000, 0.5, rate), tone(200, 0.5, rate)])
    values = pd.Series([write_audio("three.wav", samples, rate)])

    def loudest_band(crop):
        encoder = _build(entry, device_manager, **small, crop=crop, normalize="none")
        return encoder.prepare(values)["mel"][0, 0].mean(dim=1).argmax().item()

    assert loudest_band("center") > loudest_band("start") + 10  # the centre is the high tone


def test_global_stats_are_fitted_on_training_rows_and_restored(
    entry, device_manager, write_audio, tone, small
):
    rng = np.random.default_rng(0)
    train = pd.Series(
        [write_audio(f"{i}.wav", tone(rng.uniform(200, 3000), 0.5, 8000), 8000) for i in range(8)]
    )
    encoder = _build(entry, device_manager, **small)
    with pytest.raises(RuntimeError, match="fit"):
        encoder.prepare(train)
    key_before = encoder.cache_key()
    encoder.fit(train)
    mel = encoder.prepare(train)["mel"][:, 0]  # [B, bands, frames]
    torch.testing.assert_close(mel.mean(dim=(0, 2)), torch.zeros(32), atol=1e-4, rtol=0)
    torch.testing.assert_close(mel.std(dim=(0, 2)), torch.ones(32), atol=0.02, rtol=0)
    assert encoder.cache_key() != key_before

    fresh = _build(entry, device_manager, **small)
    fresh.load_fitted_state(encoder.fitted_state())
    torch.testing.assert_close(fresh.prepare(train)["mel"], encoder.prepare(train)["mel"])
    assert fresh.cache_key() == encoder.cache_key()


def test_example_normalisation_standardises_each_clip(
    entry, device_manager, write_audio, tone, small
):
    values = pd.Series(
        [write_audio(f"{a}.wav", tone(500, 0.5, 8000, amp=a), 8000) for a in (0.01, 0.5)]
    )
    encoder = _build(entry, device_manager, **small, normalize="example")
    encoder.fit(values)
    assert encoder.fitted_state() == {}
    mel = encoder.prepare(values)["mel"]
    for row in mel:
        assert abs(row.mean().item()) < 1e-4 and abs(row.std().item() - 1) < 1e-3


def test_several_columns_are_a_config_error(entry, device_manager, small):
    encoder = _build(entry, device_manager, **small)
    with pytest.raises(ConfigError, match="one column"):
        encoder.prepare(pd.DataFrame({"a": ["x.wav"], "b": ["y.wav"]}))


def test_options_reject_unknown_keys_and_a_window_longer_than_the_clip(entry):
    with pytest.raises(ConfigError, match="unknown key"):
        entry.validate_options({"sample_rat": 8000})
    with pytest.raises(ConfigError, match="n_fft"):
        entry.validate_options({"sample_rate": 8000, "duration": 0.01, "n_fft": 400})


def test_learns_a_low_tone_from_a_high_tone(entry, device_manager, write_audio, small):
    """Tones of random pitch, phase, loudness and length in noise: low (150-400 Hz) or high
    (1.2-3 kHz). Fifteen steps of full-batch Adam must reach > 0.9 held-out accuracy."""
    rng = np.random.default_rng(0)

    def make(n, prefix):
        paths, labels = [], []
        for i in range(n):
            high = i % 2
            freq = rng.uniform(1200, 3000) if high else rng.uniform(150, 400)
            seconds = rng.uniform(0.25, 0.6)
            t = np.arange(round(seconds * 8000)) / 8000
            wave = rng.uniform(0.05, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
            wave = wave + rng.normal(0, 0.02, t.size)
            paths.append(write_audio(f"{prefix}{i}.wav", wave.astype(np.float32), 8000))
            labels.append(high)
        return pd.Series(paths), torch.tensor(labels, dtype=torch.float32)

    train_x, train_y = make(48, "train")
    test_x, test_y = make(40, "test")
    encoder = _build(entry, device_manager, **small)
    encoder.fit(train_x)
    head = torch.nn.Linear(encoder.output_dim, 1)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    batch = encoder.prepare(train_x)
    encoder.train()
    for _ in range(15):
        optimizer.zero_grad()
        logits = head(encoder(batch)).squeeze(1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, train_y).backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        predicted = (head(encoder(encoder.prepare(test_x))).squeeze(1) > 0).float()
    accuracy = (predicted == test_y).float().mean().item()
    assert accuracy > 0.9, f"held-out accuracy {accuracy:.2f}"
