"""Reading audio values: formats, channels, rates, bytes, arrays, bad files, crop and pad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfuse import DataError
from transfuse_audio.waveform import fix_length, load_waveform, to_mono


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_every_format_reads_back_as_the_tone_it_holds(suffix, write_audio, tone):
    path = write_audio(f"a.{suffix}", tone(440, 1.0, 16000), 16000)
    wave = load_waveform(path, sample_rate=16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 16000) < 2000  # mp3 adds encoder delay and padding
    assert abs(_peak_hz(wave, 16000) - 440) < 5


def test_stereo_is_mixed_to_the_mean_of_its_channels(write_audio, tone):
    left, right = tone(300, 0.5, 16000), tone(1200, 0.5, 16000, amp=0.1)
    path = write_audio("stereo.wav", np.stack([left, right], axis=1), 16000)
    wave = load_waveform(path, sample_rate=16000)
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-4)


def test_opposite_channels_cancel_to_silence(write_audio, tone):
    left = tone(300, 0.5, 16000)
    path = write_audio("cancel.flac", np.stack([left, -left], axis=1), 16000)
    assert np.abs(load_waveform(path, sample_rate=16000)).max() < 1e-3


def test_a_file_is_resampled_to_the_target_rate(write_audio, tone):
    path = write_audio("cd.wav", tone(1000, 2.0, 44100), 44100)
    wave = load_waveform(path, sample_rate=16000)
    assert wave.size == 32000
    assert abs(_peak_hz(wave, 16000) - 1000) < 2


def test_bytes_read_like_the_file_they_came_from(write_audio, tone):
    path = write_audio("a.flac", tone(500, 0.5, 22050), 22050)
    from_bytes = load_waveform(Path(path).read_bytes(), sample_rate=16000)
    np.testing.assert_array_equal(from_bytes, load_waveform(Path(path), sample_rate=16000))


def test_an_array_is_taken_at_the_array_sample_rate(tone):
    wave = load_waveform(tone(800, 1.0, 48000), sample_rate=16000, array_sample_rate=48000)
    assert wave.size == 16000
    assert abs(_peak_hz(wave, 16000) - 800) < 2


def test_integer_pcm_arrays_are_scaled_to_unit_range():
    signed = load_waveform(np.array([-32768, 0, 16384], dtype=np.int16), sample_rate=8000)
    unsigned = load_waveform(np.array([0, 128, 255], dtype=np.uint8), sample_rate=8000)
    np.testing.assert_allclose(signed, [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(unsigned, [-1.0, 0.0, 127 / 128])


def test_channels_first_arrays_are_mixed_too(tone):
    left, right = tone(300, 0.1, 8000), tone(600, 0.1, 8000)
    np.testing.assert_allclose(to_mono(np.stack([left, right])), (left + right) / 2, atol=1e-7)
    np.testing.assert_allclose(to_mono(np.stack([left, right], 1)), (left + right) / 2, atol=1e-7)


def test_a_corrupt_file_is_a_data_error_naming_the_file_and_the_row(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00this is not audio at all" * 10)
    with pytest.raises(DataError) as info:
        load_waveform(str(path), sample_rate=16000, where="row 7")
    message = str(info.value)
    assert str(path) in message and "row 7" in message
    assert "re-encode" in message  # says what to do


def test_a_missing_file_is_a_data_error_saying_it_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_waveform(str(tmp_path / "nowhere.wav"), sample_rate=16000)


def test_non_finite_samples_are_a_data_error():
    with pytest.raises(DataError, match="NaN or infinite"):
        load_waveform(np.array([0.0, np.nan, 0.1], dtype=np.float32), sample_rate=16000)


def test_a_value_of_another_type_is_a_data_error():
    with pytest.raises(DataError, match="cannot read a int as audio"):
        load_waveform(3, sample_rate=16000)


def test_fix_length_crops_the_start_or_the_centre_and_pads_at_the_end():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave, 4, "start"), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(wave, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(fix_length(wave[:3], 5, "center"), [0, 1, 2, 0, 0])
