"""Pure metric functions for spoken-continuation quality and diversity (GSLM and slamkit).

Everything here works on transcripts (word lists) or on numbers that a judge produced (per
utterance NLLs, per temperature PPX/VERT); no model is loaded. Sources, read at the snapshots
named in ``shared/reference/generation-dialogue-metrics.md`` §1:

* GSLM (Lakhotia et al., TACL 2021), fairseq ``examples/textless_nlp/gslm/metrics/asr_metrics/``:
  ``ppx.py`` (PPX summary), ``self_auto_bleu.py`` (Self-BLEU, Auto-BLEU),
  ``continuation_eval.py`` (Continuation-BLEU2), ``misc/bleu_utils.py`` (their sentence BLEU:
  NLTK's with an optional brevity penalty and an arithmetic-mean mode).
* slamkit (slp-rl/slamkit): ``slamkit/metric/generative_metric.py::asr_perplexity`` (GenPPL and
  Auto-BLEU), ``slamkit/utils/calculation_utils.py`` (``calc_nll``, ``calc_auto_bleu``).
* VERT: the geometric mean of Self-BLEU and Auto-BLEU (GSLM paper); the variant used here is the
  one of ESPnet's re-use (``espnet2/sds/eval/LLM_Metrics.py::vert``): the corpus means of the
  bigram, geometric Self-BLEU and Auto-BLEU. fairseq itself has no VERT code.

The two Auto-BLEUs are different metrics and are kept apart: :func:`auto_bleu_gslm` excludes
n-grams overlapping the current position and combines orders 1..n; :func:`auto_bleu_slamkit`
counts overlapping repeats and uses one order. ``"a a a"`` gives 0.0 vs 1.0,
``"the cat the cat sat"`` sqrt(0.8 * 0.5) = 0.632 vs 0.5.

Temperature trade-off (AUC and oracle anchors) — a re-derivation
-----------------------------------------------------------------
The fairseq README only says that the AUC of the perplexity/diversity trade-off can be estimated
and points to a Colab notebook that is not in the repository; the temperature grid, the
interpolation and the integration bounds are not known. This module therefore defines them,
and :func:`auc_ppx_vert` returns every choice alongside the number:

1. Each sampling temperature ``T_k`` gives one :class:`TradeoffPoint` ``(T_k, PPX_k, VERT_k)``
   (PPX: a corpus summary of the continuation perplexities such as ``ppx_summary(...)["ppl"]
   ["mean"]``; VERT: :func:`vert`). The caller chooses the grid of temperatures.
2. The trade-off curve is PPX as a function of VERT: points are sorted by VERT; points with the
   same VERT (exact equality) are replaced by one point with their mean PPX; between measured
   points PPX is linear in VERT (piecewise-linear interpolation, ``numpy.interp``).
3. AUC = integral of that curve over ``[lo, hi]`` (default: the measured VERT range). The grid
   is ``lo``, every measured VERT strictly inside, ``hi``; on a piecewise-linear function the
   trapezoid rule (``scipy.integrate.trapezoid``) on this grid is exact. A window reaching
   outside the measured VERT range is refused (no extrapolation), as is a curve with fewer than
   two distinct VERT values. ``mean_ppx`` = AUC / (hi - lo) is returned too, so windows of
   different widths can be compared.
4. Oracle anchors (:func:`value_at`): "PPX@oracle-VERT" is the PPX of the curve at the VERT of
   the real text continuations, "VERT@oracle-PPX" the VERT at the oracle's PPX. Here the curve
   is walked in *temperature* order (points with the same temperature averaged) and linearly
   interpolated between consecutive temperatures; when the curve is not monotone and crosses
   the target value several times, the crossing at the lowest temperature is used. A target
   outside the measured range gives ``None`` (no extrapolation). When VERT is monotone in the
   temperature (the usual case) this curve is the same as the AUC curve.

Non-finite NLLs: slamkit's GenPPL lets an empty transcript's NaN propagate; fairseq's ppx.py
drops NaNs with a warning. Here nothing is dropped silently: :func:`ppx_summary` excludes
non-finite values and reports how many and which; :func:`gen_ppl` raises ``ValueError`` —
use :func:`split_finite` first and report its exclusions.

NLTK (``nltk``) is imported lazily: :func:`slamkit_words` and :func:`cont_bleu` need it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Averaging = Literal["geometric", "arithmetic"]

__all__ = [
    "TradeoffPoint",
    "auc_ppx_vert",
    "auto_bleu_gslm",
    "auto_bleu_slamkit",
    "cont_bleu",
    "gen_ppl",
    "gslm_words",
    "ppx_summary",
    "self_bleu_gslm",
    "slamkit_words",
    "split_finite",
    "value_at",
    "vert",
]


# --------------------------------------------------------------------------------------------
# tokenisers


def gslm_words(text: str, *, lower: bool = False) -> list[str]:
    """Words as GSLM's BLEU scripts see them: whitespace split of the stripped line.

    fairseq ``self_auto_bleu.py`` and ``continuation_eval.py`` use ``line.strip().split()`` and
    keep the case (their wav2vec 2.0 letter ASR writes upper case, as do the LibriSpeech ground
    truths); only ``ppx.py`` lower-cases, and only the string it hands to the judge LM.
    ``lower=True`` case-folds (``str.lower``) for transcripts whose case differs from the
    reference's. The ``(None-<idx>)`` id that fairseq's ASR appends must be removed by the caller.
    """
    words = text.split()
    return [w.lower() for w in words] if lower else words


_NLTK_WORD_TOKENIZER: Any = None


def slamkit_words(text: str) -> list[str]:
    """Tokens as slamkit's Auto-BLEU sees them: ``nltk.tokenize.NLTKWordTokenizer().tokenize``.

    slamkit (``generative_metric.asr_perplexity`` -> ``calculation_utils.calc_ngram``) applies it
    to the raw Whisper text: case and punctuation are kept, punctuation becomes tokens
    (``"Don't stop."`` -> ``['Do', "n't", 'stop', '.']``).
    """
    global _NLTK_WORD_TOKENIZER
    if _NLTK_WORD_TOKENIZER is None:
        from nltk.tokenize import NLTKWordTokenizer

        _NLTK_WORD_TOKENIZER = NLTKWordTokenizer()
    return list(_NLTK_WORD_TOKENIZER.tokenize(text))


# --------------------------------------------------------------------------------------------
# n-gram helpers


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def _check_order(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n-gram order must be a positive integer, got {n!r}")


def _check_averaging(averaging: str) -> None:
    if averaging not in ("geometric", "arithmetic"):
        raise ValueError(f"averaging must be 'geometric' or 'arithmetic', got {averaging!r}")


def _combine_precisions(
    numerators: Sequence[int], denominators: Sequence[int], averaging: str
) -> float:
    """fairseq ``misc/bleu_utils.corpus_bleu`` without brevity penalty, equal weights 1/n.

    0 when the unigram numerator is 0. Geometric: ``exp(sum w_k log p_k)``; a zero precision of
    a higher order gives exactly 0.0 here, where NLTK's ``method0`` substitutes
    ``sys.float_info.min`` and returns about 1e-154 (a difference below any printed digit).
    Arithmetic: ``sum w_k p_k``. Denominators are >= 1 (NLTK's ``modified_precision`` convention).
    """
    if numerators[0] == 0:
        return 0.0
    w = 1.0 / len(numerators)
    precisions = [num / den for num, den in zip(numerators, denominators, strict=True)]
    if averaging == "arithmetic":
        return math.fsum(w * p for p in precisions)
    if any(p == 0.0 for p in precisions):
        return 0.0
    return math.exp(math.fsum(w * math.log(p) for p in precisions))


# --------------------------------------------------------------------------------------------
# Auto-BLEU


def auto_bleu_gslm(words: Sequence[str], n: int = 2, averaging: Averaging = "geometric") -> float:
    """GSLM Auto-BLEU-n of one sentence (fairseq ``self_auto_bleu.auto_bleu``).

    For each order k = 1..n, the k-gram at position p counts as repeated when the same k-gram
    occurs at a position q that does not overlap it (``q <= p - k`` or ``q >= p + k``, i.e. among
    the k-grams of ``words[:p]`` or ``words[p+k:]``); ``b_k`` = repeated / #k-grams. Combined
    with equal weights 1/n: geometric ``prod b_k**(1/n)`` or arithmetic ``sum b_k / n``.

    Sentences of at most one word give 0.0 (as fairseq). A sentence of 2..n-1 words has no
    n-grams; fairseq then divides 0 by 0 and returns NaN, and so does this function (only
    possible for n >= 3; the caller must decide how to report such sentences).

    The position bookkeeping is written by hand (no library has the non-overlap rule): per
    k-gram, its first and last start positions decide in O(1) whether a non-overlapping copy
    exists, so the whole sentence costs O(n * len).
    """
    _check_order(n)
    _check_averaging(averaging)
    if len(words) <= 1:
        return 0.0
    scores = np.zeros(n)
    for k in range(1, n + 1):
        grams = _ngrams(words, k)
        if not grams:
            return float("nan")
        first: dict[tuple[str, ...], int] = {}
        last: dict[tuple[str, ...], int] = {}
        for p, g in enumerate(grams):
            first.setdefault(g, p)
            last[g] = p
        repeated = sum(1 for p, g in enumerate(grams) if first[g] <= p - k or last[g] >= p + k)
        scores[k - 1] = repeated / len(grams)
    if averaging == "arithmetic":
        return float(scores.mean())
    return float(np.prod(scores ** (1.0 / n)))


def auto_bleu_slamkit(words: Sequence[str], n: int = 2) -> float:
    """slamkit Auto-BLEU (``calculation_utils.calc_auto_bleu``): one order n only.

    Fraction of the sentence's n-grams that occur at least once more anywhere in the list
    (overlapping occurrences count); 0.0 when the sentence has no n-gram. slamkit reports the
    mean over samples (x100 in its docs). Use :func:`slamkit_words` for its tokenisation.
    """
    _check_order(n)
    grams = _ngrams(words, n)
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(1 for g in grams if counts[g] > 1) / len(grams)


# --------------------------------------------------------------------------------------------
# Self-BLEU and continuation BLEU


def self_bleu_gslm(
    corpus: Sequence[Sequence[str]], n: int = 2, averaging: Averaging = "geometric"
) -> list[float]:
    """GSLM Self-BLEU-n per sentence (fairseq ``self_auto_bleu.get_self_bleu``).

    Sentence i is the hypothesis, every *other* sentence of the pool the reference set
    (fairseq's pool: all filtered transcripts of the file, all prompts and samples). Clipped
    (modified) n-gram precisions as NLTK's ``modified_precision``, equal weights 1/n, no brevity
    penalty, no smoothing, 0 when no unigram matches (fairseq ``misc/bleu_utils``).

    Hand-written instead of calling ``modified_precision`` N times (O(N^2) Counter builds): for
    each n-gram the largest and second-largest per-sentence counts (and the owner of the
    largest) are kept, so the clip count against "all sentences but i" is O(1) and the whole
    pool costs O(total n-grams). Raises ``ValueError`` for a pool of one sentence (no
    references; fairseq's helper fails there too); an empty pool gives ``[]``.
    """
    _check_order(n)
    _check_averaging(averaging)
    sents = [list(s) for s in corpus]
    if len(sents) == 1:
        raise ValueError("self-BLEU needs at least two sentences (the others are the references)")
    # counts[i][k-1]: Counter of sentence i's k-grams
    counts = [[Counter(_ngrams(s, k)) for k in range(1, n + 1)] for s in sents]
    # top[k-1][g] = [best count, owner of best, second best count]
    top: list[dict[tuple[str, ...], list[int]]] = [{} for _ in range(n)]
    for i, per_order in enumerate(counts):
        for k_idx, cnt in enumerate(per_order):
            table = top[k_idx]
            for g, c in cnt.items():
                entry = table.get(g)
                if entry is None:
                    table[g] = [c, i, 0]
                elif c > entry[0]:
                    entry[2] = entry[0]
                    entry[0], entry[1] = c, i
                elif c > entry[2]:
                    entry[2] = c
    out = []
    for i, per_order in enumerate(counts):
        nums, dens = [], []
        for k_idx, cnt in enumerate(per_order):
            table = top[k_idx]
            num = 0
            for g, c in cnt.items():
                best, owner, second = table[g]
                num += min(c, second if owner == i else best)
            nums.append(num)
            dens.append(max(1, sum(cnt.values())))
        out.append(_combine_precisions(nums, dens, averaging))
    return out


def cont_bleu(samples: Sequence[Sequence[str]], truth: Sequence[str], n: int = 2) -> float:
    """GSLM Continuation-BLEU-n of one prompt (fairseq ``continuation_eval.py``).

    Roles are inverted with respect to usual BLEU: the ground-truth continuation ``truth`` is
    the *hypothesis* and the sampled continuations' transcripts ``samples`` are the multi-
    reference set. Clipped precisions (``nltk.translate.bleu_score.modified_precision``), equal
    weights 1/n, geometric mean, no brevity penalty, no smoothing, 0 without a unigram match.
    fairseq reports the median over prompts (n=2). Raises ``ValueError`` without samples.
    """
    from nltk.translate.bleu_score import modified_precision

    _check_order(n)
    refs = [list(s) for s in samples]
    if not refs:
        raise ValueError("continuation BLEU needs at least one sampled continuation")
    hyp = list(truth)
    precisions = [modified_precision(refs, hyp, k) for k in range(1, n + 1)]
    return _combine_precisions(
        [p.numerator for p in precisions], [p.denominator for p in precisions], "geometric"
    )


def vert(self_bleu_mean: float, auto_bleu_mean: float) -> float:
    """VERT = sqrt(self_bleu_mean * auto_bleu_mean) (GSLM; variant of ESPnet's re-use).

    Pass the corpus means of the per-sentence bigram geometric Self-BLEU
    (``self_bleu_gslm(corpus, 2, "geometric")``) and Auto-BLEU
    (``auto_bleu_gslm(words, 2, "geometric")``), both on the same scale (both fractions, or both
    x100 as ESPnet does; the result is then on that scale). A plain product and root: one line,
    no library needed.
    """
    a, b = float(self_bleu_mean), float(auto_bleu_mean)
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0:
        raise ValueError(f"VERT needs finite non-negative BLEU means, got {a!r} and {b!r}")
    return math.sqrt(a * b)


# --------------------------------------------------------------------------------------------
# perplexity summaries


def split_finite(values: Sequence[float]) -> tuple[np.ndarray, list[int]]:
    """``(finite values as float array, indices of the non-finite ones)`` in input order."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    bad = ~np.isfinite(arr)
    return arr[~bad], np.flatnonzero(bad).tolist()


def _describe(x: np.ndarray) -> dict[str, float]:
    p10, p90 = np.percentile(x, [10, 90])
    return {
        "mean": float(np.mean(x)),
        # fairseq's formula np.std(x) / sqrt(n): population std (ddof=0); 0 for one value
        "sem": float(np.std(x) / math.sqrt(x.size)),
        "median": float(np.median(x)),
        "p10": float(p10),
        "p90": float(p90),
    }


def ppx_summary(nll_per_token: Sequence[float]) -> dict[str, Any]:
    """GSLM PPX summary (fairseq ``ppx.py``) from one value per utterance.

    ``nll_per_token[i]``: utterance i's mean negative log-likelihood per token (nats), as
    ``-lm.score(text)['positional_scores'].mean()`` (mean over BPE positions incl. EOS).
    Per-utterance perplexity ``exp(nll)``; returned: ``{"n", "n_excluded", "excluded_indices",
    "ppl": stats, "nll": stats}`` with stats = mean, SEM (population std / sqrt(n), as fairseq),
    median, p10, p90 (``numpy.percentile``, linear). ``"nll"`` is what ppx.py prints as
    "logprob" (it is the negated mean log-probability). The headline number is
    ``["ppl"]["mean"]``: the mean of per-utterance perplexities, not exp of the corpus NLL.
    fairseq drops NaNs with a warning (an infinity would stay and make its mean inf); here every
    non-finite value is excluded and counted in ``n_excluded``/``excluded_indices`` for the
    caller to report. Raises ``ValueError`` when no finite value remains. No rounding (fairseq
    prints 2 decimals).
    """
    finite, excluded = split_finite(nll_per_token)
    if finite.size == 0:
        raise ValueError(
            f"no finite NLL among {len(excluded)} value(s); nothing to summarise"
            if excluded
            else "no NLL values"
        )
    return {
        "n": int(finite.size),
        "n_excluded": len(excluded),
        "excluded_indices": excluded,
        "ppl": _describe(np.exp(finite)),
        "nll": _describe(finite),
    }


def gen_ppl(nll_per_token: Sequence[float]) -> float:
    """slamkit GenPPL: ``exp(mean over samples of the per-sample mean token NLL)``.

    ``nll_per_token[i]``: sample i's summed token NLL (nats) / its number of predicted tokens, as
    slamkit's ``calc_nll(len_norm=True)`` (Llama-3.2-1B on the raw Whisper text, BOS not
    predicted). Equals the geometric mean of per-sample perplexities. Raises ``ValueError`` on an
    empty input or any non-finite value (slamkit lets an empty transcript's 0/0 = NaN poison
    the mean); filter with :func:`split_finite` and report the exclusions instead.
    """
    arr = np.asarray(nll_per_token, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError("no NLL values")
    bad = np.flatnonzero(~np.isfinite(arr)).tolist()
    if bad:
        raise ValueError(
            f"{len(bad)} non-finite NLL value(s) at indices {bad[:10]}"
            f"{'...' if len(bad) > 10 else ''}; exclude them with split_finite() and report them"
        )
    return float(np.exp(np.mean(arr)))


# --------------------------------------------------------------------------------------------
# temperature trade-off (re-derivation, see the module docstring)


@dataclass(frozen=True)
class TradeoffPoint:
    """One sampling temperature's corpus-level PPX and VERT."""

    temperature: float
    ppx: float
    vert: float


_AXES = ("temperature", "ppx", "vert")


def _check_points(points: Sequence[TradeoffPoint]) -> None:
    for p in points:
        vals = (p.temperature, p.ppx, p.vert)
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"non-finite value in trade-off point {p!r}")


def _collapse(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and, per key, the mean of ``vals`` (rows) sharing that key."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros((uniq.size, *vals.shape[1:]))
    np.add.at(sums, inverse, vals)
    counts = np.bincount(inverse, minlength=uniq.size).astype(float)
    return uniq, sums / counts.reshape(-1, *([1] * (vals.ndim - 1)))


def auc_ppx_vert(
    points: Sequence[TradeoffPoint], lo: float | None = None, hi: float | None = None
) -> dict[str, Any]:
    """Area under PPX(VERT), piecewise-linear between measured points, over ``[lo, hi]``.

    Definition in the module docstring (not official: GSLM's AUC lives in an unpublished
    notebook). Always returns a dict; ``"auc"`` is ``None`` and ``"reason"`` says why when there
    are fewer than two distinct VERT values, ``lo >= hi``, or the window leaves the measured
    VERT range. Otherwise: ``auc``, ``mean_ppx`` (auc / (hi - lo)), ``lo``, ``hi``,
    ``vert_grid``/``ppx_grid`` (the integration grid and the curve on it), ``curve_vert``/
    ``curve_ppx`` (the measured curve after averaging equal VERTs), ``temperatures``,
    ``n_points``, and the ``interpolation``/``integration`` used, ``reason`` = None.
    """
    from scipy.integrate import trapezoid

    _check_points(points)
    verts = np.array([float(p.vert) for p in points])
    ppxs = np.array([float(p.ppx) for p in points])
    out: dict[str, Any] = {
        "auc": None,
        "mean_ppx": None,
        "lo": lo,
        "hi": hi,
        "n_points": len(points),
        "temperatures": sorted(float(p.temperature) for p in points),
        "x": "vert",
        "y": "ppx",
        "interpolation": "piecewise-linear PPX(VERT) between measured points; points with equal "
        "VERT averaged; no extrapolation",
        "integration": "trapezoid on [lo, measured VERTs inside (lo, hi), hi] (exact)",
        "reason": None,
        "curve_vert": None,
        "curve_ppx": None,
        "vert_grid": None,
        "ppx_grid": None,
    }
    if verts.size == 0:
        out["reason"] = "no trade-off points"
        return out
    cv, cp = _collapse(verts, ppxs)
    out["curve_vert"], out["curve_ppx"] = cv.tolist(), cp.tolist()
    if cv.size < 2:
        out["reason"] = f"fewer than 2 distinct VERT values ({cv.size})"
        return out
    a = float(cv[0]) if lo is None else float(lo)
    b = float(cv[-1]) if hi is None else float(hi)
    out["lo"], out["hi"] = a, b
    if not (math.isfinite(a) and math.isfinite(b)) or a >= b:
        out["reason"] = f"empty integration window [{a}, {b}]"
        return out
    if a < cv[0] or b > cv[-1]:
        out["reason"] = (
            f"window [{a}, {b}] leaves the measured VERT range [{cv[0]}, {cv[-1]}] "
            "(no extrapolation)"
        )
        return out
    grid = np.concatenate([[a], cv[(cv > a) & (cv < b)], [b]])
    curve = np.interp(grid, cv, cp)
    auc = float(trapezoid(curve, grid))
    out.update(
        auc=auc,
        mean_ppx=auc / (b - a),
        vert_grid=grid.tolist(),
        ppx_grid=curve.tolist(),
    )
    return out


def value_at(
    points: Sequence[TradeoffPoint],
    x: str = "vert",
    *,
    x0: float,
    y: str = "ppx",
) -> float | None:
    """``y`` where the temperature-ordered curve reaches ``x == x0`` (oracle anchors).

    ``value_at(points, "vert", oracle_vert, "ppx")`` is PPX@oracle-VERT,
    ``value_at(points, "ppx", oracle_ppx, "vert")`` VERT@oracle-PPX. Points with equal
    temperature are averaged; consecutive temperatures are joined by straight lines; the first
    crossing in increasing temperature is used (a measured point hit exactly counts at its own
    temperature; on a flat stretch at ``x0`` the earlier point's ``y``). ``None`` when ``x0``
    is outside the measured range of ``x`` or there is no point (no extrapolation).
    """
    if x not in _AXES or y not in _AXES or x == y:
        raise ValueError(f"x and y must be two different ones of {_AXES}, got {x!r}, {y!r}")
    _check_points(points)
    if not points:
        return None
    x0 = float(x0)
    if not math.isfinite(x0):
        raise ValueError(f"x0 must be finite, got {x0!r}")
    temps = np.array([float(p.temperature) for p in points])
    rows = np.array([[float(getattr(p, x)), float(getattr(p, y))] for p in points])
    _, curve = _collapse(temps, rows)
    xs, ys = curve[:, 0], curve[:, 1]
    for k in range(xs.size):
        if xs[k] == x0:
            return float(ys[k])
        if k + 1 < xs.size and min(xs[k], xs[k + 1]) < x0 < max(xs[k], xs[k + 1]):
            t = (x0 - xs[k]) / (xs[k + 1] - xs[k])
            return float(ys[k] + t * (ys[k + 1] - ys[k]))
    return None
