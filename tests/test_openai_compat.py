"""``openai-chat`` against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py).

The server checks what it receives (model name, bearer key, content-part types, base64 WAV)
and answers as a function of it, so these tests prove the adapter sent well-formed requests
and read real answers. Faults (500, 429 + Retry-After, slow answers, dropped connections,
malformed JSON, truncated audio) are chosen per request by ``[fault:…]`` tokens in its text.
The end-to-end tests serve the ``cascade`` reference model behind the schema.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from openai_server import ECHO_RATE, OpenAIServer

from reference_models.openai_compat import EndpointError, OpenAIChat, check_wav_complete
from speechlm_eval.audio import Audio
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.execute import BatchSizer, ExecStats, Item, Job, execute, model_key, request_key
from speechlm_eval.model import RespondRequest, RespondResult
from speechlm_eval.runner import load_model

pytest.importorskip("httpx")

SR = 16000
TESTS = Path(__file__).resolve().parent
FAST = {"backoff": "0.01", "max_backoff": "0.5"}  # retries in milliseconds, not seconds


def tone(seconds: float, rate: int = SR, freq: float = 330.0) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, "tone")


@pytest.fixture(autouse=True)
def _no_user_key(monkeypatch):
    """A key in the user's environment is never sent to the test server."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="module")
def server():
    with OpenAIServer("echo") as srv:
        yield srv


@pytest.fixture
def srv(server: OpenAIServer) -> OpenAIServer:
    deadline = time.monotonic() + 5
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)  # answers a previous test left in flight (a timed-out slow one)
    server.reset()
    server.latency = 0.0
    server.api_key = None
    return server


def chat(srv: OpenAIServer, **kw: Any) -> OpenAIChat:
    return OpenAIChat(base_url=srv.url, model=srv.served, **{**FAST, **kw})


def one(model: OpenAIChat, text: str | None = None, audio: Audio | None = None, key: str = "q"):
    (res,) = model.respond([RespondRequest(text=text, audio=audio, key=key)])
    return res


# --- the executor's glue for respond (no respond task exists yet) ------------------------------


def respond_job(model: OpenAIChat, plugin: str, blobs: BlobStore) -> Job:
    """``respond`` through :func:`execute`: the text in the cache row, the audio as a blob."""

    def store(key: str, req: RespondRequest, r: RespondResult) -> dict[str, Any]:
        if r.audio is not None:
            blobs.put(key, r.audio.samples)
        return {"text": r.text, "rate": None if r.audio is None else r.audio.sample_rate}

    def load(key: str, v: dict[str, Any]) -> dict[str, Any] | None:
        if v["rate"] is not None and blobs.get(key) is None:
            return None
        return v

    return Job("respond", model_key(plugin, model), model.respond, model.sample_rate, store, load)


def respond_items(texts: list[str]) -> list[Item]:
    return [
        Item(f"q{i:02d}", 1.0, lambda _c, t=t, i=i: RespondRequest(text=t, key=f"q{i:02d}"))
        for i, t in enumerate(texts)
    ]


# --- options and identity ----------------------------------------------------------------------


def test_options_are_checked_in_one_line(srv: OpenAIServer) -> None:
    with pytest.raises(ConfigError, match="'base_url' is required"):
        load_model("openai-chat", {"model": "m"})
    with pytest.raises(ConfigError, match="'model' is required"):
        load_model("openai-chat", {"base_url": srv.url})
    with pytest.raises(ConfigError, match="modalities.*text or text\\+audio"):
        load_model("openai-chat", {"base_url": srv.url, "model": "m", "modalities": "audio"})
    # A secret in the URL or in the arguments is refused without being repeated.
    for args in (
        {"base_url": "http://user:s3cret-pw@127.0.0.1:1/v1", "model": "m"},
        {"base_url": "http://127.0.0.1:1/v1?key=s3cret-pw", "model": "m"},
        {"base_url": srv.url, "model": "m", "api_key": "s3cret-pw"},
    ):
        with pytest.raises(ConfigError) as e:
            load_model("openai-chat", args)
        assert "s3cret-pw" not in str(e.value) and "\n" not in str(e.value)


def test_identity_is_the_endpoint_model_and_settings(srv: OpenAIServer) -> None:
    a = load_model(
        "openai-chat", {"base_url": srv.url + "/", "model": srv.served, "max_concurrency": "3"}
    )
    b = chat(srv, timeout="5", max_retries="1")
    ident = a.identity()
    assert ident["endpoint"] == srv.url and ident["model"] == srv.served
    # What the server's /models says (its per-call 'created' left out), the request settings.
    assert ident["served_model"] == {
        "id": srv.served,
        "object": "model",
        "root": "echo-backend",
        "owned_by": "speechlm-eval-tests",
    }
    assert ident["request"] == {"temperature": 0.0, "max_tokens": 512}
    # Transport settings change how, not what: the same identity (so the same cache).
    assert b.identity() == ident
    assert chat(srv, temperature="0.7").identity() != ident
    assert chat(srv, system="be brief").identity()["system"] == "be brief"


def test_unknown_served_model_and_dead_endpoint_fail_at_load(srv: OpenAIServer) -> None:
    with pytest.raises(PluginError, match=f"serves no model 'nope' \\(it lists: {srv.served}\\)"):
        OpenAIChat(base_url=srv.url, model="nope")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # bound, not listening
        with pytest.raises(PluginError, match="failed after 1 attempt.*connection error"):
            OpenAIChat(base_url=dead, model="m", max_retries="0")


# --- payload and parsing -----------------------------------------------------------------------


def test_payload_has_system_text_and_base64_wav(srv: OpenAIServer) -> None:
    m = chat(srv, system="Answer briefly.", seed="7", max_tokens="64")
    audio = tone(1.25, rate=24000)  # not at the model's rate: sent resampled to 16 kHz
    res = one(m, "What is this sound?", audio, key="k1")
    assert res == RespondResult(
        text="heard 1.25 s at 16000 Hz; text: What is this sound?; system: Answer briefly.",
        audio=None,
    )
    (p,) = srv.requests
    assert p["model"] == srv.served and p["temperature"] == 0.0
    assert p["seed"] == 7 and p["max_tokens"] == 64
    assert "modalities" not in p and "audio" not in p  # text answers: plain vLLM's request
    system, user = p["messages"]
    assert system == {"role": "system", "content": "Answer briefly."}
    text_part, audio_part = user["content"]
    assert user["role"] == "user" and text_part == {"type": "text", "text": "What is this sound?"}
    assert audio_part["type"] == "input_audio" and audio_part["input_audio"]["format"] == "wav"
    wav = base64.b64decode(audio_part["input_audio"]["data"], validate=True)
    info = sf.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    x, _ = sf.read(io.BytesIO(wav), dtype="float32")
    want = audio.resample(SR).samples
    assert np.max(np.abs(x - want)) < 1.0 / 32767  # 16-bit PCM of the resampled signal


def test_text_only_and_audio_only_requests(srv: OpenAIServer) -> None:
    m = chat(srv)
    assert one(m, text="hi").text == "no audio; text: hi; system: None"
    assert one(m, audio=tone(0.5)).text == "heard 0.50 s at 16000 Hz; text: ; system: None"
    parts = [[p["type"] for p in r["messages"][-1]["content"]] for r in srv.requests]
    assert parts == [["text"], ["input_audio"]]
    with pytest.raises(PluginError, match="request 'q': request has neither text nor audio"):
        one(m)


@pytest.mark.parametrize("fmt", ["wav", "pcm16"])
def test_audio_answers_decode(srv: OpenAIServer, fmt: str) -> None:
    m = chat(srv, modalities="text+audio", voice="verse", audio_format=fmt)
    res = one(m, "say something", key="a1")
    p = srv.requests[-1]
    assert p["modalities"] == ["text", "audio"] and p["audio"] == {"voice": "verse", "format": fmt}
    # content is null in OpenAI's audio answers: the text is the audio's transcript.
    assert res.text == "no audio; text: say something; system: None"
    assert isinstance(res.audio, Audio) and res.audio.sample_rate == ECHO_RATE
    assert res.audio.samples.size == int(ECHO_RATE * (0.1 + 0.01 * len(res.text)))
    assert 0.29 < float(np.max(np.abs(res.audio.samples))) < 0.31  # the server's 0.3 tone


# --- faults ------------------------------------------------------------------------------------


def test_retries_on_5xx_429_timeouts_and_dropped_connections(srv: OpenAIServer, caplog) -> None:
    m = chat(srv, timeout="0.5")
    texts = {
        "five hundred [fault:500x2]": 3,
        "busy [fault:503x1]": 2,
        "rate limited [fault:429x1][fault:retry_after=0.3]": 2,
        "slow [fault:slowx1=1]": 2,  # the first attempt times out after 0.5 s
        "dropped [fault:dropx1]": 2,
    }
    caplog.set_level(logging.WARNING, logger="reference_models.openai_compat")
    t0 = time.perf_counter()
    res = m.respond([RespondRequest(text=t, key=f"r{i}") for i, t in enumerate(texts)])
    took = time.perf_counter() - t0
    assert [r.text.split("; ")[1] for r in res] == [
        "text: five hundred",
        "text: busy",
        "text: rate limited",
        "text: slow",
        "text: dropped",
    ]
    assert dict(srv.attempts) == texts
    assert 0.5 <= took < 3.0  # the timeout and Retry-After were waited, not much more
    assert "HTTP 429 Too Many Requests: rate limited; retry 1/5 in 0.30 s" in caplog.text
    assert "timed out after 0.5 s" in caplog.text and "RemoteProtocolError" in caplog.text


def test_retries_give_up_with_the_last_problem(srv: OpenAIServer) -> None:
    m = chat(srv, max_retries="2")
    with pytest.raises(EndpointError) as e:
        one(m, "never [fault:500]", key="k9")
    assert str(e.value) == (
        f"openai-chat: request 'k9': failed after 3 attempt(s) at {srv.url}/chat/completions; "
        "last: HTTP 500 Internal Server Error: injected 500"
    )
    assert e.value.status == 500 and srv.attempts["never [fault:500]"] == 3


@pytest.mark.parametrize(
    ("fault", "modalities", "phrase"),
    [
        ("400", "text", "HTTP 400 Bad Request: injected: unsupported parameter 'foo'"),
        ("badjson", "text", "malformed response from .*: not JSON"),
        ("nochoices", "text", "malformed response from .*: no 'choices' in the response"),
        (
            "truncaudio",
            "text+audio",
            "malformed response from .*: audio is truncated \\(WAV data chunk of \\d+ bytes, \\d+",
        ),
        ("badb64", "text+audio", "malformed response from .*: audio.data is not valid base64"),
        (
            "noaudio",
            "text+audio",
            "malformed response from .*: audio was asked for .* and none came back",
        ),
    ],
)
def test_bad_answers_are_one_line_errors_never_retried(
    srv: OpenAIServer, fault: str, modalities: str, phrase: str
) -> None:
    m = chat(srv, modalities=modalities)
    text = f"question [fault:{fault}]"
    with pytest.raises(PluginError, match=f"^openai-chat: request 'item-7': {phrase}") as e:
        one(m, text, key="item-7")
    assert "\n" not in str(e.value)
    assert srv.attempts[text] == 1


def test_truncated_wav_is_not_read_as_a_shorter_one() -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1000, np.float32), SR, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    check_wav_complete(data)
    for cut in (len(data) - 1, 50, 30):
        with pytest.raises(ValueError, match="truncated"):
            check_wav_complete(data[:cut])
    # soundfile alone reads the cut file without complaint: that is why the check exists.
    assert sf.read(io.BytesIO(data[:-200]))[0].size < 1000


def test_a_failure_stops_the_batch(srv: OpenAIServer) -> None:
    m = chat(srv, max_concurrency="2")
    reqs = [RespondRequest(text=f"q{i} [fault:latency=0.1]", key=f"q{i}") for i in range(12)]
    reqs[2] = RespondRequest(text="bad [fault:400]", key="q2")
    with pytest.raises(PluginError, match="^openai-chat: request 'q2': HTTP 400"):
        m.respond(reqs)
    # Nothing new started after the failure: only those in flight then were answered (q0, q1
    # and at most one more, started beside q2).
    assert len(srv.answered) <= 3


def test_concurrency_is_bounded(srv: OpenAIServer) -> None:
    srv.latency = 0.2
    m = chat(srv, max_concurrency="3")
    t0 = time.perf_counter()
    res = m.respond([RespondRequest(text=f"n{i}", key=f"n{i}") for i in range(12)])
    took = time.perf_counter() - t0
    assert [r.text.split("; ")[1] for r in res] == [f"text: n{i}" for i in range(12)]
    assert srv.max_in_flight == 3  # reached, never passed
    assert 0.8 <= took < 1.6  # 4 rounds of 0.2 s


# --- the API key -------------------------------------------------------------------------------

SENTINEL = "sk-SENTINEL-0123456789abcdef"


def test_api_key_is_sent_and_never_written(
    srv: OpenAIServer, tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("MY_ENDPOINT_KEY", SENTINEL)
    caplog.set_level(logging.DEBUG)
    # Without the key the server refuses; with it, it answers (so the key was sent).
    srv.api_key = SENTINEL
    with pytest.raises(PluginError, match="HTTP 401 Unauthorized: missing or wrong API key"):
        chat(srv)
    m = chat(srv, api_key_env="MY_ENDPOINT_KEY", modalities="text+audio")
    # A server error that quotes the key is redacted.
    with pytest.raises(PluginError) as e:
        one(m, "who am i [fault:echokey]", key="leak")
    assert "Incorrect API key provided: ***" in str(e.value) and SENTINEL not in str(e.value)
    # Through the executor into a results-like file and the cache.
    cache_path = tmp_path / "cache.sqlite"
    cache, blobs = ResultCache(cache_path), BlobStore.beside(cache_path)
    texts = [f"t{i} [fault:500x1]" for i in range(3)] + ["bad [fault:400]"]
    job = respond_job(m, "openai-chat", blobs)
    values = execute(
        job, respond_items(texts[:3]), cache=cache, sizer=BatchSizer(8), stats=ExecStats()
    )
    with pytest.raises(PluginError) as e2:
        execute(job, respond_items(texts[3:]), cache=cache, sizer=BatchSizer(8), stats=ExecStats())
    cache.close()
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "model_args": m.model_args,
                "model_identity": m.identity(),
                "samples": values,
                "error": str(e2.value),
            }
        )
    )
    written = [results, cache_path, *tmp_path.rglob("*.npy")]
    assert len(written) > 2
    for f in written:
        assert SENTINEL.encode() not in f.read_bytes(), f
    assert SENTINEL not in caplog.text
    assert "MY_ENDPOINT_KEY" in results.read_text()  # the variable's name, not its value


# --- a killed run resumes ----------------------------------------------------------------------

KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_openai_compat import respond_items, respond_job
from reference_models.openai_compat import OpenAIChat
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.execute import BatchSizer, ExecStats, execute

m = OpenAIChat(base_url={url!r}, model={served!r}, max_concurrency="2")
cache = ResultCache({cache!r})
execute(respond_job(m, "openai-chat", BlobStore.beside({cache!r})), respond_items({texts!r}),
        cache=cache, sizer=BatchSizer(2), stats=ExecStats())
"""


def test_a_killed_run_resumes_without_resending_finished_requests(
    srv: OpenAIServer, tmp_path
) -> None:
    texts = [f"item {i} [fault:latency=0.25]" for i in range(10)]
    cache_path = str(tmp_path / "cache.sqlite")
    script = KILLED_RUN.format(
        tests=str(TESTS), url=srv.url, served=srv.served, cache=cache_path, texts=texts
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    try:
        deadline = time.monotonic() + 30
        while len(srv.answered) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # the 2nd batch committed; the 3rd is in flight
    finally:
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait()
    while srv.in_flight:  # the server finishes what the dead client had sent
        time.sleep(0.02)
    first = list(srv.answered)
    assert 5 <= len(first) < 10, "the run was not killed mid-way"

    m = chat(srv, max_concurrency="2")
    job = respond_job(m, "openai-chat", BlobStore.beside(cache_path))
    cache = ResultCache(cache_path)
    keys = {request_key(job, RespondRequest(text=t, key="")): t for t in texts}
    committed = {keys[k] for k in cache.get_many(list(keys))}
    assert len(committed) >= 4  # at least the first two batches of two
    srv.reset()
    stats = ExecStats()
    values = execute(job, respond_items(texts), cache=cache, sizer=BatchSizer(2), stats=stats)
    cache.close()
    # Only what was not committed was sent again, once each; every answer is there.
    assert sorted(srv.answered) == sorted(set(texts) - committed)
    assert (stats.cache_hits, stats.computed) == (len(committed), 10 - len(committed))
    assert [v["text"] for v in values] == [
        f"no audio; text: item {i}; system: None" for i in range(10)
    ]


# --- end to end: the cascade behind the OpenAI schema ------------------------------------------


@pytest.fixture(scope="module")
def cascade_server():
    pytest.importorskip("lm_eval")
    with OpenAIServer("cascade", served="cascade") as srv:
        yield srv


@pytest.mark.slow
def test_end_to_end_against_the_cascade(cascade_server: OpenAIServer) -> None:
    srv = cascade_server
    cascade = srv.cascade
    m = chat(srv, max_concurrency="4")
    spoken = cascade.tts.say("what is the capital of france")
    reqs = [
        RespondRequest(text="Tell me about the sea.", key="text"),
        RespondRequest(audio=spoken, key="audio"),
        RespondRequest(text="Tell me about the sea.", key="again"),
    ]
    text, heard, again = m.respond(reqs)
    assert text.text and heard.text and text.text == again.text  # greedy: deterministic
    # The adapter is transparent: the same answer as calling the cascade directly.
    (direct,) = cascade.respond([RespondRequest(text="Tell me about the sea.")])
    assert text.text == direct.text

    audio_model = chat(srv, modalities="text+audio")
    res = one(audio_model, "Tell me about the sea.", key="spoken")
    assert res.text == direct.text  # the transcript of the audio answer
    assert res.audio is not None and res.audio.sample_rate == SR
    assert res.audio.samples.size == direct.audio.samples.size
    assert np.max(np.abs(res.audio.samples - direct.audio.samples)) < 2.0 / 32767
