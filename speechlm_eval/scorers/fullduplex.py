"""Scorer ``fullduplex``: reflective pause, response onset and interruption (survey §4.3, §6.1).

For full-duplex stimuli whose timings are known exactly (the built-in
``dialogue/fullduplex`` set: a user turn with a planned mid-turn pause, the turn's end, then
a barge-in by the user while the model should be answering), the ``vad`` judge finds where
the model speaks in its channel, and each session is scored on the audio timeline:

- **reflective pause** (Parrot's "stay silent while the user only pauses"):
  ``pause_takeover_rate`` = share of sessions where the model speaks during the planned pause
  (any VAD speech overlapping it), ``pause_speech_seconds`` = mean seconds of model speech
  inside the pause;
- **response**: ``response_rate`` = share of sessions where the model starts speaking between
  the true turn end and the barge-in; ``response_latency`` = that onset minus the turn end
  (seconds, mean over responding sessions; median and 90th percentile under
  ``scoring.<task>.distributions``);
- **interruption**: over the sessions where the model is speaking when the barge-in starts,
  ``stop_latency`` = end of that speech stretch minus the barge-in onset (mean; clipped at 0)
  and ``interrupt_stop_rate`` = share that stopped within ``stop_within`` seconds (option,
  default 1.0). Sessions where the model was silent at the barge-in are counted
  (``scoring.<task>.counts.not_speaking_at_barge_in``), never scored as stops.

No official script defines these (Parrot/NTPP released none; see
``generation-dialogue-metrics.md`` §5.1): this is a re-derivation and every threshold is an
option recorded with the results. VAD padding (Silero: 30 ms) shifts onsets earlier and
ends later; the judge's options are recorded with its identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..metrics import Metric, ScoreReport, mean
from ..options import Opt, Spec
from .base import FilteredReport

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..execute import ExecStats

OPTIONS = Spec(
    {
        "primary": Opt(str, None, doc="the headline metric, 'metric,filter'"),
        "stop_within": Opt(float, 1.0, gt=0, doc="s after the barge-in onset to count a stop"),
    },
    noun="key",
    strict=True,
)

Segments = list[tuple[float, float]]


def overlap_seconds(segs: Segments, a: float, b: float) -> float:
    """Seconds of ``segs`` inside ``[a, b]``."""
    return float(sum(max(0.0, min(e, b) - max(s, a)) for s, e in segs))


def score_session(meta: Mapping[str, Any], model: Segments, stop_within: float) -> dict[str, Any]:
    """One session's values from the stimulus timings ``meta`` (``pauses`` with ``planned``,
    ``turn_ends``, ``interruptions``: see the built-in subset) and the model's speech."""
    try:
        pauses = [p for p in meta["pauses"] if p.get("planned")]
        turn_end = float(meta["turn_ends"][0])
        barge = float(meta["interruptions"][0]["start"])
    except (KeyError, IndexError, TypeError) as e:
        raise DataError(
            f"full-duplex stimulus {meta.get('id', '?')!r}: expected 'pauses' (one planned), "
            f"'turn_ends' and 'interruptions' timings ({e!r})"
        ) from None
    if len(pauses) != 1:
        raise DataError(
            f"full-duplex stimulus {meta.get('id', '?')!r}: expected one planned pause, "
            f"got {len(pauses)}"
        )
    p0, p1 = float(pauses[0]["start"]), float(pauses[0]["end"])
    in_pause = overlap_seconds(model, p0, p1)
    onsets = [s for s, _ in model if turn_end <= s < barge]
    at_barge = [(s, e) for s, e in model if s <= barge < e]
    row: dict[str, Any] = {
        "pause_takeover": float(in_pause > 0),
        "pause_speech_seconds": in_pause,
        "responded": float(bool(onsets)),
        "response_latency": (min(onsets) - turn_end) if onsets else None,
        "speaking_at_barge_in": bool(at_barge),
        "stop_latency": None,
        "stopped": None,
    }
    if at_barge:
        lat = max(0.0, at_barge[0][1] - barge)
        row["stop_latency"] = lat
        row["stopped"] = float(lat <= stop_within)
    return row


def _dist(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {
        "n": int(a.size),
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


class FullDuplexScorer:
    """The ``fullduplex`` scorer (see the module docstring). Role: ``vad``."""

    name = "fullduplex"
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
        """A row per session: the model's speech segments and the values above."""
        segs = judges["vad"].segments([s.model for s in sessions], stats, cache, desc)
        rows = []
        for s, seg in zip(sessions, segs, strict=True):
            row = {
                "doc_id": s.doc_id,
                **score_session(s.item.meta, seg, self.options["stop_within"]),
            }
            row["model_speech"] = [[round(a, 4), round(b, 4)] for a, b in seg]
            rows.append(row)
        return rows

    def finish(self, items: Sequence[Any], parts: Sequence[list[dict[str, Any]]]) -> FilteredReport:
        rows = [r for part in parts for r in part]
        resp = [r["response_latency"] for r in rows if r["response_latency"] is not None]
        stops = [r for r in rows if r["speaking_at_barge_in"]]
        metrics: dict[str, Metric] = {
            "pause_takeover_rate": mean([r["pause_takeover"] for r in rows], False),
            "pause_speech_seconds": mean([r["pause_speech_seconds"] for r in rows], False),
            "response_rate": mean([r["responded"] for r in rows], True),
            "response_latency": mean(resp, False),
            "interrupt_stop_rate": mean([r["stopped"] for r in stops], True),
            "stop_latency": mean([r["stop_latency"] for r in stops], False),
        }
        # A rate over no session is not a number: left out of the results and said so.
        empty = sorted(k for k, m in metrics.items() if m.n == 0)
        metrics = {k: m for k, m in metrics.items() if m.n > 0}
        info = {
            "primary": self.options["primary"],
            "definition": "re-derivation (no official script); see speechlm_eval.scorers."
            "fullduplex",
            "stop_within_s": self.options["stop_within"],
            "counts": {
                "sessions": len(rows),
                "responded": len(resp),
                "speaking_at_barge_in": len(stops),
                "not_speaking_at_barge_in": len(rows) - len(stops),
            },
            "distributions": {
                "response_latency": _dist(resp),
                "stop_latency": _dist([r["stop_latency"] for r in stops]),
            },
            **({"undefined_metrics": empty} if empty else {}),
        }
        return FilteredReport({"none": ScoreReport(metrics)}, rows, info)


def score_interactive(meta: Mapping[str, Any], model: Segments) -> dict[str, Any]:
    """One interactive-period session: did the model start speaking while nobody addressed
    it (from the start of the not-addressed period to the start of the request), and did it
    answer the request (an onset after the request's end)?"""
    try:
        na, ad = meta["not_addressed"], meta["addressed"]
        na0, ad0, ad1 = float(na["start"]), float(ad["start"]), float(ad["end"])
    except (KeyError, TypeError) as e:
        raise DataError(
            f"interactive stimulus {meta.get('id', '?')!r}: expected 'not_addressed' and "
            f"'addressed' timings ({e!r})"
        ) from None
    false = [s for s, _ in model if na0 <= s < ad0]
    answers = [s for s, _ in model if s >= ad1]
    return {
        "kind": str(na["kind"]),
        "false_response": float(bool(false)),
        "false_speech_seconds": overlap_seconds(model, na0, ad0),
        "responded": float(bool(answers)),
        "response_latency": (min(answers) - ad1) if answers else None,
    }


class InteractiveScorer:
    """The ``interactive`` scorer: interactive-period recognition (survey §4.3). Role ``vad``.

    ``false_response_rate`` (lower is better): share of sessions where the model starts
    speaking between the start of the not-addressed period and the request, per kind of
    not-addressed audio (filters ``others``, ``background``, ``noise``) and over all
    (``none``); ``false_speech_seconds``; ``response_rate`` and ``response_latency`` (onset
    after the request's end; mean over responding sessions) under ``none``. A
    re-derivation: the systems that describe the behaviour released no scorer."""

    name = "interactive"
    inputs = "sessions"
    roles = ("vad",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Spec(
            {"primary": Opt(str, None, doc="the headline metric, 'metric,filter'")},
            noun="key",
            strict=True,
        ).parse(f"scorer {self.name!r}", options or {})

    def judge(
        self,
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        segs = judges["vad"].segments([s.model for s in sessions], stats, cache, desc)
        return [
            {
                "doc_id": s.doc_id,
                **score_interactive(s.item.meta, seg),
                "model_speech": [[round(a, 4), round(b, 4)] for a, b in seg],
            }
            for s, seg in zip(sessions, segs, strict=True)
        ]

    def finish(self, items: Sequence[Any], parts: Sequence[list[dict[str, Any]]]) -> FilteredReport:
        rows = [r for part in parts for r in part]
        resp = [r["response_latency"] for r in rows if r["response_latency"] is not None]
        by_filter: dict[str, ScoreReport] = {}
        overall = {
            "false_response_rate": mean([r["false_response"] for r in rows], False),
            "false_speech_seconds": mean([r["false_speech_seconds"] for r in rows], False),
            "response_rate": mean([r["responded"] for r in rows], True),
            "response_latency": mean(resp, False),
        }
        by_filter["none"] = ScoreReport({k: m for k, m in overall.items() if m.n > 0})
        kinds = sorted({r["kind"] for r in rows})
        for k in kinds:
            these = [r for r in rows if r["kind"] == k]
            by_filter[k] = ScoreReport(
                {"false_response_rate": mean([r["false_response"] for r in these], False)}
            )
        info = {
            "primary": self.options["primary"],
            "definition": "re-derivation (no official script); see speechlm_eval.scorers."
            "fullduplex.InteractiveScorer",
            "counts": {
                "sessions": len(rows),
                "by_kind": {k: sum(r["kind"] == k for r in rows) for k in kinds},
                "responded": len(resp),
            },
            "distributions": {"response_latency": _dist(resp)},
        }
        return FilteredReport(by_filter, rows, info)
