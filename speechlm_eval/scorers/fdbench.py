"""Scorer ``fdbench``: Full-Duplex-Bench v1 and v1.5 on model channels from streaming sessions.

The official benchmark lets a model write a time-synchronous ``output.wav`` for each
``input.wav``; here the streaming ``converse`` protocol writes it (causally, frame by frame)
and the metrics are those of :mod:`speechlm_eval.fdbench` (the official scorer's rules at
commit d7336bd, cross-checked against it side by side), by the stimulus' kind:

- ``pause_handling`` (lower is better), ``turn_taking`` (higher) and ``user_interruption``
  (higher): ``tor`` from the ``asr`` judge's word timestamps of the model channel (for
  interruption, of the channel from the interruption's end on, times shifted back, as the
  official ASR step does), and ``latency`` (first word start minus the user's turn end or
  the interruption end, clipped at 0, mean over TOR = 1 samples; their count is recorded);
- ``backchannel``: the ``vad`` judge's segments of the model channel (16 kHz, rounded to
  0.1 s as the official Silero call returns them), the words inside each, and the sample's
  ground-truth distribution: ``tor``, ``freq`` (candidates per second) and ``jsd`` (JS
  distance); means over samples, population stds under ``scoring.<task>.std``;
- v1.5 ``overlap_*`` kinds: ``stop_latency`` and ``response_latency`` (means of the
  official ``get_timing.py`` intervals from VAD segments of the user and model channels);
  the behaviour tags with option ``behavior`` (below); before/after adaptation needs UTMOSv2,
  not computed here (said in ``scoring.<task>.not_computed``).

The interruption relevance rating (0-5, an LLM judge in the official code: gpt-4-turbo with
the benchmark's rubric) is computed with option ``relevance: true`` (task
``fdbench_interruption_relevance``) by the ``llm`` judge bound with
``rubric: fdbench-interruption`` (:mod:`speechlm_eval.judges.llm`: the rubric is read from the
user's copy of the official file). As in the official code only samples with TOR = 1 are rated:
the judge reads the context turn, the interrupting turn and the response, which is the ``asr``
judge's words of the model channel from the interruption's end on joined by single spaces (the
official ASR script's ``text``). ``relevance`` is the mean over the answers that parsed to a
rating in 0..5; every rated sample is counted by status in ``scoring.<task>.llm_status``
(``ok``, ``unparsed``, ``out_of_range``, ``error``; TOR = 0 samples as ``tor_0``, never
sent), and each row keeps the answer (``llm_*`` fields). Without the option the rating is
listed under ``scoring.<task>.not_computed``.
The v1.5 behaviour tags (``eval_behavior.py``: gpt-4o-2024-08-06 with the benchmark's
instruction) are computed with option ``behavior: true`` (tasks ``fdbench_v15_<subset>_behavior``)
by the ``llm`` judge bound with ``rubric: fdbench-behavior`` (the instruction read from the
user's copy of ``behavior.txt``). The option sets the scorer's ``variants`` to ``("clean",)``,
so the converse pipeline also runs the model on the sample's ``clean_input.wav``; the ``asr``
judge's words of the four channels (clean input, input, the model's output on each) are put in
the official ASR objects (``{"text", "chunks": [{"text", "timestamp": [start, end]}]}``, rows
``words_clean_input``, ``words_input``, ``words_clean_output``, ``words_output``) and sent in
one request per sample. ``respond_rate``, ``resume_rate``, ``uncertain_rate`` and
``unknown_rate`` are the shares of *all* samples tagged ``C_RESPOND``, ``C_RESUME``,
``C_UNCERTAIN_HANDLING`` and ``C_UNKNOWN``: an answer that does not parse (``unparsed``) or a
request that failed (``error``) counts in the denominator as no tag, so the four sum to less
than 1 when there are any (the official code has none: it asks again until an answer parses);
their counts are in ``scoring.<task>.llm_status`` and ``behavior_samples``, and the official
ratios over the tagged samples alone in ``behavior_ratios_of_tagged``. Direction (ours; the
benchmark reports the ratios without one): ``respond_rate`` is higher-is-better for the user
interruption subset, ``resume_rate`` for the others, every other ratio lower-is-better.
Published numbers depend on the ASR (parakeet-tdt-0.6b-v2 in the current official code,
CrisperWhisper in the paper's v1): the ``asr`` judge's word-timestamp identity is recorded
in ``scoring.<task>.word_timestamps``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import fdbench as fdb
from ..audio import Audio
from ..errors import ConfigError, DataError
from ..judges.llm import BEHAVIOR_FIELDS, BEHAVIOR_TAGS, asr_object, compact_json
from ..judges.llm import STATUSES as LLM_STATUSES
from ..judges.llm import summarize as llm_summary
from ..metrics import Metric, ScoreReport, mean
from ..options import Opt, Spec
from .base import FilteredReport

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..execute import ExecStats

OPTIONS = Spec(
    {
        "primary": Opt(str, None, doc="the headline metric, 'metric,filter'"),
        "relevance": Opt(
            bool, False, doc="rate TOR = 1 interruption samples with the llm judge (0-5)"
        ),
        "behavior": Opt(
            bool,
            False,
            doc="tag v1.5 overlap samples (C_RESPOND, ...) with the llm judge; runs the model "
            "on the clean input too",
        ),
    },
    noun="key",
    strict=True,
)
NEED_WORDS = ("pause_handling", "turn_taking", "user_interruption", "backchannel")
RUBRIC = "fdbench-interruption"  # the llm judge's rubric the relevance option needs
BEHAVIOR_RUBRIC = "fdbench-behavior"  # ... and the behavior option's
CLEAN = "clean"  # the session variant on the input without the overlap event (v1.5)
# Tag -> metric (the ratio of samples with that tag); the words of the four channels per row.
BEHAVIOR_METRICS = dict(
    zip(
        BEHAVIOR_TAGS,
        ("respond_rate", "resume_rate", "uncertain_rate", "unknown_rate"),
        strict=True,
    )
)
BEHAVIOR_WORDS = dict(
    zip(
        BEHAVIOR_FIELDS,
        ("words_clean_input", "words_input", "words_clean_output", "words_output"),
        strict=True,
    )
)
LLM_FIELDS = ("score", "value", "raw", "error", "finish_reason", "model", "system_fingerprint")
NOT_SENT = "tor_0"  # llm_status of a sample the official code does not rate (TOR = 0)


def _crop(a: Audio, start: float) -> Audio | None:
    """The channel from ``start`` s on (None when nothing is left)."""
    x = a.samples[int(start * a.sample_rate) :]
    return Audio(x.copy(), a.sample_rate, f"{a.source}[{start:g} s:]") if x.size else None


class FDBenchScorer:
    """The ``fdbench`` scorer (see the module docstring). Roles ``asr`` (word timestamps:
    a judge with a ``words`` method) and ``vad``."""

    name = "fdbench"
    inputs = "sessions"
    roles = ("asr", "vad")
    # The session variants the converse pipeline runs too (option behavior: the clean input).
    variants: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})
        if self.options["relevance"] and self.options["behavior"]:
            raise ConfigError(
                "scorer 'fdbench': options relevance and behavior need llm judges with "
                f"different rubrics ({RUBRIC}, {BEHAVIOR_RUBRIC}): one per task"
            )
        if self.options["behavior"]:
            self.variants = (CLEAN,)
        self._words_identity: dict[str, Any] | None = None

    def judge(
        self,
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> list[dict[str, Any]]:
        asr, vad = judges["asr"], judges["vad"]
        if not callable(getattr(asr, "words", None)):
            raise ConfigError(
                f"scorer 'fdbench': the asr judge {getattr(asr, 'name', '?')!r} gives no word "
                "timestamps (a 'words' method); bind one that does, e.g. faster-whisper"
            )
        self._words_identity = asr.words_identity() if hasattr(asr, "words_identity") else None
        rows: list[dict[str, Any]] = [{"doc_id": s.doc_id, "kind": s.item.kind} for s in sessions]
        # Words: the whole model channel, or from the interruption end on.
        word_in: list[tuple[int, Audio, float]] = []
        for i, s in enumerate(sessions):
            if s.item.kind == "user_interruption":
                end = float(s.item.meta["interrupt_end"])
                cropped = _crop(s.model, end)
                if cropped is None:
                    rows[i]["words"] = []
                    continue
                word_in.append((i, cropped, end))
            elif s.item.kind in NEED_WORDS:
                word_in.append((i, s.model, 0.0))
        got = asr.words([a for _, a, _ in word_in], stats, cache, desc) if word_in else []
        for (i, _, shift), words in zip(word_in, got, strict=True):
            rows[i]["words"] = [
                [w[0], w[1] + shift, None if w[2] is None else w[2] + shift] for w in words
            ]
        # VAD: the model channel (backchannel; v1.5), and the user channel (v1.5).
        vad_in: list[tuple[int, str, Audio]] = []
        for i, s in enumerate(sessions):
            if s.item.kind == "backchannel" or s.item.kind.startswith("overlap_"):
                vad_in.append((i, "model_segments", s.model))
            if s.item.kind.startswith("overlap_"):
                vad_in.append((i, "user_segments", s.user))
        segs = vad.segments([a for _, _, a in vad_in], stats, cache, desc) if vad_in else []
        for (i, key, _), seg in zip(vad_in, segs, strict=True):
            rows[i][key] = [[a, b] for a, b in seg]
        for r, s in zip(rows, sessions, strict=True):
            self._score_row(r, s)
        if self.options["relevance"]:
            self._rate(rows, sessions, judges, cache, stats, desc)
        if self.options["behavior"]:
            self._tag(rows, sessions, judges, cache, stats, desc)
        return rows

    def _llm_judge(
        self, judges: Mapping[str, Any], want: str = RUBRIC, option: str = "relevance"
    ) -> Any:
        """The bound ``llm`` judge, checked to carry Full-Duplex-Bench's rubric ``want``."""
        llm = judges.get("llm")
        if llm is None:
            raise ConfigError(
                f"scorer 'fdbench': option {option} needs an 'llm' judge role: judges: "
                f"{{llm: {{judge: llm-judge, options: {{rubric: {want}}}}}}}"
            )
        rubric = getattr(getattr(llm, "rubric", None), "name", None)
        if rubric != want or not callable(getattr(llm, "rate_fields", None)):
            raise ConfigError(
                f"scorer 'fdbench': the llm judge {getattr(llm, 'name', '?')!r} has rubric "
                f"{rubric!r}; {option} needs rubric={want} (a --judge llm=... given on the "
                "command line replaces the task's binding: repeat rubric=... there)"
            )
        return llm

    def _tag(
        self,
        rows: list[dict[str, Any]],
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None,
        desc: str | None,
    ) -> None:
        """The behaviour tag of each v1.5 overlap sample (``behavior``, ``llm_*`` fields): the
        words of the four channels (user input without and with the overlap event, the model's
        output on each) in the official ASR objects, one judge request per sample."""
        llm = self._llm_judge(judges, BEHAVIOR_RUBRIC, "behavior")
        send = [i for i, s in enumerate(sessions) if s.item.kind.startswith("overlap_")]
        audios: list[Audio] = []
        for i in send:
            s = sessions[i]
            variants = getattr(s, "variants", None) or {}
            if CLEAN not in variants:
                raise DataError(
                    f"Full-Duplex-Bench sample {s.doc_id!r}: no {CLEAN!r} session (the model "
                    "run on clean_input.wav); option behavior needs it from the converse "
                    "pipeline (a v1.5 sample folder with clean_input.wav)"
                )
            clean_user, clean_model = variants[CLEAN]
            audios.extend((clean_user, s.user, clean_model, s.model))  # BEHAVIOR_FIELDS' order
        got = judges["asr"].words(audios, stats, cache, desc) if audios else []
        items = []
        for k, i in enumerate(send):
            item = {}
            for j, f in enumerate(BEHAVIOR_FIELDS):
                words = [[w[0], w[1], w[2]] for w in got[4 * k + j]]
                rows[i][BEHAVIOR_WORDS[f]] = words
                item[f] = compact_json(asr_object(words))
            items.append(item)
        results = llm.rate_fields(items, stats, cache, desc) if items else []
        for i, res in zip(send, results, strict=True):
            rows[i].update({f"llm_{k}": res.get(k) for k in LLM_FIELDS})
            rows[i]["llm_status"] = res["status"]
            ok = res["status"] == "ok" and res.get("value") in BEHAVIOR_TAGS
            rows[i]["behavior"] = res["value"] if ok else None

    def _rate(
        self,
        rows: list[dict[str, Any]],
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None,
        desc: str | None,
    ) -> None:
        """The relevance of each TOR = 1 interruption sample's response (``llm_*`` fields)."""
        llm = self._llm_judge(judges)
        send = [
            i
            for i, (r, s) in enumerate(zip(rows, sessions, strict=True))
            if s.item.kind == "user_interruption" and r["tor"] == 1
        ]
        items = []
        for i in send:
            meta = sessions[i].item.meta
            # The official ASR script's "text": the words joined by single spaces.
            rows[i]["response_text"] = " ".join(w[0] for w in rows[i]["words"])
            items.append(
                {
                    "context": str(meta["context"]),
                    "interrupt": str(meta["interrupt_text"]),
                    "response": rows[i]["response_text"],
                }
            )
        got = llm.rate_fields(items, stats, cache, desc) if items else []
        by_row = dict(zip(send, got, strict=True))
        for i, r in enumerate(rows):
            if r["kind"] != "user_interruption":
                continue
            res = by_row.get(i, {"status": NOT_SENT})
            r.update({f"llm_{k}": res.get(k) for k in LLM_FIELDS})
            r["llm_status"] = res["status"]

    @staticmethod
    def _score_row(r: dict[str, Any], s: Any) -> None:
        kind, meta = s.item.kind, s.item.meta
        if kind == "pause_handling":
            r["tor"] = fdb.take_over(r["words"])
        elif kind in ("turn_taking", "user_interruption"):
            ref = float(meta["turn_end"] if kind == "turn_taking" else meta["interrupt_end"])
            res = fdb.smooth_turn_taking([(r["words"], ref)])
            r["tor"], r["latency"] = res.tors[0], res.latencies[0]
        elif kind == "backchannel":
            gt = meta.get("gt_distribution")
            if gt is None:
                raise DataError(
                    f"Full-Duplex-Bench backchannel sample {s.doc_id!r}: no ground-truth "
                    "distribution (reader option gt_distribution: icc_gt_distribution.json)"
                )
            dur = s.model.duration
            segs = fdb.silero_seconds(r["model_segments"], dur)
            b = fdb.backchannel_sample(segs, r["words"], dur, gt)
            r.update(tor=b.tor, freq=b.frequency, jsd=b.jsd, candidates=len(b.candidates))
        elif kind.startswith("overlap_"):
            t = fdb.timing(r["user_segments"], r["model_segments"])
            r["stop_latencies"], r["response_latencies"] = t.stop_latencies, t.response_latencies
        else:
            raise DataError(f"Full-Duplex-Bench sample {s.doc_id!r}: unknown kind {kind!r}")

    @staticmethod
    def _relevance(
        rows: Sequence[Mapping[str, Any]], metrics: dict[str, Metric], info: dict[str, Any]
    ) -> None:
        """``relevance`` (mean of the ok ratings) and the counts, from the rows' ``llm_*``."""
        rated = [r for r in rows if r["llm_status"] in LLM_STATUSES]
        summary = llm_summary(
            [
                {"status": r["llm_status"], "score": r["llm_score"], "value": r["llm_value"]}
                for r in rated
            ]
        )
        if summary["mean"] is not None:
            metrics["relevance"] = summary["mean"]
        info["llm_status"] = dict(sorted(Counter(r["llm_status"] for r in rows).items()))
        info["relevance_samples"] = {
            "rated": len(rated),
            "ok": summary["ok"],
            "not_rated_tor_0": sum(r["llm_status"] == NOT_SENT for r in rows),
        }
        # The official mean also averages parsed integers outside 0..5 (none expected).
        if summary["slamkit_mean"] is not None:
            info["relevance_all_parsed"] = summary["slamkit_mean"].value
        info["llm_served"] = _served(rated)

    @staticmethod
    def _behavior(
        kind: str,
        rows: Sequence[Mapping[str, Any]],
        metrics: dict[str, Metric],
        info: dict[str, Any],
    ) -> None:
        """The four tag ratios over every sample (an unparsed answer or a failed request counts
        in the denominator, as no tag) and the counts, from the rows' ``behavior``."""
        tags = [r.get("behavior") for r in rows]
        # The behaviour a subset asks for: answer an interruption; go on through a
        # backchannel, background speech or talk addressed to someone else.
        good = "respond_rate" if kind == "overlap_user_interruption" else "resume_rate"
        for tag, name in BEHAVIOR_METRICS.items():
            metrics[name] = mean([float(t == tag) for t in tags], name == good)
        counts = Counter(t for t in tags if t is not None)
        info["llm_status"] = dict(sorted(Counter(r["llm_status"] for r in rows).items()))
        info["behavior_samples"] = {
            "samples": len(rows),
            "tagged": sum(counts.values()),
            **{tag: counts[tag] for tag in BEHAVIOR_TAGS},
        }
        # What the official stats_by_axis prints: ratios over the tags given (it never has an
        # untagged sample: it asks again until an answer parses), rounded there to 2 places.
        tagged = sum(counts.values())
        info["behavior_ratios_of_tagged"] = (
            {tag: counts[tag] / tagged for tag in BEHAVIOR_TAGS} if tagged else None
        )
        info["llm_served"] = _served([r for r in rows if r["llm_status"] in LLM_STATUSES])

    def finish(self, items: Sequence[Any], parts: Sequence[list[dict[str, Any]]]) -> FilteredReport:
        rows = [r for part in parts for r in part]
        kinds = sorted({r["kind"] for r in rows})
        if len(kinds) != 1:
            raise DataError(
                f"scorer 'fdbench': one task scores one subset; got kinds {', '.join(kinds)}"
            )
        kind = kinds[0]
        metrics: dict[str, Metric] = {}
        info: dict[str, Any] = {
            "primary": self.options["primary"],
            "definition": "Full-Duplex-Bench v1/v1.5 official rules (DanielLin94144/"
            "Full-Duplex-Bench v1_v1.5/evaluation @ d7336bd); speechlm_eval.fdbench",
            "kind": kind,
            "word_timestamps": self._words_identity,
        }
        higher = kind in ("turn_taking", "user_interruption")
        if kind in ("pause_handling", "turn_taking", "user_interruption"):
            metrics["tor"] = mean([r["tor"] for r in rows], higher)
            if kind != "pause_handling":
                lat = [r["latency"] for r in rows if r["latency"] is not None]
                if lat:
                    metrics["latency"] = mean(lat, False)
                info["latency_samples"] = {
                    "tor_1": len(lat),
                    "excluded_tor_0": len(rows) - len(lat),
                }
            if kind == "user_interruption" and any("llm_status" in r for r in rows):
                self._relevance(rows, metrics, info)
            elif kind == "user_interruption":
                info["not_computed"] = {
                    "relevance": "the official gpt-4-turbo rating: task "
                    "fdbench_interruption_relevance (scorer option relevance: true, an llm "
                    "judge with rubric fdbench-interruption)"
                }
        elif kind == "backchannel":
            for k, hib in (("tor", False), ("freq", True), ("jsd", False)):
                v = np.array([r[k] for r in rows], float)
                metrics[k] = mean(v, hib)
                info.setdefault("std", {})[k] = float(v.std())  # the official ± (population)
            info["without_backchannel"] = sum(r["candidates"] == 0 for r in rows)
        else:
            stop = [x for r in rows for x in r["stop_latencies"]]
            resp = [x for r in rows for x in r["response_latencies"]]
            if stop:
                metrics["stop_latency"] = mean(stop, False)
            if resp:
                metrics["response_latency"] = mean(resp, False)
            info["intervals"] = {"stop": len(stop), "response": len(resp)}
            info["not_computed"] = {
                "before_after": "UTMOSv2 and the adaptation metrics: not implemented here",
            }
            if any("llm_status" in r for r in rows):
                self._behavior(kind, rows, metrics, info)
            else:
                info["not_computed"]["behavior"] = (
                    "the official C_RESPOND/C_RESUME/... tags (gpt-4o-2024-08-06): tasks "
                    "fdbench_v15_<subset>_behavior (scorer option behavior: true, an llm judge "
                    "with rubric fdbench-behavior)"
                )
        info["counts"] = {"sessions": len(rows)}
        metrics = {k: m for k, m in metrics.items() if not math.isnan(m.value)}
        return FilteredReport({"none": ScoreReport(metrics)}, rows, info)


def _served(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The (model, system fingerprint) pairs the endpoint said answered, with their row counts,
    most rows first."""
    served = Counter(
        (r["llm_model"], r["llm_system_fingerprint"])
        for r in rows
        if r["llm_model"] is not None or r["llm_system_fingerprint"] is not None
    )
    return [
        {"model": m, "system_fingerprint": fp, "rows": c}
        for (m, fp), c in sorted(
            served.items(), key=lambda kv: (-kv[1], str(kv[0][0]), str(kv[0][1]))
        )
    ]
