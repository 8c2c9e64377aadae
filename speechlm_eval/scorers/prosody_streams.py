"""Scorer ``prosody_streams``: pGSLM's prosody metrics in *stream space*, on the streams a
model exposes (:meth:`speechlm_eval.model.SpeechLM.continue_prosody` and
:meth:`~speechlm_eval.model.SpeechLM.prosody_streams`; the ``prosody_streams`` extra).

pGSLM (Kharitonov et al. 2022; fairseq ``examples/textless_nlp/pgslm/eval/cont_metrics.py``)
scores its own streams; so does this scorer, with the definitions of
:mod:`speechlm_eval.prosody_metrics` ("Stream space"). Every value is **per de-duplicated unit
segment** (never per frame):

- duration: the segment's length in the model's unit frames (20 ms at 50 Hz, as pGSLM's);
- F0: the speaker-mean-normalised log-F0 of the segment (pGSLM's ``--interpolate-f0
  --log-f0 --normalize-f0-mean``, :func:`~speechlm_eval.prosody_metrics.normalise_log_f0`):
  unvoiced segments between voiced ones are interpolated over the segment index, then
  ``log(F0) - speaker mean``; unvoiced segments before the first or after the last voiced one
  stay 0. The speaker mean is the *reference* speaker's (a model that shifts the register is
  penalised): the mean log-F0 of the voiced segments of that speaker's reference utterances,
  each weighted by its duration (pGSLM's ``F0Stat`` is over frames; segment F0 weighted by
  length approximates it). A quantised stream (``f0_kind="bins"``) is dequantised with pGSLM's
  rule and used as it is (the model normalised it itself). Reference utterances are
  normalised whole, then split.
- voiced segments, where F0 means and stds are taken: an explicit mask per stream, never
  read off the values (a normalised value 0.0 is an F0 at the speaker mean): in Hz, the
  segments from the first voiced one to the last (the interpolated span); quantised, every
  segment. Samples and references must share the unit frame rate, the F0 kind and the bin
  edges (else a :class:`~speechlm_eval.errors.PluginError` naming the model).

The reference is the model's own analysis of the whole reference utterance, split as pGSLM
splits its prefix (``InferenceDataset``): the prompt is every segment up to and including
the first whose cumulative duration reaches the prompt's length; the rest is the reference
continuation. Metrics, per temperature (filter ``t=<T>``; names end in ``_stream``, apart from
the audio-space ``_audio`` ones, whose values they are not comparable with):

- ``f0_min_mae_stream`` / ``dur_min_mae_stream`` (correctness, lower is better). pGSLM: per
  prompt, ``min over samples of sum_k |sample_k - reference_k|`` over the reference
  continuation's segments ``k``, summed over prompts, divided by the number of those segments
  (:func:`~speechlm_eval.prosody_metrics.min_mae`); it teacher-forces the other streams, so
  every sample has the reference's segments. A model's free-running samples do not: here
  segments are aligned by index, each sample's error is its mean over the first
  ``min(len(sample), len(reference))`` segments, the best sample's mean counts for each of
  the reference continuation's segments (prompts weighted by their segment count). With
  samples as long as the reference this is pGSLM's formula exactly. Segment ``k`` of a
  free-running sample is not the same content as segment ``k`` of the reference: the value
  says how close the best sample's segment-by-segment contour comes to the reference's, not
  pGSLM's teacher-forced error; samples shorter than the reference are counted
  (``short_samples``), and so are the segments the best samples covered
  (``compared_segments`` of ``reference_segments``).
- ``f0_corr_stream`` / ``dur_corr_stream`` (consistency): Pearson r of the reference prompt's
  mean vs each sample's continuation mean, the prompt repeated once per sample, as pGSLM
  pairs them (F0 means over voiced segments;
  :func:`~speechlm_eval.prosody_metrics.f0_correlation`, ``duration_correlation``).
- ``f0_std_stream`` / ``dur_std_stream`` (expressiveness): the pooled std of all generated
  continuation segments (:func:`~speechlm_eval.prosody_metrics.pooled_std`, each segment one
  value; F0 over voiced segments only).

Filter ``oracle``: the reference continuations' own ``f0_std_stream`` and ``dur_std_stream``
and their prompt-vs-continuation ``f0_corr_stream`` / ``dur_corr_stream`` (pGSLM's
``--copy-target``), to compare with.

Nothing is averaged as NaN: a sample with no segment, or with no voiced segment (F0 metrics),
and a prompt with no reference continuation, no voiced reference segment or no speaker F0 are
left out and counted (``scoring.<task>.excluded``). A correlation left with fewer than two
pairs, or with a constant side, is not reported (the reason is recorded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import prosody_metrics as pm
from ..errors import PluginError
from ..hashing import digest
from ..metrics import Metric, ScoreReport
from ..model import ProsodyStreams
from ..options import Opt, Spec
from .continuation import ContinuationReport, Prompt, rows_by_filter, temperature_filter

OPTIONS = Spec(
    {"primary": Opt(str, None, doc="the headline metric, 'metric,filter'")},
    noun="key",
    strict=True,
)

SPACE = (
    "stream (the model's own streams via continue_prosody / prosody_streams): one value per "
    "de-duplicated unit segment; durations in unit frames; F0 = reference-speaker-mean-"
    "normalised log-F0 per segment, interpolated over unvoiced segments"
)
ALIGNMENT = (
    "min-MAE aligns segments by index (free-running samples, no teacher forcing): a sample's "
    "error is its mean over the segments it shares with the reference continuation; the best "
    "sample's per prompt, prompts weighted by their reference continuation's segment count"
)


@dataclass(frozen=True)
class StreamSample:
    """The streams of one sampled continuation: prompt, temperature, sample index."""

    doc_id: str
    temperature: float
    sample: int
    streams: ProsodyStreams

    @property
    def filter(self) -> str:
        return temperature_filter(self.temperature)


def split_reference(streams: ProsodyStreams, prompt_seconds: float) -> int:
    """Number of segments of the prompt in a whole reference utterance's streams: up to and
    including the first segment whose cumulative duration reaches ``prompt_seconds`` (pGSLM's
    ``InferenceDataset``: ``searchsorted(cumsum(durations), prefix) + 1``); all of them when
    none does."""
    boundary = prompt_seconds * streams.unit_frame_rate
    ends = np.cumsum(streams.durations)
    reach = np.flatnonzero(ends >= boundary - 1e-9)
    return int(reach[0]) + 1 if reach.size else len(streams)


def _dequantised(s: ProsodyStreams) -> np.ndarray:
    assert s.f0_bin_edges is not None  # ProsodyStreams checks it
    return pm.dequantise_f0_bins(s.f0.astype(np.int64), s.f0_bin_edges)


@dataclass(frozen=True)
class LogF0:
    """An F0 stream as normalised log-F0 per segment, and which segments are voiced.

    ``voiced`` is explicit, never read off the values: a quantised stream is voiced
    everywhere (:class:`~speechlm_eval.model.ProsodyStreams`), and its bins dequantise to 0.0
    for "at the speaker mean"; a stream in Hz is voiced on its interpolated span
    (:func:`~speechlm_eval.prosody_metrics.interpolated_span`), its unvoiced edges hold 0.0.
    """

    values: np.ndarray
    voiced: np.ndarray  # bool, one per segment

    def __getitem__(self, sl: slice) -> LogF0:
        return LogF0(self.values[sl], self.voiced[sl])

    @property
    def any_voiced(self) -> bool:
        return bool(self.voiced.any())

    @property
    def voiced_values(self) -> np.ndarray:
        return self.values[self.voiced]


def _log_f0(s: ProsodyStreams, speaker_mean: float | None) -> LogF0 | None:
    """The F0 stream as normalised log-F0 per segment with its voiced mask, or None when it
    has no voiced segment or cannot be normalised (no speaker mean)."""
    if s.f0_kind == "bins":
        return LogF0(_dequantised(s), np.ones(len(s), dtype=bool)) if len(s) else None
    if not np.any(s.f0 > 0) or speaker_mean is None:
        return None
    values = pm.normalise_log_f0(s.f0, speaker_mean, interpolate=True)
    return LogF0(values, pm.interpolated_span(s.f0))


def _voiced_part(f0: LogF0 | None, sl: slice) -> LogF0 | None:
    """``f0[sl]``, or None when that part has no voiced segment."""
    if f0 is None:
        return None
    part = f0[sl]
    return part if part.any_voiced else None


def speaker_log_f0_mean(streams: Sequence[ProsodyStreams]) -> float | None:
    """Mean log-F0 over the voiced segments (F0 in Hz) of one speaker's reference streams, each
    segment weighted by its duration; None when no segment is voiced."""
    logs, weights = [], []
    for s in streams:
        if s.f0_kind != "hz":
            continue
        v = s.f0 > 0
        logs.append(np.log(s.f0[v]))
        weights.append(s.durations[v].astype(np.float64))
    w = np.concatenate(weights) if weights else np.zeros(0)
    if w.size == 0:
        return None
    return float(np.average(np.concatenate(logs), weights=w))


def _pooled(values: Sequence[np.ndarray]) -> tuple[float | None, int]:
    """Pooled std (ddof 0) of all values of all sequences, each value weighing the same."""
    kept = [np.asarray(v, dtype=np.float64)[None] for v in values if np.size(v)]
    if not kept:
        return None, 0
    return pm.pooled_std(kept), sum(k.size for k in kept)


def _corr_metric(c: dict[str, Any]) -> tuple[Metric | None, str | None]:
    r = c["r"]
    if r is None:
        return None, f"{c['n_pairs']} pair(s), need at least 2"
    if not np.isfinite(r):
        return None, "a side is constant (Pearson r undefined)"
    return Metric(float(r), None, c["n_pairs"], True), None


class ProsodyStreamScorer:
    """The ``prosody_streams`` scorer (see the module docstring). Option: ``primary``."""

    name = "prosody_streams"
    inputs = "prosody_streams"
    roles: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})

    def score_streams(
        self,
        prompts: Sequence[Prompt],
        samples: Sequence[StreamSample],
        references: Mapping[str, ProsodyStreams],
        model: str = "the model",
    ) -> ContinuationReport:
        """Metrics per filter from the samples' streams and each prompt's whole reference
        utterance's streams (``references[doc_id]``). ``model`` names the model in errors
        (streams that disagree on frame rate or F0 kind are a :class:`PluginError`)."""
        rates = {s.streams.unit_frame_rate for s in samples} | {
            references[p.doc_id].unit_frame_rate for p in prompts
        }
        if len(rates) > 1:
            raise PluginError(
                f"prosody streams of {model}: streams at several unit frame rates "
                f"({', '.join(f'{r:g}' for r in sorted(rates))} Hz); durations must share one"
            )
        _check_f0_kinds(model, samples, [references[p.doc_id] for p in prompts])
        ids = [p.doc_id for p in prompts]
        speaker = {p.doc_id: p.speaker if p.speaker is not None else p.doc_id for p in prompts}
        by_speaker: dict[str, list[ProsodyStreams]] = defaultdict(list)
        for d in ids:
            by_speaker[speaker[d]].append(references[d])
        spk_mean = {s: speaker_log_f0_mean(v) for s, v in by_speaker.items()}
        mean_of = {d: spk_mean[speaker[d]] for d in ids}

        # The reference, normalised whole, then split into prompt and continuation.
        ref_prompt_dur: dict[str, np.ndarray] = {}
        ref_cont_dur: dict[str, np.ndarray] = {}
        ref_prompt_f0: dict[str, LogF0 | None] = {}
        ref_cont_f0: dict[str, LogF0 | None] = {}
        no_continuation: list[str] = []
        for p in prompts:
            ref = references[p.doc_id]
            cut = split_reference(ref, p.prompt_seconds)
            if cut >= len(ref):
                no_continuation.append(p.doc_id)
            ref_prompt_dur[p.doc_id] = ref.durations[:cut].astype(np.float64)
            ref_cont_dur[p.doc_id] = ref.durations[cut:].astype(np.float64)
            f0 = _log_f0(ref, mean_of[p.doc_id])
            ref_prompt_f0[p.doc_id] = _voiced_part(f0, slice(None, cut))
            ref_cont_f0[p.doc_id] = _voiced_part(f0, slice(cut, None))
        usable = [d for d in ids if d not in no_continuation]
        ref_cont_f0_values = {d: _values(v) for d, v in ref_cont_f0.items()}  # for min-MAE

        rows = []
        for s in samples:
            f0 = _log_f0(s.streams, mean_of[s.doc_id])
            rows.append(
                {
                    "doc_id": s.doc_id,
                    "temperature": s.temperature,
                    "filter": s.filter,
                    "sample": s.sample,
                    "segments": len(s.streams),
                    "frames": int(s.streams.durations.sum()),
                    "voiced_segments": int(f0.voiced.sum()) if f0 is not None else 0,
                    "f0_mean_norm": pm.stream_mean(f0.voiced_values) if f0 is not None else None,
                    "dur_mean": pm.stream_mean(s.streams.durations) if len(s.streams) else None,
                    "_f0": _values(f0),
                    "_log_f0": f0,
                    "_dur": s.streams.durations.astype(np.float64),
                }
            )

        by_filter: dict[str, ScoreReport] = {}
        excluded: dict[str, Any] = {}
        undefined: dict[str, dict[str, str]] = {}
        kept_docs = set(usable)
        for filt, all_rs in rows_by_filter(rows).items():
            rs = [r for r in all_rs if r["doc_id"] in kept_docs]  # excluded prompts: no metric
            by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rs:
                by_doc[r["doc_id"]].append(r)
            m: dict[str, Metric] = {}
            why: dict[str, str] = {}
            ex: dict[str, Any] = {}
            for stream in ("f0", "dur"):
                refs = ref_cont_dur if stream == "dur" else ref_cont_f0_values
                mae, info = self._min_mae(usable, by_doc, refs, f"_{stream}")
                ex[f"{stream}_min_mae"] = info
                if mae is not None:
                    n = info["reference_segments"]
                    m[f"{stream}_min_mae_stream"] = Metric(mae, None, n, False)
                else:
                    why[f"{stream}_min_mae_stream"] = "no prompt left"
            corr = _f0_corr(
                [ref_prompt_f0[d] for d in usable],
                [[r["_log_f0"] for r in by_doc[d]] for d in usable],
            )
            dcorr = pm.duration_correlation(
                [ref_prompt_dur[d] for d in usable],
                [[r["_dur"] for r in by_doc[d]] for d in usable],
            )
            for name, c in (("f0_corr_stream", corr), ("dur_corr_stream", dcorr)):
                metric, reason = _corr_metric(c)
                if metric is not None:
                    m[name] = metric
                else:
                    why[name] = reason or ""
                ex[name.removesuffix("_stream")] = {
                    k: c[k] for k in ("excluded_prompts", "excluded_samples")
                }
            f0_std, n_f0 = _pooled([f.voiced_values for r in rs if (f := r["_log_f0"]) is not None])
            dur_std, n_dur = _pooled([r["_dur"] for r in rs])
            if f0_std is not None:
                m["f0_std_stream"] = Metric(f0_std, None, n_f0, True)
            if dur_std is not None:
                m["dur_std_stream"] = Metric(dur_std, None, n_dur, True)
            # no voiced segment, or no reference-speaker mean to normalise by
            ex["samples_without_f0"] = sum(r["_f0"] is None for r in rs)
            ex["empty_samples"] = sum(r["segments"] == 0 for r in rs)
            by_filter[filt] = ScoreReport(m)
            excluded[filt] = ex
            if why:
                undefined[filt] = why

        # The oracle: the reference continuations themselves (pGSLM's --copy-target).
        om: dict[str, Metric] = {}
        owhy: dict[str, str] = {}
        f0_std, n_f0 = _pooled(
            [v.voiced_values for d in usable if (v := ref_cont_f0[d]) is not None]
        )
        dur_std, n_dur = _pooled([ref_cont_dur[d] for d in usable])
        if f0_std is not None:
            om["f0_std_stream"] = Metric(f0_std, None, n_f0, True)
        if dur_std is not None:
            om["dur_std_stream"] = Metric(dur_std, None, n_dur, True)
        corr = _f0_corr([ref_prompt_f0[d] for d in usable], [[ref_cont_f0[d]] for d in usable])
        dcorr = pm.duration_correlation(
            [ref_prompt_dur[d] for d in usable], [[ref_cont_dur[d]] for d in usable]
        )
        for name, c in (("f0_corr_stream", corr), ("dur_corr_stream", dcorr)):
            metric, reason = _corr_metric(c)
            if metric is not None:
                om[name] = metric
            else:
                owhy[name] = reason or ""
        by_filter["oracle"] = ScoreReport(om)
        if owhy:
            undefined["oracle"] = owhy
        excluded["oracle"] = {
            "unvoiced_reference_continuations": sum(ref_cont_f0[d] is None for d in usable)
        }
        excluded["prompts_without_reference_continuation"] = sorted(no_continuation)
        excluded["prompts_without_voiced_reference_prompt"] = sorted(
            d for d in usable if ref_prompt_f0[d] is None
        )
        # a quantised stream needs no speaker mean (the model normalised it itself)
        excluded["speakers_without_f0"] = sorted(
            s
            for s, v in spk_mean.items()
            if v is None and any(r.f0_kind == "hz" for r in by_speaker[s])
        )

        for r in rows:
            # the streams stay out of the samples file (cached)
            del r["_f0"], r["_log_f0"], r["_dur"]
        sources = sorted({s.streams.f0_source for s in samples})
        info = {
            "primary": self.options["primary"],
            "scorer": self.name,
            "space": SPACE,
            "unit": "segment",
            "min_mae_alignment": ALIGNMENT,
            "unit_frame_rate": rates.pop() if rates else None,
            "f0_source": {
                "generated": sources,
                "reference": sorted({references[d].f0_source for d in ids}),
            },
            "f0_kind": sorted(
                {s.streams.f0_kind for s in samples} | {references[d].f0_kind for d in ids}
            ),
            "speaker_log_f0_mean": {
                s: None if v is None else round(v, 6) for s, v in sorted(spk_mean.items())
            },
            "excluded": excluded,
        }
        if undefined:
            info["undefined"] = undefined
        return ContinuationReport(by_filter, rows, info)

    @staticmethod
    def _min_mae(
        docs: Sequence[str],
        by_doc: Mapping[str, list[dict[str, Any]]],
        refs: Mapping[str, np.ndarray | None],
        field: str,
    ) -> tuple[float | None, dict[str, Any]]:
        """pGSLM's min-MAE with index-aligned segments (module docstring): per prompt, the
        best sample's mean error over the segments it shares with the reference, weighted by
        the reference continuation's segment count."""
        total, count = 0.0, 0
        info = {
            "reference_segments": 0,
            "compared_segments": 0,
            "short_samples": 0,
            "excluded_prompts": 0,
            "excluded_samples": 0,
        }
        for d in docs:
            target = refs[d]
            gens = [r[field] for r in by_doc.get(d, [])]
            kept = [g for g in gens if g is not None and np.size(g)]
            info["excluded_samples"] += len(gens) - len(kept)
            if target is None or not np.size(target) or not kept:
                info["excluded_prompts"] += 1
                continue
            errors = []
            for g in kept:
                k = min(target.size, g.size)
                errors.append((pm.min_mae([g[None, :k]], [target[:k]]), k))
            best, k = min(errors, key=lambda e: e[0])
            total += best * target.size
            count += target.size
            info["reference_segments"] += int(target.size)
            info["compared_segments"] += int(k)
            info["short_samples"] += sum(g.size < target.size for g in kept)
        if count == 0:
            return None, info
        return total / count, info


def _values(f0: LogF0 | None) -> np.ndarray | None:
    return None if f0 is None else f0.values


_NO_F0 = LogF0(np.zeros(0), np.zeros(0, dtype=bool))


def _f0_corr(
    prompts: Sequence[LogF0 | None], samples: Sequence[Sequence[LogF0 | None]]
) -> dict[str, Any]:
    """pGSLM's F0 correlation, means over the voiced segments (the explicit masks, so a
    dequantised bin of value 0.0 counts); a missing stream has no mean (excluded, counted)."""
    ps = [p or _NO_F0 for p in prompts]
    gs = [[g or _NO_F0 for g in gen] for gen in samples]
    return pm.f0_correlation(
        [p.values for p in ps],
        [[g.values for g in gen] for gen in gs],
        prompt_voiced=[p.voiced for p in ps],
        continuation_voiced=[[g.voiced for g in gen] for gen in gs],
    )


def _f0_kind(s: ProsodyStreams) -> str:
    """A stream's F0 kind in words, its bin edges included (what samples and references
    must share)."""
    if s.f0_kind != "bins":
        return s.f0_kind
    e = s.f0_bin_edges or ()
    return f"bins ({len(e)} edges {e[0]:g}..{e[-1]:g}, {digest(list(e))[:8]})"


def _check_f0_kinds(
    model: str, samples: Sequence[StreamSample], references: Sequence[ProsodyStreams]
) -> None:
    """Samples and references must have one F0 kind and, quantised, the same bin edges: the
    metrics compare their values."""
    gen = {(s.streams.f0_kind, s.streams.f0_bin_edges): s.streams for s in samples}
    ref = {(r.f0_kind, r.f0_bin_edges): r for r in references}
    if len(gen.keys() | ref.keys()) <= 1:
        return

    def show(kinds: Mapping[Any, ProsodyStreams]) -> str:
        return " / ".join(sorted({_f0_kind(v) for v in kinds.values()})) or "none"

    raise PluginError(
        f"prosody streams of {model}: samples and references must share f0_kind and "
        f"f0_bin_edges; samples have F0 as {show(gen)}, references as {show(ref)}"
    )
