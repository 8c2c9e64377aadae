"""Exact binomial tests of likelihood samples: hand-computed cases and a brute-force sum."""

from __future__ import annotations

import json
from math import comb

import pytest

from speechlm_eval.errors import ConfigError
from speechlm_eval.significance import binomial_p, count_cue, main, pair_test, read_samples


def brute_p(wins: int, n: int, chance: float) -> float:
    """Two-sided p by definition: total probability of outcomes no likelier than the one seen."""
    pmf = [comb(n, i) * chance**i * (1 - chance) ** (n - i) for i in range(n + 1)]
    return min(1.0, sum(q for q in pmf if q <= pmf[wins] * (1 + 1e-7)))


def test_hand_computed():
    # 9 of 10 at 1/2: P(X >= 9) + P(X <= 1) = 2 * 11 / 1024.
    assert binomial_p(9, 1, 0.5) == pytest.approx(22 / 1024, abs=1e-12)
    assert binomial_p(5, 5, 0.5) == 1.0
    assert binomial_p(0, 0, 0.5) == 1.0


@pytest.mark.parametrize(
    "wins, n, chance", [(3, 20, 1 / 3), (14, 20, 1 / 3), (60, 100, 0.5), (0, 7, 0.25)]
)
def test_equals_brute_force(wins, n, chance):
    assert binomial_p(wins, n - wins, chance) == pytest.approx(brute_p(wins, n, chance), rel=1e-9)


def _row(score, tokens=(3, 4), k=2, doc_id=None):
    _row.n = getattr(_row, "n", 0) + 1
    return {
        "doc_id": str(_row.n) if doc_id is None else doc_id,
        "candidates": [f"c{i}" for i in range(k)],
        "num_tokens": list(tokens[:k]) + [9] * (k - len(tokens)),
        "score,nll_sum": score,
        "meta": {},
    }


def test_ties_are_dropped_and_counted():
    rows = [_row(1.0)] * 7 + [_row(0.0)] * 2 + [_row(0.5)] * 3
    t = pair_test("t", rows, "nll_sum")
    assert (t.items, t.wins, t.losses, t.ties) == (12, 7, 2, 3)
    assert t.accuracy == pytest.approx(8.5 / 12)
    assert t.p_value == pytest.approx(brute_p(7, 9, 0.5))
    with pytest.raises(ConfigError, match="different numbers of candidates"):
        pair_test("t", [*rows, _row(1.0, k=3)], "nll_sum")


def test_units_average_rows_sharing_a_doc_id():
    # Unit a: 1, 1, 0 -> 2/3 (win); b: 0, 0, 1 -> 1/3 (loss); c: 1, 0 -> 1/2 (neither);
    # d, e, f: single wins.
    scores = {"a": (1, 1, 0), "b": (0, 0, 1), "c": (1, 0), "d": (1,), "e": (1,), "f": (1,)}
    rows = [_row(float(x), doc_id=u) for u, xs in scores.items() for x in xs]
    t = pair_test("t", rows, "nll_sum")
    assert (t.items, t.wins, t.losses) == (11, 7, 4)
    assert (t.units, t.unit_wins, t.unit_losses) == (6, 4, 1)
    assert t.unit_p_value == pytest.approx(brute_p(4, 5, 0.5))
    # Every row its own unit: the two tests agree.
    solo = pair_test("t", [_row(float(x)) for xs in scores.values() for x in xs], "nll_sum")
    assert (solo.unit_wins, solo.unit_losses) == (solo.wins, solo.losses)
    assert solo.unit_p_value == solo.p_value


def test_count_cue():
    rows = [_row(1.0, (2, 5)), _row(1.0, (5, 2)), _row(0.0, (3, 3)), _row(1.0, (1, 4))]
    assert count_cue(rows) == 0.5


def test_files_and_errors(tmp_path, capsys):
    good = tmp_path / "samples_swuggy_2026-11-26T17-28-18.433598.jsonl"
    good.write_text("\n".join(json.dumps(_row(s)) for s in (1.0, 1.0, 0.0)) + "\n")
    assert read_samples(good)[0] == "swuggy"
    assert main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "| swuggy | nll_sum | 3 | 2 | 1 | 0 | 0.667 | 1 | 3 | 2 | 1 | 1 | 1.000 |" in out
    bad = tmp_path / "samples_x_2026-11-26T17-28-18.1.jsonl"
    bad.write_text('{"doc_id": 1}\n')
    assert main([str(bad)]) == 2
    assert "line 1: not a likelihood sample" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a samples file"):
        read_samples(tmp_path / "results.json")
