"""Scorer ``continuation``: quality and diversity of sampled spoken continuations.

Each continuation's judged audio (see :mod:`speechlm_eval.pipelines.continuation`) is
transcribed by the ``asr`` judge; the metrics below come from the transcripts (definitions,
anchors and pitfalls: :mod:`speechlm_eval.generation_metrics`). Per temperature (filter
``t=<T>``):

- ``ppx_mean`` / ``ppx_median`` (GSLM ``ppx.py``): per-utterance perplexity under the
  ``text_lm`` judge, exp of the mean token NLL, then mean / median over continuations;
- ``genppl`` (slamkit ``asr_perplexity``): exp of the mean over continuations of the mean
  token NLL;
- ``self_bleu2_gslm`` (pool: every continuation at this temperature), ``auto_bleu2_gslm``
  (fairseq: n-grams overlapping the position excluded, geometric over n = 1, 2),
  ``auto_bleu_slamkit`` (repeated bigrams, overlaps counted), ``vert`` (geometric mean of the
  corpus means of self-BLEU2 and auto-BLEU2, both GSLM's), ``cont_bleu2`` (GSLM
  ``continuation_eval.py``: median over prompts; the reference transcript is the hypothesis
  and the prompt's samples the references);
- ``llm_score`` (the ``llm`` judge, the survey's "ChatGPT score"; slamkit ``llm_as_judge``):
  the 1-5 rating of each (prompt transcript, continuation transcript) pair, mean over the
  answers that parsed to a score in range; every other answer is counted by status in
  ``scoring.<task>.llm_status`` (``unparsed``, ``out_of_range``, ``error``, and
  ``empty_transcript``: see below); ``llm_score_slamkit``: slamkit's own mean, over every
  answer that parsed to an integer, in range or not (comparable with numbers slamkit
  reports; ``llm_score`` is the one to compare runs of this harness by). Each row keeps the
  judge's answer (``llm_value``, ``llm_raw`` clipped, ``llm_error``, ``llm_finish_reason``,
  ``llm_model``, ``llm_system_fingerprint``); ``scoring.<task>.llm_served`` counts the rows
  answered by each (served model, ``system_fingerprint``) pair;
- ``mos_<key>`` (the ``mos`` judge on the continuation alone) and ``speaker_similarity``
  (the ``speaker`` judge: cosine of the prompt's and the continuation's embeddings), when
  the task binds those roles.

Filter ``oracle``: the same text metrics on the reference utterances (same judges); a
trivial reference continuation the task asks for (``generation.baselines``) under its own
name (``repeat_prompt``: the prompt's audio again, no model). Filter
``none``, with two or more temperatures: the PPX-VERT trade-off curve's area
(``auc_ppx_vert``) and the oracle anchors ``ppx_at_oracle_vert`` / ``vert_at_oracle_ppx``
(a re-derivation: the official code has none; see :mod:`speechlm_eval.generation_metrics`).

Continuations whose transcript is empty (nothing left after the scorer's normaliser) are
excluded from every text metric and counted (``scoring.<task>.excluded``). For the ``llm``
judge that means: a pair whose continuation transcript is empty (what the judges hear, or the
continuation transcribed alone, which is what the LLM reads) is never sent; its row gets
``llm_status`` ``empty_transcript``, counted in ``scoring.<task>.llm_status`` and never
averaged. Standard errors cluster the samples of one prompt.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import generation_metrics as gm
from ..audio import Audio, AudioRef
from ..errors import ConfigError
from ..judges.llm import STATUSES as LLM_STATUSES
from ..judges.llm import summarize as llm_summary
from ..metrics import Metric, ScoreReport, cluster_mean, finite_cluster_mean
from ..options import Opt, Spec
from .base import FilteredReport
from .normalizers import NORMALIZERS, get_normalizer

if TYPE_CHECKING:
    from ..cache import ResultCache
    from ..execute import ExecStats


@dataclass(frozen=True)
class Prompt:
    """A reference utterance that prompts the model: its first seconds are the prompt."""

    doc_id: str
    ref: AudioRef  # the whole utterance
    seconds: float
    text: str  # the reference transcript
    speaker: str | None = None
    prompt_seconds: float = 3.0  # the prompt: the utterance's first seconds


@dataclass(frozen=True)
class Judged:
    """One sampled continuation: as the model returned it, and as the judges hear it.
    ``temperature`` is None for a trivial reference continuation (``baseline`` names it)."""

    doc_id: str
    temperature: float | None
    sample: int
    continuation: Audio
    audio: Audio  # [prompt +] continuation, cut as the task says
    baseline: str | None = None

    @property
    def filter(self) -> str:
        """The results filter its metrics go under: ``t=<T>``, or the baseline's name."""
        return self.baseline if self.baseline is not None else temperature_filter(self.temperature)


def temperature_filter(t: float | None) -> str:
    return f"t={t:g}"


def rows_by_filter(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by their ``filter``: sampled temperatures in increasing order, then the
    baselines by name."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r.get("filter") or temperature_filter(r["temperature"])].append(r)

    def key(f: str) -> tuple[int, float, str]:
        t = groups[f][0]["temperature"]
        return (0, t, "") if t is not None else (1, 0.0, f)

    return {f: groups[f] for f in sorted(groups, key=key)}


# Metrics per filter, one row per continuation, and what the results record.
ContinuationReport = FilteredReport


@dataclass
class ContinuationRows:
    """What :meth:`GenerationScorer.judge` keeps of one part of the prompts: a row per
    continuation and per reference utterance (transcripts, judge values), no audio."""

    rows: list[dict[str, Any]]
    oracle_rows: list[dict[str, Any]]


OPTIONS = Spec(
    {
        "normalizer": Opt(
            str,
            "whisper_english",
            choices=NORMALIZERS,
            doc="text normaliser applied before the BLEU metrics (both sides)",
        ),
        "primary": Opt(str, None, doc="the headline metric, 'metric,filter'"),
        "auc_window": Opt(
            list,
            None,
            check=lambda v: _window(v),
            expect="[low, high] VERT bounds with low < high",
            doc="VERT interval of the AUC (default: the measured range)",
        ),
    },
    noun="key",
    strict=True,
)


def _window(v: Any) -> list[float]:
    if (
        not isinstance(v, list)
        or len(v) != 2
        or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v)
        or not v[0] < v[1]
    ):
        raise ValueError("")
    return [float(v[0]), float(v[1])]


class PartScorer:
    """What the continuation scorers share: :meth:`score_continuations`, their
    :meth:`judge` on one part then :meth:`finish`, for callers that hold every prompt at once
    (the pipeline itself calls ``judge`` per part and ``finish`` once)."""

    def score_continuations(
        self,
        prompts: Sequence[Prompt],
        judged: Sequence[Judged],
        references: Mapping[str, Audio],
        prompt_audio: Mapping[str, Audio],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> ContinuationReport:
        """:meth:`judge` then :meth:`finish` on one part (everything in memory at once)."""
        part = self.judge(  # type: ignore[attr-defined]
            prompts, judged, references, prompt_audio, judges, cache, stats, desc
        )
        return self.finish(prompts, [part])  # type: ignore[attr-defined]


class GenerationScorer(PartScorer):
    """The ``continuation`` scorer (see the module docstring)."""

    name = "continuation"
    inputs = "continuations"
    roles = ("asr",)  # text_lm, llm, mos and speaker are used when the task binds them

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = OPTIONS.parse(f"scorer {self.name!r}", options or {})
        self.normalizer = get_normalizer(self.options["normalizer"])

    def judge(
        self,
        prompts: Sequence[Prompt],
        judged: Sequence[Judged],
        references: Mapping[str, Audio],
        prompt_audio: Mapping[str, Audio],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> ContinuationRows:
        """Run the bound judges on one part of the prompts: rows of transcripts and judge
        values, no audio (the pipeline judges a few prompts at a time and drops their audio)."""
        ids = [p.doc_id for p in prompts]
        asr = judges["asr"]
        llm = judges.get("llm")
        # The LLM judge reads the prompt and the continuation transcribed apart (slamkit:
        # remove_prompt=True), whatever the other judges hear; in the same batched call (audio
        # equal to a judged one is transcribed once).
        extra = (
            [prompt_audio[d] for d in ids] + [j.continuation for j in judged]
            if llm is not None
            else []
        )
        texts = asr.transcribe(
            [j.audio for j in judged] + [references[d] for d in ids] + extra, stats, cache, desc
        )
        n, k = len(judged), len(ids)
        hyp, ref_hyp = texts[:n], dict(zip(ids, texts[n : n + k], strict=True))
        rows = [
            {
                "doc_id": j.doc_id,
                "temperature": j.temperature,
                "filter": j.filter,
                "sample": j.sample,
                **self._text_fields(h),
            }
            for j, h in zip(judged, hyp, strict=True)
        ]
        oracle_rows = [{"doc_id": d, **self._text_fields(ref_hyp[d])} for d in ids]
        lm = judges.get("text_lm")
        if lm is not None:
            _add_nll(lm, rows + oracle_rows, stats, cache, desc)
        if llm is not None:
            prompt_text = dict(zip(ids, texts[n + k : n + 2 * k], strict=True))
            alone = texts[n + 2 * k :]
            # An empty continuation transcript is not rated (see the module doc).
            send = [
                i
                for i, (r, c) in enumerate(zip(rows, alone, strict=True))
                if not r["empty"] and self.normalizer(c).split()
            ]
            rated = (
                llm.rate(
                    [prompt_text[judged[i].doc_id] for i in send],
                    [alone[i] for i in send],
                    stats,
                    cache,
                    desc,
                )
                if send
                else []
            )
            by_row = dict(zip(send, rated, strict=True))
            for i, (r, j, c) in enumerate(zip(rows, judged, alone, strict=True)):
                r["prompt_transcript"] = prompt_text[j.doc_id]
                r["continuation_transcript"] = c
                r.update(_llm_fields(by_row.get(i)))
        mos = judges.get("mos")
        if mos is not None:
            scores = mos.predict([j.continuation for j in judged], stats, cache, desc)
            for r, s in zip(rows, scores, strict=True):
                # NaN (no value) is written as None: the samples file stays valid JSON.
                r.update({f"mos_{k}": _finite_or_none(v) for k, v in s.items()})
        spk = judges.get("speaker")
        if spk is not None:
            sims = spk.similarity(
                [prompt_audio[j.doc_id] for j in judged],
                [j.continuation for j in judged],
                stats=stats,
                cache=cache,
                desc=desc,
            )
            for r, s in zip(rows, sims, strict=True):
                r["speaker_similarity"] = _finite_or_none(s)
        return ContinuationRows(rows, oracle_rows)

    def finish(
        self, prompts: Sequence[Prompt], parts: Sequence[ContinuationRows]
    ) -> ContinuationReport:
        """The metrics over every part's rows (:meth:`aggregate`)."""
        rows = [r for part in parts for r in part.rows]
        oracle_rows = [r for part in parts for r in part.oracle_rows]
        return self.aggregate(prompts, rows, oracle_rows)

    def _text_fields(self, transcript: str) -> dict[str, Any]:
        text = self.normalizer(transcript)
        return {"transcript": transcript, "text": text, "empty": not text.split()}

    def aggregate(
        self,
        prompts: Sequence[Prompt],
        rows: list[dict[str, Any]],
        oracle_rows: list[dict[str, Any]],
    ) -> ContinuationReport:
        """Metrics from the rows alone (transcripts and judge values): also usable on a
        samples file's rows."""
        truth = {p.doc_id: gm.gslm_words(self.normalizer(p.text)) for p in prompts}
        by_filter: dict[str, ScoreReport] = {}
        excluded: dict[str, int] = {}
        no_signal: dict[str, int] = {}
        no_value: dict[str, int] = {}
        llm_status: dict[str, dict[str, int]] = {}
        served: Counter[tuple[str | None, str | None]] = Counter()
        points: list[gm.TradeoffPoint] = []
        for filt, rs in rows_by_filter(rows).items():
            t = rs[0]["temperature"]
            metrics = _text_metrics(rs)
            conts: dict[str, list[list[str]]] = defaultdict(list)
            for r in rs:
                if not r["empty"]:
                    conts[r["doc_id"]].append(gm.gslm_words(r["text"]))
            cb = [gm.cont_bleu(conts[d], truth[d]) for d in truth if conts.get(d)]
            if cb:
                metrics["cont_bleu2"] = Metric(float(np.median(cb)), None, len(cb), True)
            # NaN: the judge has no value (no signal; a clip too short): excluded, counted.
            for key in sorted({k for r in rs for k in r if k.startswith("mos_")}):
                m, no_value[f"{key},{filt}"] = finite_cluster_mean(
                    [r[key] for r in rs], [r["doc_id"] for r in rs]
                )
                if m is not None:
                    metrics[key] = m
            if any("speaker_similarity" in r for r in rs):
                m, no_signal[filt] = finite_cluster_mean(
                    [r["speaker_similarity"] for r in rs], [r["doc_id"] for r in rs]
                )
                if m is not None:
                    metrics["speaker_similarity"] = m
            if any("llm_status" in r for r in rs):
                # llm_score: only answers parsed to a score in range; llm_score_slamkit: every
                # parsed integer. Every row is counted by status (never dropped unseen; slamkit
                # drops the rest silently); empty transcripts were never rated.
                llm_status[filt] = dict(sorted(Counter(r["llm_status"] for r in rs).items()))
                rated = [r for r in rs if r["llm_status"] in LLM_STATUSES]
                summary = llm_summary(
                    [
                        {
                            "status": r["llm_status"],
                            "score": r["llm_score"],
                            "value": r["llm_value"],
                        }
                        for r in rated
                    ],
                    [r["doc_id"] for r in rated],
                )
                for key, mean in (("llm_score", "mean"), ("llm_score_slamkit", "slamkit_mean")):
                    if summary[mean] is not None:
                        metrics[key] = summary[mean]
                served.update(
                    (r["llm_model"], r["llm_system_fingerprint"])
                    for r in rated
                    if r["llm_model"] is not None or r["llm_system_fingerprint"] is not None
                )
            by_filter[filt] = ScoreReport(metrics)
            excluded[filt] = sum(bool(r["empty"]) for r in rs)
            if t is not None and "ppx_mean" in metrics and "vert" in metrics:
                points.append(gm.TradeoffPoint(t, metrics["ppx_mean"].value, metrics["vert"].value))
        oracle = _text_metrics(oracle_rows)
        by_filter["oracle"] = ScoreReport(oracle)
        excluded["oracle"] = sum(bool(r["empty"]) for r in oracle_rows)
        curve = _curve(points, oracle, self.options["auc_window"])
        curve_metrics = curve.pop("metrics")
        if curve_metrics:
            by_filter["none"] = ScoreReport(curve_metrics)
        info = {
            "primary": self.options["primary"],
            "scorer": self.name,
            "excluded": {
                "empty_transcript": excluded,
                "speaker_no_signal": no_signal,
                **({"mos_no_value": no_value} if no_value else {}),
            },
            "tradeoff": curve,
            **(
                {
                    "llm_status": llm_status,
                    "llm_served": [
                        {"model": m, "system_fingerprint": fp, "rows": c}
                        for (m, fp), c in sorted(
                            served.items(), key=lambda kv: (-kv[1], str(kv[0][0]), str(kv[0][1]))
                        )
                    ],
                }
                if llm_status
                else {}
            ),
            "normalizer": self.normalizer.identity,
            "texts": {
                "bleu": "normalised transcript, whitespace split (self-, auto-, cont-BLEU)",
                "auto_bleu_slamkit": "normalised transcript, NLTK NLTKWordTokenizer",
                "ppx": "transcript stripped and lower-cased (fairseq GSLM ppx.py)",
                "genppl": "transcript as the ASR judge wrote it (slamkit)",
            },
        }
        return ContinuationReport(by_filter, rows, info)


def _llm_fields(res: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row's fields of the LLM judge's result (``None``: the pair was not sent, its
    continuation transcript being empty)."""
    if res is None:
        res = {"status": "empty_transcript"}
    return {
        "llm_score": res.get("score"),
        "llm_status": res["status"],
        "llm_value": res.get("value"),
        "llm_raw": res.get("raw"),  # clipped by the judge
        "llm_error": res.get("error"),
        "llm_finish_reason": res.get("finish_reason"),
        "llm_model": res.get("model"),
        "llm_system_fingerprint": res.get("system_fingerprint"),
    }


def _finite_or_none(v: Any) -> float | None:
    """A judge's value, or None where it has none (NaN or None)."""
    if v is None:
        return None
    x = float(v)
    return x if math.isfinite(x) else None


def _add_nll(
    lm: Any,
    rows: list[dict[str, Any]],
    stats: ExecStats | None,
    cache: ResultCache,
    desc: str | None,
) -> None:
    """Mean negative log-likelihood per token under the text LM judge, on every row with a
    non-empty transcript: ``nll_ppx`` of the lower-cased transcript (GSLM's ``ppx.py``
    lower-cases) and ``nll_genppl`` of the transcript as written (slamkit scores the ASR's
    text as is). Identical texts are scored once (the judge's executor deduplicates)."""
    todo = [r for r in rows if not r["empty"]]
    forms = {"nll_ppx": lambda t: t.strip().lower(), "nll_genppl": lambda t: t}
    texts = [f(r["transcript"]) for f in forms.values() for r in todo]
    scored = lm.loglikelihood(texts, stats, cache, desc)
    for i, key in enumerate(forms):
        for r, t, (logprob, n) in zip(
            todo, texts[i * len(todo) :], scored[i * len(todo) :], strict=False
        ):
            if n < 1 or not math.isfinite(logprob):
                raise ConfigError(
                    f"text LM judge gave log-prob {logprob} over {n} tokens for {t!r}"
                )
            r[key] = -logprob / n
            r[f"{key}_tokens"] = n


def _text_metrics(rows: list[dict[str, Any]]) -> dict[str, Metric]:
    """PPX, GenPPL, self-/auto-BLEU and VERT over the non-empty rows (per-row values are
    written on the rows too)."""
    live = [r for r in rows if not r["empty"]]
    if not live:
        return {}
    docs = [r["doc_id"] for r in live]
    words = [gm.gslm_words(r["text"]) for r in live]
    for r, w in zip(live, words, strict=True):
        r["auto_bleu2_gslm"] = gm.auto_bleu_gslm(w, n=2)
        r["auto_bleu_slamkit"] = gm.auto_bleu_slamkit(gm.slamkit_words(r["text"]), n=2)
    keys = ["auto_bleu2_gslm", "auto_bleu_slamkit"]
    if len(live) > 1:  # self-BLEU needs a pool of at least two transcripts
        for r, sb in zip(live, gm.self_bleu_gslm(words, n=2), strict=True):
            r["self_bleu2_gslm"] = sb
        keys.insert(0, "self_bleu2_gslm")
    out: dict[str, Metric] = {}
    for key in keys:
        # fairseq's auto-BLEU is NaN for 2..n-1 words; at n = 2 never (length <= 1 -> 0).
        out[key] = cluster_mean([r[key] for r in live], docs, higher_is_better=False)
    if "self_bleu2_gslm" in out:
        v = gm.vert(out["self_bleu2_gslm"].value, out["auto_bleu2_gslm"].value)
        out["vert"] = Metric(v, None, len(live), False)
    if all("nll_ppx" in r for r in live):
        ppl = np.exp(np.array([r["nll_ppx"] for r in live]))
        for r, p in zip(live, ppl, strict=True):
            r["ppl"] = float(p)
        out["ppx_mean"] = cluster_mean(ppl, docs, higher_is_better=False)
        out["ppx_median"] = Metric(float(np.median(ppl)), None, len(live), False)
        nll = np.array([r["nll_genppl"] for r in live])
        m = cluster_mean(nll, docs)
        g = gm.gen_ppl(nll)
        # Delta method: se(exp(m)) = exp(m) * se(m).
        out["genppl"] = Metric(g, None if m.stderr is None else g * m.stderr, len(live), False)
    return out


def _curve(
    points: list[gm.TradeoffPoint], oracle: Mapping[str, Metric], window: list[float] | None
) -> dict[str, Any]:
    """The PPX-VERT curve over temperatures, its AUC and the oracle anchors."""
    out: dict[str, Any] = {"points": [asdict(p) for p in points], "metrics": {}}
    if len(points) < 2:
        out["reason"] = "fewer than two temperatures with PPX and VERT"
        return out
    lo, hi = window if window is not None else (None, None)
    auc = gm.auc_ppx_vert(points, lo, hi)
    out["auc"] = auc
    n = len(points)
    if auc.get("auc") is not None:
        out["metrics"]["auc_ppx_vert"] = Metric(float(auc["auc"]), None, n, False)
    if "vert" in oracle and "ppx_mean" in oracle:
        at_v = gm.value_at(points, x="vert", x0=oracle["vert"].value, y="ppx")
        at_p = gm.value_at(points, x="ppx", x0=oracle["ppx_mean"].value, y="vert")
        out["ppx_at_oracle_vert"] = at_v
        out["vert_at_oracle_ppx"] = at_p
        if at_v is not None:
            out["metrics"]["ppx_at_oracle_vert"] = Metric(float(at_v), None, n, False)
        if at_p is not None:
            out["metrics"]["vert_at_oracle_ppx"] = Metric(float(at_p), None, n, False)
    return out
