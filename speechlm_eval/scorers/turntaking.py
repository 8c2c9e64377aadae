"""Scorer ``turn_taking``: dGSLM turn-taking statistics of ``converse`` sessions.

Each stimulus is one side (the user, channel A) of a recorded two-channel conversation; the
model converses with it and its channel stands where the other speaker's (B) was. The
``vad`` judge finds speech in the user channel, the model channel and the reference channel
B; IPUs are speech merged across silences shorter than ``min_silence`` (option, default
0.2 s as dGSLM); pauses, gaps and overlaps follow (:mod:`speechlm_eval.turntaking`, a
documented re-derivation: dGSLM released no evaluation code). Filters:

- ``model``: statistics of (user, model), per conversation, averaged over conversations;
- ``reference``: the same statistics of (user, B) measured the same way (same VAD, same
  threshold): what a human partner did in the same conversation;
- ``annotated`` (when the data gives exact IPUs of both channels, as the built-in
  conversations do): the statistics of the annotated (user, B) IPUs, without a VAD, so the
  VAD's own bias can be read off against ``reference``;
- ``vs_reference``: ``abs_diff_<kind>_per_min``, the mean over conversations of the absolute
  difference between the model's and the reference's rate (lower is better: the statistics
  themselves have no better direction, a partner is judged by how human its timing is).

Per kind (``ipus``, ``pauses``, ``gaps``, ``overlaps``): ``<kind>_per_min`` (events per
minute of conversation), ``<kind>_seconds_per_min`` (cumulated duration per minute) and,
for the ``model`` filter, ``<kind>_mean`` (mean duration; conversations without such an
event left out and counted). Rates are per conversation, then averaged (standard error
over conversations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import turntaking as tt
from ..audio import AudioRef
from ..metrics import Metric, ScoreReport, mean
from ..options import Opt, Spec
from .base import FilteredReport

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..execute import ExecStats

OPTIONS = Spec(
    {
        "primary": Opt(str, None, doc="the headline metric, 'metric,filter'"),
        "min_silence": Opt(float, tt.MIN_SILENCE, ge=0, doc="s of silence that split IPUs"),
    },
    noun="key",
    strict=True,
)

FILTERS = ("model", "reference", "annotated")


def _stats(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], dur: float, ms: float):
    return tt.stats({"user": tt.ipus(a, ms), "other": tt.ipus(b, ms)}, dur).as_dict()


class TurnTakingScorer:
    """The ``turn_taking`` scorer (see the module docstring). Role: ``vad``."""

    name = "turn_taking"
    inputs = "sessions"
    roles = ("vad",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})

    def judge(
        self,
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        """A row per session: the three channels' VAD segments and the statistics."""
        ms = self.options["min_silence"]
        refs = [s.item.reference for s in sessions]
        missing = [s.doc_id for s, r in zip(sessions, refs, strict=True) if r is None]
        ref_audio = [AudioRef.of(r).load() for r in refs if r is not None]
        audios = [s.user for s in sessions] + [s.model for s in sessions] + ref_audio
        segs = judges["vad"].segments(audios, stats, cache, desc)
        n = len(sessions)
        user, model, ref = segs[:n], segs[n : 2 * n], iter(segs[2 * n :])
        rows = []
        for i, s in enumerate(sessions):
            dur = s.user.duration
            row: dict[str, Any] = {"doc_id": s.doc_id, "duration": dur}
            row["model"] = _stats(user[i], model[i], dur, ms)
            if s.doc_id not in missing:
                row["reference"] = _stats(user[i], next(ref), dur, ms)
            truth = s.item.meta.get("ipus")
            if isinstance(truth, Mapping) and len(truth) == 2:
                a, b = list(truth.values())
                row["annotated"] = _stats(a, b, dur, ms)
            row["segments"] = {"user": user[i], "model": model[i]}
            rows.append(row)
        return rows

    def finish(self, items: Sequence[Any], parts: Sequence[list[dict[str, Any]]]) -> FilteredReport:
        rows = [r for part in parts for r in part]
        by_filter: dict[str, ScoreReport] = {}
        left_out: dict[str, int] = {}
        for f in FILTERS:
            have = [r[f] for r in rows if f in r]
            if not have:
                continue
            metrics: dict[str, Metric] = {}
            for k in tt.EVENT_KINDS:
                metrics[f"{k}_per_min"] = mean([h[f"{k}_per_min"] for h in have])
                metrics[f"{k}_seconds_per_min"] = mean([h[f"{k}_seconds_per_min"] for h in have])
                means = [h[f"{k}_mean"] for h in have if not math.isnan(h[f"{k}_mean"])]
                if means:
                    metrics[f"{k}_mean"] = mean(means)
                left_out[f"{k}_mean,{f}"] = len(have) - len(means)
            by_filter[f] = ScoreReport(metrics)
        # How far the model's statistics are from the human partner's in the same
        # conversation (same VAD): the mean absolute difference per conversation, lower is
        # better; the statistics themselves have no better direction.
        paired = [r for r in rows if "reference" in r]
        if paired:
            by_filter["vs_reference"] = ScoreReport(
                {
                    f"abs_diff_{k}_per_min": mean(
                        [
                            abs(r["model"][f"{k}_per_min"] - r["reference"][f"{k}_per_min"])
                            for r in paired
                        ],
                        False,
                    )
                    for k in tt.EVENT_KINDS
                }
            )
        info = {
            "primary": self.options["primary"],
            "definition": "re-derivation of dGSLM's statistics (no official code); "
            "speechlm_eval.turntaking",
            "min_silence_s": self.options["min_silence"],
            "normalisation": "per minute of each conversation (its whole timeline), then "
            "the mean over conversations",
            "counts": {
                "sessions": len(rows),
                "with_reference": sum("reference" in r for r in rows),
                "with_annotation": sum("annotated" in r for r in rows),
                "conversations_without_event_for_mean": left_out,
            },
        }
        return FilteredReport(by_filter, rows, info)


def _vad_stats(
    vad: Any, dialogues: Sequence[Any], ms: float, stats: Any, cache: Any, desc: str | None
) -> list[dict[str, float]]:
    """Turn-taking statistics of each two-channel audio (VAD on both channels)."""
    segs = vad.segments([x for d in dialogues for x in (d.a, d.b)], stats, cache, desc)
    return [_stats(segs[2 * i], segs[2 * i + 1], d.duration, ms) for i, d in enumerate(dialogues)]


class DialogueContinuationScorer:
    """The ``dialogue_continuation`` scorer: dGSLM's comparison of generated and real
    turn-taking, and its *consistency* (the correlation across conversations between a
    statistic of the prompt and the same statistic of its continuation). Role ``vad``.

    Filters: ``model`` (the model's continuations) and ``reference`` (the true
    continuations: what the recorded speakers did next), each with the per-minute
    statistics of :class:`TurnTakingScorer` and ``consistency_<stat>`` = Pearson's r between
    prompt and continuation over the conversations (``scipy.stats.pearsonr``; Spearman and n
    under ``scoring.<task>.consistency``). A correlation needs 3 conversations or more and
    varying values; an undefined one is left out and listed."""

    name = "dialogue_continuation"
    inputs = "dialogue_continuations"
    roles = ("vad",)
    CONSISTENCY = ("ipus_per_min", "pauses_per_min", "gaps_per_min", "overlaps_per_min")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})

    def score_dialogues(
        self,
        samples: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> FilteredReport:
        ms = self.options["min_silence"]
        vad = judges["vad"]
        prompt = _vad_stats(vad, [s.prompt for s in samples], ms, stats, cache, desc)
        model = _vad_stats(vad, [s.continuation for s in samples], ms, stats, cache, desc)
        truth = _vad_stats(vad, [s.reference for s in samples], ms, stats, cache, desc)
        rows = [
            {"doc_id": s.doc_id, "prompt": p, "model": m, "reference": t}
            for s, p, m, t in zip(samples, prompt, model, truth, strict=True)
        ]
        by_filter: dict[str, ScoreReport] = {}
        consistency: dict[str, Any] = {}
        undefined: list[str] = []
        for f, cont in (("model", model), ("reference", truth)):
            metrics: dict[str, Metric] = {}
            if cont:
                for k in tt.EVENT_KINDS:
                    metrics[f"{k}_per_min"] = mean([h[f"{k}_per_min"] for h in cont])
                    metrics[f"{k}_seconds_per_min"] = mean(
                        [h[f"{k}_seconds_per_min"] for h in cont]
                    )
                corr = tt.consistency(prompt, cont, self.CONSISTENCY) if len(cont) > 1 else {}
                consistency[f] = {k: c.as_dict() for k, c in corr.items()}
                for k, c in corr.items():
                    if math.isnan(c.pearson):
                        undefined.append(f"consistency_{k},{f}")
                    else:
                        metrics[f"consistency_{k}"] = Metric(c.pearson, None, c.n, True)
            if metrics:
                by_filter[f] = ScoreReport(metrics)
        info = {
            "primary": self.options["primary"],
            "definition": "re-derivation of dGSLM's statistics and consistency (no official "
            "code); speechlm_eval.turntaking",
            "min_silence_s": ms,
            "consistency": consistency,
            "counts": {"conversations": len(rows)},
            **({"undefined_metrics": undefined} if undefined else {}),
        }
        return FilteredReport(by_filter, rows, info)
