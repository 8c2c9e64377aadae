"""The streaming ``converse`` protocol (speechlm_eval.streaming): causality, placement of the
model's frames on the timeline, checks of what a model returns, wall-clock figures, and the
two-channel audio type."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from speechlm_eval.audio import Audio, TwoChannelAudio
from speechlm_eval.errors import DataError, PluginError
from speechlm_eval.model import ConverseRequest, SessionInfo, SpeechLM
from speechlm_eval.streaming import drive, frame_samples, realtime_summary

SR = 1000  # 1 sample = 1 ms keeps the arithmetic readable
FRAME = 0.05  # 50 samples


class Recorder:
    """A session that keeps every frame it was given and answers with ``respond(history)``."""

    def __init__(self, respond: Any) -> None:
        self.got: list[np.ndarray] = []
        self.respond = respond
        self.closed = False

    def step(self, user: np.ndarray) -> np.ndarray:
        self.got.append(user)
        return self.respond(self.got)

    def close(self) -> None:
        self.closed = True


class Duplex(SpeechLM):
    """A converse model whose sessions are :class:`Recorder` s (kept for inspection)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"converse"})
    sample_rate = SR
    converse_frame_seconds = FRAME

    def __init__(self, respond: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.respond = respond or (lambda got: got[-1].astype(np.float32))  # echo
        self.sessions: list[Recorder] = []
        self.infos: list[SessionInfo] = []

    def open_session(self, info: SessionInfo) -> Recorder:
        self.infos.append(info)
        self.sessions.append(Recorder(self.respond))
        return self.sessions[-1]


def _user(n: int, seed: int = 0) -> Audio:
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32)
    return Audio(x, SR, "user")


def test_frames_in_order_one_at_a_time_read_only_and_padded() -> None:
    model = Duplex()
    user = _user(175)  # 3.5 frames: the last one is zero-padded
    drive(model, ConverseRequest(user, key="s1", seed=7))
    (rec,) = model.sessions
    assert [g.size for g in rec.got] == [50, 50, 50, 50]
    padded = np.concatenate([user.samples, np.zeros(25, np.float32)])
    for i, g in enumerate(rec.got):
        assert np.array_equal(g, padded[i * 50 : (i + 1) * 50])
        assert not g.flags.writeable
    assert rec.closed
    assert model.infos == [SessionInfo(key="s1", seed=7, sample_rate=SR, frame_samples=50)]


def test_the_model_cannot_see_the_future() -> None:
    """Two user channels equal up to t and different after it: a model whose every output
    depends on everything it has heard gives the same channel up to t (plus the one frame
    it is played late), whatever comes later. The model is as greedy as can be: each frame
    it returns is the sum of everything received so far, broadcast."""

    def greedy(got: list[np.ndarray]) -> np.ndarray:
        return np.full(50, float(np.concatenate(got).sum()), np.float32)

    a = _user(1000, seed=1)
    b_samples = a.samples.copy()
    t = 430  # the futures differ from 430 ms on
    b_samples[t:] = _user(1000 - t, seed=2).samples
    out_a = drive(Duplex(greedy), ConverseRequest(a, key="a")).model.samples
    out_b = drive(Duplex(greedy), ConverseRequest(Audio(b_samples, SR), key="b")).model.samples
    # Frames 0..7 end by 400 ms (all heard before t); their outputs are played up to 450 ms.
    assert np.array_equal(out_a[:450], out_b[:450])
    assert not np.array_equal(out_a[450:500], out_b[450:500])  # frame 8 heard the difference


def test_model_frames_are_played_one_frame_late_and_cut_to_length() -> None:
    user = _user(230)
    res = drive(Duplex(), ConverseRequest(user, key="echo"))
    out = res.model
    assert out.sample_rate == SR and out.samples.size == 230
    assert not out.samples[:50].any()  # frame 0 of the model channel is silence
    assert np.array_equal(out.samples[50:], user.samples[:180])  # echo, one frame late


@pytest.mark.parametrize(
    ("respond", "match"),
    [
        (lambda got: np.zeros(49, np.float32), r"frame 0 \(0.00 s\): step returned shape \(49,\)"),
        (lambda got: [0.0] * 50, "frame 0 .*returned list; expected a numpy array"),
        (lambda got: np.zeros((50, 1), np.float32), r"frame 0 .*shape \(50, 1\)"),
        (lambda got: np.zeros(50, np.int16), "frame 0 .*int16 samples; expected float32"),
    ],
)
def test_a_wrong_frame_is_one_error_naming_session_and_frame(respond: Any, match: str) -> None:
    with pytest.raises(PluginError, match=f"converse session 'bad', {match}"):
        drive(Duplex(respond), ConverseRequest(_user(200), key="bad"))


def test_nan_midway_and_an_exception_midway_name_the_frame() -> None:
    def nan_at_3(got: list[np.ndarray]) -> np.ndarray:
        x = np.zeros(50, np.float32)
        if len(got) == 4:
            x[10] = np.nan
        return x

    with pytest.raises(PluginError, match=r"'n', frame 3 \(0.15 s\): step returned NaN"):
        drive(Duplex(nan_at_3), ConverseRequest(_user(400), key="n"))

    def boom(got: list[np.ndarray]) -> np.ndarray:
        if len(got) == 3:
            raise RuntimeError("out of memory")
        return np.zeros(50, np.float32)

    model = Duplex(boom)
    with pytest.raises(PluginError, match=r"'x', frame 2 .*raised RuntimeError: out of memory"):
        drive(model, ConverseRequest(_user(400), key="x"))
    assert model.sessions[0].closed  # closed after an error too


def test_frame_length_is_checked() -> None:
    class Odd(Duplex):
        converse_frame_seconds = 0.0005  # half a sample at 1 kHz

    with pytest.raises(PluginError, match="not a whole number of samples"):
        frame_samples(Odd())

    class Missing(Duplex):
        converse_frame_seconds = None

    with pytest.raises(PluginError, match="converse_frame_seconds must be"):
        frame_samples(Missing())
    assert frame_samples(Duplex()) == 50


def test_realtime_summary_hand_computed() -> None:
    # frames of 0.1 s; compute 0.05, 0.25, 0.05, 0.05 s.
    # frame 0 arrives 0.1, done 0.15 (lag 0.05); frame 1 arrives 0.2, done 0.45 (lag 0.25);
    # frame 2 arrives 0.3, starts 0.45, done 0.50 (lag 0.2); frame 3 arrives 0.4, done 0.55
    # (lag 0.15). Worst lag 0.25 > 0.1: did not keep up. rtf = 0.4 / 0.4.
    r = realtime_summary([0.05, 0.25, 0.05, 0.05], 0.1)
    assert r["frames"] == 4 and r["kept_up"] is False
    assert r["max_lag_seconds"] == pytest.approx(0.25)
    assert r["rtf"] == pytest.approx(1.0) and r["max_step_ratio"] == pytest.approx(2.5)
    fast = realtime_summary([0.01] * 10, 0.1)
    assert fast["kept_up"] is True and fast["rtf"] == pytest.approx(0.1)
    assert fast["max_lag_seconds"] == pytest.approx(0.01)


def test_realtime_lag_matches_a_simulated_clock() -> None:
    """The closed-form lag against an event-by-event simulation of a live system."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        f = 0.08
        compute = list(rng.exponential(0.06, rng.integers(1, 40)))
        clock, worst = 0.0, 0.0
        for i, c in enumerate(compute):
            arrival = (i + 1) * f
            if clock < arrival:
                clock = arrival  # idle until the frame is complete
            clock += c
            worst = max(worst, clock - arrival)
        r = realtime_summary(compute, f)
        assert r["max_lag_seconds"] == pytest.approx(worst, abs=1e-6)
        assert r["kept_up"] == (worst <= f)


def test_session_is_deterministic_and_fingerprint_has_the_seed() -> None:
    user = _user(300)
    a = drive(Duplex(), ConverseRequest(user, key="k", seed=1)).model
    b = drive(Duplex(), ConverseRequest(user, key="other", seed=1)).model
    assert np.array_equal(a.samples, b.samples)
    f1 = ConverseRequest(user, key="k", seed=1).fingerprint()
    assert f1 == ConverseRequest(user, key="other", seed=1).fingerprint()  # key is a label
    assert f1 != ConverseRequest(user, key="k", seed=2).fingerprint()


def test_two_channel_audio_is_validated_in_one_place() -> None:
    a, b = _user(100, 1), _user(100, 2)
    tc = TwoChannelAudio(a, b, "conv")
    assert tc.sample_rate == SR and tc.duration == pytest.approx(0.1)
    assert tc.to_array().shape == (100, 2)
    again = TwoChannelAudio.from_array(tc.to_array(), SR, "conv")
    assert again.content_hash() == tc.content_hash()
    assert TwoChannelAudio(b, a).content_hash() != tc.content_hash()  # order matters
    with pytest.raises(DataError, match="conv: the two channels have different lengths"):
        TwoChannelAudio(a, _user(99), "conv")
    with pytest.raises(DataError, match="different sample rates"):
        TwoChannelAudio(a, Audio(b.samples, 2000), "conv")
    with pytest.raises(DataError, match=r"expected two channels \(frames, 2\)"):
        TwoChannelAudio.from_array(np.zeros((10, 3), np.float32), SR, "x.wav")
    with pytest.raises(DataError, match="NaN"):
        TwoChannelAudio.from_array(np.full((10, 2), np.nan, np.float32), SR, "x.wav")
    assert TwoChannelAudio(a, b).resample(2000).a.samples.size == 200
