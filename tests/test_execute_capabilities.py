"""The generic request executor for array-valued capabilities (encode, resynthesize)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SR, tone, write_wav

from speechlm_eval import Audio, EncodeResult, PluginError, SpeechLM
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.execute import (
    BatchSizer,
    ExecStats,
    encode_capability,
    resynthesize_capability,
    run_requests,
)


class FrameModel(SpeechLM):
    """encode: 100 Hz frames of (mean, rms) per 10 ms; resynthesize: the input reversed."""

    capabilities = frozenset({"encode", "resynthesize"})
    sample_rate = SR

    def __init__(self, bad: str = "") -> None:
        super().__init__()
        self.bad = bad
        self.encoded: list[str] = []

    def encode(self, requests):
        out = []
        for r in requests:
            self.encoded.append(r.key)
            x = r.audio.samples[: r.audio.samples.size // 160 * 160].reshape(-1, 160)
            f = np.stack([x.mean(1), np.sqrt((x**2).mean(1))], 1)
            if self.bad == "nan":
                f[0, 0] = np.nan
            out.append(EncodeResult(f, 0.0 if self.bad == "rate" else 100.0))
        return out

    def resynthesize(self, requests):
        return [Audio(r.audio.samples[::-1].copy(), r.audio.sample_rate) for r in requests]


@pytest.fixture
def files(tmp_path):
    return {
        f"u{i}": write_wav(tmp_path / f"u{i}.wav", tone(i, seconds=0.1 + 0.05 * i))
        for i in range(5)
    }


def _run(model, files, cap, cache, stats=None):
    return run_requests(
        model,
        "m",
        files,
        cap,
        expected_rate=SR,
        cache=cache,
        sizer=BatchSizer(2),
        desc="t",
        stats=stats or ExecStats(),
    )


def test_encode_values_cache_and_lost_blob(tmp_path, files):
    cache_path = tmp_path / "c.sqlite"
    m = FrameModel()
    out = _run(
        m, files, encode_capability(m, BlobStore.beside(cache_path)), ResultCache(cache_path)
    )
    for s in files:
        feats, rate = out[s]
        x = tone(int(s[1:]), seconds=0.1 + 0.05 * int(s[1:]))
        assert rate == 100.0 and feats.shape == (x.size // 160, 2)
        assert feats[1, 1] == pytest.approx(
            np.sqrt(np.mean(x[160:320].astype(np.float64) ** 2)), rel=1e-5
        )
    assert len(m.encoded) == 5
    # Second run: every file from the cache, values identical.
    m2 = FrameModel()
    stats = ExecStats()
    again = _run(
        m2,
        files,
        encode_capability(m2, BlobStore.beside(cache_path)),
        ResultCache(cache_path),
        stats,
    )
    assert m2.encoded == [] and stats.cache_hits == 5
    assert all(np.array_equal(again[s][0], out[s][0]) for s in files)
    # A blob deleted by hand is a miss: only that file is recomputed.
    blob = next((tmp_path / "c.sqlite.blobs").rglob("*.npy"))
    blob.unlink()
    m3 = FrameModel()
    _run(m3, files, encode_capability(m3, BlobStore.beside(cache_path)), ResultCache(cache_path))
    assert len(m3.encoded) == 1


def test_longest_first_and_no_cache(tmp_path, files):
    m = FrameModel()
    cache, blobs = ResultCache(None), BlobStore(None)
    first = _run(m, files, encode_capability(m, blobs), cache)
    assert m.encoded == ["u4", "u3", "u2", "u1", "u0"]
    assert not list(tmp_path.rglob("*.sqlite*")) and not list(tmp_path.rglob("*.npy"))
    # Within the run (same in-memory stores, e.g. a second task on the same audio): computed
    # once; the values come back equal.
    stats = ExecStats()
    again = _run(m, files, encode_capability(m, blobs), cache, stats)
    assert len(m.encoded) == 5 and stats.cache_hits == 5
    assert all(np.array_equal(again[s][0], first[s][0]) for s in files)
    # A new run (new stores) computes everything again: nothing outlives the run.
    _run(m, files, encode_capability(m, BlobStore(None)), ResultCache(None))
    assert len(m.encoded) == 10


@pytest.mark.parametrize("bad, match", [("nan", "NaN"), ("rate", "frame_rate")])
def test_bad_encoder_output_is_a_plugin_error(tmp_path, files, bad, match):
    m = FrameModel(bad=bad)
    with pytest.raises(PluginError, match=match):
        _run(m, files, encode_capability(m, BlobStore(None)), ResultCache(None))


def test_resynthesize_roundtrip_through_blobs(tmp_path, files):
    cache_path = tmp_path / "c.sqlite"
    m = FrameModel()
    out = _run(
        m, files, resynthesize_capability(m, BlobStore.beside(cache_path)), ResultCache(cache_path)
    )
    again = _run(
        m, files, resynthesize_capability(m, BlobStore.beside(cache_path)), ResultCache(cache_path)
    )
    for s in files:
        x = tone(int(s[1:]), seconds=0.1 + 0.05 * int(s[1:]))
        assert np.array_equal(out[s].samples, x[::-1]) and out[s].sample_rate == SR
        assert np.array_equal(again[s].samples, out[s].samples)
