"""The model interface every SpeechLM plugin implements.

A plugin subclasses :class:`SpeechLM`, declares the ``capabilities`` it has and
implements the matching batched methods (a list of requests in, a list of
results out, same length and order). The runner only sends a model requests it
can serve; a task needing a missing capability is reported as skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .audio import Audio, TwoChannelAudio

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
    # dGSLM-style: a two-channel prompt (TwoChannelAudio) continued on both channels; offline
    # and non-streaming, a different thing from ``converse`` (never feeds full-duplex metrics).
    "dialogue->dialogue",
)

# What a ``continue`` model may expose about its continuations beyond the output itself. A
# model declares those it serves in ``SpeechLM.continue_extras``; a task that needs one the
# model lacks is skipped with the reason (``skipped (model lacks continue prosody_streams)``).
# ``prosody_streams``: :meth:`SpeechLM.continue_prosody` and :meth:`SpeechLM.prosody_streams`.
CONTINUE_EXTRAS: tuple[str, ...] = ("prosody_streams",)


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

    The prompt is ``prompt`` (audio), ``prompt_text`` (text) or ``prompt_dialogue`` (a
    two-channel conversation): exactly one is set. ``output`` is ``"speech"`` (the model
    answers a list of :class:`Audio`, at most ``max_seconds`` each), ``"text"`` (a list of
    ``str``, at most ``max_tokens`` of the model's own text tokens each; ``None``: the model's
    default) or, for a dialogue prompt only, ``"dialogue"`` (a list of
    :class:`TwoChannelAudio`, both channels continued, channel ``a`` continuing ``a``, exactly
    ``max_seconds`` long). Only the continuation is returned, never the prompt.
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
    prompt_dialogue: TwoChannelAudio | None = None

    def __post_init__(self) -> None:
        where = f"continue request {self.key!r}"
        given = [x is not None for x in (self.prompt, self.prompt_text, self.prompt_dialogue)]
        if sum(given) != 1:
            raise ValueError(
                f"{where}: set exactly one of prompt (audio), prompt_text and prompt_dialogue"
            )
        if self.prompt_text is not None and not isinstance(self.prompt_text, str):
            raise ValueError(f"{where}: prompt_text must be a str")
        if self.prompt_dialogue is not None:
            if not isinstance(self.prompt_dialogue, TwoChannelAudio):
                raise ValueError(f"{where}: prompt_dialogue must be a TwoChannelAudio")
            if self.output != "dialogue":
                raise ValueError(f"{where}: a dialogue prompt is continued as output 'dialogue'")
        elif self.output not in ("speech", "text"):
            raise ValueError(f"{where}: output must be 'speech' or 'text', got {self.output!r}")

    @property
    def direction(self) -> str:
        """``"<prompt modality>-><output modality>"``, one of :data:`CONTINUE_MODALITIES`."""
        if self.prompt_dialogue is not None:
            return "dialogue->dialogue"
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
        if self.prompt_dialogue is not None:
            fp["prompt_dialogue"] = self.prompt_dialogue.content_hash()
        return fp


F0_KINDS: tuple[str, ...] = ("hz", "bins")


class ProsodyStreamsError(ValueError):
    """A malformed :class:`ProsodyStreams` (the message names the field). The executor reports
    one a model built as a :class:`~speechlm_eval.errors.PluginError` naming the model method
    and the request."""


@dataclass(frozen=True, eq=False)
class ProsodyStreams:
    """A model's prosody streams of one utterance (pGSLM's representation): one entry per
    de-duplicated unit segment.

    - ``units`` (n,): the unit of each segment (consecutive segments may repeat a unit only
      if the model itself emitted it twice);
    - ``durations`` (n,): each segment's length in unit frames (whole numbers >= 1), at
      ``unit_frame_rate`` frames per second (20 ms frames for HuBERT / Whisper at 50 Hz);
    - ``f0`` (n,): the segment's F0. ``f0_kind="hz"`` (continuous): the mean F0 in Hz of the
      segment's voiced frames, 0.0 where none is voiced; ``f0_kind="bins"`` (quantised, as
      pGSLM's discrete F0 stream): the bin index of the model's speaker-mean-normalised
      log-F0, in ``0 .. len(f0_bin_edges)``, dequantised by the harness with pGSLM's rule
      (inner bins at the midpoint of their edges, outer bins at their edge); every segment
      of a quantised stream counts as voiced;
    - ``f0_bin_edges``: the bin edges (non-decreasing), given exactly when ``f0_kind="bins"``;
    - ``f0_source``: how the F0 was obtained, in words (e.g. "vocoder prediction",
      "pyworld dio+stonemask 5 ms"), recorded in the results.

    Arrays are copied to numpy (``units``/``durations`` int64, ``f0`` float64) and checked
    here: a malformed stream is a :class:`ProsodyStreamsError` (a ``ValueError``) naming the
    field. An empty stream (n = 0:
    nothing generated) is valid; scorers count it as excluded.
    """

    units: np.ndarray
    durations: np.ndarray
    f0: np.ndarray
    unit_frame_rate: float
    f0_kind: str = "hz"
    f0_bin_edges: tuple[float, ...] | None = None
    f0_source: str = ""

    def __post_init__(self) -> None:
        def arr(name: str, value: Any) -> np.ndarray:
            try:
                a = np.array(value)
            except (TypeError, ValueError) as e:
                raise ProsodyStreamsError(f"prosody streams: {name}: not an array ({e})") from None
            if a.ndim != 1:
                raise ProsodyStreamsError(
                    f"prosody streams: {name}: expected a 1-D array, got {a.shape}"
                )
            if a.size and a.dtype.kind not in "iuf":
                raise ProsodyStreamsError(
                    f"prosody streams: {name}: expected numbers, got {a.dtype}"
                )
            if a.size and not np.all(np.isfinite(a.astype(np.float64))):
                raise ProsodyStreamsError(
                    f"prosody streams: {name}: contains NaN or infinite values"
                )
            return a

        def whole(name: str, a: np.ndarray) -> np.ndarray:
            if a.size and not np.all(a == np.round(a)):
                raise ProsodyStreamsError(f"prosody streams: {name}: expected whole numbers")
            return a.astype(np.int64)

        units = whole("units", arr("units", self.units))
        durations = whole("durations", arr("durations", self.durations))
        f0 = arr("f0", self.f0).astype(np.float64)
        if not (units.size == durations.size == f0.size):
            raise ProsodyStreamsError(
                f"prosody streams: units, durations and f0 must have one entry per segment, "
                f"got {units.size}, {durations.size} and {f0.size}"
            )
        if durations.size and durations.min() < 1:
            raise ProsodyStreamsError(
                f"prosody streams: durations must be >= 1 unit frame, got {durations.min()}"
            )
        if f0.size and f0.min() < 0:
            raise ProsodyStreamsError(
                f"prosody streams: f0 must be >= 0 (0 = unvoiced), got {f0.min()}"
            )
        rate = self.unit_frame_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise ProsodyStreamsError(
                f"prosody streams: unit_frame_rate must be a number, got {rate!r}"
            )
        if not (np.isfinite(rate) and rate > 0):
            raise ProsodyStreamsError(f"prosody streams: unit_frame_rate must be > 0, got {rate!r}")
        if self.f0_kind not in F0_KINDS:
            raise ProsodyStreamsError(
                f"prosody streams: f0_kind must be one of {', '.join(F0_KINDS)}, "
                f"got {self.f0_kind!r}"
            )
        edges = self.f0_bin_edges
        if self.f0_kind == "hz":
            if edges is not None:
                raise ProsodyStreamsError(
                    "prosody streams: f0_bin_edges are given only with f0_kind='bins'"
                )
        else:
            if edges is None:
                raise ProsodyStreamsError("prosody streams: f0_kind='bins' needs f0_bin_edges")
            e = arr("f0_bin_edges", edges).astype(np.float64)
            if e.size == 0 or np.any(np.diff(e) < 0):
                raise ProsodyStreamsError(
                    "prosody streams: f0_bin_edges must be non-empty, non-decreasing"
                )
            f0 = whole("f0 (bin indices)", f0).astype(np.float64)
            if f0.size and f0.max() > e.size:
                raise ProsodyStreamsError(
                    f"prosody streams: f0 bin indices must lie in 0..{e.size}, got {f0.max():g}"
                )
            object.__setattr__(self, "f0_bin_edges", tuple(float(x) for x in e))
        if not isinstance(self.f0_source, str):
            raise ProsodyStreamsError("prosody streams: f0_source must be a str")
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "durations", durations)
        object.__setattr__(self, "f0", f0)
        object.__setattr__(self, "unit_frame_rate", float(rate))

    def __len__(self) -> int:
        return int(self.units.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProsodyStreams):
            return NotImplemented
        return (
            np.array_equal(self.units, other.units)
            and np.array_equal(self.durations, other.durations)
            and np.array_equal(self.f0, other.f0)
            and self.unit_frame_rate == other.unit_frame_rate
            and self.f0_kind == other.f0_kind
            and self.f0_bin_edges == other.f0_bin_edges
            and self.f0_source == other.f0_source
        )

    __hash__ = None  # type: ignore[assignment]  # arrays: equal by value, not hashable

    def meta(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready (what the cache row keeps)."""
        return {
            "unit_frame_rate": self.unit_frame_rate,
            "f0_kind": self.f0_kind,
            "f0_bin_edges": None if self.f0_bin_edges is None else list(self.f0_bin_edges),
            "f0_source": self.f0_source,
        }


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
    """One ``converse`` session as the harness sees it: the whole user channel, which the
    harness streams to the model frame by frame (the model never receives this object), the
    session's label and seed."""

    user: Audio
    key: str = ""
    seed: int = 0

    def fingerprint(self) -> dict[str, Any]:
        return {"user": _audio_id(self.user), "seed": int(self.seed)}


@dataclass(frozen=True)
class SessionInfo:
    """What a model learns when a ``converse`` session opens: nothing about the user's audio.

    ``frame_samples`` user samples arrive per :meth:`DuplexSession.step` at ``sample_rate``;
    ``seed`` seeds whatever the model samples in this session (same seed and same user audio
    must give the same model channel)."""

    key: str
    seed: int
    sample_rate: int
    frame_samples: int


@runtime_checkable
class DuplexSession(Protocol):
    """A model's side of one streaming conversation (see :meth:`SpeechLM.open_session`).

    The harness calls :meth:`step` once per frame, in time order, with the user's next
    ``frame_samples`` samples (a read-only float32 array; the last frame is zero-padded), and
    the model returns its own next ``frame_samples`` samples (float32, finite). What step ``i``
    returns is played in frame ``i + 1``: a reply to audio heard up to time t starts at t at
    the earliest, so one frame is the least latency any model has. :meth:`close` is called
    once at the end, also after an error."""

    def step(self, user: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ConverseResult:
    """A finished session: the model channel, time-synchronous with the user channel (same
    rate, same length), and how fast the model computed it (:func:`pipelines.converse.drive`)."""

    model: Audio
    realtime: dict[str, Any]


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
    # What this model exposes about its continuations beyond the output (:data:`CONTINUE_EXTRAS`):
    # ``prosody_streams`` = it implements :meth:`continue_prosody` and :meth:`prosody_streams`.
    # The runner skips a task needing an extra the model does not declare.
    continue_extras: ClassVar[frozenset[str]] = frozenset()
    # ``converse``: the seconds of audio per streaming step, each way (:meth:`open_session`).
    converse_frame_seconds: ClassVar[float | None] = None

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

    def method_identity(self, method: str) -> dict[str, Any]:
        """What, beyond :meth:`identity` and the plugin's code identity, the outputs of one
        method depend on (``method``: a capability's job name, e.g. ``continue_prosody``,
        ``prosody_streams``), JSON-serialisable; ``{}`` (the default): nothing more.

        For code outside the plugin's folder that the method's outputs are computed with (the
        code identity hashes the plugin's own sources only), e.g. the SHA-256 of a core
        harness module it calls. It keys that method's cached outputs only, so a change there
        leaves the model's other cached outputs valid (:meth:`identity` keys them all)."""
        return {}

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

    def continue_prosody(self, requests: list[ContinueRequest]) -> list[list[ProsodyStreams]]:
        """Optional (``"prosody_streams"`` in :attr:`continue_extras`): the prosody streams of
        the continuations :meth:`continue_` samples, per request a list of ``num_samples``
        :class:`ProsodyStreams` (``speech->speech`` requests only).

        Contract: sample ``j`` of a request is the *same sample* ``continue_`` returns for an
        equal request (same prompt, options and seed), so scores computed on the streams and
        on the audio describe the same continuations; the streams cover the continuation
        only (never the prompt, whatever ``continue_`` is configured to return), within
        ``max_seconds``. Streams are the model's own: the segments it generated and the F0 it
        produced for them (say how in ``f0_source``).
        """
        raise NotImplementedError

    def prosody_streams(self, audios: list[Audio]) -> list[ProsodyStreams]:
        """Optional (``"prosody_streams"`` in :attr:`continue_extras`): the model's own
        analysis of given speech into the same streams as :meth:`continue_prosody` (its
        units, de-duplicated into segments and durations, and the F0 of each segment), for
        the ground truth that the continuations are compared with. Same unit frame rate and
        F0 kind as the model's continuations; one :class:`ProsodyStreams` per audio."""
        raise NotImplementedError

    def respond(self, requests: list[RespondRequest]) -> list[RespondResult]:
        raise NotImplementedError

    def open_session(self, info: SessionInfo) -> DuplexSession:
        """The ``converse`` capability: open one streaming, causal session.

        The model declares its frame length in :attr:`converse_frame_seconds` (e.g. 0.08 for
        Moshi-style 12.5 Hz models) and works at :attr:`sample_rate`. The harness
        (:mod:`speechlm_eval.pipelines.converse`) feeds the user channel frame by frame and
        writes the model channel from the frames the session returns; the model never sees
        audio from the future. Sessions are opened one at a time and closed before the next."""
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
