"""Downstream-task metrics (survey §5), each a thin wrapper around the field's library.

One function per metric; each returns a small frozen dataclass with the value(s), ``n`` and a
``convention`` string saying exactly what was computed, so results record it. The anchors
(benchmark, reference code, exact convention) are in
``shared/reference/downstream-quality-human.md`` §1 and are repeated in each docstring.

| metric | library | anchor |
|---|---|---|
| BLEU, chrF | sacrebleu | SUPERB ST / CoVoST 2: ``sacrebleu.BLEU().corpus_score``, tokenizer 13a |
| accuracy, UAR | scikit-learn | SUPERB KS/IC/ER/SID accuracy; UAR = macro recall (emotion papers) |
| slot-type F1, slot-value CER | jiwer | SUPERB SF (s3prl ``downstream/ctc/metric.py``) |
| EER, minDCF | scikit-learn ``roc_curve`` | SUPERB ASV; speechbrain's EER/minDCF conventions |
| DER | pyannote.metrics | SUPERB SD (dscore, collar 0, overlap scored) |
| SI-SDRi | torchmetrics (PIT) | SUPERB SS (asteroid ``get_metrics``, best permutation) |
| MTWV / ATWV | hand-written (no maintained library) | QUESST 2014 / NIST STD 2006 |

Bad input (mismatched lengths, labels outside the declared set, malformed RTTM lines) is a
:class:`~speechlm_eval.errors.DataError` naming the culprit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

# --- shared checks -------------------------------------------------------------------------------


def _same_length(a: Sequence[Any], b: Sequence[Any], what_a: str, what_b: str) -> int:
    if len(a) != len(b):
        raise DataError(f"{len(a)} {what_a} but {len(b)} {what_b}: they must pair one to one")
    if len(a) == 0:
        raise DataError(f"no {what_a} to score")
    return len(a)


# --- BLEU and chrF (sacrebleu) -------------------------------------------------------------------


@dataclass(frozen=True)
class TextMetric:
    """A corpus-level text metric: ``score`` on sacrebleu's 0-100 scale."""

    name: str
    score: float
    n: int
    signature: str  # sacrebleu's signature string (version, tokenizer, smoothing, ...)
    convention: str


def _refs(hypotheses: Sequence[str], references: Sequence[str]) -> int:
    n = _same_length(hypotheses, references, "hypotheses", "references")
    for i, (h, r) in enumerate(zip(hypotheses, references, strict=True)):
        if not isinstance(h, str) or not isinstance(r, str):
            raise DataError(f"pair {i}: hypothesis and reference must be strings")
    return n


# sacrebleu tokenizers that fetch a SentencePiece model from the internet when first used.
_DOWNLOADING_TOKENIZERS = frozenset({"flores101", "flores200", "spm"})


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> TextMetric:
    """Corpus BLEU with sacrebleu, one reference per hypothesis.

    Anchor: SUPERB ST (CoVoST 2 En→De), s3prl ``count_sacreBLEU.py``: ``sacrebleu.BLEU()
    .corpus_score(hyps, [refs])`` = case-sensitive, detokenized input, tokenizer ``13a``,
    exponential smoothing. AudioBench switched to ``flores101``, which downloads a
    SentencePiece model: refused here (ConfigError), as are ``flores200`` and ``spm``.
    """
    import sacrebleu

    if tokenize in _DOWNLOADING_TOKENIZERS:
        raise ConfigError(
            f"BLEU tokenizer {tokenize!r} downloads a SentencePiece model at first use, and "
            "nothing is downloaded at run time here; use 13a (SUPERB/CoVoST 2) or intl"
        )
    n = _refs(hypotheses, references)
    metric = sacrebleu.BLEU(tokenize=tokenize)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    sig = str(metric.get_signature())
    return TextMetric(
        "bleu", float(score.score), n, sig, f"sacrebleu corpus BLEU, tokenizer {tokenize}, cased"
    )


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> TextMetric:
    """Corpus chrF with sacrebleu defaults (character 6-grams, β = 2, no word n-grams).

    Statistics are summed over the corpus before the F-score (sacrebleu's corpus chrF), not
    averaged over sentences.
    """
    import sacrebleu

    n = _refs(hypotheses, references)
    metric = sacrebleu.CHRF()
    score = metric.corpus_score(list(hypotheses), [list(references)])
    sig = str(metric.get_signature())
    return TextMetric("chrf", float(score.score), n, sig, "sacrebleu corpus chrF (n=6, beta=2)")


# --- accuracy and unweighted average recall (scikit-learn) ---------------------------------------


@dataclass(frozen=True)
class ClassificationMetric:
    """Accuracy and unweighted average recall over a declared label set."""

    accuracy: float
    uar: float
    n: int
    n_unparsed: int  # predictions that were None (unparsed answers): counted as wrong
    per_class_recall: dict[str, float]
    labels: tuple[str, ...]
    convention: str


UNPARSED = "<unparsed>"  # stands for a None prediction; never a declared label


def classification(
    predictions: Sequence[str | None], golds: Sequence[str], labels: Sequence[str]
) -> ClassificationMetric:
    """Accuracy and UAR (macro-averaged recall) of ``predictions`` against ``golds``.

    Anchors: SUPERB KS/IC/ER/SID report plain accuracy (IEMOCAP ER: accuracy, *not* UAR);
    UAR = mean over classes of per-class recall, the emotion-recognition literature's
    "unweighted accuracy" (scikit-learn ``recall_score(average='macro')``). A ``None``
    prediction (an unparsed answer) is wrong and stays in the denominator. UAR averages over
    the declared labels that occur in ``golds`` (a class with no gold item has no recall).
    A gold or a prediction outside ``labels`` is an error (a data or parser bug).
    """
    from sklearn.metrics import accuracy_score, recall_score

    n = _same_length(predictions, golds, "predictions", "gold labels")
    declared = tuple(dict.fromkeys(labels))
    if not declared:
        raise DataError("the label set is empty")
    if UNPARSED in declared:
        raise DataError(f"{UNPARSED!r} is reserved for unparsed answers, not a label")
    allowed = set(declared)
    for i, g in enumerate(golds):
        if g not in allowed:
            raise DataError(f"gold label {g!r} (item {i}) is not in the label set {list(declared)}")
    for i, p in enumerate(predictions):
        if p is not None and p not in allowed:
            raise DataError(
                f"prediction {p!r} (item {i}) is not in the label set {list(declared)} "
                "(a parser must return a declared label or None)"
            )
    preds = [UNPARSED if p is None else p for p in predictions]
    present = [lab for lab in declared if lab in set(golds)]
    recalls = recall_score(golds, preds, labels=present, average=None, zero_division=0)
    return ClassificationMetric(
        accuracy=float(accuracy_score(golds, preds)),
        uar=float(recall_score(golds, preds, labels=present, average="macro", zero_division=0)),
        n=n,
        n_unparsed=sum(p is None for p in predictions),
        per_class_recall={lab: float(r) for lab, r in zip(present, recalls, strict=True)},
        labels=declared,
        convention="accuracy = correct/n (unparsed = wrong); UAR = macro recall over gold classes",
    )


# --- slot filling (SUPERB SF) --------------------------------------------------------------------

_SLOT = re.compile(r"B-(\S+) (.+?) E-\1")


def parse_slots(tagged: str) -> list[tuple[str, str]]:
    """Slots of a SUPERB SF target/hypothesis string: ``B-<type> <value> E-<type>`` spans.

    Same pattern as s3prl's ``parse`` (``B\\-(\\S+) (.+?) E\\-\\1``); text outside spans is
    ignored; an unclosed span is not a slot.
    """
    return [(m.group(1), m.group(2)) for m in _SLOT.finditer(tagged)]


@dataclass(frozen=True)
class SlotMetric:
    slot_type_f1: float
    slot_value_cer: float
    n: int  # utterances
    n_ref_slots: int
    convention: str


def _set_f1(ref: set[str], hyp: set[str]) -> float:
    if not ref and not hyp:
        return 1.0
    tp = len(ref & hyp)
    if tp == 0:
        return 0.0
    p, r = tp / len(hyp), tp / len(ref)
    return 2 * p * r / (p + r)


def slot_filling(
    hypotheses: Sequence[Sequence[tuple[str, str]]],
    references: Sequence[Sequence[tuple[str, str]]],
) -> SlotMetric:
    """SUPERB slot filling: slot-type F1 and slot-value CER (s3prl ``downstream/ctc/metric.py``).

    - slot-type F1 = mean over utterances of the F1 between the *sets* of slot types of the
      reference and the hypothesis (both empty: 1.0).
    - slot-value CER: for every reference slot, the hypothesis value of the same type with
      the lowest CER is picked (``''`` when the hypothesis has no slot of that type); then
      corpus CER over all picked pairs = Σ character edits / Σ reference characters
      (jiwer; spaces count as characters).

    Input: per utterance a list of ``(slot_type, value)`` (see :func:`parse_slots`).
    """
    import jiwer

    n = _same_length(hypotheses, references, "hypothesis utterances", "reference utterances")
    f1s = []
    ref_vals: list[str] = []
    hyp_vals: list[str] = []
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        for typ, val in (*hyp, *ref):
            if not isinstance(typ, str) or not isinstance(val, str) or not typ:
                raise DataError(f"utterance {i}: slots must be (type, value) string pairs")
        f1s.append(_set_f1({t for t, _ in ref}, {t for t, _ in hyp}))
        for typ, val in ref:
            if not val:
                raise DataError(f"utterance {i}: reference slot {typ!r} has an empty value")
            cands = [v for t, v in hyp if t == typ] or [""]
            best = min(cands, key=lambda v, val=val: jiwer.cer(val, v) if v else 1.0)
            ref_vals.append(val)
            hyp_vals.append(best)
    cer = float(jiwer.cer(ref_vals, hyp_vals)) if ref_vals else 0.0
    return SlotMetric(
        float(np.mean(f1s)),
        cer,
        n,
        len(ref_vals),
        "SUPERB SF: mean per-utterance slot-type set F1; corpus CER of best same-type values",
    )


# --- speaker verification: EER and minDCF --------------------------------------------------------


@dataclass(frozen=True)
class VerificationMetric:
    eer: float
    eer_threshold: float
    min_dcf: float  # normalised: C_det / min(c_miss * p_target, c_fa * (1 - p_target))
    min_dcf_raw: float  # speechbrain's minDCF value (not normalised)
    min_dcf_threshold: float
    p_target: float
    c_miss: float
    c_fa: float
    n_target: int
    n_nontarget: int
    convention: str


def speaker_verification(
    scores: Sequence[float],
    is_target: Sequence[bool | int],
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> VerificationMetric:
    """EER and minDCF of verification trials (a trial is accepted when ``score >= threshold``).

    Operating points: every distinct score as threshold plus "accept none" (scikit-learn
    ``roc_curve`` with ``drop_intermediate=False``). Conventions (those of speechbrain's
    ``metric_stats.EER`` / ``minDCF``, which these agree with; see the tests):

    - EER = (P_miss + P_fa) / 2 at the operating point that minimises |P_miss − P_fa| (the
      lowest such threshold on a tie; no interpolation: SUPERB's ASV interpolates the ROC
      instead and differs in the 3rd decimal).
    - minDCF: C_det = c_miss·P_miss·p_target + c_fa·P_fa·(1 − p_target), minimised over the
      operating points. ``min_dcf_raw`` is that value (speechbrain's output); ``min_dcf`` is
      the NIST/VoxSRC *normalised* value, C_det / min(c_miss·p_target, c_fa·(1 − p_target)).
      Defaults p_target = 0.01, c_miss = c_fa = 1 (speechbrain's; VoxSRC uses p_target 0.05).

    speechbrain itself is not called: it imports torchaudio, which has no CPU build on the
    package registry and must be patched inside the environment to import beside a CPU torch
    (``shared/OFFLINE.md``); its two functions are cross-checked in the tests where installed.
    """
    from sklearn.metrics import roc_curve

    n = _same_length(scores, is_target, "scores", "trial labels")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_target)
    if not np.all(np.isfinite(s)):
        raise DataError("verification scores must be finite numbers")
    if not np.all(np.isin(y, (0, 1))):
        raise DataError("trial labels must be 1/True (same speaker) or 0/False")
    y = y.astype(bool)
    n_t, n_n = int(y.sum()), int(n - y.sum())
    if n_t == 0 or n_n == 0:
        raise DataError(f"need target and non-target trials, got {n_t} and {n_n}")
    if not (0 < p_target < 1) or c_miss <= 0 or c_fa <= 0:
        raise DataError("p_target must lie in (0, 1) and the costs must be positive")
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    p_miss, p_fa = 1.0 - tpr, fpr
    gap = np.abs(p_miss - p_fa)
    # Among equal gaps, the lowest threshold (the last ROC point), as speechbrain picks.
    i = int(np.flatnonzero(np.isclose(gap, gap.min(), rtol=0, atol=1e-12))[-1])
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    j = int(np.argmin(dcf))
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    return VerificationMetric(
        eer=float((p_miss[i] + p_fa[i]) / 2),
        eer_threshold=float(thr[i]),
        min_dcf=float(dcf[j] / norm),
        min_dcf_raw=float(dcf[j]),
        min_dcf_threshold=float(thr[j]),
        p_target=p_target,
        c_miss=c_miss,
        c_fa=c_fa,
        n_target=n_t,
        n_nontarget=n_n,
        convention=(
            "accept if score >= threshold; EER=(Pmiss+Pfa)/2 at min |Pmiss-Pfa| (speechbrain); "
            f"minDCF normalised by min(c_miss*p, c_fa*(1-p)), p_target={p_target}, "
            f"c_miss={c_miss}, c_fa={c_fa}"
        ),
    )


# --- diarization: RTTM and DER (pyannote.metrics) ------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One speaker turn: ``start`` and ``end`` in seconds."""

    start: float
    end: float
    speaker: str


def read_rttm(path: str | Path) -> dict[str, list[Turn]]:
    """``SPEAKER <file> <chan> <tbeg> <tdur> <NA> <NA> <speaker> <NA> <NA>`` lines by file id.

    Other line types (``SPKR-INFO``, ...) and blank lines are skipped; a malformed SPEAKER line
    is a DataError naming the file and line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{p}: cannot read RTTM file ({e.strerror or e})") from None
    out: dict[str, list[Turn]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        where = f"{p}: line {n}"
        if len(f) < 8:
            raise DataError(f"{where}: a SPEAKER line needs at least 8 fields, got {len(f)}")
        try:
            start, dur = float(f[3]), float(f[4])
        except ValueError:
            raise DataError(
                f"{where}: onset {f[3]!r} and duration {f[4]!r} must be numbers"
            ) from None
        if not (np.isfinite(start) and np.isfinite(dur)) or start < 0 or dur <= 0:
            raise DataError(f"{where}: onset must be >= 0 and duration > 0, got {f[3]} {f[4]}")
        out.setdefault(f[1], []).append(Turn(start, start + dur, f[7]))
    return out


def write_rttm(path: str | Path, turns: Mapping[str, Sequence[Turn]]) -> None:
    """Write turns by file id as RTTM SPEAKER lines (channel 1, times to the millisecond)."""
    lines = []
    for file_id, ts in turns.items():
        for t in sorted(ts, key=lambda t: (t.start, t.end, t.speaker)):
            if t.end <= t.start:
                raise DataError(f"{file_id}: turn of {t.speaker!r} ends before it starts")
            lines.append(
                f"SPEAKER {file_id} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> "
                f"{t.speaker} <NA> <NA>"
            )
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@dataclass(frozen=True)
class DERMetric:
    der: float  # (false alarm + missed + confusion) / total reference speech, over all files
    false_alarm: float  # seconds
    missed: float
    confusion: float
    total: float  # scored reference speech, seconds
    n: int  # files
    collar: float
    skip_overlap: bool
    convention: str


def diarization_error_rate(
    reference: Mapping[str, Sequence[Turn]],
    hypothesis: Mapping[str, Sequence[Turn]],
    *,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> DERMetric:
    """DER over files with pyannote.metrics (optimal one-to-one speaker mapping per file).

    Anchor: SUPERB SD scores with dscore defaults: collar 0, overlapped speech scored.
    ``collar`` here is seconds on **each side** of every reference boundary (md-eval and
    dscore's convention); pyannote's own ``collar`` is the total width, so 2 × collar is
    passed. The scored region of a file is the extent of its reference and hypothesis turns
    (from the first onset to the last offset). A hypothesis file absent from the reference
    is an error; a reference file absent from the hypothesis scores as all missed.
    """
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    if not reference:
        raise DataError("no reference files to score")
    extra = sorted(set(hypothesis) - set(reference))
    if extra:
        raise DataError(f"hypothesis files without a reference: {', '.join(extra[:5])}")
    if collar < 0:
        raise DataError(f"collar must be >= 0 seconds, got {collar}")
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    sums = {"false alarm": 0.0, "missed detection": 0.0, "confusion": 0.0, "total": 0.0}

    def annotation(file_id: str, turns: Sequence[Turn]) -> Annotation:
        a = Annotation(uri=file_id)
        for k, t in enumerate(turns):
            if not t.end > t.start >= 0:
                raise DataError(f"{file_id}: turn {k} of {t.speaker!r} has bad times {t}")
            a[Segment(t.start, t.end), k] = t.speaker
        return a

    for file_id, ref_turns in reference.items():
        hyp_turns = hypothesis.get(file_id, [])
        ends = [t.end for t in (*ref_turns, *hyp_turns)]
        starts = [t.start for t in (*ref_turns, *hyp_turns)]
        if not ends:
            continue
        uem = Timeline([Segment(min(starts), max(ends))])
        d = metric(
            annotation(file_id, ref_turns), annotation(file_id, hyp_turns), uem=uem, detailed=True
        )
        for k in sums:
            sums[k] += float(d[k])
    total = sums["total"]
    if total <= 0:
        raise DataError("the reference holds no scored speech")
    err = sums["false alarm"] + sums["missed detection"] + sums["confusion"]
    return DERMetric(
        der=err / total,
        false_alarm=sums["false alarm"],
        missed=sums["missed detection"],
        confusion=sums["confusion"],
        total=total,
        n=len(reference),
        collar=collar,
        skip_overlap=skip_overlap,
        convention=(
            f"pyannote.metrics DER, collar {collar:g} s per side (pyannote collar "
            f"{2 * collar:g}), overlap {'skipped' if skip_overlap else 'scored'}, "
            "duration-weighted over files"
        ),
    )


# --- speech separation: SI-SDR improvement with PIT (torchmetrics) -------------------------------


@dataclass(frozen=True)
class SeparationMetric:
    si_sdri: float  # dB, mean over utterances of the per-utterance mean over sources
    si_sdr: float  # dB, of the estimates (best permutation)
    n: int  # utterances
    permutations: list[list[int]] = field(default_factory=list)  # estimate index per source
    convention: str = ""


def si_sdr_improvement(
    estimates: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    mixtures: Sequence[np.ndarray],
    *,
    zero_mean: bool = True,
) -> SeparationMetric:
    """SI-SDRi of separated sources, best permutation per utterance (torchmetrics PIT).

    Anchor: SUPERB SS (Libri2Mix): SI-SDRi = SI-SDR(estimate, reference) − SI-SDR(mixture,
    reference), with the permutation that maximises the mean SI-SDR over sources, averaged
    per utterance then over utterances (asteroid ``get_metrics(compute_permutation=True)``).
    Per utterance: ``estimates[i]`` and ``references[i]`` are ``(n_sources, samples)``,
    ``mixtures[i]`` is ``(samples,)``. ``zero_mean``: signals are mean-removed first (asteroid's
    SI-SDR does; torchmetrics' default does not).
    """
    import torch
    from torchmetrics.functional.audio import (
        permutation_invariant_training,
        scale_invariant_signal_distortion_ratio,
    )

    n = _same_length(estimates, references, "estimate sets", "reference sets")
    _same_length(estimates, mixtures, "estimate sets", "mixtures")
    imps, sdrs, perms = [], [], []
    for i, (est, ref, mix) in enumerate(zip(estimates, references, mixtures, strict=True)):
        e, r, m = (np.asarray(v, dtype=np.float64) for v in (est, ref, mix))
        if e.ndim != 2 or e.shape != r.shape or m.shape != (r.shape[1],):
            raise DataError(
                f"utterance {i}: estimates {e.shape} and references {r.shape} must both be "
                f"(n_sources, samples) and the mixture (samples,), got mixture {m.shape}"
            )
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(r)) and np.all(np.isfinite(m))):
            raise DataError(f"utterance {i}: signals contain NaN or infinite samples")
        te, tr = torch.from_numpy(e)[None], torch.from_numpy(r)[None]
        best, perm = permutation_invariant_training(
            te, tr, scale_invariant_signal_distortion_ratio, eval_func="max", zero_mean=zero_mean
        )
        tm = torch.from_numpy(np.broadcast_to(m, r.shape).copy())[None]
        base = scale_invariant_signal_distortion_ratio(tm, tr, zero_mean=zero_mean).mean()
        sdrs.append(float(best[0]))
        imps.append(float(best[0] - base))
        perms.append([int(k) for k in perm[0]])
    return SeparationMetric(
        si_sdri=float(np.mean(imps)),
        si_sdr=float(np.mean(sdrs)),
        n=n,
        permutations=perms,
        convention=(
            "torchmetrics PIT (max mean SI-SDR over sources), SI-SDRi vs the mixture, "
            f"zero_mean={zero_mean}, mean per utterance then over utterances"
        ),
    )


# --- query-by-example STD: ATWV / MTWV (hand-written) --------------------------------------------

# The QUESST 2015 scoring package's score-TWV-Cnxe.sh sets P_target=0.0008, C_fa=1,
# C_miss=100 (it passes the effective prior 0.0741289 to its jar). The QUESST 2014 script,
# which SUPERB runs, was not available to read: pass these only knowing that.
QUESST2015_SCORER_COSTS: dict[str, float] = {"p_target": 0.0008, "c_miss": 100.0, "c_fa": 1.0}


@dataclass(frozen=True)
class TWVMetric:
    mtwv: float  # maximum TWV over one global threshold (>= 0: "accept nothing" scores 0)
    threshold: float  # detections are the trials with score >= threshold (inf: none)
    atwv: float | None  # TWV of the system's own YES/NO decisions, when given
    beta: float
    n_queries: int  # queries with at least one true occurrence (the others are not scored)
    n_queries_excluded: int
    n_trials: int
    convention: str


def term_weighted_value(
    queries: Sequence[str],
    scores: Sequence[float],
    is_target: Sequence[bool | int],
    *,
    p_target: float,
    c_miss: float,
    c_fa: float,
    decisions: Sequence[bool | int] | None = None,
) -> TWVMetric:
    """MTWV (and ATWV) of query-by-example detection trials, NIST STD 2006 style.

    Hand-written: no maintained Python library implements TWV (QUESST ships a Java scorer).
    One trial = one (query, document) pair with a score, as QUESST asks: every pair must be
    scored (the scorer fills unscored pairs with a default score). For a threshold θ
    (detection iff score >= θ), per query q with N_true(q) > 0:
    P_miss(q) = 1 − hits(q)/N_true(q), P_fa(q) = false alarms(q)/(N_trials(q) − N_true(q)),
    TWV(θ) = 1 − mean_q [P_miss(q) + β·P_fa(q)], β = (c_fa/c_miss)·(1/p_target − 1).
    MTWV = max over θ (one threshold for all queries); ATWV = TWV of ``decisions``.
    The costs and prior are required: see :data:`QUESST2015_SCORER_COSTS` for the values of
    the QUESST 2015 scorer.
    """
    n = _same_length(queries, scores, "trial queries", "scores")
    _same_length(queries, is_target, "trial queries", "trial labels")
    if not (0 < p_target < 1) or c_miss <= 0 or c_fa <= 0:
        raise DataError("p_target must lie in (0, 1) and the costs must be positive")
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise DataError("TWV scores must be finite numbers (fill unscored trials with a default)")
    y = np.asarray(is_target)
    if not np.all(np.isin(y, (0, 1))):
        raise DataError("trial labels must be 1/True (the query occurs) or 0/False")
    y = y.astype(bool)
    names, q = np.unique(np.asarray([str(x) for x in queries]), return_inverse=True)
    n_true = np.bincount(q, weights=y, minlength=len(names))
    n_all = np.bincount(q, minlength=len(names)).astype(np.float64)
    scored = n_true > 0
    nq = int(scored.sum())
    if nq == 0:
        raise DataError("no query has a true occurrence: TWV is undefined")
    beta = (c_fa / c_miss) * (1 / p_target - 1)
    n_non = n_all - n_true
    # Each accepted trial moves TWV by +1/(Q·N_true) (a hit) or −β/(Q·N_non) (a false alarm);
    # TWV(θ) is the sum over the trials with score >= θ, so one pass over sorted scores.
    gain = np.where(
        y,
        1.0 / (nq * np.maximum(n_true[q], 1)),
        -beta / (nq * np.where(n_non[q] > 0, n_non[q], np.inf)),
    )
    gain[~scored[q]] = 0.0
    order = np.argsort(-s, kind="stable")
    cum = np.cumsum(gain[order])
    ss = s[order]
    last_of_tie = np.r_[ss[1:] != ss[:-1], True]  # a threshold accepts all tied scores
    twv, thr = cum[last_of_tie], ss[last_of_tie]
    k = int(np.argmax(twv))
    mtwv, best_thr = (float(twv[k]), float(thr[k])) if twv[k] > 0 else (0.0, float("inf"))
    atwv = None
    if decisions is not None:
        _same_length(queries, decisions, "trial queries", "decisions")
        d = np.asarray(decisions)
        if not np.all(np.isin(d, (0, 1))):
            raise DataError("decisions must be 1/True (YES) or 0/False (NO)")
        atwv = float(gain[d.astype(bool)].sum())
    return TWVMetric(
        mtwv=mtwv,
        threshold=best_thr,
        atwv=atwv,
        beta=beta,
        n_queries=nq,
        n_queries_excluded=len(names) - nq,
        n_trials=n,
        convention=(
            f"NIST STD TWV, p_target={p_target}, c_miss={c_miss}, c_fa={c_fa} (beta={beta:g}); "
            "one global threshold, detection iff score >= threshold; queries without "
            "occurrences excluded"
        ),
    )
