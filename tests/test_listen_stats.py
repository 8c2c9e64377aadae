"""Listening-test statistics against hand-computed cases, scipy, and independent formulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss

from speechlm_eval.listen.stats import crowdmos, holm, sign_test, t_interval, wilcoxon_p


def test_t_interval_hand_computed():
    m = t_interval([1, 2, 3, 4, 5])
    # s = sqrt(2.5), se = s / sqrt(5) = 0.70711; t_{0.975,4} = 2.776445
    assert m.mean == 3 and m.n == 5
    assert m.se == pytest.approx(0.7071068, abs=1e-6)
    assert m.low == pytest.approx(3 - 2.776445 * 0.7071068, abs=1e-5)
    assert m.high == pytest.approx(3 + 2.776445 * 0.7071068, abs=1e-5)
    # scipy's own interval, formulated differently
    lo, hi = ss.t.interval(0.95, 4, loc=3, scale=ss.sem([1, 2, 3, 4, 5]))
    assert (m.low, m.high) == pytest.approx((lo, hi))
    one = t_interval([4])
    assert one.mean == 4 and one.low is None


def test_crowdmos_hand_computed_2x2():
    # listeners x items: row variances 0.5 and 2 (mean 1.25 = v_item + v_res); column variances
    # 2 and 4.5 (mean 3.25 = v_listener + v_res); total variance 8.75 / 3.
    c = crowdmos(np.array([[1.0, 2.0], [3.0, 5.0]]))
    v_all = 8.75 / 3
    assert c.v_listener == pytest.approx(v_all - 1.25)
    assert c.v_item == 0.0  # v_all - 3.25 < 0, set to 0
    assert c.v_residual == pytest.approx(1.25 + 3.25 - v_all)
    var = (v_all - 1.25) * (2**2 + 2**2) / 16 + (1.25 + 3.25 - v_all) / 4
    assert c.var_mean == pytest.approx(var)
    assert c.mean == 2.75
    assert c.high - c.mean == pytest.approx(12.706205 * math.sqrt(var), rel=1e-6)  # t_{.975,1}


def _var_by_covariance(z: np.ndarray, v_l: float, v_i: float, v_r: float) -> float:
    """Var of the mean of the observed cells, as w' C w with the model's covariance C:
    two ratings share v_l if same listener, v_i if same item, v_r if the same cell."""
    cells = np.argwhere(~np.isnan(z))
    li, it = cells[:, 0], cells[:, 1]
    c = (
        v_l * (li[:, None] == li[None, :])
        + v_i * (it[:, None] == it[None, :])
        + v_r * np.eye(len(cells))
    )
    w = np.full(len(cells), 1 / len(cells))
    return float(w @ c @ w)


def test_crowdmos_variance_matches_covariance_formulation_on_ragged_matrix():
    rng = np.random.default_rng(0)
    z = rng.integers(1, 6, size=(7, 5)).astype(float)
    z[rng.random(z.shape) < 0.3] = np.nan
    c = crowdmos(z)
    assert c.var_mean == pytest.approx(_var_by_covariance(z, c.v_listener, c.v_item, c.v_residual))


def test_crowdmos_rows_are_listeners_not_items():
    # The port bug (rows taken where columns were meant) makes the estimate symmetric in the two
    # factors; the model is not: transposing swaps the listener and item components.
    rng = np.random.default_rng(1)
    listener = rng.normal(0, 1.0, size=(8, 1))
    z = 3 + listener + rng.normal(0, 0.2, size=(8, 3))
    c, t = crowdmos(z), crowdmos(z.T)
    assert c.v_listener == pytest.approx(t.v_item)
    assert c.v_item == pytest.approx(t.v_listener)
    assert c.v_listener > 10 * c.v_item
    assert c.n_listeners == 8 and c.n_items == 3


def test_crowdmos_estimates_and_covers_in_simulation():
    rng = np.random.default_rng(2)
    v_l, v_i, v_r = 0.4, 0.2, 0.6
    est, cover = [], 0
    reps = 300
    for _ in range(reps):
        z = (
            3.0
            + rng.normal(0, math.sqrt(v_l), (12, 1))
            + rng.normal(0, math.sqrt(v_i), (1, 10))
            + rng.normal(0, math.sqrt(v_r), (12, 10))
        )
        z[rng.random(z.shape) < 0.2] = np.nan
        c = crowdmos(z)
        est.append((c.v_listener, c.v_item, c.v_residual))
        cover += c.low <= 3.0 <= c.high
    mean = np.mean(est, axis=0)
    assert mean == pytest.approx([v_l, v_i, v_r], abs=0.08)
    assert cover / reps > 0.88  # nominal 95 %, a naive 1.96*s/sqrt(n) covers far less here


def test_holm_hand_computed_and_closed_form():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    q = rng.random(9) ** 3
    order = np.argsort(q)
    m = len(q)
    closed = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    expected = np.empty(m)
    expected[order] = closed
    assert holm(q) == pytest.approx(expected)
    out = holm([0.02, math.nan, 0.04])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.04) and out[2] == pytest.approx(0.04)


def test_wilcoxon_and_sign_test_hand_computed():
    # five positive differences: exact two-sided p = 2 / 2^5
    assert wilcoxon_p([1, 2, 3, 4, 5]) == pytest.approx(0.0625)
    assert math.isnan(wilcoxon_p([0, 0, 0]))
    d = [0.5, -1, 2, 3, 1.5, -0.25, 4]
    assert wilcoxon_p(d) == pytest.approx(ss.wilcoxon(d).pvalue)
    p, lo, hi = sign_test(9, 1)
    assert p == pytest.approx(2 * (1 + 10) / 1024)  # P(X <= 1) doubled, X ~ Bin(10, 1/2)
    assert lo < 0.9 < hi
