"""``openai-realtime`` against a real Realtime websocket server on 127.0.0.1
(tests/realtime_server.py), driven by the harness' own ``speechlm_eval.streaming.drive``.

The server checks what it receives (model name, bearer key, the session's audio formats and
VAD, base64 PCM16 appends) and answers with a deterministic stand-in model: an energy VAD
that, after the configured silence, answers with the user's turn at half amplitude. So where
the answer lands and what it holds can be computed by hand from the user's audio, the frame
length and the VAD settings; the tests compare the model channel with that, sample for
sample (through the two PCM16 quantisations the audio passes).
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import numpy as np
import pytest
from realtime_server import RealtimeServer

from reference_models.openai_realtime import FRAME_SECONDS, OpenAIRealtime, check_ws_url
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import ConverseRequest
from speechlm_eval.streaming import drive

pytest.importorskip("websockets")

R = 24000
F = round(FRAME_SECONDS * R)  # 1920 samples per frame
KEY = "sk-test-SECRET-4242"


@pytest.fixture(autouse=True)
def _no_user_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the user's environment is never sent to the test server."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="module")
def server():
    with RealtimeServer() as srv:
        yield srv


@pytest.fixture
def srv(server: RealtimeServer) -> RealtimeServer:
    server.fault = None
    server.api_key = None
    server.paced = False
    server.think = 0.0
    return server


def realtime(srv: RealtimeServer, **kw: Any) -> OpenAIRealtime:
    args = {"quiet": 0.1, "silence_duration_ms": 300, "timeout": 5.0, **kw}
    return OpenAIRealtime(base_url=srv.url, model=srv.served, **args)


def speech(seconds: float, spans: list[tuple[float, float]], freq: float = 300.0) -> np.ndarray:
    """Silence with tones (amplitude 0.3) at ``spans`` (start, end) in seconds."""
    x = np.zeros(round(seconds * R), dtype=np.float32)
    for a, b in spans:
        i, j = round(a * R), round(b * R)
        t = np.arange(j - i) / R
        x[i:j] = 0.3 * np.sin(2 * np.pi * freq * t)
    return x


def run(model: OpenAIRealtime, x: np.ndarray, key: str = "s1") -> np.ndarray:
    res = drive(model, ConverseRequest(Audio(x, R, "user"), key=key, seed=3))
    assert res.model.sample_rate == R and res.model.samples.size == x.size
    return res.model.samples


def echoed(x: np.ndarray) -> np.ndarray:
    """The stand-in's answer to ``x`` as the client decodes it: the client's PCM16 of x
    (x * 32767, rounded), decoded by the server (/ 32768), halved, PCM16 again, decoded."""
    q1 = np.round(np.clip(x, -1, 1) * 32767.0) / 32768.0
    q2 = np.round(0.5 * q1 * 32767.0)
    return (q2 / 32768.0).astype(np.float32)


def at(t: float) -> int:
    return round(t * R)


# --- options and identity ----------------------------------------------------------------------


def test_options_are_checked_and_the_key_is_never_an_argument(srv: RealtimeServer) -> None:
    with pytest.raises(ConfigError, match="'base_url' is required"):
        OpenAIRealtime(model="m")
    with pytest.raises(ConfigError, match="API key is not a model argument"):
        OpenAIRealtime(base_url=srv.url, model="m", api_key=KEY)
    with pytest.raises(ConfigError, match="pacing"):
        OpenAIRealtime(base_url=srv.url, model="m", pacing="fast")
    for bad in ("ftp://h/v1", "wss://user:pw@h/v1", "https://h/v1?key=abc"):
        with pytest.raises(ConfigError) as e:
            OpenAIRealtime(base_url=bad, model="m")
        assert "pw" not in str(e.value) and "abc" not in str(e.value)
    assert check_ws_url("wss://api.example.com/v1/") == "wss://api.example.com/v1"
    assert check_ws_url("https://api.example.com/v1") == "https://api.example.com/v1"


def test_identity_records_endpoint_and_session_but_never_the_key(
    srv: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RT_KEY", KEY)
    m = realtime(srv, api_key_env="RT_KEY", voice="verse", temperature=0.8)
    ident = m.identity()
    text = json.dumps(ident) + json.dumps(m.model_args)
    assert KEY not in text and "RT_KEY" not in json.dumps(ident)
    assert ident["endpoint"] == f"ws://127.0.0.1:{srv.port}/v1/realtime?model={srv.served}"
    assert ident["model"] == srv.served and ident["api"] == "realtime (ga)"
    s = ident["session"]
    assert s["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": R}, "voice": "verse"}
    vad = s["audio"]["input"]["turn_detection"]
    assert (vad["type"], vad["silence_duration_ms"], vad["prefix_padding_ms"]) == (
        "server_vad",
        300,
        300,
    )
    assert s["temperature"] == 0.8
    assert ident["pacing"]["mode"] == "quiet" and ident["pacing"]["quiet_s"] == 0.1
    assert "not bit-reproducible" in ident["notes"]
    # The timeout changes nothing computed; pacing does.
    assert realtime(srv, timeout=9.0).identity() == realtime(srv).identity()
    assert realtime(srv, quiet=0.3).identity() != realtime(srv).identity()


# --- the session, hand-computed ----------------------------------------------------------------


def test_the_echo_lands_where_the_vad_and_the_frame_rule_put_it(srv: RealtimeServer) -> None:
    """Speech 0.40-1.00 s; the server's VAD ends the turn after 300 ms of silence, i.e. in
    the 10 ms window ending at 1.30 s, which arrives with frame 16 (1.28-1.36 s). The answer
    comes back while step 16 reads events and is played from frame 17: 1.36 s on, 0.6 s
    long. Everything else is silence."""
    x = speech(2.4, [(0.4, 1.0)])
    model = realtime(srv)
    y = run(model, x)
    want = np.zeros_like(x)
    want[at(1.36) : at(1.96)] = echoed(x[at(0.4) : at(1.0)])
    np.testing.assert_array_equal(y, want)
    # The events, by the frame whose step read them: speech from frame 5 (0.40 s), its end
    # and the whole answer in frame 16; the answer's words kept per response.
    sess = model.last_session
    assert sess is not None and sess.ws is None  # closed
    seen = [(f, k) for f, k in sess.events if not k.startswith("session.")]
    assert seen[0] == (5, "input_audio_buffer.speech_started")
    assert {f for f, _ in seen[1:]} == {16}
    kinds = [k for _, k in seen[1:]]
    assert kinds[:3] == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
    ]
    assert kinds[-1] == "response.done"
    assert kinds.count("response.output_audio.delta") == 3  # 0.6 s in 200 ms chunks
    assert sess.transcripts == {"resp_0": [f"echo of {at(0.6)} samples"]}
    rec = srv.sessions[-1]
    # The server got every frame, exactly (the user's PCM16), and one session.update first.
    assert rec["appends"] == 30 and rec["samples"] == 30 * F
    assert rec["received"][0] == "session.update" and rec["closed"]
    assert rec["responses"] == [{"id": "resp_0", "samples": at(0.6)}]


def test_output_length_follows_the_user_channel_and_reruns_are_identical(
    srv: RealtimeServer,
) -> None:
    x = speech(1.93, [(0.2, 0.7), (1.1, 1.3)])  # not a whole number of frames
    model = realtime(srv)
    first = run(model, x, key="a")
    again = run(model, x, key="b")
    assert first.size == x.size
    np.testing.assert_array_equal(first, again)
    assert np.any(first)
    # Another voice of the same user: another answer (the output depends on the input).
    other = run(model, speech(1.93, [(0.2, 0.7), (1.1, 1.3)], freq=450.0), key="c")
    assert not np.array_equal(first, other)


def test_the_servers_compute_time_stays_off_the_timeline(srv: RealtimeServer) -> None:
    """The server announces its response and then computes for 0.5 s (5 quiet periods)
    before the first audio: the client waits for it, so the channel is the one of an
    instant server."""
    srv.think = 0.5
    x = speech(2.4, [(0.4, 1.0)])
    y = run(realtime(srv), x)
    want = np.zeros_like(x)
    want[at(1.36) : at(1.96)] = echoed(x[at(0.4) : at(1.0)])
    np.testing.assert_array_equal(y, want)


def test_barge_in_stops_playback_and_tells_the_server(srv: RealtimeServer) -> None:
    """The echo of turn 1 plays from 1.36 s (as above); the user speaks again at 1.60 s. The
    server reports speech_started while step 20 (1.60-1.68 s) reads events: what is queued is
    dropped, so playback stops at 1.68 s, after 4 frames (320 ms) of the answer, which the
    client reports with conversation.item.truncate. Turn 2 (1.60-1.90 s) ends at 2.20 s, in
    frame 27, and its echo plays from 2.24 s."""
    x = speech(3.0, [(0.4, 1.0), (1.6, 1.9)])
    y = run(realtime(srv), x)
    want = np.zeros_like(x)
    want[at(1.36) : at(1.68)] = echoed(x[at(0.4) : at(0.72)])
    want[at(2.24) : at(2.54)] = echoed(x[at(1.6) : at(1.9)])
    np.testing.assert_array_equal(y, want)
    rec = srv.sessions[-1]
    assert rec["truncates"] == [
        {"item_id": "item_answer_0", "content_index": 0, "audio_end_ms": 320}
    ]
    assert rec["cancels"] == 0  # the answer had been sent whole: no response in progress


def test_without_barge_in_the_answer_plays_to_its_end(srv: RealtimeServer) -> None:
    x = speech(3.0, [(0.4, 1.0), (1.6, 1.9)])
    y = run(realtime(srv, barge_in=False), x)
    np.testing.assert_array_equal(y[at(1.36) : at(1.96)], echoed(x[at(0.4) : at(1.0)]))
    assert srv.sessions[-1]["truncates"] == []


def test_barge_in_cancels_a_response_in_progress(srv: RealtimeServer) -> None:
    """A server streaming its answer, 80 ms when the response starts and 80 ms per append
    after: the response starts in step 16 and its chunks arrive in steps 16 to 20, played
    from frame 17 (1.36 s). At step 20 the user's new turn starts: the server cancels its
    response itself, the client drops chunk 5 (queued, unplayed), truncates the item at 4
    chunks (320 ms) and sends response.cancel, whose 'no active response' answer it
    ignores."""
    srv.paced = True
    x = speech(2.0, [(0.4, 1.0), (1.6, 1.9)])  # ends before turn 2 is answered
    y = run(realtime(srv), x)
    want = np.zeros_like(x)
    want[at(1.36) : at(1.68)] = echoed(x[at(0.4) : at(0.72)])
    np.testing.assert_array_equal(y, want)
    rec = srv.sessions[-1]
    assert rec["cancels"] == 1
    assert rec["truncates"] == [
        {"item_id": "item_answer_0", "content_index": 0, "audio_end_ms": 320}
    ]


def test_beta_protocol_gives_the_same_channel() -> None:
    x = speech(2.4, [(0.4, 1.0)])
    with RealtimeServer(protocol="beta") as beta:
        y = run(realtime(beta, protocol="beta"), x)
        assert beta.sessions[-1]["update"]["input_audio_format"] == "pcm16"
        # A GA client is refused by a beta-only server, in one line naming the session.
        adapter_error(
            r"session 's1', opening: handshake refused: HTTP 400", realtime(beta), x, "s1"
        )
    want = np.zeros_like(x)
    want[at(1.36) : at(1.96)] = echoed(x[at(0.4) : at(1.0)])
    np.testing.assert_array_equal(y, want)


def test_realtime_pacing_follows_the_wall_clock(srv: RealtimeServer) -> None:
    """Frame i is sent (i + 1) * 80 ms after the first step, so a session takes at least its
    duration; the answer lands a frame or two later than in quiet pacing (events caused by
    frame i are read during step i + 1), by how much depends on the machine."""
    x = speech(1.6, [(0.2, 0.5)])
    res = drive(realtime(srv, pacing="realtime"), ConverseRequest(Audio(x, R, "u"), key="rt"))
    assert res.realtime["compute_seconds"] >= 20 * FRAME_SECONDS - 0.08
    y = res.model.samples
    assert y.size == x.size
    start = int(np.flatnonzero(y)[0]) // F * F  # the frame it starts in (sin(0) is 0)
    # The turn ends at 0.80 s, in frame 9: quiet pacing would play the answer from 0.80 s;
    # realtime pacing sends frame 9 at 0.80 s and reads the answer in step 10, so it plays
    # from 0.88 s at the earliest. The content is the echo, whole.
    assert at(0.88) <= start <= at(1.2)
    np.testing.assert_array_equal(y[start : start + at(0.3)], echoed(x[at(0.2) : at(0.5)]))


# --- faults: one error naming the session and the frame ----------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("close", r"server closed the connection \(code 1011, 'injected close'\)"),
        ("drop", r"server closed the connection"),
        ("garbage", r"malformed event: not JSON \(starting '<html>502"),
        ("notype", r"malformed event: no 'type'"),
        ("badb64", r"malformed audio: response.output_audio.delta is not valid base64"),
        ("oddbytes", r"truncated audio: .* of 3 bytes"),
        ("error", r"server error: Incorrect API key: Bearer \*\*\*"),
        ("failed", r"response failed: .*overloaded"),
    ],
)
def test_faults_raise_one_error_naming_session_and_frame(
    srv: RealtimeServer, monkeypatch: pytest.MonkeyPatch, fault: str, message: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv.api_key = KEY
    srv.fault = (fault, 4)  # after the 4th append: while frame 3 is handled
    with pytest.raises(PluginError) as e:
        run(realtime(srv, quiet=0.05), speech(1.0, []), key="sf")
    # The harness wraps the adapter's error (drive: "the model raised ..."); both name the
    # session and the frame, neither holds the key.
    outer, inner = str(e.value), str(e.value.__cause__)
    assert isinstance(e.value.__cause__, PluginError)
    for text in (outer, inner):
        assert "converse session 'sf', frame 3 (0.24 s)" in text and KEY not in text
    assert re.search(message, inner), inner
    assert srv.sessions[-1]["closed"]


def test_a_stalled_response_times_out(srv: RealtimeServer) -> None:
    srv.fault = ("stall", 2)
    model = realtime(srv, quiet=0.05, timeout=0.5)
    pattern = r"session 'st', frame \d+ .*timed out: response 'resp_stall' in progress"
    adapter_error(pattern, model, speech(3.0, []), "st")


def adapter_error(pattern: str, model: OpenAIRealtime, x: np.ndarray, key: str) -> str:
    """The adapter's own error (the harness wraps it with repr) for a session that must
    fail; it must match ``pattern``."""
    with pytest.raises(PluginError) as e:
        run(model, x, key=key)
    cause = e.value.__cause__
    assert isinstance(cause, PluginError), e.value
    assert re.search(pattern, str(cause)), str(cause)
    return str(cause)


def test_opening_failures(srv: RealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    x = speech(0.5, [])
    srv.fault = ("no_update", 0)
    adapter_error(
        r"session 'o1', opening: no session.updated within 0.5 s",
        realtime(srv, timeout=0.5),
        x,
        "o1",
    )
    srv.fault = None
    # Wrong key: the handshake is refused, with the server's message; the key is not repeated.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-777")
    srv.api_key = KEY
    text = adapter_error(
        r"session 'o2', opening: handshake refused: HTTP 401: missing or wrong API key",
        realtime(srv),
        x,
        "o2",
    )
    assert "sk-wrong-key-777" not in text
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    nope = OpenAIRealtime(base_url=srv.url, model="nope", timeout=5.0)
    adapter_error(r"HTTP 404: The model `nope` does not exist", nope, x, "o3")
    # Nothing listens: connection refused.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    dead = OpenAIRealtime(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=5.0)
    adapter_error(r"session 'o4', opening: cannot connect \(ConnectionRefusedError", dead, x, "o4")


def test_with_the_right_key_the_session_runs(
    srv: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv.api_key = KEY
    x = speech(2.4, [(0.4, 1.0)])
    model = realtime(srv)
    y = run(model, x)
    np.testing.assert_array_equal(y[at(1.36) : at(1.96)], echoed(x[at(0.4) : at(1.0)]))
    assert KEY not in json.dumps(model.identity()) + json.dumps(model.model_args)


def test_a_rate_other_than_24k_is_refused(srv: RealtimeServer) -> None:
    from speechlm_eval.model import SessionInfo

    with pytest.raises(PluginError, match="16000 Hz; the Realtime API takes 24000 Hz"):
        realtime(srv).open_session(SessionInfo("k", 0, 16000, 1280))


# --- end to end: the cascade behind the protocol -------------------------------------------------


def _active_frames(y: np.ndarray, frame: int) -> np.ndarray:
    n = y.size // frame
    return np.flatnonzero(np.abs(y[: n * frame]).reshape(n, frame).max(1) > 1e-3)


@pytest.mark.slow
def test_the_cascade_behind_the_protocol_answers_as_the_cascade_does() -> None:
    """The ``cascade`` reference model's streaming session served over the websocket (the
    server resamples 24 <-> 16 kHz per frame) against the same session run directly by the
    harness at 16 kHz: the answer starts in the same 80 ms frame (the ASR, LM and TTS time,
    seconds on this machine, stays off the timeline) and lasts as long, within a frame
    (resampling moves the VAD's decisions by a window at most); reruns are identical."""
    from scipy.signal import resample_poly

    from reference_models.cascade.model import Cascade

    cascade = Cascade(asr_args="beam_size=1")
    said = cascade.tts.say("Hello there, how are you today?").samples
    user16 = np.concatenate([np.zeros(8000), said, np.zeros(5 * 16000)]).astype(np.float32)
    direct = drive(cascade, ConverseRequest(Audio(user16, 16000, "u"), key="c")).model.samples
    ref = _active_frames(direct, 1280)
    assert ref.size > 5, "the cascade did not answer"
    user24 = resample_poly(user16, 3, 2).astype(np.float32)
    with RealtimeServer(cascade=cascade) as srv:
        model = realtime(srv, quiet=0.1, timeout=60.0, max_wait=60.0)
        y = run(model, user24, key="c")
        again = run(model, user24, key="c2")
        assert [len(r["responses"]) for r in srv.sessions] == [1, 1]
    got = _active_frames(y, F)
    assert abs(int(got[0]) - int(ref[0])) <= 1, (got[0], ref[0])
    assert abs(got.size - ref.size) <= 1 and got[-1] - got[0] + 1 == got.size
    np.testing.assert_array_equal(y, again)
