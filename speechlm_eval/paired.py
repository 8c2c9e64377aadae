"""Paired tests of two runs on the same items, for the regression gate (``slm-eval compare``).

Two runs of the same suite score the *same* items, so their difference is measured far more
precisely per item than by comparing two aggregates with their own standard errors: the
item-to-item variance, which dominates both stderrs, cancels. This module reads the
per-sample files that ``slm-eval run --log_samples`` writes beside a results file
(``samples_<task>_<ts>.jsonl`` next to ``results_<ts>.json``) and tests, per task, whether NEW
is *worse* than BASE (one-sided: an improvement never fails the gate).

- **Choice tasks** (likelihood pairs: sWUGGY, sBLIMP, sSC, tSC, SALMon). The paired unit is the
  ``doc_id``: the headline first averages the rows of a doc_id (one pair spoken by several
  voices), so those rows are not independent evidence. Per unit, ``d = new - base`` of the
  unit's mean score. Test: the exact **sign test** on the units that changed (worse vs better,
  ``scipy.stats.binomtest`` at 1/2, one-sided); when every unit's score is 0 or 1 this is the
  exact **McNemar test** on the discordant units. The paired difference of the headline and
  its interval come from a seeded **paired percentile bootstrap** over units.
- **Corpus ratios** (resynthesis WER/CER = summed errors / summed reference length). The unit
  is the utterance. Test: the seeded **paired bootstrap** of Bisani & Ney (2004, "Bootstrap
  estimates for confidence intervals in ASR performance evaluation"): resample utterances,
  recompute *both* corpus ratios on the same resample, and take the share of resamples in
  which NEW is not worse as the one-sided p-value (1 - their "probability of improvement"
  turned towards regression; add-one corrected, Davison & Hinkley 1997, eq. 4.11).
- Other samples (ABX rows are phone pairs that share files and speakers: no independent
  paired unit) are not tested here; the gate falls back to the aggregate rule for them.

Intervals are two-sided at ``1 - 2*alpha`` so that their bad end is the one-sided bound at
``alpha`` (before any multiple-comparison adjustment).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError
from .metrics import paired_bootstrap, ratio_of_sums

ALPHA = 0.05
RESAMPLES = 2000
SEED = 0
MULTIPLE = ("holm", "bonferroni", "none")

RESULTS_NAME = re.compile(r"^results_(?P<ts>\d{4}-\d\d-\d\dT[\d.-]+)\.json$")
SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<ts>\d{4}-\d\d-\d\dT[\d.-]+)\.jsonl$")


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison of a task's metric between BASE and NEW."""

    task: str
    metric: str
    test: str  # "McNemar exact", "sign test exact" or "paired bootstrap"
    n: int  # paired units (doc_ids or utterances)
    base: float
    new: float
    delta: float  # new - base of the metric, from the samples
    ci: tuple[float, float] | None  # two-sided 1 - 2*alpha interval of delta; None if n < 2
    p: float  # one-sided p-value of "NEW is worse than BASE"
    note: str  # e.g. "7 worse, 2 better"


# --- samples files ----------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a samples file, one per line."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}, line {n}: not JSON ({e})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}, line {n}: a sample must be a JSON object")
                rows.append(row)
    except FileNotFoundError:
        raise DataError(f"{path}: samples file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read samples ({e})") from None
    if not rows:
        raise DataError(f"{path}: no samples")
    return rows


def find_samples(
    results_path: str | Path, tasks: Sequence[str], samples_dir: str | Path | None = None
) -> dict[str, Path]:
    """The samples file of each task in ``tasks`` that exists, by task.

    Without ``samples_dir``: ``samples_<task>_<ts>.jsonl`` beside ``results_<ts>.json`` (same
    timestamp: the files of one run). With it: that folder's ``samples_<task>_*.jsonl``, the
    one with the results file's timestamp if there is one, else the only one (several are an
    error: which run is meant is ambiguous).
    """
    rp = Path(results_path)
    m = RESULTS_NAME.match(rp.name)
    ts = m["ts"] if m else None
    if samples_dir is None:
        if ts is None:
            return {}
        found = {t: rp.parent / f"samples_{t}_{ts}.jsonl" for t in tasks}
        return {t: p for t, p in found.items() if p.is_file()}
    d = Path(samples_dir)
    if not d.is_dir():
        raise ConfigError(f"samples folder {d}: not a directory")
    by_task: dict[str, list[Path]] = {}
    for p in sorted(d.iterdir()):
        sm = SAMPLES_NAME.match(p.name)
        if sm and p.is_file():
            by_task.setdefault(sm["task"], []).append(p)
    out: dict[str, Path] = {}
    for t in tasks:
        cands = by_task.get(t, [])
        same_run = [p for p in cands if ts is not None and p.name.endswith(f"_{ts}.jsonl")]
        if len(same_run) == 1:
            out[t] = same_run[0]
        elif len(cands) == 1:
            out[t] = cands[0]
        elif cands:
            names = ", ".join(p.name for p in cands)
            raise ConfigError(
                f"samples folder {d}: several samples files for task {t!r} ({names}); "
                "keep one run's files per folder"
            )
    return out


def kind_of(rows: Sequence[Mapping[str, Any]], metric: str) -> str | None:
    """ "choice", "corpus" or None (no paired test) for samples scored by ``metric``."""
    name, _, filt = metric.partition(",")
    first = rows[0]
    if "candidates" in first and f"score,{filt}" in first:
        return "choice"
    if f"{name}_errors" in first and f"{name}_reference_length" in first:
        return "corpus"
    return None


# --- statistics -------------------------------------------------------------------------------


def sign_test_p(worse: int, better: int) -> float:
    """One-sided exact sign test: P(at least ``worse`` of ``worse + better`` changed units are
    worse) when a change is as likely to go either way. 1.0 when nothing changed."""
    from scipy.stats import binomtest

    n = worse + better
    return 1.0 if n == 0 else float(binomtest(worse, n, 0.5, alternative="greater").pvalue)


def _percentile(
    arrays: tuple[np.ndarray, ...], statistic: Any, resamples: int, alpha: float, seed: int
) -> Any:
    """The paired, seeded percentile bootstrap of the gate: a two-sided 1 - 2 alpha interval."""
    return paired_bootstrap(arrays, statistic, resamples, 1 - 2 * alpha, "percentile", seed)


def _interval(res: Any) -> tuple[float, float]:
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def unit_scores(
    task: str,
    base_rows: Sequence[Mapping[str, Any]],
    new_rows: Sequence[Mapping[str, Any]],
    score_key: str,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Match choice rows by (doc_id, candidates) and average each side per doc_id.

    Returns the doc_ids, the base and new mean score of each, and its number of rows.
    Rows present on one side only are an error: different items are not a paired comparison.
    """
    sides = []
    for rows, name in ((base_rows, names[0]), (new_rows, names[1])):
        by_key: dict[tuple[str, tuple[str, ...]], float] = {}
        for i, r in enumerate(rows, 1):
            try:
                key = (str(r["doc_id"]), tuple(str(c) for c in r["candidates"]))
                val = r[score_key]
            except (KeyError, TypeError):
                raise DataError(
                    f"{name}: samples of {task}, row {i}: needs 'doc_id', 'candidates' "
                    f"and '{score_key}'"
                ) from None
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise DataError(
                    f"{name}: samples of {task}, row {i}: '{score_key}' must be a number, "
                    f"got {val!r:.40}"
                )
            if key in by_key:
                raise DataError(f"{name}: samples of {task}: row {key[0]!r} appears twice")
            by_key[key] = float(val)
        sides.append(by_key)
    b, n = sides
    _check_matched(task, set(b), set(n), len(b), len(n))
    sums: dict[str, list[float]] = {}
    for key in b:
        acc = sums.setdefault(key[0], [0.0, 0.0, 0.0])
        acc[0] += b[key]
        acc[1] += n[key]
        acc[2] += 1
    ids = list(sums)
    arr = np.array([sums[u] for u in ids], dtype=np.float64).reshape(-1, 3)
    return ids, arr[:, 0] / arr[:, 2], arr[:, 1] / arr[:, 2], arr[:, 2]


def _check_matched(task: str, b: set[Any], n: set[Any], nb: int, nn: int) -> None:
    only_b, only_n = len(b - n), len(n - b)
    if only_b or only_n:
        raise DataError(
            f"task {task}: samples do not pair up ({nb} rows in BASE, {nn} in NEW; "
            f"{only_b} only in BASE, {only_n} only in NEW): different items are not a "
            "paired comparison (compare with --aggregate)"
        )


def choice_test(
    task: str,
    metric: str,
    base_rows: Sequence[Mapping[str, Any]],
    new_rows: Sequence[Mapping[str, Any]],
    *,
    higher_is_better: bool = True,
    weighting: str = "unit",
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> PairedTest:
    """Paired test of a choice task's accuracy ``metric`` (``acc,<filter>``).

    ``weighting``: how the headline averages the rows: ``"unit"`` (mean over doc_ids of each
    doc_id's mean: ZeroSpeech 2021) or ``"item"`` (mean over rows). The sign test counts
    doc_ids either way; only the difference and its interval follow the weighting.
    """
    filt = metric.partition(",")[2]
    ids, b, n, count = unit_scores(task, base_rows, new_rows, f"score,{filt}", names)
    w = np.ones_like(count) if weighting == "unit" else count
    d = n - b
    bad = -d if higher_is_better else d
    worse, better = int((bad > 0).sum()), int((bad < 0).sum())
    binary = bool(np.isin(b, (0.0, 1.0)).all() and np.isin(n, (0.0, 1.0)).all())
    delta = float((w * d).sum() / w.sum())
    ci: tuple[float, float] | None = None
    if len(ids) >= 2 and resamples > 0:
        if np.ptp(d) == 0:  # every unit moved alike: every resample gives the same delta
            ci = (delta, delta)
        else:
            ci = _interval(_percentile((w * d, w), ratio_of_sums, resamples, alpha, seed))
    return PairedTest(
        task=task,
        metric=metric,
        test="McNemar exact" if binary else "sign test exact",
        n=len(ids),
        base=float((w * b).sum() / w.sum()),
        new=float((w * n).sum() / w.sum()),
        delta=delta,
        ci=ci,
        p=sign_test_p(worse, better),
        note=f"{worse} worse, {better} better",
    )


def _corpus_arrays(
    task: str,
    rows: Sequence[Mapping[str, Any]],
    name: str,
    unit: str,
) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    ek, nk = f"{unit}_errors", f"{unit}_reference_length"
    for i, r in enumerate(rows, 1):
        try:
            key, e, ln = str(r["doc_id"]), r[ek], r[nk]
        except KeyError:
            raise DataError(
                f"{name}: samples of {task}, row {i}: needs 'doc_id', '{ek}' and '{nk}'"
            ) from None
        for field, v in ((ek, e), (nk, ln)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise DataError(
                    f"{name}: samples of {task}, row {i}: '{field}' must be a number >= 0, "
                    f"got {v!r:.40}"
                )
        if key in out:
            raise DataError(f"{name}: samples of {task}: utterance {key!r} appears twice")
        out[key] = (float(e), float(ln))
    return out


def _ratio_delta(
    eb: np.ndarray, lb: np.ndarray, en: np.ndarray, ln: np.ndarray, axis: int = -1
) -> np.ndarray:
    return en.sum(axis=axis) / ln.sum(axis=axis) - eb.sum(axis=axis) / lb.sum(axis=axis)


def corpus_test(
    task: str,
    metric: str,
    base_rows: Sequence[Mapping[str, Any]],
    new_rows: Sequence[Mapping[str, Any]],
    *,
    higher_is_better: bool = False,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> PairedTest:
    """Paired bootstrap (Bisani & Ney 2004) of a corpus error rate ``metric`` (``wer,none``).

    Each utterance contributes its errors and reference length on both sides; a resample
    draws utterances and recomputes both corpus ratios (never a mean of per-utterance rates).
    """
    unit = metric.partition(",")[0]
    b = _corpus_arrays(task, base_rows, names[0], unit)
    n = _corpus_arrays(task, new_rows, names[1], unit)
    _check_matched(task, set(b), set(n), len(b), len(n))
    ids = list(b)
    eb, lb = np.array([b[u] for u in ids]).T
    en, ln = np.array([n[u] for u in ids]).T
    if lb.sum() == 0 or ln.sum() == 0:
        raise DataError(f"task {task}: every reference is empty; no {unit} to compare")
    base, new = float(eb.sum() / lb.sum()), float(en.sum() / ln.sum())
    delta = new - base
    ci: tuple[float, float] | None = None
    p = 1.0  # one utterance: nothing to resample, the gate cannot call it significant
    if len(ids) >= 2 and resamples > 0:
        res = _percentile((eb, lb, en, ln), _ratio_delta, resamples, alpha, seed)
        dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
        dist = dist[np.isfinite(dist)]  # a resample of only empty references has no ratio
        bad = -dist if higher_is_better else dist
        # One-sided p: share of resamples in which NEW is not worse, add-one corrected so a
        # finite number of resamples never claims p = 0.
        p = float((1 + np.count_nonzero(bad <= 0)) / (1 + bad.size))
        ci = (delta, delta) if np.ptp(dist) == 0 else _interval(res)
    # Per-utterance direction, for the note only (an empty reference: its errors count).
    rb = np.divide(eb, lb, out=eb.copy(), where=lb > 0)
    rn = np.divide(en, ln, out=en.copy(), where=ln > 0)
    sign = -1 if higher_is_better else 1
    worse = int(np.count_nonzero(sign * (rn - rb) > 0))
    better = int(np.count_nonzero(sign * (rn - rb) < 0))
    return PairedTest(
        task=task,
        metric=metric,
        test="paired bootstrap",
        n=len(ids),
        base=base,
        new=new,
        delta=delta,
        ci=ci,
        p=p,
        note=f"{worse} utts worse, {better} better; B={resamples}",
    )


# --- multiple comparisons ---------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values: reject hypothesis i iff ``adjusted[i] <= alpha``.

    Hand-written because scipy offers only false-discovery-rate control
    (``scipy.stats.false_discovery_control``) and statsmodels is not a dependency. The i-th
    smallest p is multiplied by ``m - i + 1`` (capped at 1), then made non-decreasing in that
    order (a hypothesis is only rejected if every smaller one is).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values over one family of tests: ``holm``, ``bonferroni`` or ``none``."""
    if method == "holm":
        return holm(pvalues)
    if method == "bonferroni":
        return [min(1.0, p * len(pvalues)) for p in pvalues]
    if method == "none":
        return [float(p) for p in pvalues]
    raise ConfigError(f"--multiple: expected one of {', '.join(MULTIPLE)}, got {method!r}")


def same(a: Any, b: Any) -> bool:
    """Exactly equal, NaN equal to NaN (for the ``--exact`` gate)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def differing_rows(
    base_rows: Sequence[Mapping[str, Any]], new_rows: Sequence[Mapping[str, Any]]
) -> int:
    """How many rows of either file have no identical row in the other (every field
    compared, order ignored): 0 iff the two files hold the same samples."""
    from collections import Counter

    def canon(rows: Sequence[Mapping[str, Any]]) -> Counter[str]:
        return Counter(json.dumps(r, sort_keys=True) for r in rows)

    cb, cn = canon(base_rows), canon(new_rows)
    return sum(((cb - cn) + (cn - cb)).values())
