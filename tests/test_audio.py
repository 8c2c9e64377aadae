"""The one audio type: validation and the errors users see for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import tone, write_wav

from speechlm_eval import Audio, DataError, load_audio
from speechlm_eval.audio import audio_info


def test_audio_validates():
    a = Audio(np.zeros(10, np.float32), 16000)
    assert a.duration == pytest.approx(10 / 16000)
    with pytest.raises(DataError, match="mono"):
        Audio(np.zeros((2, 10), np.float32), 16000)
    with pytest.raises(DataError, match="float32"):
        Audio(np.zeros(10, np.float64), 16000)
    with pytest.raises(DataError, match="empty"):
        Audio(np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="NaN"):
        Audio(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(DataError, match="sample rate"):
        Audio(np.zeros(10, np.float32), 0)


def test_content_hash_depends_on_samples_and_rate():
    x = tone(1)
    assert Audio(x, 16000).content_hash() == Audio(x.copy(), 16000).content_hash()
    assert Audio(x, 16000).content_hash() != Audio(x, 8000).content_hash()
    y = x.copy()
    y[0] += 1e-3
    assert Audio(x, 16000).content_hash() != Audio(y, 16000).content_hash()


def test_resample_is_explicit_and_length_correct():
    a = Audio(tone(2, seconds=1.0), 16000)
    b = a.resample(24000)
    assert b.sample_rate == 24000 and b.samples.size == 24000 and b.samples.dtype == np.float32
    assert a.resample(16000) is a


def test_bad_files(tmp_path):
    st = tmp_path / "stereo.wav"
    sf.write(str(st), np.zeros((100, 2), np.float32), 16000)
    with pytest.raises(DataError, match=r"stereo.wav: expected mono audio, file has 2 channels"):
        load_audio(st)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav: audio file is empty"):
        load_audio(empty)
    nan = write_wav(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32))
    with pytest.raises(DataError, match="nan.wav: audio contains NaN"):
        load_audio(nan)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match="junk.wav: cannot read audio file"):
        load_audio(junk)
    rate = write_wav(tmp_path / "r8k.wav", tone(3, sr=8000), sr=8000)
    with pytest.raises(
        DataError, match="r8k.wav: sample rate is 8000 Hz, the dataset declares 16000"
    ):
        audio_info(rate, expected_rate=16000)
    with pytest.raises(DataError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_integer_pcm_is_read_as_float(tmp_path):
    p = write_wav(tmp_path / "pcm16.wav", tone(4), subtype="PCM_16")
    a = load_audio(p, 16000)
    assert a.samples.dtype == np.float32 and np.abs(a.samples).max() <= 1.0
