"""The model interface every SpeechLM plugin implements.

A plugin subclasses :class:`SpeechLM`, declares the ``capabilities`` it has and
implements the matching batched methods (a list of requests in, a list of
results out, same length and order). The runner only sends a model requests it
can serve; a task needing a missing capability is reported as skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .audio import Audio

CAPABILITIES: tuple[str, ...] = (
    "loglikelihood",
    "encode",
    "resynthesize",
    "continue",
    "respond",
    "converse",
)

# The directions of the ``continue`` capability: prompt modality -> output modality. A model
# declares those it serves in ``SpeechLM.continue_modalities``; the runner sends only those.
CONTINUE_MODALITIES: tuple[str, ...] = (
    "speech->speech",
    "speech->text",
    "text->speech",
    "text->text",
)


# --- requests and results -------------------------------------------------------------------


def _audio_id(a: Audio | None) -> str | None:
    return None if a is None else a.content_hash()  # the hash covers the sample rate


# Every request type has ``fingerprint()``: the content hashes of its inputs and every option
# that changes the output (seeds included), never ``key`` (a label). The executor's cache key is
# (worker identity, method, fingerprint), so equal fingerprints must mean equal outputs.


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score one sequence. ``audio`` is set for speech; ``text`` for text or interleaved input."""

    audio: Audio | None = None
    text: str | None = None
    key: str = ""  # stable identifier of the item (e.g. the file stem); informational only

    def fingerprint(self) -> dict[str, Any]:
        return {"audio": _audio_id(self.audio), "text": self.text}


@dataclass(frozen=True)
class LoglikelihoodResult:
    """Total log-probability (natural log) of the sequence and the number of tokens it sums over."""

    logprob: float
    num_tokens: int

    def __post_init__(self) -> None:
        if not np.isfinite(self.logprob):
            raise ValueError(f"loglikelihood result is not finite: {self.logprob}")
        if int(self.num_tokens) <= 0:
            raise ValueError(f"loglikelihood result must cover >= 1 token, got {self.num_tokens}")


@dataclass(frozen=True)
class EncodeRequest:
    audio: Audio
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"audio": _audio_id(self.audio)}


@dataclass(frozen=True)
class EncodeResult:
    """Frame-level features (frames x dims) or units (frames,), at ``frame_rate`` frames/s."""

    features: np.ndarray
    frame_rate: float


@dataclass(frozen=True)
class ResynthesizeRequest:
    audio: Audio
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"audio": _audio_id(self.audio)}


@dataclass(frozen=True)
class ContinueRequest:
    """Sample ``num_samples`` continuations of a prompt; sample i uses a generator seeded from
    (``seed``, i), so the same request gives the same output (and the cache can hold it).

    The prompt is ``prompt`` (audio) or ``prompt_text`` (text): exactly one is set. ``output``
    is ``"speech"`` (the model answers a list of :class:`Audio`, at most ``max_seconds`` each)
    or ``"text"`` (a list of ``str``, at most ``max_tokens`` of the model's own text tokens
    each; ``None``: the model's default). Only the continuation is returned, never the prompt.
    :attr:`direction` (``"speech->text"``, ...) must be one of the model's
    ``continue_modalities``; the harness never sends another.
    """

    prompt: Audio | None = None
    num_samples: int = 1
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    max_seconds: float = 10.0
    seed: int = 0
    key: str = ""
    prompt_text: str | None = None
    output: str = "speech"
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        where = f"continue request {self.key!r}"
        if (self.prompt is None) == (self.prompt_text is None):
            raise ValueError(f"{where}: set exactly one of prompt (audio) and prompt_text")
        if self.prompt_text is not None and not isinstance(self.prompt_text, str):
            raise ValueError(f"{where}: prompt_text must be a str")
        if self.output not in ("speech", "text"):
            raise ValueError(f"{where}: output must be 'speech' or 'text', got {self.output!r}")

    @property
    def direction(self) -> str:
        """``"<prompt modality>-><output modality>"``, one of :data:`CONTINUE_MODALITIES`."""
        return f"{'speech' if self.prompt is not None else 'text'}->{self.output}"

    def budget(self, frame_rate: float, where: str) -> tuple[int, int, int]:
        """(num_samples, seed, frames to generate at ``frame_rate``) checked, for plugins: one
        place says what a valid request is. ``where`` names the request in errors."""
        from .errors import ConfigError

        n, seed = self.num_samples, self.seed
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"{where}: num_samples must be an integer >= 1, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"{where}: seed must be an integer >= 0, got {seed!r}")
        try:
            seconds = float(self.max_seconds)
        except (TypeError, ValueError):
            seconds = float("nan")
        # floor with a hair of slack: 0.3 s at 50 Hz is 15 frames, not 14 by float rounding.
        frames = int(np.floor(seconds * frame_rate + 1e-9)) if np.isfinite(seconds) else 0
        if frames < 1:
            raise ConfigError(
                f"{where}: max_seconds must be a number >= one frame "
                f"({1 / frame_rate:.3f} s), got {self.max_seconds!r}"
            )
        return int(n), int(seed), frames

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {
            "prompt": _audio_id(self.prompt),
            "num_samples": int(self.num_samples),
            "temperature": float(self.temperature),
            "top_k": self.top_k,
            "top_p": self.top_p,
            "max_seconds": float(self.max_seconds),
            "seed": int(self.seed),
        }
        # Added only when they differ from the defaults, so a speech->speech request keeps the
        # cache key it had before text prompts and text outputs existed.
        if self.prompt_text is not None:
            fp["prompt_text"] = self.prompt_text
        if self.output != "speech":
            fp["output"] = self.output
        if self.max_tokens is not None:
            fp["max_tokens"] = int(self.max_tokens)
        return fp


@dataclass(frozen=True)
class RespondRequest:
    text: str | None = None
    audio: Audio | None = None
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"text": self.text, "audio": _audio_id(self.audio)}


@dataclass(frozen=True)
class RespondResult:
    text: str | None = None
    audio: Audio | None = None


@dataclass(frozen=True)
class ConverseRequest:
    user: Audio
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"user": _audio_id(self.user)}


# --- the base class --------------------------------------------------------------------------


class SpeechLM:
    """Base class of model plugins.

    Subclasses are constructed with the keyword arguments parsed from
    ``--model_args`` (values arrive as strings unless a Python API caller passes
    other types). They set ``capabilities`` and implement the matching methods.

    ``sample_rate``: the rate the model expects; the runner resamples explicitly
    (and records it) when a dataset has another rate. ``None`` accepts any rate.

    ``device``: the harness option ``--device`` (``cpu``, ``cuda``, ``cuda:1``), passed as the
    keyword ``device`` to plugins whose ``__init__`` takes it; kept in ``self.device`` and out
    of ``model_args`` and so out of the identity (a device does not change what is computed).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    sample_rate: int | None = 16000
    # What a ``loglikelihood`` request may ask this model to score: ``audio`` (a speech
    # sequence: sWUGGY, sBLIMP, StoryCloze, SALMon), ``text``, ``text_given_audio`` (a text
    # answer to audio, for multiple choice). The runner skips tasks that need another kind.
    likelihood_of: ClassVar[frozenset[str]] = frozenset({"audio"})
    # The directions of ``continue`` this model serves (:data:`CONTINUE_MODALITIES`): the
    # runner skips a continue task of another direction (``skipped (model lacks continue
    # text->speech)``). Text outputs are lists of ``str``, speech outputs lists of Audio.
    continue_modalities: ClassVar[frozenset[str]] = frozenset({"speech->speech"})

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        self.device = device
        self.model_args: dict[str, Any] = dict(kwargs)

    # Identity: what makes two instances produce the same outputs. The cache key
    # and the results file use it, so include weight hashes and anything that
    # changes outputs (but not the device or batch size).
    def identity(self) -> dict[str, Any]:
        """Exact identity of the model (class, arguments, weight hashes); JSON-serialisable."""
        cls = type(self)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "args": _jsonable(self.model_args)}

    @property
    def dtype(self) -> str:
        """Compute dtype recorded in results."""
        return "float32"

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        raise NotImplementedError

    def encode(self, requests: list[EncodeRequest]) -> list[EncodeResult]:
        raise NotImplementedError

    def resynthesize(self, requests: list[ResynthesizeRequest]) -> list[Audio]:
        raise NotImplementedError

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]] | list[list[str]]:
        """The ``continue`` capability (``continue`` is a Python keyword): per request, a list
        of ``num_samples`` Audio (``output="speech"``) or ``str`` (``output="text"``)."""
        raise NotImplementedError

    def respond(self, requests: list[RespondRequest]) -> list[RespondResult]:
        raise NotImplementedError

    def converse(self, requests: list[ConverseRequest]) -> list[Audio]:
        raise NotImplementedError


def _jsonable(obj: Any) -> Any:
    """Best-effort conversion to JSON-compatible values (stable across runs)."""
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [_jsonable(v) for v in obj]
        return repr(obj)
