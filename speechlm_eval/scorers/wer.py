"""Word and character error rates of transcripts against references (resynthesis WER/CER, ASR).

- Both sides are normalised first with openai-whisper's ``EnglishTextNormalizer`` (the
  normaliser of the Whisper paper and of most SpeechLM resynthesis tables) unless the task
  names another; the normaliser's package, version and source hash are recorded.
- Corpus-level rates: errors (substitutions + deletions + insertions, from jiwer's
  alignments) summed over all utterances, divided by the summed reference length; never a
  mean of per-utterance rates. CER counts characters of the normalised text, spaces
  included (jiwer's ``process_characters``).
- Uncertainty: a seeded bootstrap over utterances (scipy.stats.bootstrap, paired so that an
  utterance's errors and length are drawn together; ``bootstrap_resamples``, default 1000,
  percentile interval at ``confidence_level``). ``<metric>_stderr`` is the standard
  deviation of the bootstrap distribution; the interval is reported beside it.
- The judge's error rates on the *original* audio, when given, are reported in the same
  report (``wer_original``, ``cer_original``) with the degradation ``wer_delta`` =
  ``wer - wer_original`` (paired bootstrap: the same utterances are drawn for both).

Metric names in the results file, lm-evaluation-harness style with filter ``none``:
``wer,none``, ``wer_stderr,none``, ``cer,none``, ... (lower is better for all of them).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError, DataError
from ..execute import ExecStats
from ..hashing import digest, sha256_file
from ..options import Opt, Spec
from .base import Metric, ScoreReport

NORMALIZERS = ("whisper_english", "whisper_basic", "none")
METRICS = ("wer", "cer")
CI_METHODS = ("percentile", "basic", "BCa")

# Task YAML ``scoring.options`` (typed by the YAML parser: strict, no string coercion).
OPTIONS = Spec(
    {
        "metric": Opt(str, "wer", choices=METRICS, doc="the task's headline metric"),
        "normalizer": Opt(str, "whisper_english", choices=NORMALIZERS),
        "bootstrap_resamples": Opt(int, 1000, ge=0),
        "confidence_level": Opt(float, 0.95, gt=0, lt=1),
        "ci_method": Opt(str, "percentile", choices=CI_METHODS),
        "seed": Opt(int, 0, ge=0, doc="bootstrap seed"),
    },
    noun="key",
    strict=True,
)


# --- normalisers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalizer:
    """A text normaliser and its identity (recorded in results)."""

    name: str
    fn: Callable[[str], str]
    identity: dict[str, Any]

    def __call__(self, text: str) -> str:
        return " ".join(self.fn(text).split())


_PRIVATE = "_speechlm_eval_whisper_normalizers"


def _whisper_normalizers() -> tuple[ModuleType, Path]:
    """openai-whisper's ``whisper.normalizers`` package and its folder.

    ``import whisper.normalizers`` first runs ``whisper/__init__.py``, which imports torch,
    numba and tiktoken (about 10 s here) although the normalisers need only ``regex`` and
    ``more_itertools``. So, unless openai-whisper is already imported, the sub-package is
    loaded from its folder on its own (same files, same code; also works with
    ``pip install --no-deps openai-whisper more-itertools``).
    """
    if "whisper.normalizers" in sys.modules:
        mod = sys.modules["whisper.normalizers"]
        return mod, Path(mod.__file__).parent
    return load_standalone_normalizers()


def load_standalone_normalizers() -> tuple[ModuleType, Path]:
    """openai-whisper's ``normalizers`` folder loaded as a package of its own (see above)."""
    if _PRIVATE in sys.modules:
        mod = sys.modules[_PRIVATE]
        return mod, Path(mod.__file__).parent
    spec = importlib.util.find_spec("whisper")  # finds the package without running it
    locs = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locs[0]) / "normalizers" if locs else None
    if folder is None or not (folder / "english.py").is_file():
        raise ConfigError(
            "normalizer 'whisper_english' needs openai-whisper's text normaliser; install "
            "the judges extra (pip install 'speechlm-eval[judges]') or, without its heavy "
            "dependencies, pip install --no-deps openai-whisper more-itertools"
        )
    pspec = importlib.util.spec_from_file_location(
        _PRIVATE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert pspec is not None and pspec.loader is not None
    mod = importlib.util.module_from_spec(pspec)
    sys.modules[_PRIVATE] = mod
    try:
        pspec.loader.exec_module(mod)
    except ImportError as e:
        del sys.modules[_PRIVATE]
        raise ConfigError(
            f"openai-whisper's text normaliser cannot be imported ({e}); it needs the "
            "packages 'regex' and 'more-itertools'"
        ) from None
    return mod, folder


@cache
def get_normalizer(name: str) -> Normalizer:
    """The normaliser called ``name``: ``whisper_english``, ``whisper_basic`` or ``none``."""
    if name == "none":
        return Normalizer(name, lambda s: s, {"name": "none", "what": "whitespace collapsed"})
    if name not in NORMALIZERS:
        raise ConfigError(
            f"scoring.options: 'normalizer' must be one of {', '.join(NORMALIZERS)}, got {name!r}"
        )
    mod, folder = _whisper_normalizers()
    cls = "EnglishTextNormalizer" if name == "whisper_english" else "BasicTextNormalizer"
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("openai-whisper")
    except PackageNotFoundError:
        ver = None
    files = {
        p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.suffix in (".py", ".json")
    }
    ident = {
        "name": name,
        "class": f"whisper.normalizers.{cls}",
        "package": "openai-whisper",
        "version": ver,
        "source_sha256": digest(files),
    }
    return Normalizer(name, getattr(mod, cls)(), ident)


# --- error counting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Edit operations of each utterance (arrays over utterances, dataset order)."""

    hits: np.ndarray
    substitutions: np.ndarray
    deletions: np.ndarray
    insertions: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        return self.substitutions + self.deletions + self.insertions

    @property
    def ref_len(self) -> np.ndarray:
        return self.hits + self.substitutions + self.deletions


def _counts(out: Any, n: int) -> Counts:
    """Per-utterance counts from jiwer's alignment chunks (jiwer reports only corpus totals)."""
    c = np.zeros((4, n), dtype=np.int64)  # hits, subs, dels, ins
    row = {"equal": 0, "substitute": 1, "delete": 2}
    for i, chunks in enumerate(out.alignments):
        for ch in chunks:
            if ch.type == "insert":
                c[3, i] += ch.hyp_end_idx - ch.hyp_start_idx
            else:
                c[row[ch.type], i] += ch.ref_end_idx - ch.ref_start_idx
    # Cross-check against jiwer's own totals: a change of jiwer's output format fails loudly.
    totals = (out.hits, out.substitutions, out.deletions, out.insertions)
    if tuple(int(x) for x in c.sum(axis=1)) != tuple(int(t) for t in totals):
        raise RuntimeError(f"jiwer alignments disagree with its totals {totals}")
    return Counts(*c)


def word_counts(refs: Sequence[str], hyps: Sequence[str]) -> Counts:
    import jiwer

    return _counts(jiwer.process_words(list(refs), list(hyps)), len(refs))


def char_counts(refs: Sequence[str], hyps: Sequence[str]) -> Counts:
    import jiwer

    return _counts(jiwer.process_characters(list(refs), list(hyps)), len(refs))


def corpus_rate(c: Counts) -> float:
    """Summed errors over summed reference length (the corpus-level rate)."""
    return float(c.errors.sum() / c.ref_len.sum())


# --- bootstrap ---------------------------------------------------------------------------------


def _ratio(errors: np.ndarray, lengths: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return errors.sum(axis=axis) / lengths.sum(axis=axis)


def _delta(e1: np.ndarray, e0: np.ndarray, lengths: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (e1.sum(axis=axis) - e0.sum(axis=axis)) / lengths.sum(axis=axis)


def bootstrap_ratio(
    arrays: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    resamples: int,
    level: float,
    method: str,
    seed: int,
) -> tuple[float, float, float] | None:
    """(standard error, low, high) of ``statistic`` by resampling utterances; None if n < 2.

    The generator is re-seeded for every call, so every metric of a report is computed on
    the same resampled utterance sets.
    """
    from scipy.stats import bootstrap

    n = arrays[0].size
    if resamples < 1 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    # scipy >= 1.15 calls the generator ``rng``; older releases ``random_state``.
    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    res = bootstrap(
        tuple(a.astype(np.float64) for a in arrays),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=level,
        method=method,
        **{key: rng},
    )
    ci = res.confidence_interval
    return float(res.standard_error), float(ci.low), float(ci.high)


# --- the scorer -----------------------------------------------------------------------------------


@dataclass
class WERReport(ScoreReport):
    """ScoreReport plus confidence intervals, the normaliser's and judge's identities."""

    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # for results' scoring.<task>
    judge: dict[str, Any] | None = None  # the judge's identity (score_audio only)


class WERScorer:
    """Corpus WER and CER with bootstrap uncertainty.

    ``score(refs, hyps, original=None)`` scores transcripts; ``score_audio`` first
    transcribes audio with the task's ``asr`` judge (a role bound in the task YAML's
    ``judges:``, or by ``--judge``) through the cache and then scores. Options (task YAML
    ``scoring.options``): ``metric`` (headline, ``wer``/``cer``), ``normalizer``,
    ``bootstrap_resamples``, ``confidence_level``, ``ci_method``, ``seed``.
    """

    name = "wer"
    roles = ("asr",)  # judge roles the task must bind

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse("scoring options of the wer scorer", options)
        self.normalizer = get_normalizer(self.options["normalizer"])

    def describe(self) -> dict[str, Any]:
        """What the results file records under ``scoring.<task>`` (before any interval)."""
        o = self.options
        return {
            "scorer": self.name,
            "primary_metric": f"{o['metric']},none",
            "normalizer": self.normalizer.identity,
            "aggregation": "corpus: summed edit errors / summed reference length",
            "cer_units": "characters of the normalised text, spaces included",
            "alignment": "jiwer (Levenshtein) process_words / process_characters",
            "bootstrap": {
                "resamples": o["bootstrap_resamples"],
                "unit": "utterance",
                "method": o["ci_method"],
                "confidence_level": o["confidence_level"],
                "seed": o["seed"],
                "stderr": "standard deviation of the bootstrap distribution",
                "implementation": "scipy.stats.bootstrap (paired)",
            },
        }

    def _stats(self, arrays: tuple[np.ndarray, ...], fn: Callable[..., np.ndarray]) -> Any:
        o = self.options
        return bootstrap_ratio(
            arrays, fn, o["bootstrap_resamples"], o["confidence_level"], o["ci_method"], o["seed"]
        )

    def score(
        self,
        refs: Mapping[str, str],
        hyps: Mapping[str, str],
        original: Mapping[str, str] | None = None,
    ) -> WERReport:
        """Score ``hyps`` against ``refs`` (same utterance ids); ``original``: the judge's
        transcripts of the original audio, scored alongside (``*_original``, ``*_delta``)."""
        ids = list(refs)
        if not ids:
            raise DataError("WER scoring: no utterances")
        for what, d in (("transcripts", hyps), ("original-audio transcripts", original)):
            if d is None:
                continue
            missing = [u for u in ids if u not in d]
            extra = [u for u in d if u not in refs]
            if missing or extra:
                raise DataError(
                    f"WER scoring: {what} do not match the references: missing "
                    f"{missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
                    f"unknown {extra[:5]}{'...' if len(extra) > 5 else ''} ({len(extra)})"
                )
        norm = self.normalizer
        r = [norm(refs[u]) for u in ids]
        sides = {"": [norm(hyps[u]) for u in ids]}
        if original is not None:
            sides["_original"] = [norm(original[u]) for u in ids]
        empty = [u for u, t in zip(ids, r, strict=True) if not t]
        if len(empty) == len(ids):
            raise DataError(
                f"WER scoring: every reference is empty after the {norm.name!r} normaliser"
            )
        metrics: dict[str, Metric] = {}
        intervals: dict[str, dict[str, float]] = {}
        counts: dict[str, Counts] = {}
        for unit, fn in (("wer", word_counts), ("cer", char_counts)):
            for suffix, h in sides.items():
                c = fn(r, h)
                counts[f"{unit}{suffix}"] = c
                self._put(
                    metrics,
                    intervals,
                    f"{unit}{suffix}",
                    corpus_rate(c),
                    self._stats((c.errors, c.ref_len), _ratio),
                    len(ids),
                )
            if original is not None:
                c1, c0 = counts[unit], counts[f"{unit}_original"]
                self._put(
                    metrics,
                    intervals,
                    f"{unit}_delta",
                    corpus_rate(c1) - corpus_rate(c0),
                    self._stats((c1.errors, c0.errors, c1.ref_len), _delta),
                    len(ids),
                )
        per = self._rows(ids, refs, hyps, original, r, sides, counts)
        info = self.describe()
        info["confidence_intervals"] = intervals
        info["empty_references_after_normalisation"] = len(empty)
        info["totals"] = {
            k: {
                "errors": int(c.errors.sum()),
                "reference_length": int(c.ref_len.sum()),
                "substitutions": int(c.substitutions.sum()),
                "deletions": int(c.deletions.sum()),
                "insertions": int(c.insertions.sum()),
            }
            for k, c in counts.items()
        }
        return WERReport(metrics, per, intervals, info)

    @staticmethod
    def _put(
        metrics: dict[str, Metric],
        intervals: dict[str, dict[str, float]],
        name: str,
        value: float,
        boot: tuple[float, float, float] | None,
        n: int,
    ) -> None:
        metrics[name] = Metric(value, boot[0] if boot else None, n, higher_is_better=False)
        if boot:
            intervals[name] = {"low": boot[1], "high": boot[2]}

    @staticmethod
    def _rows(
        ids: list[str],
        refs: Mapping[str, str],
        hyps: Mapping[str, str],
        original: Mapping[str, str] | None,
        r: list[str],
        sides: dict[str, list[str]],
        counts: dict[str, Counts],
    ) -> list[dict[str, Any]]:
        rows = []
        for i, u in enumerate(ids):
            row: dict[str, Any] = {"doc_id": u, "reference": refs[u], "reference_normalized": r[i]}
            for suffix, h in sides.items():
                row[f"hypothesis{suffix}"] = (hyps if not suffix else original or {})[u]
                row[f"hypothesis{suffix}_normalized"] = h[i]
                for unit in METRICS:
                    c = counts[f"{unit}{suffix}"]
                    e, n = int(c.errors[i]), int(c.ref_len[i])
                    row[f"{unit}_errors{suffix}"] = e
                    row[f"{unit}{suffix}"] = e / n if n else None
                    if not suffix:
                        row[f"{unit}_reference_length"] = n
                        row[f"{unit}_substitutions"] = int(c.substitutions[i])
                        row[f"{unit}_deletions"] = int(c.deletions[i])
                        row[f"{unit}_insertions"] = int(c.insertions[i])
            rows.append(row)
        return rows

    # --- with the judge ----------------------------------------------------------------------

    def score_audio(
        self,
        refs: Mapping[str, str],
        audios: Mapping[str, Audio],
        cache: ResultCache,
        judge: Any,
        original: Mapping[str, Audio] | None = None,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> WERReport:
        """Transcribe ``audios`` (and ``original``, the dataset's own audio) with ``judge`` (the
        task's bound ``asr`` role) through ``cache``, then :meth:`score`. The report carries the
        judge's identity. The only path from audio to WER: the resynthesis pipeline uses it."""
        from ..judges import ASRJudge

        if not isinstance(judge, ASRJudge):
            raise ConfigError(
                f"judges: the 'asr' role is played by {getattr(judge, 'name', judge)!r}, "
                "which is not an ASR judge"
            )
        ids = list(refs)
        for what, d in (("audio", audios), ("original audio", original or audios)):
            missing = [u for u in ids if u not in d]
            if missing:
                raise DataError(
                    f"WER scoring: no {what} for {len(missing)} utterance(s): {missing[:5]}"
                )
        label = (lambda what: f"{desc} {what}") if desc else (lambda what: None)
        texts = judge.transcribe([audios[u] for u in ids], stats, cache, label("asr"))
        hyps = dict(zip(ids, texts, strict=True))
        orig = None
        if original is not None:
            texts = judge.transcribe(
                [original[u] for u in ids], stats, cache, label("asr (original)")
            )
            orig = dict(zip(ids, texts, strict=True))
        report = self.score(refs, hyps, orig)
        report.judge = judge.identity()
        return report
