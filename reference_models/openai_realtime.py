"""``openai-realtime``: a ``converse`` model behind an OpenAI Realtime API websocket.

Protocol followed: the Realtime API as released for general availability (``gpt-realtime``,
openai-python's ``types/realtime``; default ``protocol=ga``), or the earlier beta
(``protocol=beta``: ``OpenAI-Beta: realtime=v1`` header, flat session fields,
``response.audio.delta``) that several open servers still speak. One harness session is one
websocket, ``{base_url}/realtime?model=MODEL`` (``http`` becomes ``ws``), with
``Authorization: Bearer <key>`` when the variable named by ``api_key_env`` is set:

1. open: wait for ``session.created`` (when the server sends it), send ``session.update``
   (24 kHz PCM16 in and out, audio output, ``voice``, server-VAD ``turn_detection`` with
   ``threshold`` / ``prefix_padding_ms`` / ``silence_duration_ms``, automatic responses, the
   server interrupting its own response when the user starts speaking; ``instructions``,
   ``temperature`` and ``max_output_tokens`` when given) and wait for ``session.updated``;
2. every harness frame (:attr:`converse_frame_seconds` = 80 ms at 24 kHz) is sent as one
   ``input_audio_buffer.append`` (base64 little-endian PCM16); the server's VAD decides turns
   and starts responses by itself (no ``commit`` / ``response.create`` is sent);
3. ``response.output_audio.delta`` (GA) / ``response.audio.delta`` (beta) chunks are decoded
   and queued; each step returns the next 80 ms of the queue (silence when it is empty), so
   an answer is played continuously from the frame after it arrived;
4. barge-in (``barge_in=true``): on ``input_audio_buffer.speech_started`` while the model
   still has audio queued or a response in progress, the queued audio is dropped (the frame
   returned by that very step is already silent), the server is told how much of the item
   was played (``conversation.item.truncate`` with ``audio_end_ms``) and the response is
   cancelled (``response.cancel``; the server's "no active response" answer to a cancel it
   had already done itself is expected and ignored); late deltas of that response are
   dropped.

When events count (``pacing``)
    The harness' timeline is virtual: it calls ``step`` as fast as the model answers. The
    adapter maps the server's events onto frames in one of two ways, both recorded in the
    identity:

    - ``quiet`` (default): after appending frame ``i`` it reads events until none has
      arrived for ``quiet`` seconds (at most ``max_wait`` seconds in all), then returns the
      next frame of the queue. A response that has started (``response.created``) but sent
      no audio yet is waited for whatever the pause (``max_wait`` at most): the time the
      server takes to compute its first audio is kept off the timeline, as the harness does
      for local models (latencies are measured on the audio timeline, not the wall clock).
      Against a server whose events for an append are a deterministic function of the audio
      (a local open model, the tests' server), the model channel is then reproducible
      however long the server computes, provided it announces a response before computing
      it and no pause within a response's audio exceeds ``quiet``. A step costs at least
      ``quiet`` seconds of wall clock, so a session runs slower than real time
      (``quiet / 0.08`` times).
    - ``realtime``: frames are sent on the wall clock (frame ``i`` when it has been "heard",
      at ``(i + 1) * 80 ms`` after the first step); a step returns the audio that arrived
      before that moment. This is how a live caller would be served (a hosted model fed
      faster than real time may behave differently), and it is the choice for hosted models.

Limits (stated here and in :meth:`OpenAIRealtime.identity`'s ``notes``)
    A hosted realtime model runs on the wall clock: where an answer lands on the timeline
    reflects the server's processing and network delays (in ``quiet`` mode: how long its
    voice activity detection and turn decision took, and any pause longer than ``quiet``
    inside an answer; not its time to first audio), and sampling is not seeded (the Realtime
    API takes no seed, so :attr:`SessionInfo.seed` is unused). Results from a live server
    are not bit-reproducible; rerunning a session can move an answer by frames or change its
    words. The harness' wall-clock figures (``realtime`` of the result) time the whole
    exchange, network included.

Failures (connection refused, a handshake refused, e.g. 401, the server closing the socket
mid-session, an ``error`` event, a message that is not a JSON event, audio that is not
base64 or is cut mid-sample, no ``session.updated`` within ``timeout`` seconds, a response
in progress with no event for ``timeout`` seconds) raise one
:class:`~speechlm_eval.errors.PluginError` naming the session and the frame; the harness
then keeps nothing of the session.

The API key is read from the environment when the model is made, sent only in the handshake
header, and never written: not in the identity, the model arguments, a log line or an error
message (server texts quoting it are redacted).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import json
import logging
import os
import time
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from speechlm_eval.endpoints import MAX_MESSAGE, check_base_url, check_env_name, error_text
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import SessionInfo, SpeechLM
from speechlm_eval.options import REQUIRED, Opt, Spec

__all__ = ["PCM_RATE", "OpenAIRealtime", "RealtimeSession", "check_ws_url"]

log = logging.getLogger(__name__)

PCM_RATE = 24000  # the Realtime API's PCM: 16-bit little-endian mono, 24 kHz only
FRAME_SECONDS = 0.08  # one append per harness frame (the API takes any chunk size)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # an audio delta event can exceed websockets' 1 MiB
# ``error`` codes that answer a race, not a fault: a cancel for a response the server had
# already cancelled itself (server VAD with interrupt_response) or finished.
BENIGN_ERRORS = frozenset({"response_cancel_not_active"})
AUDIO_DELTAS = {"ga": "response.output_audio.delta", "beta": "response.audio.delta"}


def check_ws_url(value: str) -> str:
    """An endpoint base URL (``http(s)://`` or ``ws(s)://host[:port]/path``, no
    credentials, query or fragment) as given, without a trailing slash; ``ValueError``
    otherwise."""
    parts = urlsplit(value.strip())
    as_http = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    try:
        checked = check_base_url(urlunsplit((as_http, *parts[1:])))
    except ValueError as e:
        raise ValueError(str(e).replace("http(s)://", "http(s):// or ws(s)://")) from None
    return urlunsplit((parts.scheme, *urlsplit(checked)[1:]))


def _websocket_url(base_url: str, model: str) -> str:
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, f"model={quote(model, safe='')}", ""))


OPTIONS = Spec(
    {
        "base_url": Opt(str, REQUIRED, check=check_ws_url, doc="e.g. https://api.openai.com/v1"),
        "model": Opt(str, REQUIRED, doc="the served model name (sent as ?model=)"),
        "api_key_env": Opt(
            str,
            "OPENAI_API_KEY",
            identity=False,
            check=check_env_name,
            doc="variable holding the key",
        ),
        "protocol": Opt(str, "ga", choices=("ga", "beta"), doc="Realtime API version spoken"),
        "voice": Opt(str, "alloy", doc="output voice"),
        "instructions": Opt(str, None, doc="system instructions; none: the server's default"),
        "temperature": Opt(float, None, ge=0, doc="sent when given (GA: 0.6 to 1.2)"),
        "max_output_tokens": Opt(int, None, ge=1, doc="per response; sent when given"),
        "vad_threshold": Opt(float, 0.5, ge=0, le=1, doc="server VAD activation threshold"),
        "prefix_padding_ms": Opt(int, 300, ge=0, doc="audio kept before detected speech"),
        "silence_duration_ms": Opt(int, 500, ge=0, doc="silence that ends a user turn"),
        "barge_in": Opt(bool, True, doc="stop speaking when the user starts speaking"),
        "pacing": Opt(str, "quiet", choices=("quiet", "realtime"), doc="see the module doc"),
        "quiet": Opt(float, 0.2, gt=0, doc="quiet pacing: seconds without events ending a step"),
        "max_wait": Opt(float, 10.0, gt=0, doc="quiet pacing: longest step (s)"),
        "timeout": Opt(
            float,
            30.0,
            gt=0,
            identity=False,
            doc="seconds to connect, to get session.updated, and of silence in a response",
        ),
    },
    noun="model argument",
)


class OpenAIRealtime(SpeechLM):
    """A ``converse`` model served over the OpenAI Realtime websocket protocol (module doc)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"converse"})
    name: ClassVar[str] = "openai-realtime"
    options: ClassVar[Spec] = OPTIONS
    sample_rate = PCM_RATE
    converse_frame_seconds: ClassVar[float | None] = FRAME_SECONDS

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        # ``device`` is accepted and unused: the server computes.
        if "api_key" in kwargs:
            # Named without its value: a key in model arguments would reach the results file.
            raise ConfigError(
                f"{self.name}: the API key is not a model argument; put it in an environment "
                "variable and name that with api_key_env=NAME"
            )
        o = self.options.parse(self.name, kwargs)
        super().__init__(device=device, **kwargs)
        try:
            import websockets.sync.client  # noqa: F401  (checked here, used per session)
        except ImportError:
            raise PluginError(
                f"{self.name} needs websockets: pip install 'speechlm-eval[endpoints]'"
            ) from None
        self.o = o
        self.base_url: str = o["base_url"]
        self.served_name: str = o["model"]
        self.url = _websocket_url(self.base_url, self.served_name)
        # Kept to send in the handshake and to redact from server texts; never written.
        self._secret = os.environ.get(o["api_key_env"], "")
        self.sessions_opened = 0
        self.last_session: RealtimeSession | None = None  # for inspection (events, words)

    # --- identity ------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Endpoint (no credentials), served model, every session setting that changes the
        model channel and how events are placed on the timeline; never the key."""
        cls = type(self)
        o = self.o
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "api": f"realtime ({o['protocol']})",
            "endpoint": self.url,
            "model": self.served_name,
            "session": self.session_config(),
            "frame_seconds": FRAME_SECONDS,
            "barge_in": o["barge_in"],
            "pacing": {
                "mode": "quiet",
                "quiet_s": o["quiet"],
                "max_wait_s": o["max_wait"],
                "first_audio": "waited for (server compute time off the timeline)",
            }
            if o["pacing"] == "quiet"
            else {"mode": "realtime"},
            "notes": (
                "hosted realtime models run on the wall clock: answer timing reflects server "
                "and network delays, sampling is unseeded; results from a live server are "
                "not bit-reproducible"
            ),
        }

    def session_config(self) -> dict[str, Any]:
        """The ``session`` object of ``session.update`` (in the chosen protocol's shape)."""
        o = self.o
        vad = {
            "type": "server_vad",
            "threshold": o["vad_threshold"],
            "prefix_padding_ms": o["prefix_padding_ms"],
            "silence_duration_ms": o["silence_duration_ms"],
            "create_response": True,
            "interrupt_response": bool(o["barge_in"]),
        }
        if o["protocol"] == "ga":
            pcm = {"type": "audio/pcm", "rate": PCM_RATE}
            session: dict[str, Any] = {
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {"format": pcm, "turn_detection": vad},
                    "output": {"format": pcm, "voice": o["voice"]},
                },
            }
            if o["max_output_tokens"] is not None:
                session["max_output_tokens"] = o["max_output_tokens"]
        else:
            session = {
                # The beta takes audio only together with text.
                "modalities": ["text", "audio"],
                "voice": o["voice"],
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "turn_detection": vad,
            }
            if o["max_output_tokens"] is not None:
                session["max_response_output_tokens"] = o["max_output_tokens"]
        if o["instructions"] is not None:
            session["instructions"] = o["instructions"]
        if o["temperature"] is not None:
            session["temperature"] = o["temperature"]
        return session

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    # --- converse ------------------------------------------------------------------------------

    def open_session(self, info: SessionInfo) -> RealtimeSession:
        """Connect and configure one websocket session (see the module doc)."""
        if info.sample_rate != PCM_RATE:
            raise PluginError(
                f"{self.name}: converse session {info.key!r}: the harness gave "
                f"{info.sample_rate} Hz; the Realtime API takes {PCM_RATE} Hz PCM"
            )
        self.sessions_opened += 1
        self.last_session = RealtimeSession(self, info)
        return self.last_session


class RealtimeSession:
    """One conversation over one websocket (see the module doc). ``events`` lists
    ``(frame, type)`` of every server event, for inspection; ``transcripts`` the words of
    each response by its id (its ``…audio_transcript.delta`` texts, as received)."""

    def __init__(self, model: OpenAIRealtime, info: SessionInfo) -> None:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self.m = model
        self.o = model.o
        self.key = info.key
        self.n = info.frame_samples
        self.frame = -1  # the frame being handled (-1: opening)
        self.delta_type = AUDIO_DELTAS[self.o["protocol"]]
        # Queued answer audio: [item_id, content_index, samples, next sample to play].
        self.queue: collections.deque[list[Any]] = collections.deque()
        self.played: dict[str, int] = {}  # samples of each item handed to the harness
        self.active: str | None = None  # the response in progress, if any
        self.heard_from = False  # whether it has sent audio yet
        self.cancelled: set[str] = set()
        self.events: list[tuple[int, str]] = []
        self.transcripts: dict[str, list[str]] = {}
        self.last_event = time.monotonic()
        self.t0: float | None = None  # wall clock of the first step (realtime pacing)
        self.ws: Any = None

        headers = {"Authorization": f"Bearer {model._secret}"} if model._secret else {}
        if self.o["protocol"] == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        timeout = self.o["timeout"]
        # Entered as a context manager (websockets' supported use), left in close().
        self._stack = contextlib.ExitStack()
        try:
            self.ws = self._stack.enter_context(
                connect(
                    model.url,
                    additional_headers=headers,
                    open_timeout=timeout,
                    close_timeout=2,
                    max_size=MAX_MESSAGE_BYTES,
                    compression=None,  # audio does not deflate; spare the CPU
                )
            )
        except InvalidStatus as e:
            status = e.response.status_code
            body = e.response.body.decode("utf-8", "replace") if e.response.body else ""
            try:  # an OpenAI-style {"error": {"message": ...}} body, else the text
                parsed = json.loads(body)
                body = error_text(parsed.get("error", parsed) if isinstance(parsed, dict) else body)
            except json.JSONDecodeError:
                pass
            detail = f": {_server_text(body)}" if body.strip() else ""
            raise self._error(f"handshake refused: HTTP {status}{detail}") from None
        except TimeoutError:
            raise self._error(f"no handshake within {timeout:g} s") from None
        except (OSError, WebSocketException) as e:
            raise self._error(f"cannot connect ({type(e).__name__}: {e})") from None
        try:
            self._configure()
        except BaseException:
            self.close()
            raise

    # --- the harness' calls ----------------------------------------------------------------------

    def step(self, user: np.ndarray) -> np.ndarray:
        """Send one frame of the user channel, read the server's events, return the model's
        next frame (see the module doc for when events count)."""
        self.frame += 1
        pcm = np.round(np.clip(user, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        append = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
        if self.o["pacing"] == "realtime":
            if self.t0 is None:
                self.t0 = time.monotonic()
            # Frame i is complete ("heard") at (i + 1) frames after the start: what arrived
            # before then is what can be played in frame i + 1.
            self._read_until(self.t0 + (self.frame + 1) * FRAME_SECONDS)
            self._send(append)
        else:
            self._send(append)
            self._read_quiet()
        self._check_stalled()
        return self._play()

    def close(self) -> None:
        """Close the websocket (also after an error)."""
        if self.ws is None:
            return
        self.ws = None
        try:
            self._stack.close()
        except Exception as e:  # closing a broken socket: nothing left to save
            log.debug("%s: closing session %r: %r", self.m.name, self.key, e)

    # --- reading events ------------------------------------------------------------------------

    def _configure(self) -> None:
        timeout = self.o["timeout"]
        # GA and beta servers greet with session.created; wait for it (briefly) so that the
        # update is applied to the session it describes.
        self._read_until(time.monotonic() + min(timeout, 1.0), stop_at="session.created")
        self._send({"type": "session.update", "session": self.m.session_config()})
        if not self._read_until(time.monotonic() + timeout, stop_at="session.updated"):
            raise self._error(f"no session.updated within {timeout:g} s of session.update")

    def _read_until(self, deadline: float, stop_at: str | None = None) -> bool:
        """Handle events until the wall clock reaches ``deadline`` (or one of type
        ``stop_at`` arrived: then True)."""
        while True:
            left = deadline - time.monotonic()
            ev = self._recv(max(left, 0.0))
            if ev is None:
                return False
            self._handle(ev)
            if stop_at is not None and ev["type"] == stop_at:
                return True

    def _read_quiet(self) -> None:
        """Handle events until none arrived for ``quiet`` seconds, ``max_wait`` at most; while
        a response has started but sent no audio yet, wait for its audio (``max_wait`` at
        most) whatever the pause: the server's compute time stays off the timeline."""
        end = time.monotonic() + self.o["max_wait"]
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.active is not None and not self.heard_from:
                # Up to the stall limit (then step's check reports it), not max_wait.
                stall = self.last_event + self.o["timeout"] - time.monotonic()
                wait = min(left, max(stall, 0.0) + 0.01)
            else:
                wait = min(self.o["quiet"], left)
            ev = self._recv(wait)
            if ev is None:
                return
            self._handle(ev)

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None when none arrived within ``timeout`` seconds."""
        from websockets.exceptions import ConnectionClosed

        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as e:
            raise self._error(f"the server closed the connection ({_closed(e)})") from None
        self.last_event = time.monotonic()
        if not isinstance(raw, str):
            raise self._error(f"malformed event: a binary message of {len(raw)} bytes")
        try:
            ev = json.loads(raw)
        except json.JSONDecodeError:
            raise self._error(f"malformed event: not JSON (starting {raw[:60]!r})") from None
        if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
            raise self._error(f"malformed event: no 'type' (starting {raw[:60]!r})")
        return ev

    def _handle(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        self.events.append((self.frame, kind))
        if kind == "error":
            err = ev.get("error")
            code = err.get("code") if isinstance(err, dict) else None
            if code in BENIGN_ERRORS:
                log.debug("%s: session %r: %s (expected)", self.m.name, self.key, code)
                return
            raise self._error(f"server error: {_server_text(error_text(err))}")
        if kind == "input_audio_buffer.speech_started":
            if self.o["barge_in"] and (self.queue or self.active is not None):
                self._barge_in()
        elif kind == "response.created":
            resp = ev.get("response")
            rid = resp.get("id") if isinstance(resp, dict) else None
            self.active = rid if isinstance(rid, str) else ""
            self.heard_from = False
        elif kind == "response.done":
            resp = ev.get("response") if isinstance(ev.get("response"), dict) else {}
            if resp.get("status") == "failed":
                detail = resp.get("status_details")
                err = detail.get("error") if isinstance(detail, dict) else detail
                raise self._error(f"response failed: {_server_text(error_text(err))}")
            self.active = None
        elif kind in ("response.output_audio.delta", "response.audio.delta"):
            if kind != self.delta_type:
                raise self._error(f"malformed event: {kind} in a {self.o['protocol']} session")
            self._audio(ev)
        elif kind.endswith("audio_transcript.delta") and kind.startswith("response."):
            rid = ev.get("response_id")
            if isinstance(rid, str) and isinstance(ev.get("delta"), str):
                self.transcripts.setdefault(rid, []).append(ev["delta"])

    def _audio(self, ev: dict[str, Any]) -> None:
        if ev.get("response_id") in self.cancelled:
            return  # already in flight when the user barged in
        self.heard_from = True
        data = ev.get("delta")
        if not isinstance(data, str):
            raise self._error(f"malformed event: {ev['type']} without a 'delta' string")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise self._error(
                f"malformed audio: {ev['type']} is not valid base64 ({len(data)} characters)"
            ) from None
        if len(raw) % 2:
            raise self._error(
                f"truncated audio: {ev['type']} of {len(raw)} bytes (PCM16 takes 2 per sample)"
            )
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        if x.size:
            item = ev.get("item_id") if isinstance(ev.get("item_id"), str) else ""
            idx = ev.get("content_index") if isinstance(ev.get("content_index"), int) else 0
            self.queue.append([item, idx, x, 0])

    def _barge_in(self) -> None:
        """Stop speaking: drop what is queued, tell the server what was played, cancel."""
        if self.queue:
            item, idx = self.queue[0][0], self.queue[0][1]
            self.queue.clear()
            if item:
                played_ms = self.played.get(item, 0) * 1000 // PCM_RATE
                self._send(
                    {
                        "type": "conversation.item.truncate",
                        "item_id": item,
                        "content_index": idx,
                        "audio_end_ms": int(played_ms),
                    }
                )
        if self.active is not None:
            if self.active:
                self.cancelled.add(self.active)
            self._send({"type": "response.cancel"})
            self.active = None

    def _check_stalled(self) -> None:
        silent = time.monotonic() - self.last_event
        if self.active is not None and silent > self.o["timeout"]:
            raise self._error(
                f"timed out: response {self.active!r} in progress and no event for {silent:.1f} s"
            )

    # --- writing -------------------------------------------------------------------------------

    def _send(self, event: dict[str, Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            self.ws.send(json.dumps(event))
        except ConnectionClosed as e:
            raise self._error(f"the server closed the connection ({_closed(e)})") from None

    def _play(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        filled = 0
        while filled < self.n and self.queue:
            seg = self.queue[0]
            item, _, x, pos = seg
            take = min(self.n - filled, x.size - pos)
            out[filled : filled + take] = x[pos : pos + take]
            filled += take
            seg[3] = pos + take
            if item:
                self.played[item] = self.played.get(item, 0) + take
            if seg[3] >= x.size:
                self.queue.popleft()
        return out

    def _error(self, problem: str) -> PluginError:
        where = "opening" if self.frame < 0 else f"frame {self.frame}"
        if self.frame >= 0:
            where += f" ({self.frame * FRAME_SECONDS:.2f} s)"
        return PluginError(
            f"{self.m.name}: converse session {self.key!r}, {where}: "
            f"{self.m.redact(problem)} (at {self.m.url})"
        )


def _server_text(text: str) -> str:
    """A server's message on one line, cut to :data:`MAX_MESSAGE` characters (redacted by
    the caller)."""
    return " ".join(str(text).split())[:MAX_MESSAGE]


def _closed(e: Any) -> str:
    """How a websocket ended (a ``ConnectionClosed``): its close code and reason."""
    rcvd = e.rcvd
    if rcvd is None:
        return "no close frame"
    return f"code {rcvd.code}" + (f", {rcvd.reason!r}" if rcvd.reason else "")
