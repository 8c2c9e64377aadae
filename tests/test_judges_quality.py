"""The quality judges: ``dnsmos`` (speechmos' DNSMOS) and ``pitch`` (WORLD F0 by pyworld, or
pGSLM's pYAAPT).

Each is checked against its package called directly (the reference, side by side), for
determinism and batch independence, and for caching through the harness' executor.
"""

from __future__ import annotations

import hashlib
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import load_judge

SR = 16000


# --- dnsmos -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, np.ndarray]:
    """Clean Piper speech at 16 kHz and the same speech under heavy white noise (SNR ~0 dB)."""
    pytest.importorskip("piper")
    from speechlm_eval.builtin.voices import all_voices

    clean = all_voices()["joe"].text("The weather is fine today, and we will walk to the river.")
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, float(np.sqrt(np.mean(clean**2))), clean.size)
    return clean.astype(np.float32), (clean + noise).astype(np.float32)


def test_dnsmos_orders_clean_above_noisy_and_equals_speechmos(speech, tmp_path):
    pytest.importorskip("speechmos")
    from speechmos import dnsmos

    clean, noisy = speech
    judge = load_judge("dnsmos")
    cache, stats = ResultCache(tmp_path / "m.sqlite"), ExecStats()
    got = judge.predict([Audio(clean, SR), Audio(noisy, SR)], stats, cache)
    for scores in got:
        assert set(scores) == {"ovrl", "sig", "bak", "p808"}
        assert all(1.0 <= v <= 5.0 for v in scores.values()), scores  # the MOS scale
    assert got[0]["ovrl"] > got[1]["ovrl"] + 0.5 and got[0]["bak"] > got[1]["bak"]
    # the package's own entry point, called directly, gives the same scores
    for x, scores in zip((clean, noisy), got, strict=True):
        ref = dnsmos.run(x, sr=SR)
        assert scores == pytest.approx({k: float(ref[f"{k}_mos"]) for k in scores}, abs=1e-6)
    assert (stats.computed, stats.cache_hits) == (2, 0)
    # a second run over the same cache computes nothing
    stats = ExecStats()
    assert judge.predict([Audio(noisy, SR)], stats, ResultCache(tmp_path / "m.sqlite")) == [got[1]]
    assert (stats.computed, stats.cache_hits) == (0, 1)


def test_dnsmos_is_deterministic_batch_independent_and_resamples(speech):
    pytest.importorskip("speechmos")
    clean, noisy = speech
    judge = load_judge("dnsmos")
    assert judge.score(clean) == judge.score(clean)
    # the ONNX thread count is not identity: it must not change scores
    assert load_judge("dnsmos", threads=2).score(clean) == judge.score(clean)
    # batch == single (no cache: each call computes)
    (alone,) = judge.predict([Audio(noisy, SR)])
    assert judge.predict([Audio(clean, SR), Audio(noisy, SR)])[1] == alone
    # other rates are resampled explicitly by the executor and counted
    stats = ExecStats()
    judge.predict([Audio(clean, SR).resample(8000)], stats)
    assert stats.resampled == {"8000->16000": 1}


def test_dnsmos_identity_names_the_wheel_models_and_options():
    pytest.importorskip("speechmos")
    import speechmos.dnsmos

    root = Path(speechmos.dnsmos.__file__).parent
    ident = load_judge("dnsmos").identity()
    assert ident["kind"] == "mos" and ident["version"] == "0.0.1.1"
    for role, rel in (
        ("primary", "dnsmos_models/sig_bak_ovr.onnx"),
        ("p808", "dnsmos_models/model_v8.onnx"),
    ):
        assert ident["model"][role] == {
            "file": rel,
            "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        }
    personal = load_judge("dnsmos", personalized="true").identity()
    assert personal["model"]["primary"]["file"] == "pdnsmos_models/sig_bak_ovr.onnx"
    assert personal["options"] == {"personalized": True}
    # threads and batch size never change scores, so they are not identity
    assert load_judge("dnsmos", threads=2, batch_size=1).identity() == ident


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"personalized": "maybe"}, "option 'personalized'"),
        ({"threads": "0"}, "option 'threads'"),
        ({"window": "3"}, "'window'"),
    ],
)
def test_dnsmos_bad_options_are_one_line_config_errors(options, message):
    pytest.importorskip("speechmos")
    with pytest.raises(ConfigError, match=message) as e:
        load_judge("dnsmos", **options)
    assert "\n" not in str(e.value)


# --- pitch --------------------------------------------------------------------------------------


def harmonic(f0: np.ndarray) -> np.ndarray:
    """Five harmonics with 1/k amplitudes following the instantaneous F0 ``f0`` (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))).astype(np.float32)


ALGORITHMS = [
    pytest.param("harvest", marks=pytest.mark.skipif(not find_spec("pyworld"), reason="pyworld")),
    pytest.param("dio", marks=pytest.mark.skipif(not find_spec("pyworld"), reason="pyworld")),
    pytest.param(
        "yaapt", marks=pytest.mark.skipif(not find_spec("amfm_decompy"), reason="AMFM-decompy")
    ),
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pitch_recovers_a_steady_tone_and_a_sweep(algorithm):
    n = SR  # 1 s
    t = np.arange(n) / SR
    steady, sweep = harmonic(np.full(n, 150.0)), harmonic(120.0 + 60.0 * t)
    judge = load_judge("pitch", algorithm=algorithm)
    # pYAAPT's F0 is 16000 / (integer lag): up to ~1 % off (150 Hz reads 148.1 Hz)
    tol = 4.0 if algorithm == "yaapt" else 3.0
    a, b = judge.f0([Audio(steady, SR), Audio(sweep, SR)])
    assert a.frame_rate == b.frame_rate == 200.0
    inner = slice(10, -10)  # frames whose analysis window lies inside the signal
    hz = np.asarray(a.hz)[inner]
    assert a.voiced[inner].all() and np.abs(hz - 150.0).max() < tol
    frames = np.arange(len(b.hz)) / b.frame_rate
    expected = 120.0 + 60.0 * frames
    assert b.voiced[inner].all()
    assert np.abs(np.asarray(b.hz)[inner] - expected[inner]).max() < tol


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pitch_silence_is_unvoiced_and_frame_count_follows_the_period(algorithm):
    x = np.concatenate([harmonic(np.full(SR // 2, 150.0)), np.zeros(SR, np.float32)])
    for period in (5.0, 10.0):
        judge = load_judge("pitch", algorithm=algorithm, frame_period_ms=period)
        (track,) = judge.f0([Audio(x, SR)])
        duration_ms = 1000 * x.size / SR
        assert abs(len(track.hz) - duration_ms / period) <= 1
        tail = track.voiced[int(700 / period) :]  # from 0.2 s into the silence
        assert not tail.any() and track.voiced[int(100 / period) : int(400 / period)].all()
    (quiet,) = load_judge("pitch", algorithm=algorithm).f0([Audio(np.zeros(SR, np.float32), SR)])
    assert len(quiet.hz) >= SR / 80 and not quiet.voiced.any()


@pytest.mark.parametrize("algorithm", ["harvest", "dio"])
def test_pitch_equals_pyworld_called_directly(algorithm, tmp_path):
    pyworld = pytest.importorskip("pyworld")
    t = np.arange(SR) / SR
    x = harmonic(110.0 + 40.0 * np.sin(2 * np.pi * 2 * t))
    opts = {"f0_floor": 60.0, "f0_ceil": 400.0, "frame_period": 8.0}
    judge = load_judge("pitch", algorithm=algorithm, f0_floor=60, f0_ceil=400, frame_period_ms=8)
    cache, stats = ResultCache(tmp_path / "p.sqlite"), ExecStats()
    (track,) = judge.f0([Audio(x, SR)], stats, cache)
    x64 = x.astype(np.float64)
    if algorithm == "harvest":
        ref, _ = pyworld.harvest(x64, SR, **opts)
    else:
        coarse, times = pyworld.dio(x64, SR, **opts)
        ref = pyworld.stonemask(x64, coarse, times, SR)
    assert track.hz == tuple(ref.tolist())
    assert judge.f0([Audio(x, SR)]) == [track]  # deterministic
    assert (
        judge.identity()["algorithm"]
        == {"harvest": "WORLD harvest", "dio": "WORLD dio+stonemask"}[algorithm]
    )
    # cached through the executor: a second run computes nothing
    stats = ExecStats()
    assert judge.f0([Audio(x, SR)], stats, ResultCache(tmp_path / "p.sqlite")) == [track]
    assert (stats.computed, stats.cache_hits) == (0, 1)


def test_pitch_yaapt_is_pgslm_s_call_of_pyaapt():
    """pGSLM's F0 (fairseq codedataset.get_f0), written out here: peak 0.95, 10 ms padding."""
    pytest.importorskip("amfm_decompy")
    import amfm_decompy.basic_tools as basic
    import amfm_decompy.pYAAPT as pyaapt

    t = np.arange(SR) / SR
    x = harmonic(110.0 + 40.0 * np.sin(2 * np.pi * 2 * t))
    judge = load_judge("pitch", algorithm="yaapt")
    assert judge.options["f0_floor"] == 60.0 and judge.options["f0_ceil"] == 400.0
    (track,) = judge.f0([Audio(x, SR)])
    y = np.pad(x.astype(np.float64) / np.abs(x).max() * 0.95, (160, 160))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pyaapt.yaapt(
            basic.SignalObj(y, SR),
            frame_length=20.0,
            frame_space=5.0,
            nccf_thresh1=0.25,
            tda_frame_length=25.0,
        )
    assert track.hz == tuple(ref.samp_values.tolist())
    ident = judge.identity()
    assert ident["algorithm"] == "pYAAPT" and ident["package"] == "AMFM-decompy"
    assert ident["yaapt"]["nccf_thresh1"] == 0.25
    # a clip too short for pYAAPT (it raises): unvoiced frames, as pGSLM read a failure
    (short,) = judge.f0([Audio(x[:100], SR)])
    assert short.hz == (0.0,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "crepe"}, "option 'algorithm' must be one of harvest, dio, yaapt"),
        ({"frame_period_ms": "0"}, "option 'frame_period_ms'"),
        ({"f0_floor": "300", "f0_ceil": "200"}, "'f0_floor' must be below 'f0_ceil'"),
        ({"f0_ceil": "9000"}, "'f0_ceil' must be below 8000 Hz"),
        ({"f0_floor": "-5"}, "option 'f0_floor'"),
    ],
)
def test_pitch_bad_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_judge("pitch", **options)
    assert "\n" not in str(e.value)
