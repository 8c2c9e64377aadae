"""``AudioRef``: views of audio files (one channel, an offset and a duration) that load as
validated mono ``Audio`` — a prompt, one side of a dialogue, a stereo file's channel — and go
through the executor like whole files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, tone, write_wav

from speechlm_eval import Audio, AudioRef, ContinueRequest, DataError, SpeechLM
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.execute import (
    BatchSizer,
    ExecStats,
    Item,
    continue_capability,
    encode_capability,
    execute,
    run_requests,
)


@pytest.fixture
def stereo(tmp_path):
    left, right = tone(1, seconds=1.0), tone(2, seconds=1.0, amp=0.2)
    path = tmp_path / "dialogue.wav"
    sf.write(str(path), np.stack([left, right], 1), SR, subtype="FLOAT")
    return path, left, right


def test_channel_and_span_views_equal_slices_of_the_whole(stereo):
    path, left, right = stereo
    assert np.array_equal(AudioRef(path, channel=0).load().samples, left)
    assert np.array_equal(AudioRef(path, channel=1).load().samples, right)
    view = AudioRef(path, offset=0.25, duration=0.5, channel=1)
    got = view.load()
    assert got.sample_rate == SR and np.array_equal(got.samples, right[4000:12000])
    assert view.seconds(view.info()) == 0.5
    # the content hash is the hash of the signal, however it was cut out
    assert got.content_hash() == Audio(right[4000:12000].copy(), SR).content_hash()
    head = AudioRef(path, channel=0).head(0.1)
    assert np.array_equal(head.load().samples, left[:1600])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "expected mono audio, file has 2 channels"),
        ({"channel": 2}, "channel 2 requested, the file has 2"),
        ({"channel": 0, "offset": 0.9, "duration": 0.2}, "is outside the file"),
        ({"channel": 0, "offset": 1.5}, "is outside the file"),
        ({"channel": 0, "expected_rate": 8000}, "sample rate is 16000 Hz, the dataset declares"),
    ],
)
def test_bad_views_are_data_errors_naming_the_file(stereo, kwargs, message):
    path, _, _ = stereo
    with pytest.raises(DataError, match=message) as e:
        AudioRef(path, **kwargs).load()
    assert str(path) in str(e.value)


class Frames(SpeechLM):
    capabilities = frozenset({"encode", "continue"})
    sample_rate = SR

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def encode(self, requests):
        from speechlm_eval import EncodeResult

        out = []
        for r in requests:
            self.seen.append(r.audio.samples.size)
            out.append(EncodeResult(r.audio.samples[: r.audio.samples.size // 160 * 160]
                                    .reshape(-1, 160).mean(1), 100.0))  # fmt: skip
        return out

    def continue_(self, requests):
        return [
            [Audio(r.prompt.samples[::-1].copy(), SR) for _ in range(r.num_samples)]
            for r in requests
        ]


def test_views_through_the_executor(stereo, tmp_path):
    path, left, right = stereo
    files = {
        "user": AudioRef(path, channel=0),
        "model": AudioRef(path, channel=1),
        "prompt": AudioRef(path, channel=0).head(0.3),
    }
    m, stats = Frames(), ExecStats()
    blobs = BlobStore.beside(tmp_path / "c.sqlite")
    out = run_requests(
        m, "m", files, encode_capability(m, blobs), expected_rate=SR,
        cache=ResultCache(tmp_path / "c.sqlite"), sizer=BatchSizer(8), desc="v", stats=stats,
    )  # fmt: skip
    assert m.seen == [16000, 16000, 4800]  # longest first; the prompt is 0.3 s
    assert stats.computed == 3  # two channels of one file are two signals
    assert np.allclose(out["model"][0], right.reshape(-1, 160).mean(1))
    # a prompt view continued with N samples, through the same executor and cache
    prompt = files["prompt"]
    item = Item(
        "prompt",
        0.3,
        lambda conform: ContinueRequest(conform(prompt.load()), num_samples=2, seed=7),
    )
    job = continue_capability(m, blobs).job(m, "m")
    (samples,) = execute(
        job, [item], cache=ResultCache(tmp_path / "c.sqlite"), sizer=BatchSizer(1),
        stats=ExecStats(),
    )  # fmt: skip
    assert len(samples) == 2 and np.array_equal(samples[0].samples, left[:4800][::-1])


def test_whole_file_views_are_what_load_audio_gives(tmp_path):
    from speechlm_eval import load_audio

    p = write_wav(tmp_path / "a.wav", tone(3, seconds=0.4))
    a, b = load_audio(p), AudioRef(p).load()
    assert np.array_equal(a.samples, b.samples) and a.source == b.source == str(p)
