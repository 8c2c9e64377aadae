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
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import registry
from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError, PluginError
from ..execute import ExecStats
from ..hashing import digest, sha256_file
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


# --- options ---------------------------------------------------------------------------------

# name -> (type, default); ``None`` default = optional; values may arrive as strings (CLI).
OptionSpec = dict[str, tuple[type, Any]]
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_options(judge: str, spec: OptionSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against ``spec``: unknown names and bad values are a ConfigError."""
    unknown = set(given) - set(spec)
    if unknown:
        raise ConfigError(
            f"judge {judge!r}: unknown option(s) {sorted(unknown)}; allowed: {', '.join(spec)}"
        )
    out: dict[str, Any] = {}
    for key, (typ, default) in spec.items():
        value = given.get(key, default)
        out[key] = None if value is None else _coerce(judge, key, value, typ)
    return out


def _coerce(judge: str, key: str, value: Any, typ: type) -> Any:
    bad = ConfigError(f"judge {judge!r}: option {key!r} must be {typ.__name__}, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise bad
    if typ in (int, float):
        if isinstance(value, bool):
            raise bad
        try:
            v = typ(value)
        except (TypeError, ValueError):
            raise bad from None
        if typ is int and isinstance(value, float) and value != v:
            raise bad
        return v
    if typ is str:
        if not isinstance(value, (str, Path)):
            raise bad
        return str(value)
    raise TypeError(f"unsupported option type {typ}")


def positive(judge: str, key: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"judge {judge!r}: option {key!r} must be >= 1, got {value}")
    return value


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


# --- the judge types -------------------------------------------------------------------------


class Judge:
    """Base class of judges. Subclasses take keyword options (see their ``OPTIONS``)."""

    kind: ClassVar[str] = ""
    OPTIONS: ClassVar[OptionSpec] = {}
    # Integer options that must be >= 1 wherever a judge declares them.
    POSITIVE_OPTIONS: ClassVar[frozenset[str]] = frozenset({"batch_size", "beam_size"})

    def __init__(self, name: str = "", **options: Any) -> None:
        self.name = name or type(self).__name__
        self.options = self.resolve_options(self.name, options)

    @classmethod
    def resolve_options(cls, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options with defaults filled in (cheap, no model loaded); the load cache key."""
        opts = parse_options(name, cls.OPTIONS, options)
        for key in sorted(cls.POSITIVE_OPTIONS & opts.keys()):
            if opts[key] is not None:
                positive(name, key, opts[key])
        return opts

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


class ASRJudge(Judge):
    """Speech recognition judge: batches of audio in, transcripts (plain text) out.

    Subclasses implement :meth:`_transcribe_batch` on float32 arrays at ``sample_rate``;
    :meth:`transcribe` resamples (explicitly, with the resampler named in the identity),
    sorts longest first and batches by the ``batch_size`` option.
    """

    kind = "asr"
    sample_rate: int = 16000  # the rate _transcribe_batch receives

    @property
    def batch_size(self) -> int:
        return int(self.options.get("batch_size") or 16)

    def transcribe(self, audios: Sequence[Audio], stats: ExecStats | None = None) -> list[str]:
        """Transcripts of ``audios``, in the same order (one string each, stripped)."""
        for i, a in enumerate(audios):
            if not isinstance(a, Audio):
                raise TypeError(f"transcribe: item {i} is {type(a).__name__}, expected Audio")
        samples = []
        for a in audios:
            if a.sample_rate != self.sample_rate and stats is not None:
                k = f"{a.sample_rate}->{self.sample_rate}"
                stats.resampled[k] = stats.resampled.get(k, 0) + 1
            samples.append(a.resample(self.sample_rate).samples)
        # Longest first: padding-sensitive back ends (CTC) waste least, and batch
        # composition depends only on the inputs, never on arrival order.
        order = sorted(range(len(samples)), key=lambda i: (-samples[i].size, i))
        out: list[str | None] = [None] * len(samples)
        bs = self.batch_size
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            texts = self._transcribe_batch([samples[i] for i in idx])
            if not isinstance(texts, list) or len(texts) != len(idx):
                raise PluginError(
                    f"judge {self.name!r} returned {len(texts)} transcripts for {len(idx)} audios"
                )
            if stats is not None:
                stats.model_calls += 1
                stats.batch_sizes.append(len(idx))
            for i, t in zip(idx, texts, strict=True):
                out[i] = " ".join(str(t).split())
        return [t or "" for t in out]

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
    so that a judge whose ``identity()`` leaves it out still never gets stale outputs)."""
    return digest({"judge": judge.identity(), "code": judge_code(judge)})


def transcribe_cached(
    judge: ASRJudge,
    audios: Sequence[Audio],
    cache: ResultCache,
    stats: ExecStats | None = None,
    chunk: int | None = None,
    desc: str | None = None,
) -> list[str]:
    """``judge.transcribe(audios)`` through ``cache``: keyed by (judge identity, audio hash).

    Identical audio is transcribed once. Missing transcripts are computed and committed in
    chunks (default: 4 judge batches), so a killed run keeps what it finished. ``desc``:
    show a progress bar with that label (counts audio to transcribe, not cache hits).
    """
    jkey = judge_key(judge)
    keys = [digest([jkey, "transcribe", a.content_hash()]) for a in audios]
    hits = cache.get_many(set(keys))
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in hits:
            first.setdefault(k, i)
    todo = list(first.items())
    calls = ExecStats()
    if stats is not None:
        stats.cache_hits += len(keys) - sum(1 for k in keys if k not in hits)
        # Resampling is counted for every audio, cached or not, so the record is the same
        # for a fresh and a resumed run.
        for a in audios:
            if a.sample_rate != judge.sample_rate:
                r = f"{a.sample_rate}->{judge.sample_rate}"
                stats.resampled[r] = stats.resampled.get(r, 0) + 1
    step = chunk or 4 * judge.batch_size
    bar = None
    if desc is not None and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="file", dynamic_ncols=True)
    try:
        for s in range(0, len(todo), step):
            part = todo[s : s + step]
            texts = judge.transcribe([audios[i] for _, i in part], calls)
            new = {k: t for (k, _), t in zip(part, texts, strict=True)}
            cache.put_many(new)
            hits.update(new)
            calls.computed += len(part)
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    if stats is not None:
        stats.computed += calls.computed
        stats.model_calls += calls.model_calls
        stats.batch_sizes.extend(calls.batch_sizes)
    return [hits[k] for k in keys]
