"""A real OpenAI-compatible server on 127.0.0.1 for the ``openai-chat`` tests and benchmark.

An aiohttp app serving ``POST /v1/chat/completions`` and ``GET /v1/models`` in the OpenAI
schema, run on its own event loop in a background thread::

    with OpenAIServer(backend="echo") as srv:
        model = OpenAIChat(base_url=srv.url, model=srv.served)
        ...
        srv.max_in_flight, srv.requests   # what the server saw

It checks what it receives as a strict server would (the served model name, the bearer key
when one is set, content parts of type ``text`` / ``input_audio`` only, base64 WAV that
decodes) and answers 400 otherwise, so the tests prove the adapter sent well-formed requests.

Backends: ``echo`` answers with a function of the input (``heard 1.25 s at 16000 Hz; text:
…; system: …``, and for audio answers a tone whose length follows the text): fast and exact.
``cascade`` answers with the ``cascade`` reference model (``load_model("cascade", {})``:
ASR -> n-gram text LM -> Piper TTS, offline), one request at a time. ``script`` answers with
``script(text)``, a function of the user's text (fault tokens removed) that the test gives
(``OpenAIServer("script", script=...)``): scripted answers for text judges.

Faults are chosen per request by tokens in its text, ``[fault:SPEC]``, where SPEC is one of
(``xN``: only the first N attempts of that request text; without it, every attempt):

- ``latency=S``: answer after S seconds; ``slowxN=S``: the first N attempts take S seconds
- ``500xN``, ``503xN``: that status (JSON error body)
- ``429xN`` with ``retry_after=S``: 429 with a ``Retry-After: S`` header
- ``400``, ``403``, ``404``: non-retryable errors; ``echokey``: a 401 whose message quotes the
  bearer key
- ``badjson``: status 200, a body cut in the middle of the JSON
- ``nochoices``: status 200, valid JSON without ``choices``
- ``truncaudio``: the answer's WAV cut to half (valid base64); ``badb64``: base64 cut mid-group
- ``noaudio``: a text answer although audio was asked for
- ``dropxN``: close the connection without answering

``latency`` on the server adds to every request (the benchmark's injected latency).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import io
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile as sf
from aiohttp import web

FAULT = re.compile(r"\[fault:([^\]]*)\]")
ECHO_RATE = 24000


def wav_b64(x: np.ndarray, rate: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIServer:
    """The app, its thread and what it saw (counters are read from the test's thread)."""

    def __init__(
        self,
        backend: str = "echo",
        *,
        served: str = "test-audio-model",
        api_key: str | None = None,
        latency: float = 0.0,
        script: Callable[[str], str] | None = None,
    ) -> None:
        if (backend == "script") != (script is not None):
            raise ValueError("backend 'script' takes script=..., and only it does")
        self.backend, self.served, self.api_key, self.latency = backend, served, api_key, latency
        self.script = script
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []  # every chat payload received, in order
        self.answered: list[str] = []  # user texts answered with 200, in order
        self.attempts: collections.Counter[str] = collections.Counter()  # by user text
        self.models_calls = 0
        self.cascade: Any = None
        self._cascade_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        if self.backend == "cascade":
            from speechlm_eval.runner import load_model

            self.cascade = load_model("cascade", {})
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free port, held from here on (no race)
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start(sock))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="openai-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("test server did not start")
        return self

    async def _start(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        runner = self._runner
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget what was seen (between the parts of one test)."""
        with self.lock:
            self.max_in_flight = 0
            self.requests.clear()
            self.answered.clear()
            self.attempts.clear()

    # --- routes --------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        self.models_calls += 1
        # ``created`` changes per call, as vLLM's does: it must stay out of identities.
        card = {
            "id": self.served,
            "object": "model",
            "created": int(time.time() * 1000),
            "owned_by": "speechlm-eval-tests",
            "root": f"{self.backend}-backend",
        }
        return web.json_response({"object": "list", "data": [card]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not JSON")
        try:
            inp = self._read_input(payload)
        except ValueError as e:
            return _error(400, str(e))
        text = inp["text"]
        with self.lock:
            self.requests.append(payload)
            self.attempts[text] += 1
            attempt = self.attempts[text]
        faults = _faults(text)

        def active(name: str) -> bool:
            if name not in faults:
                return False
            n = faults[name].get("times")
            return n is None or attempt <= n

        if "latency" in faults:
            await asyncio.sleep(float(faults["latency"]["value"]))
        if active("slow"):
            await asyncio.sleep(float(faults["slow"]["value"]))
        if active("drop"):
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        for code in (500, 503):
            if active(str(code)):
                return _error(code, f"injected {code}")
        if active("429"):
            wait = faults.get("retry_after", {}).get("value", "1")
            return _error(429, "rate limited", headers={"Retry-After": str(wait)})
        if active("400"):
            return _error(400, "injected: unsupported parameter 'foo'")
        for code in (403, 404):
            if active(str(code)):
                return _error(code, f"injected {code}")
        if active("echokey"):
            got = request.headers.get("Authorization", "")
            return _error(401, f"Incorrect API key provided: {got.removeprefix('Bearer ')}")

        want_audio = "audio" in (payload.get("modalities") or [])
        audio_fmt = (payload.get("audio") or {}).get("format", "wav")
        answer, speech = await self._backend(inp, want_audio)
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if want_audio and not active("noaudio"):
            assert speech is not None
            data = _encode(speech, audio_fmt)
            if active("truncaudio"):
                raw = base64.b64decode(data)
                data = base64.b64encode(raw[: len(raw) // 2]).decode("ascii")
            if active("badb64"):
                data = data[: len(data) // 2 - 1]
            # OpenAI's audio answers: content null, the words in the audio's transcript.
            message = {
                "role": "assistant",
                "content": None,
                "audio": {"id": "audio_1", "data": data, "expires_at": 0, "transcript": answer},
            }
        body = {
            "id": f"chatcmpl-{attempt}",
            "object": "chat.completion",
            "created": 0,
            "model": self.served,
            "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        if active("badjson"):
            raw = json.dumps(body)
            return web.Response(text=raw[: len(raw) // 2], content_type="application/json")
        if active("nochoices"):
            del body["choices"]
        with self.lock:
            self.answered.append(text)
        return web.json_response(body)

    # --- pieces --------------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "missing or wrong API key")
        return None

    def _read_input(self, payload: Any) -> dict[str, Any]:
        """The user's text, audio and the system prompt; ValueError for anything a strict
        server would refuse."""
        if not isinstance(payload, dict) or payload.get("model") != self.served:
            got = payload.get("model") if isinstance(payload, dict) else None
            raise ValueError(f"The model `{got}` does not exist.")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        system, texts, audios = None, [], []
        for m in messages:
            role, content = m.get("role"), m.get("content")
            if role == "system":
                system = content
                continue
            if role != "user":
                raise ValueError(f"unexpected role {role!r}")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for p in parts:
                kind = p.get("type")
                if kind == "text":
                    texts.append(p["text"])
                elif kind == "input_audio":
                    ia = p["input_audio"]
                    if ia.get("format") != "wav":
                        raise ValueError(f"unsupported input_audio format {ia.get('format')!r}")
                    try:
                        raw = base64.b64decode(ia["data"], validate=True)
                        x, sr = sf.read(io.BytesIO(raw), dtype="float32")
                    except (binascii.Error, ValueError, RuntimeError, sf.LibsndfileError) as e:
                        raise ValueError(f"input_audio is not base64 WAV ({e})") from None
                    audios.append((x, int(sr)))
                else:
                    raise ValueError(f"unknown content part type {kind!r}")
        return {"text": "\n".join(texts), "audios": audios, "system": system}

    async def _backend(
        self, inp: dict[str, Any], want_audio: bool
    ) -> tuple[str, tuple[np.ndarray, int] | None]:
        text = FAULT.sub("", inp["text"]).strip()
        if self.backend == "script":
            assert self.script is not None
            return self.script(text), None
        if self.backend == "cascade":
            return await asyncio.get_running_loop().run_in_executor(
                None, self._cascade_answer, text, inp["audios"]
            )
        heard = "; ".join(f"heard {x.size / sr:.2f} s at {sr} Hz" for x, sr in inp["audios"])
        answer = f"{heard or 'no audio'}; text: {text}; system: {inp['system']}"
        speech = None
        if want_audio:
            n = int(ECHO_RATE * (0.1 + 0.01 * len(answer)))
            t = np.arange(n) / ECHO_RATE
            speech = ((0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), ECHO_RATE)
        return answer, speech

    def _cascade_answer(
        self, text: str, audios: list[tuple[np.ndarray, int]]
    ) -> tuple[str, tuple[np.ndarray, int]]:
        from speechlm_eval.audio import Audio
        from speechlm_eval.model import RespondRequest

        audio = None
        if audios:
            x, sr = audios[0]
            audio = Audio(np.ascontiguousarray(x, dtype=np.float32), sr, "request")
        with self._cascade_lock:  # one at a time: the cascade's parts are not made for threads
            (res,) = self.cascade.respond([RespondRequest(text=text or None, audio=audio)])
        return res.text, (res.audio.samples, res.audio.sample_rate)


def _faults(text: str) -> dict[str, dict[str, Any]]:
    """``[fault:500x2]`` -> {"500": {"times": 2}}; ``[fault:latency=0.2]`` -> {"latency":
    {"value": "0.2"}}; several tokens combine."""
    out: dict[str, dict[str, Any]] = {}
    for spec in FAULT.findall(text):
        name, _, value = spec.partition("=")
        m = re.fullmatch(r"(\w+?)x(\d+)", name)
        entry: dict[str, Any] = {"value": value or None, "times": None}
        if m and m.group(1) in ("500", "503", "429", "slow", "drop", "400"):
            name, entry["times"] = m.group(1), int(m.group(2))
        out[name] = entry
    return out


def _encode(speech: tuple[np.ndarray, int], fmt: str) -> str:
    x, sr = speech
    if fmt == "pcm16":
        if sr != ECHO_RATE:  # OpenAI's pcm16 is 24 kHz
            from scipy.signal import resample_poly

            x = resample_poly(x, ECHO_RATE // 1000, sr // 1000).astype(np.float32)
        pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
        return base64.b64encode(pcm.tobytes()).decode("ascii")
    return wav_b64(x, sr)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    """Serve until standard input closes: ``python tests/openai_server.py --latency 0.2``
    prints the base URL (``http://127.0.0.1:PORT/v1``) on its first line (the benchmark
    runs the server in its own process, so that its work is not timed as the adapter's)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("echo", "cascade"), default="echo")
    p.add_argument("--served", default="test-audio-model")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    a = p.parse_args()
    with OpenAIServer(a.backend, served=a.served, latency=a.latency) as srv:
        print(srv.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
