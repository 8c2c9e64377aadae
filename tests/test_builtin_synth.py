"""Built-in suite machinery: exact utterance lengths, worker processes, duration balance rules."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from speechlm_eval.builtin.balance import Balance, mismatch, pair_score, side, summary
from speechlm_eval.builtin.context import BuildContext
from speechlm_eval.builtin.synth import Synthesizer, Utterance
from speechlm_eval.builtin.voices import SAMPLE_RATE, all_voices, normalise, resampled_length

UTTS = [
    Utterance.of("joe", "text", "The farmer found the key. Then it rained!"),
    Utterance.of("joe", "phones", ["B", "L", "IH1", "K"]),
    Utterance.of("espeak-en-us+f4", "text", "Whose hat did the baker find?"),
    Utterance.of("espeak-en-us+m3", "phones", ["K", "AH0", "M", "P", "Y", "UW1", "T", "ER0"]),
    Utterance.of("espeak-en-us+f4", "phones", ["W", "AO1", "T", "ER0"]),
]


@pytest.fixture(scope="module")
def voices():
    return all_voices()


# ---------------------------------------------------------------- lengths and resampling
def test_predicted_lengths_are_exact(voices):
    """Voice.length (Piper: the duration part of the graph only) equals the synthesised size,
    for words from phonemes and for two-sentence text (Piper synthesises per sentence)."""
    for u in UTTS:
        v = voices[u.voice]
        assert v.length(u.kind, u.content) == v.say(u.kind, u.content).size, u


@pytest.mark.parametrize("sr", [22050, 24000, 8000, 16000])
def test_resampling_matches_scipy_default(sr):
    """normalise passes the anti-alias filter it designed once; scipy designs the same
    filter on every call: same samples. resampled_length is the output length."""
    x = np.random.default_rng(sr).standard_normal(sr // 3 + 7).astype(np.float32) * 0.1
    y = normalise(x, sr)
    g = gcd(sr, SAMPLE_RATE)
    x64 = x.astype(np.float64)
    ref = resample_poly(x64, SAMPLE_RATE // g, sr // g) if sr != SAMPLE_RATE else x64
    ref = ref * min(0.05 / np.sqrt(np.mean(ref**2)), 0.99 / np.max(np.abs(ref)))
    np.testing.assert_array_equal(y, ref.astype(np.float32))
    for n in (1, 2, 440, 441, 442, 22050, 12345):
        z = np.ones(n)
        got = resample_poly(z, SAMPLE_RATE // g, sr // g).size if sr != SAMPLE_RATE else n
        assert resampled_length(n, sr) == got


# ---------------------------------------------------------------- worker processes
def test_workers_give_the_same_audio_in_order(voices):
    with Synthesizer(voices, jobs=1) as one, Synthesizer(voices, jobs=2, chunk=1) as two:
        a = list(one.audio(UTTS))
        b = list(two.audio(UTTS))
        assert one.lengths(UTTS) == two.lengths(UTTS) == [x.size for x in a]
        assert two.cpu_seconds > 0  # the workers did the work and reported it
    assert len(a) == len(b) == len(UTTS)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype == np.float32
        assert x.tobytes() == y.tobytes()


def test_prefetch_serves_voice_calls(voices, tmp_path):
    """After ctx.prefetch, voice calls return the workers' audio (no local synthesis), each
    as many times as it was listed; then it is dropped."""
    espeak = {k: v for k, v in voices.items() if k.startswith("espeak")}
    us = [u for u in UTTS if u.voice in espeak]
    with Synthesizer(espeak, jobs=2, chunk=1) as synth:
        ctx = BuildContext(tmp_path, 0, "tiny", espeak, "test", synth=synth)
        ctx.prefetch([*us, us[0]])  # the first one listed twice
        calls = []
        for v in ctx.voices.values():
            orig = v.voice.say
            v.voice.say = lambda k, c, orig=orig: calls.append(c) or orig(k, c)
        got = [ctx.voices[u.voice].say(u.kind, u.content) for u in [*us, us[0]]]
        assert calls == [] and not ctx._cache
        again = ctx.voices[us[0].voice].say(us[0].kind, us[0].content)  # not prefetched now
        assert calls == [us[0].content]
    for u, x in zip([*us, us[0]], got, strict=True):
        assert x.tobytes() == espeak[u.voice].say(u.kind, u.content).tobytes()
    assert again.tobytes() == got[0].tobytes()


def test_voices_pickle_without_loaded_engines(voices):
    import pickle

    joe = voices["joe"]
    joe.length("phones", ["B", "L", "IH1", "K"])  # loads the engine in this process
    clone = pickle.loads(pickle.dumps(joe))
    assert "_voice" not in vars(clone) and "_durations" not in vars(clone)


def test_synthesizer_rejects_bad_jobs(voices):
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        Synthesizer(voices, jobs=0)


# ---------------------------------------------------------------- balance rules
def test_balance_rules_hand_computed():
    assert side(90, 100) == 1.0 and side(100, 100) == 0.5 and side(110, 100) == 0.0
    # voices: shorter, tie, longer -> (1 + 0.5 + 0) / 3
    assert pair_score([90, 100, 110], [100, 100, 100]) == pytest.approx(0.5)
    assert pair_score([90, 90], [100, 100]) == 1.0
    assert mismatch([100, 200], [110, 190]) == pytest.approx(10 / 100)  # max(10/100, 10/190)
    with pytest.raises(ValueError):
        pair_score([1, 2], [1])
    b = Balance()
    assert b.fits("x", 1.0) and b.fits("x", 0.0) and b.fits("x", 0.5)
    b.add("x", 1.0)  # group +0.5, total +0.5
    assert not b.fits("x", 1.0) and not b.fits("y", 2 / 3)  # the total would leave the slack
    assert b.fits("y", 0.0) and b.fits("x", 0.25)
    b.add("y", 0.0)  # group y -0.5, total 0
    assert not b.fits("y", 0.0) and b.fits("x", 0.0) and not b.fits("x", 1.0)
    assert b.groups == {"x": 0.5, "y": -0.5} and b.total == 0.0
    s = summary([1.0, 0.0, 0.5, 0.5], [0.1, 0.3, 0.0, 0.2])
    assert s == {
        "pairs": 4,
        "length_rule_accuracy": 0.5,
        "median_relative_mismatch": 0.15,
        "max_relative_mismatch": 0.3,
    }


def test_balance_greedy_vs_brute_force():
    """The greedy slack rule keeps every prefix within 0.5 of chance; on random score
    sequences, its final imbalance equals that of a brute-force reimplementation."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.choice([0.0, 1 / 3, 0.5, 2 / 3, 1.0], size=30)
        b, taken = Balance(), []
        for s in scores:
            if b.fits("g", float(s)):
                b.add("g", float(s))
                taken.append(s)
        # brute force: simulate the rule with plain arithmetic
        total, ref = 0.0, []
        for s in scores:
            if abs(total + s - 0.5) <= 0.5 + 1e-9:
                total += s - 0.5
                ref.append(s)
        assert taken == ref
        sums = np.cumsum(np.array(taken) - 0.5)
        assert np.all(np.abs(sums) <= 0.5 + 1e-9)


def test_build_context_without_synth_works_in_process(tmp_path: Path, voices):
    espeak = {k: v for k, v in voices.items() if k.startswith("espeak")}
    ctx = BuildContext(tmp_path, 0, "tiny", espeak, "test")
    assert ctx.synth is not None and ctx.synth.jobs == 1
    u = UTTS[2]
    ctx.prefetch([u])  # a no-op in process
    assert not ctx._cache
    assert ctx.lengths([u]) == [ctx.voices[u.voice].text(u.content).size]
