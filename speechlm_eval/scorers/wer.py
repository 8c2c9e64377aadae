"""Word and character error rates of transcripts against references (resynthesis WER/CER, ASR).

- Both sides are normalised first with openai-whisper's ``EnglishTextNormalizer`` (the
  normaliser of the Whisper paper and of most SpeechLM resynthesis tables) unless the task
  names another; the normaliser's package, version and source hash are recorded
  (:mod:`speechlm_eval.scorers.normalizers`).
- Per utterance (``score_sample``), sufficient statistics only: edit errors (substitutions +
  deletions + insertions, from jiwer's alignments) and reference length, in words and in
  characters, for the model's output and for the original audio's transcript (the
  reference length is the same for both), plus the output's substitutions, deletions and
  insertions. CER counts characters of the normalised text, spaces included (jiwer's
  ``process_characters``).
- Corpus-level rates (``aggregate``): errors summed over all utterances, divided by the
  summed reference length; never a mean of per-utterance rates (those are in the samples
  file for reading only).
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics import (
    Metric,
    SampleScore,
    ScoreReport,
    bootstrap,
    paired_ratio_delta,
    ratio,
    ratio_of_sums,
)
from ..options import Opt, Spec
from .base import sample_records
from .normalizers import NORMALIZERS, Normalizer, get_normalizer, load_standalone_normalizers

if TYPE_CHECKING:
    from ..audio import Audio
    from ..cache import ResultCache
    from ..execute import ExecStats

__all__ = [
    "NORMALIZERS",
    "Counts",
    "Normalizer",
    "WERReport",
    "WERScorer",
    "char_counts",
    "get_normalizer",
    "load_standalone_normalizers",
    "word_counts",
]

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
    return ratio(c.errors, c.ref_len)


# --- the scorer -----------------------------------------------------------------------------------


@dataclass
class WERReport(ScoreReport):
    """ScoreReport plus confidence intervals and the judge's identity (``info``: the
    normaliser's identity, bootstrap settings, totals)."""

    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    judge: dict[str, Any] | None = None  # the judge's identity (score_audio only)


class WERScorer:
    """Corpus WER and CER with bootstrap uncertainty.

    ``score_sample(doc_id, reference, hypothesis, original=None)`` counts one utterance
    (``score_samples`` a whole mapping, with one jiwer call per unit and side);
    ``aggregate(samples)`` gives the corpus rates; ``score(refs, hyps, original=None)`` is
    the two in a row; ``score_audio`` first transcribes audio with the task's ``asr`` judge
    (a role bound in the task YAML's ``judges:``, or by ``--judge``) through the cache and
    then scores. Options (task YAML ``scoring.options``): ``metric`` (headline,
    ``wer``/``cer``), ``normalizer``, ``bootstrap_resamples``, ``confidence_level``,
    ``ci_method``, ``seed``.
    """

    name = "wer"
    inputs = "transcripts"  # what it scores (scorers.base protocols)
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

    # --- per utterance ---------------------------------------------------------------------

    def score_sample(
        self, doc_id: str, reference: str, hypothesis: str, original: str | None = None
    ) -> SampleScore:
        """One utterance's counts (``original``: the judge's transcript of the input audio)."""
        orig = None if original is None else {doc_id: original}
        return self.score_samples({doc_id: reference}, {doc_id: hypothesis}, orig)[0]

    def score_samples(
        self,
        refs: Mapping[str, str],
        hyps: Mapping[str, str],
        original: Mapping[str, str] | None = None,
    ) -> list[SampleScore]:
        """Every utterance of ``refs`` (in its order) counted against ``hyps`` (same ids) and,
        when given, ``original``. Values: ``{wer,cer}_{errors,reference_length,
        substitutions,deletions,insertions}`` and ``{wer,cer}_errors_original``; meta: the
        texts before and after normalisation and each utterance's own rates (None for an
        empty reference), for reading."""
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
        raw = {"": hyps} if original is None else {"": hyps, "_original": original}
        sides = {suffix: [norm(d[u]) for u in ids] for suffix, d in raw.items()}
        # One jiwer call per unit and side (per-utterance alignments, as jiwer aligns each
        # pair on its own anyway).
        counts = {
            f"{unit}{suffix}": fn(r, h)
            for unit, fn in (("wer", word_counts), ("cer", char_counts))
            for suffix, h in sides.items()
        }
        out = []
        for i, u in enumerate(ids):
            meta: dict[str, Any] = {"reference": refs[u], "reference_normalized": r[i]}
            for suffix, h in sides.items():
                meta[f"hypothesis{suffix}"] = raw[suffix][u]
                meta[f"hypothesis{suffix}_normalized"] = h[i]
            values: dict[str, float] = {}
            for unit in METRICS:
                c = counts[unit]
                n = int(c.ref_len[i])  # the same for the original: the reference is shared
                for suffix in sides:
                    e = int(counts[f"{unit}{suffix}"].errors[i])
                    values[f"{unit}_errors{suffix}"] = e
                    meta[f"{unit}{suffix}"] = e / n if n else None
                values[f"{unit}_reference_length"] = n
                values[f"{unit}_substitutions"] = int(c.substitutions[i])
                values[f"{unit}_deletions"] = int(c.deletions[i])
                values[f"{unit}_insertions"] = int(c.insertions[i])
            out.append(SampleScore(u, values, meta=meta))
        return out

    # --- over the corpus -------------------------------------------------------------------

    def _stats(self, arrays: tuple[np.ndarray, ...], fn: Callable[..., np.ndarray]) -> Any:
        o = self.options
        return bootstrap(
            arrays, fn, o["bootstrap_resamples"], o["confidence_level"], o["ci_method"], o["seed"]
        )

    def aggregate(self, samples: Sequence[SampleScore]) -> WERReport:
        """Corpus rates from per-utterance counts: ``wer``, ``cer`` and, when every sample
        has original-audio counts, ``*_original`` and the paired ``*_delta``."""
        if not samples:
            raise DataError("WER scoring: no utterances")
        paired = {"wer_errors_original" in s.values for s in samples}
        if len(paired) > 1:
            raise DataError("WER scoring: only some utterances have original-audio counts")
        sides = ("", "_original") if paired == {True} else ("",)

        def col(key: str) -> np.ndarray:
            return np.array([s.values[key] for s in samples])

        if col("wer_reference_length").sum() == 0:
            raise DataError(
                "WER scoring: every reference is empty after the "
                f"{self.normalizer.name!r} normaliser"
            )
        metrics: dict[str, Metric] = {}
        intervals: dict[str, dict[str, float]] = {}
        totals: dict[str, dict[str, int]] = {}
        k = len(samples)
        for unit in METRICS:
            n = col(f"{unit}_reference_length")
            errs = {suffix: col(f"{unit}_errors{suffix}") for suffix in sides}
            for suffix, e in errs.items():
                boot = self._stats((e, n), ratio_of_sums)
                self._put(metrics, intervals, f"{unit}{suffix}", ratio(e, n), boot, k)
                totals[f"{unit}{suffix}"] = {
                    "errors": int(e.sum()),
                    "reference_length": int(n.sum()),
                }
            # Edit operations of the model's output only: the original side's are in no
            # metric and not in the samples file, so the totals hold what the rows hold.
            totals[unit].update(
                {
                    op: int(col(f"{unit}_{op}").sum())
                    for op in ("substitutions", "deletions", "insertions")
                }
            )
            if len(sides) == 2:
                e1, e0 = errs[""], errs["_original"]
                boot = self._stats((e1, e0, n), paired_ratio_delta)
                delta = ratio(e1, n) - ratio(e0, n)
                self._put(metrics, intervals, f"{unit}_delta", delta, boot, k)
        info = self.describe()
        info["confidence_intervals"] = intervals
        info["empty_references_after_normalisation"] = int((col("wer_reference_length") == 0).sum())
        info["totals"] = totals
        return WERReport(metrics, sample_records(samples), info=info, intervals=intervals)

    def score(
        self,
        refs: Mapping[str, str],
        hyps: Mapping[str, str],
        original: Mapping[str, str] | None = None,
    ) -> WERReport:
        """Score ``hyps`` against ``refs`` (same utterance ids); ``original``: the judge's
        transcripts of the original audio, scored alongside (``*_original``, ``*_delta``)."""
        return self.aggregate(self.score_samples(refs, hyps, original))

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
