"""Judges: model-backed evaluators (ASR first; VAD, speaker encoder, ... later).

A judge is registered in the ``speechlm_eval.judges`` entry-point group, loaded once per
process by :func:`load_judge` (same name and options -> the same object), and names its
exact identity (package and version, model and its SHA-256, compute type, options) through
:meth:`Judge.identity`; every result that used a judge records that identity. ASR judges
transcribe batches of :class:`~speechlm_eval.audio.Audio`; :func:`transcribe_cached`
stores transcripts in the run's :class:`~speechlm_eval.cache.ResultCache` keyed by the
judge's identity and the audio's content hash, so a killed run never transcribes twice.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from .. import registry
from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError, PluginError
from ..execute import BatchSizer, ExecStats, Item, Job, execute
from ..hashing import digest, sha256_file
from ..options import Opt, Spec, parse
from ..provenance import code_identity

RESAMPLER = "scipy.signal.resample_poly"  # what Audio.resample uses; recorded in identities


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def path_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder: every file's relative name and SHA-256, sorted.

    A single file gives the same digest as ``sha256sum`` (checkable by hand).
    """
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def weights_file(judge: str, value: str | None, what: str, example: str) -> str:
    """The resolved path of a judge's required ``model`` option naming a weights file on disk.

    ``what`` says what the file is (and its licence), ``example`` its usual name: both go into
    the one-line ConfigError when the option is missing or names no file (weights are never
    downloaded)."""
    if not value:
        raise ConfigError(
            f"judge {judge!r} needs option 'model': the path of {what}; nothing is downloaded"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"judge {judge!r}: option 'model': {path} is not a file; put {example} there; "
            "nothing is downloaded"
        )
    return str(path.resolve())


# --- options ---------------------------------------------------------------------------------

# A judge's options: a speechlm_eval.options.Spec, or the shorthand {name: (type, default)}.
# Values may arrive as strings (command line, asr_args); a None default makes one optional.
OptionSpec = Spec | dict[str, tuple[type, Any]]
# Integer options that must be >= 1 in every judge, also when declared with the shorthand: a
# batch or a beam of 0 is never meant (and would loop forever).
_AT_LEAST_ONE = frozenset({"batch_size", "beam_size"})


def parse_options(judge: str, spec: OptionSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``spec`` (unknown names, bad values: a ConfigError naming the
    judge and the option), defaults filled in; see :mod:`speechlm_eval.options`."""
    if not isinstance(spec, Spec):
        spec = Spec(
            {
                k: Opt(t, d, ge=1 if k in _AT_LEAST_ONE and t is int else None)
                for k, (t, d) in spec.items()
            }
        )
    return parse(f"judge {judge!r}", spec, given)


def whisper_decoding(beam_size: int, language: str) -> dict[str, Any]:
    """Decoding settings shared by the Whisper judges (temperature 0, no fallback, no
    timestamps, no conditioning on previous text); each judge adds its own details."""
    return {
        "beam_size": beam_size,
        "temperature": 0.0,
        "temperature_fallback": False,
        "language": language,
        "task": "transcribe",
        "without_timestamps": True,
        "condition_on_previous_text": False,
    }


class Word(NamedTuple):
    """One recognised word with its time span in seconds on the audio's timeline (what ASR
    judges with word timestamps return; a tuple, so it is stored in the cache as a list)."""

    text: str
    start: float
    end: float


# --- the judge types -------------------------------------------------------------------------


class Judge:
    """Base class of judges. Subclasses take keyword options (see their ``OPTIONS``)."""

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[OptionSpec] = Spec({})

    sample_rate: int = 16000  # the rate the judge's batched methods receive
    # For ``slm-eval judges``: what each input needs beside its audio, and where the weights
    # come from when no option names them ("" = the user must give them; never downloaded).
    needs: ClassVar[tuple[str, ...]] = ("audio",)
    offline_default: ClassVar[str] = ""

    available: bool = True
    """Whether the judge can serve as configured. A judge that cannot (e.g. the LLM judge with
    no endpoint set) still constructs, sets this False and says why in
    :attr:`unavailable_reason`; the runner then skips every task that binds it, with that
    reason, instead of failing mid-task. Judges that always can leave the default."""
    unavailable_reason: str = ""
    """Why the judge cannot serve (one line, what to set), or ``""`` when it can."""

    def __init__(self, name: str = "", **options: Any) -> None:
        self.name = name or type(self).__name__
        self.options = self.resolve_options(self.name, options)

    @property
    def batch_size(self) -> int:
        """Requests per call of the judge's batched method (option ``batch_size``, default 16)."""
        return int(self.options.get("batch_size") or 16)

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options with defaults filled in (cheap, no model loaded); the load cache key."""
        return parse_options(name, cls.OPTIONS, options)

    def _identity_head(self, package: str) -> dict[str, Any]:
        """The fields every judge identity starts with: name, kind, class, package, version."""
        return {
            "judge": self.name,
            "kind": self.kind,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "package": package,
            "version": package_version(package),
        }

    def identity(self) -> dict[str, Any]:
        """What makes two judges give the same outputs: package and version, model and its
        SHA-256, compute type, options. JSON-serialisable; recorded in every result."""
        raise NotImplementedError

    def cache_identity(self) -> dict[str, Any] | None:
        """What the judge's cached values depend on, when that is less than :meth:`identity`
        and the judge's code: ``None`` (the default) keys the cache by both (:func:`judge_key`).

        For judges whose cached value is what an outside service answered, and whose results
        are derived from it when read (the LLM judge caches the raw answer and parses it on
        reading): they name here exactly what the service was sent, so that upgrading the
        harness, its HTTP client or the parser never asks the service again (a paid API's
        answers are not reproducible). Whatever derives results from the cached value must
        then run on every read, never be cached itself."""
        return None


class ASRJudge(Judge):
    """Speech recognition judge: batches of audio in, transcripts (plain text) out.

    Subclasses implement :meth:`_transcribe_batch` on float32 arrays at ``sample_rate``;
    :meth:`transcribe` resamples (explicitly, with the resampler named in the identity),
    sorts longest first and batches by the ``batch_size`` option.
    """

    kind = "asr"

    def transcribe(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[str]:
        """Transcripts of ``audios``, in the same order (one string each, whitespace collapsed).

        Through the harness' one executor: longest first in batches of ``batch_size`` (padding-
        sensitive back ends waste least, and batch composition depends only on the inputs),
        resampled explicitly to :attr:`sample_rate` (counted in ``stats``), identical audio
        transcribed once, and — with ``cache`` — every batch committed as it finishes.
        """
        return run_judge(self, "transcribe", self._transcribe_requests, audios, stats, cache, desc)

    def _transcribe_requests(self, requests: list[JudgeRequest]) -> list[str]:
        texts = self._transcribe_batch([r.audio.samples for r in requests])
        if not isinstance(texts, list) or len(texts) != len(requests):
            n = len(texts) if isinstance(texts, list) else type(texts).__name__
            raise PluginError(
                f"judge {self.name!r} returned {n} transcripts for {len(requests)} audios"
            )
        return [" ".join(str(t).split()) for t in texts]

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        raise NotImplementedError

    def _input_identity(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "resampler": RESAMPLER}


# --- loading and caching ---------------------------------------------------------------------

_loaded: dict[str, Judge] = {}
_lock = threading.Lock()


def judge_names() -> list[str]:
    """Registered judge names (entry-point group ``speechlm_eval.judges``)."""
    return registry.names("judges")


def load_judge(name: str, **options: Any) -> Judge:
    """The judge registered as ``name`` with ``options``, loaded once per process.

    Options may be strings (as from the command line); each judge documents its own.
    The same name and the same options after defaults are filled in return the same object.
    """
    cls = registry.get("judges", name)
    if not (isinstance(cls, type) and issubclass(cls, Judge)):
        raise PluginError(f"judge plugin {name!r} is not a subclass of speechlm_eval.judges.Judge")
    key = digest({"name": name, "options": cls.resolve_options(name, options)})
    with _lock:
        judge = _loaded.get(key)
        if judge is None:
            judge = cls(name=name, **options)
            _loaded[key] = judge
    return judge


def clear_loaded() -> None:
    """Forget loaded judges (tests; freeing memory between runs)."""
    with _lock:
        _loaded.clear()


def judge_code(judge: Judge) -> dict[str, Any]:
    """The code identity of a judge (see :func:`speechlm_eval.provenance.code_identity`)."""
    name = judge.name if judge.name in registry.names("judges") else None
    return code_identity(type(judge), registry.distribution("judges", name) if name else None)


def judge_record(judge: Judge) -> dict[str, Any]:
    """What results record of a judge: its identity plus its code identity (``code``)."""
    return {**judge.identity(), "code": judge_code(judge)}


def judge_key(judge: Judge) -> str:
    """Cache namespace of a judge: a digest of its identity and its code identity (added here,
    so that a judge whose ``identity()`` leaves it out still never gets stale outputs); or,
    for a judge that names one, of its :meth:`~Judge.cache_identity` alone (a namespace of its
    own: the two digests are of differently keyed objects and cannot coincide)."""
    own = judge.cache_identity()
    if own is not None:
        return digest({"cache_identity": own})
    return digest({"judge": judge.identity(), "code": judge_code(judge)})


@dataclass(frozen=True)
class JudgeRequest:
    """One audio for a judge, at the judge's rate (other inputs go in judge-specific types)."""

    audio: Audio
    key: str = ""

    def fingerprint(self) -> dict[str, Any]:
        return {"audio": self.audio.content_hash()}


def run_judge(
    judge: Judge,
    method: str,
    call: Callable[[list[JudgeRequest]], list[Any]],
    audios: Sequence[Audio],
    stats: ExecStats | None = None,
    cache: ResultCache | None = None,
    desc: str | None = None,
    store: Callable[[str, Any, Any], Any] | None = None,
    load: Callable[[str, Any], Any] | None = None,
) -> list[Any]:
    """``call`` (a judge's batched method) on ``audios`` through the executor, keyed by the
    judge's identity and code (:func:`judge_key`), ``method`` and each audio's content hash.

    ``cache=None`` keeps values for this call only. Values must be JSON-serialisable unless
    ``store``/``load`` say how they are kept (see :class:`speechlm_eval.execute.Job`).
    """
    for i, a in enumerate(audios):
        if not isinstance(a, Audio):
            raise TypeError(f"{method}: item {i} is {type(a).__name__}, expected Audio")
    # Audio is loaded and brought to the judge's rate (conform) only when its batch runs.
    items = [Item("", a.duration, lambda conform, a=a: JudgeRequest(conform(a))) for a in audios]
    return _execute_judge(judge, method, call, items, stats, cache, desc, store, load)


class FingerprintedRequest(Protocol):
    """What :func:`run_judge_requests` takes: a request that names its content for the cache."""

    def fingerprint(self) -> Any: ...


def run_judge_requests(
    judge: Judge,
    method: str,
    call: Callable[[list[Any]], list[Any]],
    requests: Sequence[FingerprintedRequest],
    cost: Callable[[Any], float] | None = None,
    stats: ExecStats | None = None,
    cache: ResultCache | None = None,
    desc: str | None = None,
    store: Callable[[str, Any, Any], Any] | None = None,
    load: Callable[[str, Any], Any] | None = None,
) -> list[Any]:
    """:func:`run_judge` for prepared requests that hold no audio (text, ...): ``call`` on
    ``requests`` through the executor, keyed by :func:`judge_key`, ``method`` and each request's
    ``fingerprint()``. ``cost(request)`` orders the work longest first (default: input order)."""
    for i, r in enumerate(requests):
        if not callable(getattr(r, "fingerprint", None)):
            raise TypeError(f"{method}: request {i} ({type(r).__name__}) has no fingerprint()")
    items = [
        Item("", float(cost(r)) if cost is not None else 0.0, lambda conform, r=r: r)
        for r in requests
    ]
    return _execute_judge(judge, method, call, items, stats, cache, desc, store, load)


def _execute_judge(
    judge: Judge,
    method: str,
    call: Callable[[list[Any]], list[Any]],
    items: list[Item],
    stats: ExecStats | None,
    cache: ResultCache | None,
    desc: str | None,
    store: Callable[[str, Any, Any], Any] | None,
    load: Callable[[str, Any], Any] | None,
) -> list[Any]:
    """The executor call shared by :func:`run_judge` and :func:`run_judge_requests`."""
    job = Job(method, judge_key(judge), call, judge.sample_rate)
    if store is not None and load is not None:
        job = Job(method, job.worker_key, call, judge.sample_rate, store, load)
    return execute(
        job,
        items,
        cache=cache if cache is not None else ResultCache(None),
        sizer=BatchSizer(judge.batch_size),
        stats=stats if stats is not None else ExecStats(),
        desc=desc,
        shard=False,  # every rank holds the same inputs to judge; each judges them all, cached
    )


def transcribe_cached(
    judge: ASRJudge,
    audios: Sequence[Audio],
    cache: ResultCache,
    stats: ExecStats | None = None,
    desc: str | None = None,
) -> list[str]:
    """``judge.transcribe(audios)`` through ``cache``: keyed by (judge identity and code, audio
    hash); identical audio is transcribed once and every batch is committed as it finishes, so
    a killed run never transcribes twice. ``desc``: label of the progress bar."""
    return judge.transcribe(audios, stats, cache, desc)
