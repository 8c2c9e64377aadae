"""Per-sample scores in, task metrics out: the types and the helpers every scorer shares.

A scorer (see :mod:`speechlm_eval.scorers.base` for the contract) turns each sample into a
:class:`SampleScore` whose ``values`` are small sufficient statistics (an item's 0/1/0.5
point, an utterance's edit errors and reference length), then aggregates a list of them into
a :class:`ScoreReport` of :class:`Metric` with the functions here:

- :func:`mean`: mean with its closed-form standard error (items independent);
- :func:`cluster_mean`: items that share a unit (a pair id spoken by several voices, a
  speaker's utterances) -- either the two-stage average of the ZeroSpeech 2021 rule
  (``weighting="cluster"``) or the item mean with a cluster-robust standard error
  (``weighting="item"``);
- :func:`grouped`: one metric per value of a group key (frequency band, sBLIMP type);
- :func:`ratio` and :func:`bootstrap`: corpus ratios (WER = summed errors / summed
  reference length) and their seeded, paired scipy bootstrap;
- reducers for N samples per prompt live in :mod:`speechlm_eval.scorers.reducers`.

Because values are sufficient statistics, an aggregate depends only on the list of
SampleScores: shards of a dataset can be scored apart and aggregated together, and a
report can be recomputed from the per-sample rows of a samples file.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "Metric",
    "SampleScore",
    "ScoreReport",
    "bootstrap",
    "cluster_mean",
    "cluster_means",
    "finite_cluster_mean",
    "grouped",
    "mean",
    "paired_ratio_delta",
    "ratio",
    "ratio_of_sums",
]


@dataclass
class Metric:
    """One aggregate: its value, standard error (None when it cannot be estimated), count."""

    value: float
    stderr: float | None  # standard error of ``value``; None when n < 2 or not computed
    n: int  # the number of units the value averages (items, pair ids, utterances)
    higher_is_better: bool = True


@dataclass
class ScoreReport:
    """A task's metrics, its per-sample rows and what the results record of the scoring.

    ``per_item``: the rows of the samples file (``scorers.base.sample_records``);
    ``info``: recorded under ``scoring.<task>`` in the results (options, identities, counts).
    """

    metrics: dict[str, Metric]
    per_item: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleScore:
    """What a scorer says about one sample (one item, one utterance, one response).

    - ``doc_id``: the sample's unit (ZR2021 pair id, utterance id); samples sharing it are
      clustered by :func:`cluster_mean` and folded by the reducers.
    - ``values``: sufficient statistics, numbers only (an item's point, edit errors and
      reference length, ``parse_failure`` 0/1); the aggregate is computed from these alone.
    - ``groups``: group keys for breakdowns (``{"type": "agreement"}``); not logged (the
      item's own fields, in ``meta``, are).
    - ``answer``: the answer extracted from a model's response, None when none was parsed.
    - ``explanation``: why, in words (an extraction's "no match at step 2 (regex)").
    - ``meta``: fields logged with the sample (candidates, texts, the item's metadata).
    """

    doc_id: str
    values: dict[str, float]
    groups: dict[str, str | None] = field(default_factory=dict)
    answer: str | None = None
    explanation: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# --- means ------------------------------------------------------------------------------------


def mean(values: Sequence[float] | np.ndarray, higher_is_better: bool = True) -> Metric:
    """Mean with its closed-form standard error (sample std, ddof=1, over sqrt(n))."""
    a = np.asarray(values, dtype=np.float64)
    n = int(a.size)
    if n == 0:
        return Metric(math.nan, None, 0, higher_is_better)
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return Metric(float(a.mean()), se, n, higher_is_better)


def _codes(clusters: Sequence[Hashable]) -> np.ndarray:
    """Cluster labels (any hashable: ids, (id, speaker) tuples) as integers 0, 1, ... in
    order of first appearance."""
    seen: dict[Hashable, int] = {}
    return np.array([seen.setdefault(c, len(seen)) for c in clusters], dtype=np.int64)


def cluster_means(values: Sequence[float] | np.ndarray, clusters: Sequence[Hashable]) -> np.ndarray:
    """The mean of each cluster, clusters in order of first appearance."""
    a = pd.Series(np.asarray(values, dtype=np.float64))
    # pandas' group mean over the members in their order (sort=False keeps clusters in
    # first-appearance order): the computation of the ZeroSpeech 2021 scripts' groupby, so
    # headline values stay bit-identical.
    return a.groupby(_codes(clusters), sort=False).mean().to_numpy()


def cluster_mean(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[Hashable],
    *,
    weighting: Literal["cluster", "item"] = "item",
    higher_is_better: bool = True,
) -> Metric:
    """Mean of values whose items are not independent: items of one cluster share a unit.

    ``weighting="cluster"`` (the ZeroSpeech 2021 rule): average each cluster first, then
    the clusters equally; the standard error is the closed-form one over the G cluster means
    and ``n`` is G. Clustering by pair id *is* the official averaging over voices.

    ``weighting="item"``: the plain mean over the N items, with the cluster-robust (CR1)
    standard error of a mean -- the sandwich variance of an intercept-only least-squares
    fit with residuals summed within clusters (Liang & Zeger 1986):

        Var = G / (G - 1) * sum_g (sum_{i in g} (y_i - ybar))^2 / N^2

    (Cameron & Miller 2015, "A Practitioner's Guide to Cluster-Robust Inference", J. Human
    Resources 50(2), section II.C, with the small-sample factor c = G/(G-1) * (N-1)/(N-K)
    at K = 1; Stata's ``mean y, vce(cluster g)``). ``n`` is N; None when G < 2. Written by
    hand: numpy, scipy and pandas have no cluster-robust variance and statsmodels is not a
    dependency. One item per cluster gives the closed-form s/sqrt(N); equal cluster sizes
    give the standard error of the cluster means (tests check both).
    """
    a = np.asarray(values, dtype=np.float64)
    if len(clusters) != a.size:
        raise ValueError(f"cluster_mean: {a.size} values but {len(clusters)} cluster labels")
    if weighting == "cluster":
        return mean(cluster_means(a, clusters), higher_is_better)
    if weighting != "item":
        raise ValueError(f"cluster_mean: weighting must be 'cluster' or 'item', got {weighting!r}")
    n = int(a.size)
    if n == 0:
        return Metric(math.nan, None, 0, higher_is_better)
    ybar = float(a.mean())
    sums = pd.Series(a - ybar).groupby(_codes(clusters), sort=False).sum()
    g = int(sums.size)
    se = None
    if g > 1:
        se = float(math.sqrt(g / (g - 1) * float((sums.to_numpy() ** 2).sum())) / n)
    return Metric(ybar, se, n, higher_is_better)


# --- breakdowns -------------------------------------------------------------------------------


def finite_cluster_mean(
    values: Sequence[float | None] | np.ndarray,
    clusters: Sequence[Hashable],
    *,
    higher_is_better: bool = True,
) -> tuple[Metric | None, int]:
    """:func:`cluster_mean` over the finite values only, and how many were left out.

    A judge gives NaN (or None) where it has no value for an input (no signal for a speaker
    encoder, a clip too short for a MOS predictor): such items are excluded and the count is
    returned for the results to report, never averaged in and never dropped unseen. The
    Metric is None when no value is finite."""
    keep = [
        (float(v), c)
        for v, c in zip(values, clusters, strict=True)
        if v is not None and math.isfinite(float(v))
    ]
    n_out = len(clusters) - len(keep)
    if not keep:
        return None, n_out
    return cluster_mean(
        [v for v, _ in keep], [c for _, c in keep], higher_is_better=higher_is_better
    ), n_out


def grouped(
    samples: Sequence[SampleScore],
    key: str,
    metric: Callable[[Sequence[SampleScore]], Metric],
    *,
    order: Sequence[str] | None = None,
    by_doc: bool = False,
) -> dict[str, Metric]:
    """``metric`` over the samples of each value of the group key ``key``.

    Samples without the key, or with None, are in no group. Groups come in ``order`` (those
    without samples left out) or sorted. ``by_doc``: a doc_id belongs to the group of its
    first sample, so a cluster is never split across groups (what the ZR2021 scripts do:
    an id's frequency or type is taken from its first row).
    """
    first: dict[str, str | None] = {}  # doc_id -> the group of its first sample (by_doc)
    parts: dict[str, list[SampleScore]] = {}
    for s in samples:
        g = s.groups.get(key)
        if by_doc:
            g = first.setdefault(s.doc_id, g)
        if g is not None:
            parts.setdefault(g, []).append(s)
    names = [g for g in order if g in parts] if order is not None else sorted(parts)
    return {g: metric(parts[g]) for g in names}


# --- ratios and the bootstrap -----------------------------------------------------------------


def ratio(
    numerators: Sequence[float] | np.ndarray, denominators: Sequence[float] | np.ndarray
) -> float:
    """Summed numerators over summed denominators (a corpus rate; NaN when the sum is 0)."""
    num, den = np.asarray(numerators), np.asarray(denominators)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(num.sum() / den.sum())


def ratio_of_sums(num: np.ndarray, den: np.ndarray, axis: int = -1) -> np.ndarray:
    """:func:`ratio` as a vectorised bootstrap statistic."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num.sum(axis=axis) / den.sum(axis=axis)


def paired_ratio_delta(
    num1: np.ndarray, num0: np.ndarray, den: np.ndarray, axis: int = -1
) -> np.ndarray:
    """``ratio(num1, den) - ratio(num0, den)`` over a shared denominator, vectorised (the
    degradation of one system against another on the same references)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (num1.sum(axis=axis) - num0.sum(axis=axis)) / den.sum(axis=axis)


def paired_bootstrap(
    arrays: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    resamples: int,
    level: float,
    method: str,
    seed: int,
) -> Any:
    """``scipy.stats.bootstrap``'s result for ``statistic`` over resampled units: paired (one
    index draws every array's entry, so a unit's numerator and denominator stay together),
    vectorised, and seeded afresh on every call, so every statistic computed with one seed sees
    the same resampled unit sets. Resamples whose statistic divides by zero give NaN quietly."""
    from scipy.stats import bootstrap as scipy_bootstrap

    # scipy >= 1.15 calls the generator ``rng``; older releases ``random_state``.
    key = "rng" if "rng" in inspect.signature(scipy_bootstrap).parameters else "random_state"
    with np.errstate(divide="ignore", invalid="ignore"):
        return scipy_bootstrap(
            tuple(np.asarray(a, dtype=np.float64) for a in arrays),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=level,
            method=method,
            **{key: np.random.default_rng(seed)},
        )


def bootstrap(
    arrays: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    resamples: int,
    level: float,
    method: str,
    seed: int,
) -> tuple[float, float, float] | None:
    """(standard error, low, high) of ``statistic`` by :func:`paired_bootstrap`; None if n < 2.

    The standard error is the standard deviation of the bootstrap distribution.
    """
    if resamples < 1 or arrays[0].size < 2:
        return None
    res = paired_bootstrap(arrays, statistic, resamples, level, method, seed)
    ci = res.confidence_interval
    return float(res.standard_error), float(ci.low), float(ci.high)
