"""Scorers against hand-computed cases and an independent brute-force formulation."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pandas as pd
import pytest
from reference import assert_matches_reference, assert_order_invariant

from speechlm_eval.dataset import ChoiceItem
from speechlm_eval.errors import DataError
from speechlm_eval.metrics import SampleScore, cluster_mean
from speechlm_eval.scorers.base import choice_score, mean_metric
from speechlm_eval.scorers.choice import ChoiceScorer
from speechlm_eval.scorers.wer import WERScorer
from speechlm_eval.scorers.zr2021 import (
    FREQ_EDGES,
    FREQ_LABELS,
    LexicalScorer,
    SyntacticScorer,
    frequency_band,
)


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


# --- the scorer contract: score == aggregate(score_sample ...), reference implementations -------


def _random_items(seed: int, n_ids: int = 80) -> tuple[list[ChoiceItem], dict[str, float]]:
    """Pair ids spoken by 1-4 voices, 2 or 3 candidates, frequent ties; shuffled order."""
    rng = random.Random(seed)
    items, scores = [], {}
    for i in range(n_ids):
        freq = rng.choice([0, 1, 4, 5, 19, 20, 99, 100, 4000, None, "7"])
        typ = rng.choice(["agreement", "binding", "island"])
        k = rng.choice([2, 2, 3])
        for v in range(rng.randint(1, 4)):
            cands = tuple(f"s{i}v{v}c{j}" for j in range(k))
            items.append(ChoiceItem(f"id{i}", cands, {"voice": v, "frequency": freq, "type": typ}))
            scores.update({c: rng.choice([-1.0, -2.0, -3.0]) for c in cands})
    rng.shuffle(items)
    return items, scores


def _official_by_id(items, scores, key):
    """Reference: the ZeroSpeech 2021 scripts' shape, written independently with pandas --
    a frame of (id, score, key) rows, ``groupby(id).mean()``, then the mean over ids overall
    and per key (key of an id: its first row), item points by sorting rather than max()."""
    rows = []
    for it in items:
        vals = [scores[c] for c in it.candidates]
        top = sorted(vals, reverse=True)
        point = 0.0 if vals[0] < top[0] else 1.0 / vals.count(top[0])
        rows.append({"id": it.doc_id, "score": point, "key": it.meta.get(key)})
    df = pd.DataFrame(rows)
    per_id = df.groupby("id").agg(score=("score", "mean"), key=("key", "first"))
    out = {"acc": per_id["score"].mean()}
    return out, per_id


def test_choice_matches_plain_python_reference():
    def reference(case):
        items, scores = case
        pts = []
        for it in items:
            pos, *foils = (scores[c] for c in it.candidates)
            ties = sum(f == pos for f in foils)
            pts.append(
                1.0
                if all(pos > f for f in foils)
                else 0.0
                if any(f > pos for f in foils)
                else 1 / (1 + ties)
            )
        return {"acc": statistics.fmean(pts)}

    cases = [_random_items(s) for s in range(8)]
    assert_matches_reference(lambda c: ChoiceScorer().score(*c).metrics, reference, cases)


def test_lexical_matches_independent_pandas_reference():
    def reference(case):
        out, per_id = _official_by_id(*case, "frequency")
        freq = pd.to_numeric(per_id["key"], errors="coerce")
        band = pd.cut(freq, FREQ_EDGES, right=False, labels=FREQ_LABELS)
        for label in FREQ_LABELS:
            if (band == label).any():
                out[f"acc_freq_{label}"] = per_id["score"][band == label].mean()
        inv = band.notna() & (band != "oov")
        if inv.any():
            out["acc_invocab"] = per_id["score"][inv].mean()
        return out

    cases = [_random_items(s) for s in range(8)]
    n = assert_matches_reference(lambda c: LexicalScorer().score(*c).metrics, reference, cases)
    assert n > 8 * 4  # overall, bands and in-vocabulary were all compared
    # Every metric of the report is one the reference computes.
    items, scores = cases[0]
    assert set(LexicalScorer().score(items, scores).metrics) == set(reference(cases[0]))


def test_syntactic_matches_independent_pandas_reference():
    def reference(case):
        out, per_id = _official_by_id(*case, "type")
        for t, part in per_id.groupby("key"):
            out[f"acc_type_{t}"] = part["score"].mean()
        return out

    cases = [_random_items(s) for s in range(8)]
    assert_matches_reference(lambda c: SyntacticScorer().score(*c).metrics, reference, cases)


def test_frequency_band_matches_pandas_cut():
    values = [0, 0.5, 1, 4, 4.99, 5, 19, 20, 99, 100, 1e9, -1, math.inf, math.nan, None, "4"]
    values += ["x", "12", True]
    for v in values:
        cut = pd.cut(
            pd.Series([pd.to_numeric(v, errors="coerce")], dtype=float),
            FREQ_EDGES,
            right=False,
            labels=FREQ_LABELS,
        )[0]
        assert frequency_band(v) == (None if pd.isna(cut) else cut), v


@pytest.mark.parametrize("scorer", [ChoiceScorer, LexicalScorer, SyntacticScorer])
def test_choice_scorers_compose_and_are_order_invariant(scorer):
    items, scores = _random_items(3)
    s = scorer()
    samples = [s.score_sample(it, scores) for it in items]
    # score is exactly aggregate over score_sample (bit for bit).
    assert s.score(items, scores).metrics == s.aggregate(samples).metrics
    assert all(set(x.values) == {"score"} for x in samples)
    assert_order_invariant(s.aggregate, samples)
    rows = s.aggregate(samples).per_item
    assert rows[0] == {
        "doc_id": items[0].doc_id,
        "candidates": list(items[0].candidates),
        "meta": items[0].meta,
        "score": samples[0].values["score"],
    }


def test_zr2021_clusters_by_pair_id_as_the_official_averaging():
    items, scores = _random_items(5)
    samples = [LexicalScorer().score_sample(it, scores) for it in items]
    vals = [s.values["score"] for s in samples]
    ids = [s.doc_id for s in samples]
    acc = LexicalScorer().aggregate(samples).metrics["acc"]
    assert acc == cluster_mean(vals, ids, weighting="cluster")
    assert acc.n == len(set(ids)) < len(items)


def _wer_cases() -> list[tuple[dict[str, str], dict[str, str], dict[str, str]]]:
    rng = np.random.default_rng(11)
    words = ["a", "b", "c", "dd", "e", "ff"]
    cases = []
    for n in (1, 2, 5, 40, 120):
        refs, hyps, orig = {}, {}, {}
        for i in range(n):
            ref = list(rng.choice(words, size=int(rng.integers(1, 9))))
            hyp = [w if rng.random() > 0.25 else str(rng.choice(words)) for w in ref]
            hyp = [w for w in hyp if rng.random() > 0.1] + ["x"] * int(rng.integers(0, 2))
            org = [w if rng.random() > 0.1 else "y" for w in ref]
            refs[f"u{i}"], hyps[f"u{i}"], orig[f"u{i}"] = map(" ".join, (ref, hyp, org))
        cases.append((refs, hyps, orig))
    # An empty reference: its insertions count as errors over a length of 0, in both.
    cases.append(({"e": "", "f": "a b"}, {"e": "c", "f": "a"}, {"e": "", "f": "a b"}))
    return cases


def test_wer_matches_jiwer_corpus_functions():
    """jiwer's wer/cer over lists are corpus rates (summed S+D+I over summed reference
    length, each pair aligned on its own), the quantity the scorer aggregates from its
    per-utterance counts; the delta is the difference of two of them."""
    import jiwer

    def reference(case):
        refs, hyps, orig = case
        r, h, o = list(refs.values()), list(hyps.values()), list(orig.values())
        out = {"wer": jiwer.wer(r, h), "cer": jiwer.cer(r, h)}
        out |= {"wer_original": jiwer.wer(r, o), "cer_original": jiwer.cer(r, o)}
        out |= {k + "_delta": out[k] - out[k + "_original"] for k in ("wer", "cer")}
        return out

    scorer = WERScorer({"normalizer": "none", "bootstrap_resamples": 0})
    assert_matches_reference(
        lambda c: scorer.score(*c).metrics, reference, _wer_cases(), rtol=1e-12
    )


def test_wer_aggregate_is_recomputed_from_the_samples_file_rows():
    """The report is a function of the logged rows: rows -> SampleScores -> same report."""
    refs, hyps, orig = _wer_cases()[3]
    scorer = WERScorer({"normalizer": "none", "bootstrap_resamples": 300, "seed": 2})
    rep = scorer.score(refs, hyps, orig)
    samples = scorer.score_samples(refs, hyps, orig)
    names = list(samples[0].values)  # the sufficient statistics, logged as row fields
    assert "wer_errors_original" in names and "cer_reference_length" in names
    again = scorer.aggregate(
        [SampleScore(r["doc_id"], {k: r[k] for k in names}) for r in rep.per_item]
    )
    assert again.metrics == rep.metrics and again.intervals == rep.intervals
    assert again.info["totals"] == rep.info["totals"]
    assert_order_invariant(scorer.aggregate, samples, stderr=False)
    one = scorer.score_sample("u0", refs["u0"], hyps["u0"], orig["u0"])
    assert one == samples[0]
    with pytest.raises(DataError, match="only some utterances have original-audio counts"):
        scorer.aggregate([samples[0], scorer.score_sample("u1", refs["u1"], hyps["u1"])])
    with pytest.raises(DataError, match="no utterances"):
        scorer.aggregate([])
