"""Tests of speechlm_eval.generation_metrics: hand-computed values and independent formulations."""

from __future__ import annotations

import math
import random
import statistics
import time
import warnings
from collections import defaultdict

import numpy as np
import pytest

from speechlm_eval.generation_metrics import (
    TradeoffPoint,
    auc_ppx_vert,
    auto_bleu_gslm,
    auto_bleu_slamkit,
    cont_bleu,
    gen_ppl,
    gslm_words,
    ppx_summary,
    self_bleu_gslm,
    slamkit_words,
    split_finite,
    value_at,
    vert,
)

LN2, LN4, LN8 = math.log(2), math.log(4), math.log(8)


def _random_corpus(rng: random.Random, n_sent: int, vocab: str, max_len: int) -> list[list[str]]:
    return [[rng.choice(vocab) for _ in range(rng.randint(0, max_len))] for _ in range(n_sent)]


# ------------------------------------------------------------------------------------------
# tokenisers


def test_gslm_words_whitespace_split_keeps_case():
    assert gslm_words("  THE cat\tsat \n") == ["THE", "cat", "sat"]
    assert gslm_words("  THE cat\tsat \n", lower=True) == ["the", "cat", "sat"]
    assert gslm_words("") == []
    assert gslm_words("   ") == []


def test_slamkit_words_nltk_word_tokenizer():
    pytest.importorskip("nltk")
    # Treebank-style: clitics split off, punctuation separate, case kept
    assert slamkit_words("Don't stop, Bob.") == ["Do", "n't", "stop", ",", "Bob", "."]
    assert slamkit_words("") == []


# ------------------------------------------------------------------------------------------
# Auto-BLEU


def _auto_bleu_gslm_bruteforce(sentence, n, mode):
    """fairseq's loop, re-typed: for each position, the n-grams of the words left of it and of
    the words right of its n-gram; list membership."""
    if len(sentence) <= 1:
        return 0.0
    scores = []
    for k in range(1, n + 1):
        grams = [tuple(sentence[i : i + k]) for i in range(len(sentence) - k + 1)]
        if not grams:
            return float("nan")
        hits = 0
        for p, g in enumerate(grams):
            left, right = sentence[:p], sentence[p + k :]
            rest = [tuple(left[i : i + k]) for i in range(len(left) - k + 1)]
            rest += [tuple(right[i : i + k]) for i in range(len(right) - k + 1)]
            hits += g in rest
        scores.append(hits / len(grams))
    if mode == "arithmetic":
        return sum(scores) / n
    return math.prod(s ** (1 / n) for s in scores)


def _auto_bleu_slamkit_bruteforce(words, n):
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    hits = sum(1 for i, g in enumerate(grams) if g in grams[:i] or g in grams[i + 1 :])
    return hits / len(grams)


def test_auto_bleu_anchor_toys():
    # "a a a": unigrams: every 'a' has another, non-overlapping 'a' -> 3/3 = 1;
    # bigrams (a,a)@0 and @1 overlap each other (distance 1 < 2) -> 0/2 = 0;
    # GSLM geometric sqrt(1 * 0) = 0; slamkit: both bigrams occur elsewhere -> 2/2 = 1.
    w = ["a", "a", "a"]
    assert auto_bleu_gslm(w) == 0.0
    assert auto_bleu_slamkit(w) == 1.0
    # "the cat the cat sat": unigrams the,cat,the,cat repeat, sat not -> 4/5;
    # bigrams (the,cat)@0,(cat,the)@1,(the,cat)@2,(cat,sat)@3: (the,cat) @0/@2 distance 2 -> 2/4;
    # GSLM sqrt(0.8 * 0.5) = sqrt(0.4) = 0.63246; slamkit 2/4 = 0.5.
    w = ["the", "cat", "the", "cat", "sat"]
    assert auto_bleu_gslm(w) == pytest.approx(math.sqrt(0.4))
    assert round(auto_bleu_gslm(w), 3) == 0.632
    assert auto_bleu_slamkit(w) == 0.5
    # arithmetic: (0.8 + 0.5) / 2 = 0.65
    assert auto_bleu_gslm(w, averaging="arithmetic") == pytest.approx(0.65)


def test_auto_bleu_anchor_toys_with_slamkit_tokeniser():
    pytest.importorskip("nltk")
    assert auto_bleu_slamkit(slamkit_words("the cat the cat sat")) == 0.5
    assert auto_bleu_slamkit(slamkit_words("a a a")) == 1.0


def test_auto_bleu_hand_cases():
    # "a b a b": unigrams all repeated -> 1; bigrams (a,b)@0,(b,a)@1,(a,b)@2 -> (a,b) @0/@2
    # distance 2 -> 2/3; trigrams (a,b,a)@0,(b,a,b)@1 -> 0/2.
    w = ["a", "b", "a", "b"]
    assert auto_bleu_gslm(w, 2) == pytest.approx(math.sqrt(2 / 3))
    assert auto_bleu_gslm(w, 2, "arithmetic") == pytest.approx((1 + 2 / 3) / 2)
    assert auto_bleu_gslm(w, 3) == 0.0
    assert auto_bleu_gslm(w, 3, "arithmetic") == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert auto_bleu_gslm(w, 1) == 1.0
    assert auto_bleu_slamkit(w, 2) == pytest.approx(2 / 3)
    assert auto_bleu_slamkit(w, 3) == 0.0
    # "a a a a": bigrams (a,a)@0,@1,@2: @0<->@2 distance 2 counts, @1 overlaps both -> 2/3
    w = ["a", "a", "a", "a"]
    assert auto_bleu_gslm(w) == pytest.approx(math.sqrt(1 * 2 / 3))
    assert auto_bleu_slamkit(w) == 1.0


def test_auto_bleu_edge_cases():
    for fn in (auto_bleu_gslm, auto_bleu_slamkit):
        assert fn([]) == 0.0
        assert fn(["word"]) == 0.0
    # 2 words, n=3: no trigram; fairseq divides 0 by 0 -> NaN, kept visible
    assert math.isnan(auto_bleu_gslm(["a", "b"], 3))
    assert auto_bleu_slamkit(["a", "b"], 3) == 0.0
    with pytest.raises(ValueError):
        auto_bleu_gslm(["a", "b"], 0)
    with pytest.raises(ValueError):
        auto_bleu_gslm(["a", "b"], 2, "harmonic")
    with pytest.raises(ValueError):
        auto_bleu_slamkit(["a", "b"], 0)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["geometric", "arithmetic"])
def test_auto_bleu_gslm_matches_bruteforce(n, mode):
    rng = random.Random(1000 * n + len(mode))
    for sent in _random_corpus(rng, 300, "abcd", 14):
        got, ref = auto_bleu_gslm(sent, n, mode), _auto_bleu_gslm_bruteforce(sent, n, mode)
        if math.isnan(ref):
            assert math.isnan(got), sent
        else:
            assert got == pytest.approx(ref, abs=1e-12), sent


@pytest.mark.parametrize("n", [1, 2, 3])
def test_auto_bleu_slamkit_matches_bruteforce(n):
    rng = random.Random(7 + n)
    for sent in _random_corpus(rng, 300, "abcd", 14):
        assert auto_bleu_slamkit(sent, n) == pytest.approx(
            _auto_bleu_slamkit_bruteforce(sent, n), abs=1e-12
        ), sent


# ------------------------------------------------------------------------------------------
# Self-BLEU


def test_self_bleu_hand_cases():
    corpus = [["a", "b", "c"], ["a", "b", "d"], ["x", "y"]]
    # s0 vs {s1, s2}: unigrams a,b match, c not -> 2/3; bigrams (a,b) yes, (b,c) no -> 1/2;
    # geometric sqrt(2/3 * 1/2) = sqrt(1/3); arithmetic (2/3 + 1/2) / 2 = 7/12. s1 symmetric.
    # s2: no unigram match -> 0.
    assert self_bleu_gslm(corpus) == pytest.approx([math.sqrt(1 / 3), math.sqrt(1 / 3), 0.0])
    assert self_bleu_gslm(corpus, averaging="arithmetic") == pytest.approx([7 / 12, 7 / 12, 0.0])


def test_self_bleu_clipping_and_ties():
    corpus = [["the"] * 4, ["the", "cat"], ["the", "the"]]
    # s0: 'the' x4 clipped at max other count 2 -> 2/4; (the,the) x3 clipped at 1 -> 1/3;
    #     sqrt(1/2 * 1/3) = sqrt(1/6)
    # s1: 'the' matches, 'cat' not -> 1/2; (the,cat) nowhere -> 0 -> geometric 0, arith 1/4
    # s2: 'the' x2, others have 4 -> 2/2; (the,the) x1, s0 has 3 -> 1/1 -> 1
    assert self_bleu_gslm(corpus) == pytest.approx([math.sqrt(1 / 6), 0.0, 1.0])
    assert self_bleu_gslm(corpus, averaging="arithmetic") == pytest.approx(
        [(1 / 2 + 1 / 3) / 2, 1 / 4, 1.0]
    )
    # tie for the largest count: s0 and s1 both have 'a' x2, so each one's clip is 2 via the
    # other; s2 ('a'): unigram 1/1, no bigram (denominator max(1, 0) = 1) -> geo 0, arith 1/2
    corpus = [["a", "a"], ["a", "a"], ["a"]]
    assert self_bleu_gslm(corpus) == pytest.approx([1.0, 1.0, 0.0])
    assert self_bleu_gslm(corpus, averaging="arithmetic") == pytest.approx([1.0, 1.0, 0.5])


def test_self_bleu_edge_cases():
    same = [["hello", "there", "world"]] * 4
    assert self_bleu_gslm(same) == [1.0] * 4
    assert self_bleu_gslm(same, n=3, averaging="arithmetic") == pytest.approx([1.0] * 4)
    # an empty transcript has no unigram -> 0; it also adds no n-gram to the others' references
    assert self_bleu_gslm([[], ["a", "b"], ["a", "b"]]) == [0.0, 1.0, 1.0]
    assert self_bleu_gslm([]) == []
    with pytest.raises(ValueError):
        self_bleu_gslm([["a", "b"]])
    with pytest.raises(ValueError):
        self_bleu_gslm([["a"], ["a"]], n=0)


def _precisions_nltk(refs, hyp, n):
    from nltk.translate.bleu_score import modified_precision

    return [modified_precision(refs, hyp, k) for k in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("mode", ["geometric", "arithmetic"])
def test_self_bleu_matches_nltk_modified_precision(n, mode):
    pytest.importorskip("nltk")
    rng = random.Random(31 * n + len(mode))
    corpus = _random_corpus(rng, 40, "abcdef", 9)
    got = self_bleu_gslm(corpus, n, mode)
    for i, hyp in enumerate(corpus):
        refs = corpus[:i] + corpus[i + 1 :]
        ps = [float(p) for p in _precisions_nltk(refs, hyp, n)]
        if ps[0] == 0:
            ref = 0.0
        elif mode == "arithmetic":
            ref = sum(ps) / n
        else:
            ref = math.prod(p ** (1 / n) for p in ps)
        assert got[i] == pytest.approx(ref, abs=1e-12), (i, hyp)


@pytest.mark.parametrize("weights", [(0.5, 0.5), (1 / 3, 1 / 3, 1 / 3)])
def test_self_bleu_matches_nltk_sentence_bleu_equal_lengths(weights):
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    # all sentences of one length: the closest reference length equals the hypothesis length,
    # so NLTK's brevity penalty is 1 and its sentence_bleu is fairseq's geometric Self-BLEU
    # (NLTK returns ~1e-154 instead of 0 when a higher-order precision is 0: abs tolerance).
    rng = random.Random(5)
    corpus = [[rng.choice("abcde") for _ in range(6)] for _ in range(30)]
    got = self_bleu_gslm(corpus, len(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = [
            nltk_bleu.sentence_bleu(corpus[:i] + corpus[i + 1 :], hyp, weights)
            for i, hyp in enumerate(corpus)
        ]
    assert got == pytest.approx(ref, abs=1e-100, rel=1e-12)
    assert max(got) > 0.1  # the comparison is not all zeros


def test_self_bleu_large_pool_is_fast():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(500)]
    corpus = [[rng.choice(vocab) for _ in range(20)] for _ in range(2000)]
    t0 = time.perf_counter()
    scores = self_bleu_gslm(corpus)
    assert time.perf_counter() - t0 < 30.0
    assert len(scores) == 2000
    assert all(0.0 <= s <= 1.0 for s in scores)


# ------------------------------------------------------------------------------------------
# continuation BLEU


def test_cont_bleu_hand_case_and_role_inversion():
    pytest.importorskip("nltk")
    truth = ["the", "cat", "sat", "on", "the", "mat"]
    samples = [["the", "cat", "sat"], ["a", "mat", "on", "the", "floor"]]
    # truth is the hypothesis: unigrams the x2 (max ref count 1 -> clipped 1), cat, sat, on,
    # mat all found -> 5/6; bigrams (the,cat) (cat,sat) (on,the) found, (sat,on) (the,mat) not
    # -> 3/5; sqrt(5/6 * 3/5) = sqrt(1/2)
    assert cont_bleu(samples, truth) == pytest.approx(math.sqrt(0.5))
    # roles swapped (sample 0 as hypothesis, truth as reference): 3/3 and 2/2 -> 1.0
    assert cont_bleu([truth], samples[0]) == pytest.approx(1.0)
    # n=1: 5/6
    assert cont_bleu(samples, truth, n=1) == pytest.approx(5 / 6)


def test_cont_bleu_matches_nltk_sentence_bleu():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(11)
    checked = 0
    for _ in range(200):
        truth = [rng.choice("abcdefg") for _ in range(rng.randint(4, 10))]
        samples = [
            [rng.choice("abcdefg") for _ in range(rng.randint(1, 10))]
            for _ in range(rng.randint(1, 5))
        ]
        # neutralise NLTK's brevity penalty by construction: one sample as long as the truth
        samples.append([rng.choice("abcdefg") for _ in range(len(truth))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = nltk_bleu.sentence_bleu(samples, truth, (0.5, 0.5))
        got = cont_bleu(samples, truth)
        assert got == pytest.approx(ref, abs=1e-100, rel=1e-12)
        checked += got > 0
    assert checked > 50


def test_cont_bleu_edge_cases():
    pytest.importorskip("nltk")
    assert cont_bleu([["a", "b"]], []) == 0.0
    assert cont_bleu([[]], ["a", "b"]) == 0.0
    assert cont_bleu([["x"]], ["a", "b"]) == 0.0
    with pytest.raises(ValueError):
        cont_bleu([], ["a", "b"])


# ------------------------------------------------------------------------------------------
# VERT


def test_vert():
    from scipy.stats import gmean

    assert vert(0.25, 0.09) == pytest.approx(0.15)  # sqrt(0.0225)
    assert vert(25.0, 9.0) == pytest.approx(15.0)  # same on the x100 scale
    assert vert(0.0, 0.5) == 0.0
    assert vert(0.3, 0.7) == pytest.approx(gmean([0.3, 0.7]))
    for bad in [(-0.1, 0.2), (float("nan"), 0.2), (0.2, float("inf"))]:
        with pytest.raises(ValueError):
            vert(*bad)


def test_vert_from_corpus_means():
    corpus = [["a", "b", "a", "b"], ["a", "b", "c", "d"], ["c", "d", "c", "d"]]
    sb = float(np.mean(self_bleu_gslm(corpus, 2, "geometric")))
    ab = float(np.mean([auto_bleu_gslm(s, 2, "geometric") for s in corpus]))
    # auto: s0 sqrt(2/3), s1 0 (nothing repeats), s2 sqrt(2/3) -> mean 2 sqrt(2/3) / 3
    assert ab == pytest.approx(2 * math.sqrt(2 / 3) / 3)
    # self: s0 "a b a b": a x2, b x2 clipped at 1 each (s1) -> 2/4; (a,b) x2 clipped at 1,
    #   (b,a) nowhere -> 1/3; sqrt(1/2 * 1/3) = sqrt(1/6). s2 "c d c d" likewise sqrt(1/6).
    #   s1 "a b c d": all 4 unigrams found -> 1; (a,b), (c,d) found, (b,c) not -> 2/3; sqrt(2/3)
    sb_hand = (2 * math.sqrt(1 / 6) + math.sqrt(2 / 3)) / 3
    assert sb == pytest.approx(sb_hand)
    assert vert(sb, ab) == pytest.approx(math.sqrt(sb_hand * 2 * math.sqrt(2 / 3) / 3))


# ------------------------------------------------------------------------------------------
# perplexity


def test_ppx_summary_hand_case():
    s = ppx_summary([0.0, LN2, LN4])
    # ppl = [1, 2, 4]: mean 7/3; median 2; numpy linear percentiles: p10 at rank 0.2 -> 1.2,
    # p90 at rank 1.8 -> 2 + 0.8 * 2 = 3.6; SEM = pstdev / sqrt(3) with pstdev = sqrt(14/9)
    assert s["n"] == 3 and s["n_excluded"] == 0 and s["excluded_indices"] == []
    assert s["ppl"]["mean"] == pytest.approx(7 / 3)
    assert s["ppl"]["median"] == pytest.approx(2.0)
    assert s["ppl"]["p10"] == pytest.approx(1.2)
    assert s["ppl"]["p90"] == pytest.approx(3.6)
    assert s["ppl"]["sem"] == pytest.approx(math.sqrt(14 / 9) / math.sqrt(3))
    # nll = [0, ln2, 2 ln2]: mean ln2, median ln2
    assert s["nll"]["mean"] == pytest.approx(LN2)
    assert s["nll"]["median"] == pytest.approx(LN2)


def test_ppx_summary_matches_statistics_module():
    rng = np.random.default_rng(3)
    nll = rng.uniform(1.0, 6.0, size=57)
    s = ppx_summary(nll.tolist())
    for key, vals in (("ppl", np.exp(nll).tolist()), ("nll", nll.tolist())):
        deciles = statistics.quantiles(vals, n=10, method="inclusive")
        assert s[key]["mean"] == pytest.approx(statistics.fmean(vals))
        assert s[key]["median"] == pytest.approx(statistics.median(vals))
        assert s[key]["p10"] == pytest.approx(deciles[0])
        assert s[key]["p90"] == pytest.approx(deciles[-1])
        assert s[key]["sem"] == pytest.approx(statistics.pstdev(vals) / math.sqrt(len(vals)))


def test_ppx_summary_non_finite_reported():
    s = ppx_summary([float("nan"), 0.0, LN2, float("inf"), LN4])
    assert s["n"] == 3
    assert s["n_excluded"] == 2
    assert s["excluded_indices"] == [0, 3]
    assert s["ppl"]["mean"] == pytest.approx(7 / 3)
    assert ppx_summary([LN2])["ppl"] == pytest.approx(
        {"mean": 2.0, "sem": 0.0, "median": 2.0, "p10": 2.0, "p90": 2.0}
    )
    with pytest.raises(ValueError):
        ppx_summary([float("nan")])
    with pytest.raises(ValueError):
        ppx_summary([])


def test_gen_ppl():
    from scipy.stats import gmean

    # exp(mean(ln2, ln8)) = exp(2 ln2) = 4; ppx_summary's mean would be (2 + 8) / 2 = 5
    assert gen_ppl([LN2, LN8]) == pytest.approx(4.0)
    assert ppx_summary([LN2, LN8])["ppl"]["mean"] == pytest.approx(5.0)
    rng = np.random.default_rng(4)
    nll = rng.uniform(0.5, 5.0, size=33)
    assert gen_ppl(nll) == pytest.approx(gmean(np.exp(nll)))
    with pytest.raises(ValueError, match="non-finite"):
        gen_ppl([LN2, float("nan")])
    with pytest.raises(ValueError):
        gen_ppl([])
    finite, excluded = split_finite([LN2, float("nan"), LN8, float("-inf")])
    assert excluded == [1, 3]
    assert gen_ppl(finite) == pytest.approx(4.0)


# ------------------------------------------------------------------------------------------
# temperature trade-off

P3 = [TradeoffPoint(0.5, 10.0, 0.6), TradeoffPoint(0.7, 20.0, 0.4), TradeoffPoint(1.0, 40.0, 0.2)]


def test_auc_hand_cases():
    r = auc_ppx_vert(P3)
    # by VERT: (0.2, 40), (0.4, 20), (0.6, 10): 0.2 * (40 + 20) / 2 + 0.2 * (20 + 10) / 2 = 6 + 3
    assert r["reason"] is None
    assert r["auc"] == pytest.approx(9.0)
    assert r["mean_ppx"] == pytest.approx(9.0 / 0.4)
    assert (r["lo"], r["hi"]) == (0.2, 0.6)
    assert r["vert_grid"] == pytest.approx([0.2, 0.4, 0.6])
    assert r["temperatures"] == [0.5, 0.7, 1.0]
    # window [0.3, 0.5]: PPX(0.3) = 30, PPX(0.4) = 20, PPX(0.5) = 15 -> 0.1 * 25 + 0.1 * 17.5
    r = auc_ppx_vert(P3, lo=0.3, hi=0.5)
    assert r["auc"] == pytest.approx(4.25)
    assert r["vert_grid"] == pytest.approx([0.3, 0.4, 0.5])
    assert r["ppx_grid"] == pytest.approx([30.0, 20.0, 15.0])
    # an extra point at VERT 0.4 with PPX 30: averaged to 25 ->
    # 0.2 * (40 + 25) / 2 + 0.2 * (25 + 10) / 2 = 6.5 + 3.5 = 10
    r = auc_ppx_vert([*P3, TradeoffPoint(0.9, 30.0, 0.4)])
    assert r["auc"] == pytest.approx(10.0)
    assert r["curve_ppx"] == pytest.approx([40.0, 25.0, 10.0])


def test_auc_refusals():
    assert auc_ppx_vert([])["auc"] is None
    r = auc_ppx_vert([TradeoffPoint(0.7, 20.0, 0.4)])
    assert r["auc"] is None and "fewer than 2" in r["reason"]
    r = auc_ppx_vert([TradeoffPoint(0.7, 20.0, 0.4), TradeoffPoint(1.0, 30.0, 0.4)])
    assert r["auc"] is None and "fewer than 2" in r["reason"]
    r = auc_ppx_vert(P3, lo=0.1)
    assert r["auc"] is None and "no extrapolation" in r["reason"]
    r = auc_ppx_vert(P3, hi=0.61)
    assert r["auc"] is None and "no extrapolation" in r["reason"]
    r = auc_ppx_vert(P3, lo=0.5, hi=0.5)
    assert r["auc"] is None and "empty" in r["reason"]
    with pytest.raises(ValueError):
        auc_ppx_vert([*P3, TradeoffPoint(1.2, float("nan"), 0.1)])


def test_auc_matches_fine_grid_integration():
    rng = np.random.default_rng(8)
    for _ in range(20):
        temps = rng.uniform(0.3, 1.5, size=7)
        verts = rng.choice([0.1, 0.2, 0.25, 0.4, 0.5, 0.7], size=7)  # some equal VERTs
        ppxs = rng.uniform(5, 200, size=7)
        pts = [TradeoffPoint(*v) for v in zip(temps, ppxs, verts, strict=True)]
        by_vert = defaultdict(list)
        for v, p in zip(verts, ppxs, strict=True):
            by_vert[float(v)].append(float(p))
        xs = sorted(by_vert)
        if len(xs) < 2:
            continue
        ys = [statistics.fmean(by_vert[x]) for x in xs]
        lo, hi = sorted(rng.uniform(xs[0], xs[-1], size=2))
        # midpoint rule on 400 000 cells of the linear interpolant
        edges = np.linspace(lo, hi, 400_001)
        mids = (edges[:-1] + edges[1:]) / 2
        brute = float(np.sum(np.interp(mids, xs, ys)) * (hi - lo) / mids.size)
        got = auc_ppx_vert(pts, lo=float(lo), hi=float(hi))["auc"]
        assert got == pytest.approx(brute, rel=1e-6)
        from scipy.integrate import trapezoid

        full = trapezoid(ys, xs)
        assert auc_ppx_vert(pts)["auc"] == pytest.approx(full, rel=1e-12)


def test_value_at_monotone():
    # PPX at VERT 0.5: between T=0.5 (VERT 0.6, PPX 10) and T=0.7 (0.4, 20) -> 15
    assert value_at(P3, x0=0.5) == pytest.approx(15.0)
    # VERT at PPX 30: between T=0.7 (20, 0.4) and T=1.0 (40, 0.2) -> 0.3
    assert value_at(P3, "ppx", x0=30.0, y="vert") == pytest.approx(0.3)
    assert value_at(P3, x0=0.4) == 20.0  # a measured point
    assert value_at(P3, "temperature", x0=0.6, y="ppx") == pytest.approx(15.0)
    assert value_at(P3, x0=0.7) is None  # above the measured VERT range
    assert value_at(P3, "ppx", x0=5.0, y="vert") is None
    assert value_at([], x0=0.5) is None
    # independent: numpy.interp on the VERT-sorted curve (monotone in temperature here)
    xs, ys = [0.2, 0.4, 0.6], [40.0, 20.0, 10.0]
    for x0 in np.linspace(0.2, 0.6, 17):
        assert value_at(P3, x0=float(x0)) == pytest.approx(float(np.interp(x0, xs, ys)))


def test_value_at_non_monotone_uses_first_crossing_in_temperature():
    pts = [
        TradeoffPoint(1.0, 40.0, 0.2),  # given out of order on purpose
        TradeoffPoint(0.5, 10.0, 0.2),
        TradeoffPoint(0.7, 20.0, 0.6),
    ]
    # VERT 0.4 is crossed on T 0.5->0.7 (PPX 15) and on T 0.7->1.0 (PPX 30): the first wins
    assert value_at(pts, x0=0.4) == pytest.approx(15.0)
    # VERT 0.2 is measured at T=0.5 and T=1.0: the lower temperature's PPX
    assert value_at(pts, x0=0.2) == 10.0


def test_value_at_averages_equal_temperatures_and_validates():
    pts = [TradeoffPoint(0.5, 10.0, 0.6), TradeoffPoint(0.5, 14.0, 0.6), *P3[1:]]
    assert value_at(pts, x0=0.6) == pytest.approx(12.0)
    with pytest.raises(ValueError):
        value_at(P3, "vert", x0=0.5, y="vert")
    with pytest.raises(ValueError):
        value_at(P3, "bleu", x0=0.5)
    with pytest.raises(ValueError):
        value_at(P3, x0=float("nan"))
