"""A real OpenAI Realtime websocket server on 127.0.0.1 for the ``openai-realtime`` tests.

An aiohttp app serving ``GET /v1/realtime?model=…`` (websocket upgrade) on its own event loop
in a background thread::

    with RealtimeServer() as srv:
        model = OpenAIRealtime(base_url=srv.url, model=srv.served)
        ...
        srv.sessions[-1]   # what the server saw in each session

It checks what it receives as a strict server would (the served model name, the bearer key
when one is set, the ``OpenAI-Beta`` header in beta mode, a ``session.update`` asking for
24 kHz PCM in and out with server VAD, appends holding base64 PCM16, known client event
types) and answers with an ``error`` event (or refuses the handshake) otherwise.

The model behind it is the ``cascade`` reference model's streaming session
(``RealtimeServer(cascade=Cascade(...))``, see :class:`_CascadeBackend`) or, by default, a
deterministic stand-in that echoes: an energy VAD on 10 ms windows
(RMS above :data:`SPEECH_RMS`) emits ``input_audio_buffer.speech_started`` (``audio_start_ms``
less the session's ``prefix_padding_ms``) and, after ``silence_duration_ms`` of silence,
``speech_stopped`` / ``committed`` and a response whose audio is the user's turn (from its
first to its last speech window) at half amplitude, with the transcript ``echo of N
samples``. Every event caused by an append is sent before the next message is read, so
what the client receives per appended frame is a function of the audio alone.

``paced=True``: a response's audio is not sent at once but 80 ms when it starts and one
80 ms chunk per append received after (a server generating in real time), so a response
stays in progress across frames;
with ``interrupt_response`` the server cancels it itself when the user starts speaking
(``response.done`` with status ``cancelled``), and a later ``response.cancel`` gets the
``response_cancel_not_active`` error, as OpenAI's server answers.

Faults, set per session by the test (``srv.fault = ("close", 5)``: after the 5th append):
``close`` (close frame 1011), ``drop`` (the TCP connection cut, no close frame),
``garbage`` (a text message that is not JSON), ``notype`` (JSON without ``type``),
``badb64`` / ``oddbytes`` (an audio delta not base64 / of 3 bytes), ``stall``
(``response.created`` and then silence), ``error`` (an ``error`` event quoting the bearer
key, as some servers do), ``failed`` (``response.done`` with status ``failed``);
``("no_update", 0)``: ``session.update`` is never answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import socket
import threading
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

RATE = 24000
WINDOW = 240  # 10 ms at 24 kHz: the stand-in VAD's step
SPEECH_RMS = 0.02
CHUNK = 4800  # samples per audio delta when a response is sent at once (200 ms)
PACED_CHUNK = 1920  # samples per append when paced (80 ms)
CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    }
)


class RealtimeServer:
    """The app, its thread and what it saw (read from the test's thread after a session)."""

    def __init__(
        self,
        *,
        served: str = "test-realtime-model",
        api_key: str | None = None,
        protocol: str = "ga",
        paced: bool = False,
        cascade: Any = None,
    ) -> None:
        self.served, self.api_key, self.protocol, self.paced = served, api_key, protocol, paced
        self.cascade = cascade  # a Cascade: serve its streaming session instead of the echo
        self.fault: tuple[str, int] | None = None
        self.think = 0.0  # seconds between response.created and the first audio
        self.sessions: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle (as tests/openai_server.py) ---------------------------------------------------

    def start(self) -> RealtimeServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free port, held from here on
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start(sock))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="realtime-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("test server did not start")
        return self

    async def _start(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._realtime)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> RealtimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one websocket session -------------------------------------------------------------------

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return _http_error(401, "missing or wrong API key")
        if request.query.get("model") != self.served:
            return _http_error(404, f"The model `{request.query.get('model')}` does not exist.")
        if self.protocol == "beta" and request.headers.get("OpenAI-Beta") != "realtime=v1":
            return _http_error(400, "this server speaks the beta: OpenAI-Beta: realtime=v1")
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        state = _Session(self, ws, request)
        self.sessions.append(state.record)
        try:
            await state.run()
        finally:
            state.record["closed"] = True
        return ws


class _Session:
    """The stand-in model's state for one connection."""

    def __init__(
        self, server: RealtimeServer, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.srv, self.ws, self.request = server, ws, request
        self.auth = request.headers.get("Authorization", "")
        self.fault = server.fault
        self.paced = server.paced
        self.config: dict[str, Any] | None = None
        self.vad: dict[str, Any] = {}
        self.audio: list[np.ndarray] = []  # every appended sample, in order
        self.pending = np.zeros(0, dtype=np.float32)  # not yet a whole VAD window
        self.pos = 0  # samples given to the VAD
        self.turn_start: int | None = None
        self.last_speech = 0
        self.silence = 0
        self.n_events = 0
        self.n_turns = 0
        self.appends = 0
        self.response: dict[str, Any] | None = None  # in progress (paced): id, item, left
        self.stalled = False
        self.backend: _CascadeBackend | None = None
        self.record: dict[str, Any] = {
            "update": None,
            "appends": 0,
            "received": [],
            "truncates": [],
            "cancels": 0,
            "responses": [],
            "closed": False,
        }

    async def run(self) -> None:
        await self.emit("session.created", session={"type": "realtime", "model": self.srv.served})
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                await self.error("invalid_request_error", "expected text messages")
                continue
            try:
                ev = json.loads(msg.data)
                kind = ev["type"]
            except (json.JSONDecodeError, KeyError, TypeError):
                await self.error("invalid_request_error", "not a JSON event with a type")
                continue
            self.record["received"].append(kind)
            if self.stalled:
                continue
            if kind not in CLIENT_EVENTS:
                await self.error("invalid_request_error", f"Invalid value: '{kind}'")
            elif kind == "session.update":
                await self.update(ev.get("session"))
            elif kind == "input_audio_buffer.append":
                if await self.append(ev.get("audio")) == "closed":
                    return
            elif kind == "conversation.item.truncate":
                self.record["truncates"].append(
                    {k: ev.get(k) for k in ("item_id", "content_index", "audio_end_ms")}
                )
                await self.emit("conversation.item.truncated", item_id=ev.get("item_id"))
            elif kind == "response.cancel":
                self.record["cancels"] += 1
                if self.response is not None:
                    await self.finish("cancelled")
                else:
                    await self.error(
                        "invalid_request_error",
                        "Cancellation failed: no active response found",
                        code="response_cancel_not_active",
                    )

    # --- events out ------------------------------------------------------------------------------

    async def emit(self, kind: str, **fields: Any) -> None:
        self.n_events += 1
        await self.ws.send_str(
            json.dumps({"event_id": f"ev_{self.n_events}", "type": kind, **fields})
        )

    async def error(self, kind: str, message: str, code: str | None = None) -> None:
        await self.emit("error", error={"type": kind, "code": code, "message": message})

    # --- client events ---------------------------------------------------------------------------

    async def update(self, session: Any) -> None:
        problem = self.check_session(session)
        if problem:
            await self.error("invalid_request_error", problem)
            return
        self.config = session
        self.record["update"] = session
        if self.fault == ("no_update", 0):
            return
        await self.emit("session.updated", session=session)

    def check_session(self, s: Any) -> str | None:
        if not isinstance(s, dict):
            return "session must be an object"
        if self.srv.protocol == "ga":
            pcm = {"type": "audio/pcm", "rate": RATE}
            if s.get("type") != "realtime":
                return "session.type must be 'realtime'"
            audio = s.get("audio") or {}
            inp, out = audio.get("input") or {}, audio.get("output") or {}
            if inp.get("format") != pcm or out.get("format") != pcm:
                return "this server takes audio/pcm at 24000 Hz only"
            if s.get("output_modalities") != ["audio"]:
                return "output_modalities must be ['audio']"
            vad, voice = inp.get("turn_detection"), out.get("voice")
        else:
            if s.get("input_audio_format") != "pcm16" or s.get("output_audio_format") != "pcm16":
                return "this server takes pcm16 only"
            vad, voice = s.get("turn_detection"), s.get("voice")
        if not isinstance(voice, str):
            return "voice must be a string"
        if not isinstance(vad, dict) or vad.get("type") != "server_vad":
            return "this server needs turn_detection of type server_vad"
        self.vad = vad
        return None

    async def append(self, audio: Any) -> str | None:
        if self.config is None:
            await self.error("invalid_request_error", "append before session.update")
            return None
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError, TypeError):
            await self.error("invalid_request_error", "audio is not base64")
            return None
        if len(raw) % 2:
            await self.error("invalid_request_error", "audio is not whole PCM16 samples")
            return None
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        self.audio.append(x)
        self.appends += 1
        self.record["appends"] = self.appends
        self.record["samples"] = sum(a.size for a in self.audio)
        if self.fault is not None and self.fault[1] == self.appends:
            return await self.inject(self.fault[0])
        if self.response is not None and self.paced:
            await self.paced_chunk()  # the audio generated while this frame arrived
        if self.srv.cascade is not None:
            await self.cascade_frame(x)
            return None
        self.pending = np.concatenate([self.pending, x])
        while self.pending.size >= WINDOW:
            w, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            await self.window(w)
        return None

    async def inject(self, kind: str) -> str | None:
        if kind == "close":
            await self.ws.close(code=1011, message=b"injected close")
            return "closed"
        if kind == "drop":
            assert self.request.transport is not None
            self.request.transport.abort()  # no close frame: the connection is just gone
            return "closed"
        if kind == "garbage":
            await self.ws.send_str("<html>502 Bad Gateway</html>")
        elif kind == "notype":
            await self.ws.send_str(json.dumps({"event_id": "x", "delta": "AAAA"}))
        elif kind in ("badb64", "oddbytes"):
            data = "AAA" if kind == "badb64" else base64.b64encode(b"\x01\x02\x03").decode()
            await self.emit(self.delta_type, response_id="resp_x", item_id="item_x", delta=data)
        elif kind == "stall":
            await self.emit("response.created", response={"id": "resp_stall"})
            self.stalled = True
        elif kind == "error":
            await self.error("invalid_request_error", f"Incorrect API key: {self.auth}")
        elif kind == "failed":
            await self.emit("response.created", response={"id": "resp_f"})
            detail = {"type": "failed", "error": {"type": "server_error", "code": "overloaded"}}
            await self.emit(
                "response.done",
                response={"id": "resp_f", "status": "failed", "status_details": detail},
            )
        else:
            raise AssertionError(f"unknown fault {kind!r}")
        return None

    # --- the stand-in model ----------------------------------------------------------------------

    @property
    def delta_type(self) -> str:
        return (
            "response.output_audio.delta" if self.srv.protocol == "ga" else "response.audio.delta"
        )

    async def window(self, w: np.ndarray) -> None:
        start, self.pos = self.pos, self.pos + w.size
        speech = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) > SPEECH_RMS
        if self.turn_start is None:
            if not speech:
                return
            self.turn_start, self.last_speech, self.silence = start, self.pos, 0
            pad = int(self.vad.get("prefix_padding_ms", 300))
            await self.emit(
                "input_audio_buffer.speech_started",
                audio_start_ms=max(0, start * 1000 // RATE - pad),
                item_id=f"item_user_{self.n_turns}",
            )
            if self.response is not None and self.vad.get("interrupt_response", True):
                await self.finish("cancelled")
            return
        if speech:
            self.last_speech, self.silence = self.pos, 0
            return
        self.silence += w.size
        if self.silence * 1000 < int(self.vad.get("silence_duration_ms", 500)) * RATE:
            return
        turn = np.concatenate(self.audio)[self.turn_start : self.last_speech]
        item = f"item_user_{self.n_turns}"
        await self.emit(
            "input_audio_buffer.speech_stopped", audio_end_ms=self.pos * 1000 // RATE, item_id=item
        )
        await self.emit("input_audio_buffer.committed", item_id=item)
        self.turn_start = None
        await self.respond(turn)

    async def cascade_frame(self, x: np.ndarray) -> None:
        if self.backend is None:
            self.backend = _CascadeBackend(self, asyncio.get_running_loop())
        await self.backend.frame(x)

    async def start_response(self) -> None:
        if self.response is not None:
            await self.finish("completed")
        rid, item = f"resp_{self.n_turns}", f"item_answer_{self.n_turns}"
        self.n_turns += 1
        self.record["responses"].append({"id": rid})
        await self.emit("response.created", response={"id": rid, "status": "in_progress"})
        self.response = {"id": rid, "item": item, "left": np.zeros(0, "<i2")}

    async def respond(self, turn: np.ndarray) -> None:
        rid, item = f"resp_{self.n_turns}", f"item_answer_{self.n_turns}"
        self.n_turns += 1
        answer = 0.5 * turn
        pcm = np.round(np.clip(answer, -1, 1) * 32767).astype("<i2")
        self.record["responses"].append({"id": rid, "samples": int(pcm.size)})
        await self.emit("response.created", response={"id": rid, "status": "in_progress"})
        if self.srv.think:
            await asyncio.sleep(self.srv.think)  # "generating" the first audio
        await self.emit(
            f"response.{'output_audio' if self.srv.protocol == 'ga' else 'audio'}_transcript.delta",
            response_id=rid,
            item_id=item,
            delta=f"echo of {pcm.size} samples",
        )
        self.response = {"id": rid, "item": item, "left": pcm}
        if self.paced:
            await self.paced_chunk()  # the first 80 ms at once, the rest one per append
            return
        while self.response["left"].size:
            await self.paced_chunk(CHUNK)
        await self.finish("completed")

    async def paced_chunk(self, size: int = PACED_CHUNK) -> None:
        assert self.response is not None
        left = self.response["left"]
        chunk, self.response["left"] = left[:size], left[size:]
        await self.emit(
            self.delta_type,
            response_id=self.response["id"],
            item_id=self.response["item"],
            output_index=0,
            content_index=0,
            delta=base64.b64encode(chunk.tobytes()).decode("ascii"),
        )
        if self.paced and not self.response["left"].size:
            await self.finish("completed")

    async def finish(self, status: str) -> None:
        assert self.response is not None
        rid, self.response = self.response["id"], None
        await self.emit("response.done", response={"id": rid, "status": status})


class _CascadeBackend:
    """The cascade's own streaming session (16 kHz, 80 ms frames) behind the protocol: each
    appended 80 ms at 24 kHz is resampled to 16 kHz and stepped; the cascade's next frame,
    back at 24 kHz, is the audio delta. A response is announced (``response.created``)
    when the cascade starts computing an answer, before its ASR, text LM and TTS run, as a
    hosted server announces one before its first audio; it is done when the cascade falls
    silent."""

    def __init__(self, session: _Session, loop: asyncio.AbstractEventLoop) -> None:
        from speechlm_eval.model import SessionInfo

        self.s, self.loop = session, loop
        cascade = session.srv.cascade
        self.inner = cascade.open_session(SessionInfo("realtime", 0, 16000, 1280))
        answer = self.inner._answer

        def announced(audio: np.ndarray) -> None:
            asyncio.run_coroutine_threadsafe(self.s.start_response(), loop).result(30)
            answer(audio)

        self.inner._answer = announced  # runs on the executor's thread

    async def frame(self, x24: np.ndarray) -> None:
        from scipy.signal import resample_poly

        x16 = resample_poly(x24, 2, 3).astype(np.float32)
        out16 = await self.loop.run_in_executor(None, self.inner.step, x16)
        s = self.s
        if not np.any(out16):
            if s.response is not None:
                await s.finish("completed")
            return
        if s.response is None:  # speaking again after a silent frame inside an answer
            await s.start_response()
        assert s.response is not None
        out24 = np.clip(resample_poly(out16, 3, 2), -1, 1)
        s.response["left"] = np.round(out24 * 32767).astype("<i2")
        await s.paced_chunk(out24.size)


def _http_error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return web.json_response(body, status=status)
