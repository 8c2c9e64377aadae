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
the schema): :class:`OpenAICompatibleSpeechLM` holds the harness' HTTP transport
(:class:`speechlm_eval.endpoints.EndpointClient`: the client, the bounded concurrency, retries
with backoff, error reporting, key redaction; shared with the LLM judge) and owns the
``/models`` probe and the endpoint part of the identity; :class:`OpenAIChat` builds
chat-completions payloads and parses their answers. Another schema
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
import io
import logging
import random
import threading
import wave
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from speechlm_eval.audio import Audio
from speechlm_eval.endpoints import RETRY_STATUS as RETRY_STATUS  # re-exported (was defined here)
from speechlm_eval.endpoints import (
    Cancelled,
    EndpointClient,
    EndpointError,
    check_base_url,
    check_env_name,
    content_text,
)
from speechlm_eval.errors import ConfigError, PluginError
from speechlm_eval.model import RespondRequest, RespondResult, SpeechLM
from speechlm_eval.options import REQUIRED, Opt, Spec

# EndpointError is the core's (speechlm_eval.endpoints), re-exported: it is raised from here.
__all__ = ["EndpointError", "OpenAIChat", "OpenAICompatibleSpeechLM"]

log = logging.getLogger(__name__)

PCM16_RATE = 24000  # OpenAI's raw 'pcm16' audio: 16-bit little-endian mono at 24 kHz


# Options of the transport (every OpenAI-compatible adapter) and of the chat schema. Only what
# changes answers is identity; timeouts, retries and concurrency change how, not what.
TRANSPORT_OPTIONS: dict[str, Opt] = {
    "base_url": Opt(str, REQUIRED, check=check_base_url, doc="e.g. http://127.0.0.1:8000/v1"),
    "model": Opt(str, REQUIRED, doc="the served model name"),
    "api_key_env": Opt(
        str, "OPENAI_API_KEY", identity=False, check=check_env_name, doc="variable holding the key"
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


class OpenAICompatibleSpeechLM(SpeechLM):
    """A ``respond`` model behind an OpenAI-compatible endpoint: subclasses say what to send
    and read.

    The transport is the harness' :class:`~speechlm_eval.endpoints.EndpointClient`
    (:attr:`client`): one ``httpx.Client`` (keep-alive, at most ``max_concurrency``
    connections); a batch's requests run on that many threads, each retried on 429, 408/409,
    5xx, timeouts and connection errors (exponential backoff from ``backoff`` seconds doubling
    up to ``max_backoff``, jittered by a generator seeded from the request so a rerun waits the
    same, and a server's ``Retry-After`` / ``retry-after-ms`` honoured up to ``max_backoff``).
    Every other failure becomes a one-line :class:`PluginError` naming the request.

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
        self.o = o
        self.base_url: str = o["base_url"]
        self.served_name: str = o["model"]
        self.max_concurrency: int = o["max_concurrency"]
        # The transport (the key is read here, from the variable named by api_key_env). Its
        # bound holds across concurrent respond() calls too.
        self.client = EndpointClient(
            self.name,
            self.base_url,
            api_key_env=o["api_key_env"],
            timeout=o["timeout"],
            max_retries=o["max_retries"],
            max_concurrency=self.max_concurrency,
            backoff=o["backoff"],
            max_backoff=o["max_backoff"],
            logger=log,
        )
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
        return self.client.observed()

    def _probe_models(self) -> dict[str, Any] | None:
        """``GET {base_url}/models``: the served model's record (its id, and ``root`` /
        ``parent`` / ``owned_by`` where the server gives them; ``created`` is left out, vLLM
        stamps it per call). ``None`` when the server has no such route; an error when it
        lists models but not this one (a typo in ``model`` fails here, not per request)."""
        try:
            body = self.client.call("GET", "/models", None, "GET /models", random.Random(0))
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
        """``one(index, request, stop)`` for every request on a bounded pool; see respond
        (and :meth:`~speechlm_eval.endpoints.EndpointClient.run_concurrently`)."""
        return self.client.run_concurrently(requests, one)

    def _respond_one(self, index: int, request: RespondRequest, stop: threading.Event) -> Any:
        if stop.is_set():
            raise Cancelled
        label = self._label(index, request)
        try:
            payload = self.build_payload(request)
        except ValueError as e:
            raise PluginError(f"{self.name}: {label}: {e}") from None
        # Jitter seeded by the request: the same batch retried waits the same.
        rng = random.Random(f"{request.key}\0{index}")
        body = self.client.call("POST", self.route, payload, label, rng, stop)
        try:
            result = self.parse_response(request, body)
        except ValueError as e:
            raise EndpointError(
                f"{self.name}: {label}: malformed response from {self.base_url}{self.route}: "
                f"{self.client.redact(str(e))}"
            ) from None
        return result

    @staticmethod
    def _label(index: int, request: RespondRequest) -> str:
        return f"request {request.key!r}" if request.key else f"request #{index} (no key)"

    def close(self) -> None:
        """Close the HTTP connections (the model is unusable afterwards)."""
        self.client.close()


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
        text = content_text(msg.get("content"))
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
