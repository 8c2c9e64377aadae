"""Statistics of listening tests: t confidence intervals, the crowdMOS listener x item variance
model, Wilcoxon signed-rank and sign tests, and Holm's multiple-comparison correction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanCI:
    """A mean with its standard error and 95 % confidence interval (``n`` values)."""

    mean: float
    se: float | None
    low: float | None
    high: float | None
    n: int


def t_interval(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean +- t_{(1+level)/2, n-1} * s / sqrt(n) (Student t, not 1.96: small panels)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, None, None, None, 0)
    m = float(x.mean())
    if n < 2:
        return MeanCI(m, None, None, None, n)
    se = float(x.std(ddof=1) / math.sqrt(n))
    h = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    return MeanCI(m, se, m - h, m + h, n)


@dataclass(frozen=True)
class CrowdMOS:
    """The crowdMOS estimate (Ribeiro et al., ICASSP 2011): score Z_ij = mu + x_i (listener)
    + y_j (item) + e_ij; ``v_listener``, ``v_item``, ``v_residual`` the variance components,
    ``var_mean`` Var[mu-hat], and the 95 % interval t_{0.975, min(L, I) - 1} * sqrt(var)."""

    mean: float
    var_mean: float
    low: float
    high: float
    v_listener: float
    v_item: float
    v_residual: float
    n_listeners: int
    n_items: int
    n_ratings: int


def _mean_var(groups: list[np.ndarray]) -> float:
    """Mean of the unbiased variances of the groups that have two or more values."""
    vs = [float(np.var(g, ddof=1)) for g in groups if g.size >= 2]
    return float(np.mean(vs)) if vs else 0.0


def crowdmos(z: np.ndarray, level: float = 0.95) -> CrowdMOS:
    """crowdMOS mean and interval of a listeners x items matrix (NaN: not rated).

    Within a listener's row the listener effect is constant, so the row variance estimates
    v_item + v_residual; within an item's column it estimates v_listener + v_residual; the
    total variance estimates all three. Solving that 3x3 system gives the components (negative
    estimates are set to 0). Note: rows are listeners and columns items throughout; the Python
    port in tts-mos-test-mturk takes ``Z[:i]`` (rows) where the MATLAB original meant column
    ``i``, which mixes the two; ``tests/test_listen_stats.py`` checks a non-square case.

    Var[mu-hat] = v_listener * sum_i M_i^2 / T^2 + v_item * sum_j N_j^2 / T^2 + v_residual / T,
    M_i the ratings of listener i, N_j the ratings of item j, T all ratings.
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 2:
        raise ValueError("crowdmos expects a 2-D listeners x items matrix")
    mask = ~np.isnan(z)
    t = int(mask.sum())
    if t < 2:
        raise ValueError("crowdmos needs at least two ratings")
    rows = [z[i, mask[i]] for i in range(z.shape[0])]
    cols = [z[mask[:, j], j] for j in range(z.shape[1])]
    v_row = _mean_var(rows)  # v_item + v_residual
    v_col = _mean_var(cols)  # v_listener + v_residual
    v_all = float(np.var(z[mask], ddof=1))  # v_listener + v_item + v_residual
    # [0 1 1; 1 0 1; 1 1 1] [v_l v_i v_r]' = [v_row v_col v_all]'
    v_l, v_i, v_r = np.linalg.solve(
        np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 1]]), np.array([v_row, v_col, v_all])
    )
    v_l, v_i, v_r = (max(float(v), 0.0) for v in (v_l, v_i, v_r))
    m_i = mask.sum(axis=1).astype(float)
    n_j = mask.sum(axis=0).astype(float)
    var = v_l * float((m_i**2).sum()) / t**2 + v_i * float((n_j**2).sum()) / t**2 + v_r / t
    n_l = int((m_i > 0).sum())
    n_it = int((n_j > 0).sum())
    dof = max(min(n_l, n_it) - 1, 1)
    h = float(stats.t.ppf((1 + level) / 2, dof)) * math.sqrt(var)
    mu = float(z[mask].mean())
    return CrowdMOS(mu, var, mu - h, mu + h, v_l, v_i, v_r, n_l, n_it, t)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate like Bonferroni,
    and rejects at least as much): sort ascending, multiply the k-th smallest (0-based) by
    m - k, take the running maximum, cap at 1. NaN p-values stay NaN and do not count in m."""
    p = [float(v) for v in pvalues]
    idx = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(idx)
    out = [math.nan] * len(p)
    running = 0.0
    for k, i in enumerate(sorted(idx, key=lambda i: p[i])):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (scipy; zero differences
    dropped, scipy's 'wilcox' rule). NaN when every difference is zero or there are none."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0 or not np.any(d != 0):
        return math.nan
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def sign_test(wins: int, losses: int) -> tuple[float, float, float]:
    """Exact two-sided binomial test of ``wins`` out of ``wins + losses`` against 1/2, with the
    Clopper-Pearson 95 % interval of the proportion: (p-value, low, high)."""
    n = wins + losses
    if n == 0:
        return math.nan, math.nan, math.nan
    r = stats.binomtest(wins, n, 0.5)
    ci = r.proportion_ci(0.95, method="exact")
    return float(r.pvalue), float(ci.low), float(ci.high)
