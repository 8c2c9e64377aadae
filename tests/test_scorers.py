"""Scorers against hand-computed cases and an independent brute-force formulation."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from speechlm_eval.dataset import ChoiceItem
from speechlm_eval.scorers.base import choice_score, mean_metric
from speechlm_eval.scorers.choice import ChoiceScorer
from speechlm_eval.scorers.zr2021 import LexicalScorer, SyntacticScorer


def test_choice_score_rule():
    assert choice_score([2.0, 1.0]) == 1.0
    assert choice_score([1.0, 2.0]) == 0.0
    assert choice_score([1.0, 1.0]) == 0.5
    assert choice_score([1.0, 1.0, 0.0]) == 0.5  # tied with one foil
    assert choice_score([1.0, 1.0, 1.0]) == pytest.approx(1 / 3)
    assert choice_score([1.0, 0.5, 2.0]) == 0.0  # any foil above loses


def _lex_item(i, v, freq, w, n):
    return ChoiceItem(f"id{i}", (f"w{i}{v}", f"n{i}{v}"), {"voice": v, "frequency": freq}), {
        f"w{i}{v}": w,
        f"n{i}{v}": n,
    }


def test_lexical_hand_computed_ties_and_unequal_voices():
    spec = [
        (0, "a", 0, -1.0, -2.0),  # word wins: 1
        (0, "b", 0, -3.0, -3.0),  # tie: 0.5           -> id0 = 0.75 (oov)
        (1, "a", 4, -5.0, -1.0),  # loses: 0           -> id1 = 0    (1-5: 4 is in [1, 5))
        (2, "a", 5, -1.0, -9.0),  # 1
        (2, "b", 5, -1.0, -9.0),  # 1
        (2, "c", 5, -9.0, -1.0),  # 0                  -> id2 = 2/3  (6-20: 5 is in [5, 20))
    ]
    items, scores = [], {}
    for s in spec:
        it, sc = _lex_item(*s)
        items.append(it)
        scores.update(sc)
    m = LexicalScorer().score(items, scores).metrics
    per_id = [0.75, 0.0, 2 / 3]
    assert m["acc"].value == pytest.approx(sum(per_id) / 3)
    assert m["acc"].n == 3
    assert m["acc"].stderr == pytest.approx(statistics.stdev(per_id) / math.sqrt(3))
    assert m["acc_freq_oov"].value == pytest.approx(0.75)
    assert m["acc_freq_1-5"].value == pytest.approx(0.0)
    assert m["acc_freq_6-20"].value == pytest.approx(2 / 3)
    assert "acc_freq_21-100" not in m and "acc_freq_>100" not in m
    assert m["acc_invocab"].value == pytest.approx(1 / 3)
    assert m["acc_freq_oov"].stderr is None  # one id: no stderr


def _brute_lexical(rows):
    """Independent formulation with plain dicts: per (id, voice) pair 1/0.5/0, mean over voices
    per id, mean over ids; bands by explicit comparisons."""
    by_id: dict[str, list[float]] = {}
    freq: dict[str, int] = {}
    for i, _v, f, w, n in rows:
        by_id.setdefault(i, []).append(1.0 if w > n else 0.5 if w == n else 0.0)
        freq[i] = f
    per = {i: sum(s) / len(s) for i, s in by_id.items()}

    def band(f):
        if f == 0:
            return "oov"
        if f < 5:
            return "1-5"
        if f < 20:
            return "6-20"
        if f < 100:
            return "21-100"
        return ">100"

    bands: dict[str, list[float]] = {}
    for i, s in per.items():
        bands.setdefault(band(freq[i]), []).append(s)
    return sum(per.values()) / len(per), {b: sum(s) / len(s) for b, s in bands.items()}


@pytest.mark.parametrize("seed", range(5))
def test_lexical_matches_brute_force(seed):
    rng = random.Random(seed)
    rows, items, scores = [], [], {}
    for i in range(60):
        f = rng.choice([0, 1, 4, 5, 19, 20, 99, 100, 4000])
        for v in range(rng.randint(1, 4)):
            w, n = rng.choice([-1.0, -2.0, -3.0]), rng.choice([-1.0, -2.0, -3.0])
            rows.append((f"i{i}", str(v), f, w, n))
            it, sc = _lex_item(i, str(v), f, w, n)
            items.append(it)
            scores.update(sc)
    acc, bands = _brute_lexical(rows)
    m = LexicalScorer().score(items, scores).metrics
    assert m["acc"].value == pytest.approx(acc, abs=1e-12)
    for b, val in bands.items():
        assert m[f"acc_freq_{b}"].value == pytest.approx(val, abs=1e-12)


def test_syntactic_by_type_and_voice_average():
    items = [
        ChoiceItem("agr//1", ("c1a", "i1a"), {"type": "agr", "voice": "a"}),
        ChoiceItem("agr//1", ("c1b", "i1b"), {"type": "agr", "voice": "b"}),
        ChoiceItem("agr//2", ("c2a", "i2a"), {"type": "agr", "voice": "a"}),
        ChoiceItem("isl//3", ("c3a", "i3a"), {"type": "isl", "voice": "a"}),
    ]
    scores = {"c1a": 1, "i1a": 0, "c1b": 0, "i1b": 0, "c2a": 0, "i2a": 1, "c3a": 2, "i3a": 1}
    m = SyntacticScorer().score(items, scores).metrics
    # pair ids: agr/1 = (1 + 0.5)/2 = 0.75, agr/2 = 0, isl/3 = 1
    assert m["acc"].value == pytest.approx((0.75 + 0 + 1) / 3)
    assert m["acc_type_agr"].value == pytest.approx(0.375)
    assert m["acc_type_isl"].value == pytest.approx(1.0)


def test_choice_scorer_and_mean_metric():
    items = [ChoiceItem(str(i), (f"p{i}", f"n{i}", f"m{i}")) for i in range(4)]
    scores = {
        "p0": 3,
        "n0": 1,
        "m0": 2,
        "p1": 1,
        "n1": 2,
        "m1": 0,
        "p2": 2,
        "n2": 2,
        "m2": 0,
        "p3": 5,
        "n3": 5,
        "m3": 5,
    }
    m = ChoiceScorer().score(items, scores).metrics["acc"]
    vals = [1.0, 0.0, 0.5, 1 / 3]
    assert m.value == pytest.approx(sum(vals) / 4)
    assert m.stderr == pytest.approx(statistics.stdev(vals) / 2)
    empty = mean_metric([])
    assert empty.n == 0 and math.isnan(empty.value) and empty.stderr is None
