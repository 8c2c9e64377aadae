"""``openai-chat``: an OpenAI-compatible chat-completions endpoint as a ``respond`` model.

Any server speaking the OpenAI chat-completions schema with audio parts: vLLM serving
Qwen2-Audio or Ultravox (text answers), vLLM-Omni or hosted audio models (text and audio
answers). A request becomes one ``POST {base_url}/chat/completions``::

    {"model": MODEL, "messages": [{"role": "system", "content": SYSTEM},      # if given
                                  {"role": "user", "content": [
                                      {"type": "text", "text": TEXT},            # if given
                                      {"type": "input_audio",                    # if given
                                       "input_audio": {"data": BASE64_WAV, "format": "wav"}}]}],
     "temperature": 0.0, "max_tokens": 512, "seed": S,                            # seed if given
     "modalities": ["text", "audio"], "audio": {"voice": V, "format": "wav"}}  # text+audio only

The answer is ``choices[0].message``: ``content`` (or, for an audio answer, the audio's
``transcript`` when ``content`` is null) and ``audio.data`` (base64, decoded here).

Two layers, after lm-eval's ``TemplateAPI`` (one base owns the transport, thin adapters own
the schema): :class:`OpenAICompatibleSpeechLM` owns the HTTP client, the bounded concurrency,
retries with backoff, error reporting and the endpoint part of the identity;
:class:`OpenAIChat` builds chat-completions payloads and parses their answers. Another schema
(an ``audio_url`` variant, a server needing ``max_completion_tokens``) is a subclass
overriding :meth:`~OpenAICompatibleSpeechLM.build_payload` / ``parse_response``.

Failures never become answers: a request that still fails after its retries, a
non-retryable 4xx, or a malformed answer (not JSON, fields missing, audio undecodable or
truncated) raises :class:`~speechlm_eval.errors.PluginError`, one line naming the request
key and the problem. The executor caches each batch as it finishes, so the answers of the
batches before the failure are kept and a rerun sends only the rest.

The API key is read from the environment variable named by ``api_key_env`` and sent as
``Authorization: Bearer``; it is never part of the identity, the model arguments, a log
line or an error message (server messages quoting it are redacted).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import json
import logging
import os
import random
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import RespondRequest, RespondResult, SpeechLM
from speechlm_eval.options import REQUIRED, Opt, Spec

__all__ = ["EndpointError", "OpenAIChat", "OpenAICompatibleSpeechLM"]

log = logging.getLogger(__name__)

# Status codes worth another try: the server is busy (429), the request timed out at a proxy
# (408), a conflict that clears (409), or the server failed (5xx but 501, "not implemented").
# Every other 4xx is the request's own fault: repeating it cannot help, so it is reported at once.
RETRY_STATUS: frozenset[int] = frozenset({408, 409, 429})
PCM16_RATE = 24000  # OpenAI's raw 'pcm16' audio: 16-bit little-endian mono at 24 kHz
_MAX_MESSAGE = 200  # characters of a server's error text kept in a message


def _base_url(value: str) -> str:
    """``scheme://host[:port]/path`` without a trailing slash; credentials, query and fragment
    are refused so that the URL can be recorded (identity, messages) as it is."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected http(s)://host[:port]/path, got {value!r}")
    if parts.username or parts.password:
        # Not echoed: the value holds a secret.
        raise ValueError(
            "must not hold credentials; put the key in the variable named by api_key_env"
        )
    if parts.query or parts.fragment:
        # Not echoed either: gateways put keys in queries.
        raise ValueError("must have no query or fragment (the parts after '?' or '#')")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _env_name(value: str) -> str:
    if not value or not value.replace("_", "a").isalnum():
        raise ValueError(f"expected the name of an environment variable, got {value!r}")
    return value


# Options of the transport (every OpenAI-compatible adapter) and of the chat schema. Only what
# changes answers is identity; timeouts, retries and concurrency change how, not what.
TRANSPORT_OPTIONS: dict[str, Opt] = {
    "base_url": Opt(str, REQUIRED, check=_base_url, doc="e.g. http://127.0.0.1:8000/v1"),
    "model": Opt(str, REQUIRED, doc="the served model name"),
    "api_key_env": Opt(
        str, "OPENAI_API_KEY", identity=False, check=_env_name, doc="variable holding the key"
    ),
    "timeout": Opt(float, 120.0, gt=0, identity=False, doc="seconds per attempt"),
    "max_retries": Opt(int, 5, ge=0, identity=False, doc="retries after the first attempt"),
    "max_concurrency": Opt(int, 8, ge=1, identity=False, doc="requests in flight at most"),
    "backoff": Opt(float, 1.0, ge=0, identity=False, doc="first retry delay (s), doubling"),
    "max_backoff": Opt(float, 60.0, ge=0, identity=False, doc="longest wait between tries (s)"),
}
CHAT_OPTIONS: dict[str, Opt] = {
    "modalities": Opt(
        str,
        "text",
        choices={"text": ("text",), "text+audio": ("text", "audio")},
        expect="text or text+audio",
        doc="what the answer holds",
    ),
    "voice": Opt(str, "alloy", doc="output voice (text+audio)"),
    "audio_format": Opt(str, "wav", choices=("wav", "pcm16"), doc="output audio (text+audio)"),
    "max_tokens": Opt(int, 512, ge=1, nullable=True, doc="answer length cap; none: not sent"),
    "temperature": Opt(float, 0.0, ge=0),
    "seed": Opt(int, None, doc="sent when given"),
    "system": Opt(str, None, doc="system prompt"),
    "sample_rate": Opt(int, 16000, gt=0, nullable=True, doc="input audio rate; none: as given"),
}
OPTIONS = Spec({**TRANSPORT_OPTIONS, **CHAT_OPTIONS}, noun="model argument")


class EndpointError(PluginError):
    """A request that failed for good: ``status`` is the last HTTP status (``None`` when the
    last attempt got no answer, or the answer was malformed)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Cancelled(Exception):
    """A request not sent (or not retried) because another request of the batch failed."""


class OpenAICompatibleSpeechLM(SpeechLM):
    """The transport of OpenAI-compatible endpoints: subclasses say what to send and read.

    It owns one ``httpx.Client`` (keep-alive, at most ``max_concurrency`` connections), runs
    a batch's requests on that many threads, retries each request on 429, 408/409, 5xx,
    timeouts and connection errors (exponential backoff from ``backoff`` seconds doubling up
    to ``max_backoff``, jittered by a generator seeded from the request so a rerun waits the
    same, and a server's ``Retry-After`` / ``retry-after-ms`` honoured up to ``max_backoff``),
    and turns every other failure into a one-line :class:`PluginError` naming the request.

    Subclasses set ``name``, ``route`` and ``options`` and implement :meth:`build_payload` and
    :meth:`parse_response`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"respond"})
    name: ClassVar[str] = "openai-compatible"
    route: ClassVar[str] = "/chat/completions"
    options: ClassVar[Spec] = Spec(TRANSPORT_OPTIONS, noun="model argument")

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        # ``device`` (the harness' --device) is accepted and unused: the server computes.
        if "api_key" in kwargs:
            # Named without its value: a key in model arguments would reach the results file.
            raise ConfigError(
                f"{self.name}: the API key is not a model argument; put it in an environment "
                "variable and name that with api_key_env=NAME"
            )
        o = self.options.parse(self.name, kwargs)
        super().__init__(device=device, **kwargs)
        try:
            import httpx
        except ImportError:
            raise PluginError(
                f"{self.name} needs httpx: pip install 'speechlm-eval[endpoints]'"
            ) from None
        self.o = o
        self.base_url: str = o["base_url"]
        self.served_name: str = o["model"]
        self.max_concurrency: int = o["max_concurrency"]
        key = os.environ.get(o["api_key_env"], "")
        # Kept only to redact it from server messages; never written anywhere.
        self._secret = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(o["timeout"], connect=min(o["timeout"], 10.0)),
            limits=httpx.Limits(
                max_connections=self.max_concurrency,
                max_keepalive_connections=self.max_concurrency,
            ),
            # A redirect would carry the key to another host; an endpoint is given exactly.
            follow_redirects=False,
        )
        # The bound holds across concurrent respond() calls too (the pool of each call has
        # max_concurrency threads, but two calls at once would double it).
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._seen_lock = threading.Lock()
        self._seen: dict[str, set[str]] = {"model": set(), "system_fingerprint": set()}
        self.served_model: dict[str, Any] | None = self._probe_models()

    # --- identity ------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Endpoint (no credentials), served model name, what ``/models`` reports for it, and
        every request setting that changes answers; never the key."""
        cls = type(self)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "api": self.route.strip("/").replace("/", "."),
            "endpoint": self.base_url,
            "model": self.served_name,
            "served_model": self.served_model,
            **self.request_identity(),
        }

    def request_identity(self) -> dict[str, Any]:
        """What the subclass sends that changes answers (its payload settings)."""
        return {}

    def observed(self) -> dict[str, list[str]]:
        """Model names and ``system_fingerprint`` values the server answered with so far.

        Not in :meth:`identity`: they are known only after answers came back, and the
        identity keys the cache before the first request (so it must not change during a run).
        """
        with self._seen_lock:
            return {k: sorted(v) for k, v in self._seen.items()}

    def _probe_models(self) -> dict[str, Any] | None:
        """``GET {base_url}/models``: the served model's record (its id, and ``root`` /
        ``parent`` / ``owned_by`` where the server gives them; ``created`` is left out, vLLM
        stamps it per call). ``None`` when the server has no such route; an error when it
        lists models but not this one (a typo in ``model`` fails here, not per request)."""
        try:
            body = self._call("GET", "/models", None, "GET /models", random.Random(0), None)
        except EndpointError as e:
            if e.status in (404, 405, 501):
                return None
            raise
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return None
        ids = [m.get("id") for m in data if isinstance(m, dict)]
        for m in data:
            if isinstance(m, dict) and m.get("id") == self.served_name:
                keep = ("id", "object", "root", "parent", "owned_by", "max_model_len")
                return {k: m[k] for k in keep if k in m}
        shown = ", ".join(map(str, ids[:10])) + (", …" if len(ids) > 10 else "")
        raise PluginError(
            f"{self.name}: {self.base_url} serves no model {self.served_name!r} "
            f"(it lists: {shown or 'none'})"
        )

    # --- what subclasses define ----------------------------------------------------------------

    def build_payload(self, request: RespondRequest) -> dict[str, Any]:
        """The JSON body for one request."""
        raise NotImplementedError

    def parse_response(self, request: RespondRequest, body: dict[str, Any]) -> RespondResult:
        """The answer in a decoded JSON body; ``ValueError`` with a phrase when malformed."""
        raise NotImplementedError

    # --- respond -------------------------------------------------------------------------------

    def respond(self, requests: list[RespondRequest]) -> list[RespondResult]:
        """Every request of the batch, at most ``max_concurrency`` in flight; results in order.

        When one request fails for good, no further request of the batch is started, the ones
        in flight finish, and the first failure (in batch order) is raised.
        """
        return self.run_concurrently(requests, self._respond_one)

    def run_concurrently(
        self,
        requests: list[Any],
        one: Callable[[int, Any, threading.Event], Any],
    ) -> list[Any]:
        """``one(index, request, stop)`` for every request on a bounded pool; see respond."""
        if not requests:
            return []
        stop = threading.Event()

        def guarded(i: int, r: Any) -> Any:
            try:
                return one(i, r, stop)
            except _Cancelled:
                raise
            except BaseException:
                # Set here, not when the caller notices: this thread's next request must
                # already see it, so nothing new starts after a failure.
                stop.set()
                raise

        workers = min(self.max_concurrency, len(requests))
        pool = ThreadPoolExecutor(workers, thread_name_prefix=self.name)
        futures: list[Future[Any]] = []
        try:
            futures = [pool.submit(guarded, i, r) for i, r in enumerate(requests)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                stop.set()  # nothing new starts; requests in flight end (bounded by timeout)
                wait(futures)
        except BaseException:  # KeyboardInterrupt while waiting: the same, then out
            stop.set()
            for f in futures:
                f.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        failed = [
            (i, f.exception())
            for i, f in enumerate(futures)
            if not f.cancelled() and f.exception() is not None
        ]
        real = [e for _, e in failed if not isinstance(e, _Cancelled)]
        if real:
            first = real[0]  # the first in batch order: the same report on every rerun
            if len(real) > 1 and isinstance(first, EndpointError):
                more = f" ({len(real) - 1} more request(s) of the batch failed)"
                raise EndpointError(f"{first}{more}", first.status) from None
            raise first
        return [f.result() for f in futures]

    def _respond_one(self, index: int, request: RespondRequest, stop: threading.Event) -> Any:
        if stop.is_set():
            raise _Cancelled
        label = self._label(index, request)
        try:
            payload = self.build_payload(request)
        except ValueError as e:
            raise PluginError(f"{self.name}: {label}: {e}") from None
        # Jitter seeded by the request: the same batch retried waits the same.
        rng = random.Random(f"{request.key}\0{index}")
        body = self._call("POST", self.route, payload, label, rng, stop)
        try:
            result = self.parse_response(request, body)
        except ValueError as e:
            raise EndpointError(
                f"{self.name}: {label}: malformed response from {self.base_url}{self.route}: "
                f"{self._redact(str(e))}"
            ) from None
        return result

    @staticmethod
    def _label(index: int, request: RespondRequest) -> str:
        return f"request {request.key!r}" if request.key else f"request #{index} (no key)"

    # --- one HTTP exchange, with retries -------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        label: str,
        rng: random.Random,
        stop: threading.Event | None,
    ) -> Any:
        """The decoded JSON answer of ``method path``; retried as the class doc says."""
        httpx = self._httpx
        where = f"{self.base_url}{path}"
        content = None if payload is None else json.dumps(payload).encode()
        attempts = self.o["max_retries"] + 1
        for attempt in range(attempts):
            if stop is not None and stop.is_set():
                raise _Cancelled
            retry_after: float | None = None
            status: int | None = None
            with self._slots:
                try:
                    resp = self._client.request(
                        method,
                        path,
                        content=content,
                        headers={"Content-Type": "application/json"} if content else None,
                    )
                except httpx.TimeoutException:
                    problem = f"timed out after {self.o['timeout']:g} s"
                except httpx.TransportError as e:
                    problem = f"connection error ({type(e).__name__})"
                else:
                    code = status = resp.status_code
                    if 200 <= code < 300:
                        return self._json(resp, label, where)
                    problem = f"HTTP {code} {resp.reason_phrase}".rstrip()
                    detail = self._server_message(resp)
                    if detail:
                        problem += f": {detail}"
                    if not (code in RETRY_STATUS or (code >= 500 and code != 501)):
                        raise EndpointError(f"{self.name}: {label}: {problem} (from {where})", code)
                    retry_after = _retry_after(resp.headers)
            if attempt + 1 == attempts:
                raise EndpointError(
                    f"{self.name}: {label}: failed after {attempts} attempt(s) at {where}; "
                    f"last: {problem}",
                    status,
                )
            delay = self._delay(attempt, retry_after, rng)
            log.warning(
                "%s: %s: %s; retry %d/%d in %.2f s",
                self.name,
                label,
                problem,
                attempt + 1,
                attempts - 1,
                delay,
            )
            if stop is not None:
                if stop.wait(delay):
                    raise _Cancelled
            else:
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        cap = self.o["max_backoff"]
        if retry_after is not None:
            return min(max(retry_after, 0.0), cap)
        # "Equal jitter": half the exponential step plus a random half, so retries of many
        # requests spread out but none comes back sooner than half the step.
        step = min(cap, self.o["backoff"] * 2.0**attempt)
        return step / 2 + rng.random() * step / 2

    def _json(self, resp: Any, label: str, where: str) -> Any:
        try:
            body = json.loads(resp.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            start = resp.content[:60].decode("utf-8", "replace")
            raise EndpointError(
                f"{self.name}: {label}: malformed response from {where}: not JSON "
                f"({len(resp.content)} bytes, starting {self._redact(start)!r})"
            ) from None
        if isinstance(body, dict) and "error" in body and "choices" not in body:
            # Some servers report errors with status 200.
            msg = _error_text(body["error"])
            raise EndpointError(f"{self.name}: {label}: server error from {where}: {msg}")
        with self._seen_lock:
            for k in ("model", "system_fingerprint"):
                v = body.get(k) if isinstance(body, dict) else None
                if isinstance(v, str) and v not in self._seen[k]:
                    self._seen[k].add(v)
                    if len(self._seen[k]) > 1:
                        # The backend changed under the run: answers may not be comparable.
                        log.warning("%s: the server now answers with %s %r", self.name, k, v)
        return body

    def _server_message(self, resp: Any) -> str:
        try:
            body = resp.json()
            text = _error_text(body.get("error", body)) if isinstance(body, dict) else str(body)
        except ValueError:
            text = resp.text
        return self._redact(" ".join(str(text).split()))[:_MAX_MESSAGE]

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def close(self) -> None:
        """Close the HTTP connections (the model is unusable afterwards)."""
        self._client.close()


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or json.dumps(err))[:_MAX_MESSAGE]
    return str(err)[:_MAX_MESSAGE]


def _retry_after(headers: Any) -> float | None:
    """Seconds a server asks to wait: ``retry-after-ms`` (OpenAI), ``Retry-After`` as seconds
    or as an HTTP date; ``None`` when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# --- audio in and out ------------------------------------------------------------------------


def wav_bytes(audio: Audio) -> bytes:
    """16-bit PCM mono WAV of ``audio`` (clipped to [-1, 1]): the format every server reads."""
    x = np.clip(audio.samples, -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(audio.sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def check_wav_complete(data: bytes) -> None:
    """``ValueError`` unless ``data`` is a RIFF/WAVE file whose data chunk is all there.

    Decoders read a cut file without complaint (they return the frames present), so a
    truncated answer would pass as a shorter one; the chunk sizes tell. A size of 0 or
    0xFFFFFFFF (streaming writers that did not know the length) is accepted.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"audio is not a WAV file ({len(data)} bytes)")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            have = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and have < size:
                raise ValueError(
                    f"audio is truncated (WAV data chunk of {size} bytes, {have} present)"
                )
            return
        pos += 8 + size + (size & 1)
    raise ValueError("audio is truncated (WAV file without a complete data chunk)")


def decode_audio(b64: Any, fmt: str, source: str) -> Audio:
    """A base64 answer audio as mono float32 :class:`Audio`; ``ValueError`` when it is not
    base64, truncated, undecodable or empty."""
    if not isinstance(b64, str) or not b64:
        raise ValueError("audio.data is missing or not a string")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"audio.data is not valid base64 ({len(b64)} characters)") from None
    if fmt == "pcm16":
        if len(data) % 2:
            raise ValueError(f"pcm16 audio is truncated (odd byte count {len(data)})")
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        rate = PCM16_RATE
    else:
        check_wav_complete(data)
        import soundfile as sf

        try:
            x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile's error types vary by version
            raise ValueError(f"audio is not decodable as {fmt} ({type(e).__name__})") from None
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]  # a stereo answer is mixed down
    if x.size == 0:
        raise ValueError("audio is empty (0 samples)")
    return Audio(np.ascontiguousarray(x, dtype=np.float32), int(rate), source)


# --- the chat-completions adapter ------------------------------------------------------------


class OpenAIChat(OpenAICompatibleSpeechLM):
    """``respond`` through ``/chat/completions`` with ``input_audio`` parts (base64 WAV),
    answering in text or in text and audio (``modalities=text+audio``).

    Model arguments: ``base_url``, ``model`` (required), ``api_key_env``, ``modalities``,
    ``voice``, ``audio_format``, ``max_tokens``, ``temperature``, ``seed``, ``system``,
    ``sample_rate``, ``timeout``, ``max_retries``, ``max_concurrency``, ``backoff``,
    ``max_backoff`` (see README, "openai-chat").
    """

    name: ClassVar[str] = "openai-chat"
    route: ClassVar[str] = "/chat/completions"
    options: ClassVar[Spec] = OPTIONS

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        super().__init__(device=device, **kwargs)
        # Audio reaching respond() is at this rate (the runner resamples, explicitly).
        self.sample_rate = self.o["sample_rate"]

    def request_identity(self) -> dict[str, Any]:
        o = self.o
        fixed = {k: v for k, v in self._settings().items() if k != "model"}
        return {
            "request": fixed,
            "system": o["system"],
            "input_audio": {"format": "wav", "encoding": "PCM_16", "sample_rate": o["sample_rate"]},
        }

    def _settings(self) -> dict[str, Any]:
        """The payload fields every request shares."""
        o = self.o
        s: dict[str, Any] = {"model": self.served_name, "temperature": o["temperature"]}
        if o["max_tokens"] is not None:
            s["max_tokens"] = o["max_tokens"]
        if o["seed"] is not None:
            s["seed"] = o["seed"]
        if "audio" in o["modalities"]:
            s["modalities"] = list(o["modalities"])
            s["audio"] = {"voice": o["voice"], "format": o["audio_format"]}
        return s

    def build_payload(self, request: RespondRequest) -> dict[str, Any]:
        """System message (if any), then one user message: its text part, then its audio."""
        if request.text is None and request.audio is None:
            raise ValueError("request has neither text nor audio")
        parts: list[dict[str, Any]] = []
        if request.text is not None:
            parts.append({"type": "text", "text": request.text})
        if request.audio is not None:
            a = request.audio
            if self.sample_rate is not None and a.sample_rate != self.sample_rate:
                a = a.resample(self.sample_rate)
            data = base64.b64encode(wav_bytes(a)).decode("ascii")
            parts.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
        messages: list[dict[str, Any]] = []
        if self.o["system"] is not None:
            messages.append({"role": "system", "content": self.o["system"]})
        messages.append({"role": "user", "content": parts})
        return {**self._settings(), "messages": messages}

    def parse_response(self, request: RespondRequest, body: dict[str, Any]) -> RespondResult:
        """``content`` (or the audio transcript, or a refusal) and the decoded ``audio``."""
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError("no 'choices' in the response")
        msg = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(msg, dict):
            raise ValueError("no 'choices[0].message' in the response")
        text = _content_text(msg.get("content"))
        audio_obj = msg.get("audio")
        audio = None
        if "audio" in self.o["modalities"]:
            if not isinstance(audio_obj, dict):
                raise ValueError("audio was asked for (modalities=text+audio) and none came back")
            audio = decode_audio(
                audio_obj.get("data"), self.o["audio_format"], f"{self.name}:{request.key}"
            )
            # OpenAI leaves content null in audio answers (some servers send ""): the words
            # are then the transcript.
            if not text and isinstance(audio_obj.get("transcript"), str):
                text = audio_obj["transcript"]
        if text is None and isinstance(msg.get("refusal"), str):
            text = msg["refusal"]  # a refusal is the model's answer, and is scored as one
        if text is None:
            raise ValueError("the message has no content")
        return RespondResult(text=text, audio=audio)


def _content_text(content: Any) -> str | None:
    """``message.content``: a string, null, or (some servers) a list of text parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        ]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(texts)
    raise ValueError(f"message.content is neither text nor text parts ({type(content).__name__})")
