"""Downstream metrics: hand-computed cases, and each metric against an independent formulation
(brute force, numpy, or another library) on cases the tests build."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval import downstream_metrics as dm
from speechlm_eval.errors import ConfigError, DataError

RNG = np.random.default_rng(1234)


# --- BLEU / chrF ---------------------------------------------------------------------------------


def test_bleu_hand_computed_and_signature() -> None:
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat": clipped n-gram precisions
    # 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    r = dm.bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert r.score == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert "tok:13a" in r.signature and "version:" in r.signature and r.n == 1
    assert dm.bleu(["a b c d e"], ["a b c d e"]).score == pytest.approx(100.0)
    with pytest.raises(DataError, match="2 hypotheses but 1 references"):
        dm.bleu(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="'flores101' downloads a SentencePiece model"):
        dm.bleu(["a"], ["a"], tokenize="flores101")


def test_bleu_agrees_with_nltk_corpus_bleu() -> None:
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    words = [f"w{i}" for i in range(10)]
    refs = [" ".join(RNG.choice(words, size=int(RNG.integers(8, 15)))) for _ in range(30)]
    hyps = []
    for ref in refs:  # a lightly edited copy, so every n-gram order has matches
        toks = ref.split()
        toks[int(RNG.integers(len(toks)))] = str(RNG.choice(words))
        if RNG.random() < 0.3:
            toks = toks[:-1]
        hyps.append(" ".join(toks))
    ours = dm.bleu(hyps, refs).score
    theirs = 100 * nltk_bleu.corpus_bleu([[r.split()] for r in refs], [h.split() for h in hyps])
    assert ours == pytest.approx(theirs, abs=1e-9)


def _chrf_independent(hyps: list[str], refs: list[str], order: int = 6, beta: float = 2.0) -> float:
    """chrF (Popović 2015) at corpus level: character n-gram counts (spaces removed) summed
    over sentences, precision and recall averaged over n = 1..order, then F-beta."""
    precs, recs = [], []
    for n in range(1, order + 1):
        match = hyp_total = ref_total = 0
        for h, r in zip(hyps, refs, strict=True):
            hc = Counter(
                h.replace(" ", "")[i : i + n] for i in range(len(h.replace(" ", "")) - n + 1)
            )
            rc = Counter(
                r.replace(" ", "")[i : i + n] for i in range(len(r.replace(" ", "")) - n + 1)
            )
            match += sum((hc & rc).values())
            hyp_total += sum(hc.values())
            ref_total += sum(rc.values())
        if hyp_total and ref_total:
            precs.append(match / hyp_total)
            recs.append(match / ref_total)
    p, r = np.mean(precs), np.mean(recs)
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0


def test_chrf_hand_cases_and_independent_formulation() -> None:
    assert dm.chrf(["hello world"], ["hello world"]).score == pytest.approx(100.0)
    assert dm.chrf(["abc"], ["xyz"]).score == pytest.approx(0.0)
    # "ab" vs "abc": n=1 P=2/2 R=2/3, n=2 P=1/1 R=1/2; n>=3 has no hypothesis n-grams.
    p, r = 1.0, (2 / 3 + 1 / 2) / 2
    assert dm.chrf(["ab"], ["abc"]).score == pytest.approx(100 * 5 * p * r / (4 * p + r))
    hyps = ["the quick brown fox", "jumps over the dog", "a lazy afternoon nap"]
    refs = ["the quick brown fox!", "jumped over the lazy dog", "an afternoon nap"]
    r = dm.chrf(hyps, refs)
    assert r.score == pytest.approx(_chrf_independent(hyps, refs), abs=1e-9)
    assert "nc:6" in r.signature and "nw:0" in r.signature


# --- accuracy / UAR ------------------------------------------------------------------------------


def test_classification_hand_computed() -> None:
    golds = ["a", "a", "a", "b", "c"]
    preds = ["a", "a", "b", "b", None]
    r = dm.classification(preds, golds, ["a", "b", "c", "d"])
    assert r.accuracy == pytest.approx(3 / 5)  # the unparsed answer stays in the denominator
    assert r.per_class_recall == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 0.0})
    assert r.uar == pytest.approx((2 / 3 + 1 + 0) / 3)  # 'd' has no gold item: no recall
    assert r.n == 5 and r.n_unparsed == 1


def test_classification_against_balanced_accuracy_and_loops() -> None:
    from sklearn.metrics import balanced_accuracy_score

    labels = ["neu", "hap", "ang", "sad"]
    golds = list(RNG.choice(labels, size=200, p=[0.5, 0.2, 0.2, 0.1]))
    preds = [g if RNG.random() < 0.6 else str(RNG.choice(labels)) for g in golds]
    r = dm.classification(preds, golds, labels)
    assert r.uar == pytest.approx(balanced_accuracy_score(golds, preds))
    by_hand = np.mean(
        [np.mean([p == g for p, g in zip(preds, golds, strict=True) if g == c]) for c in labels]
    )
    assert r.uar == pytest.approx(by_hand)
    assert r.accuracy == pytest.approx(np.mean([p == g for p, g in zip(preds, golds, strict=True)]))


def test_classification_labels_outside_the_set() -> None:
    with pytest.raises(DataError, match=r"gold label 'x' \(item 1\) is not in the label set"):
        dm.classification(["a", "a"], ["a", "x"], ["a", "b"])
    with pytest.raises(DataError, match=r"prediction 'B' \(item 0\) is not in the label set"):
        dm.classification(["B", "a"], ["a", "b"], ["a", "b"])


# --- slot filling --------------------------------------------------------------------------------


def _lev(a: str, b: str) -> int:
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def test_parse_slots() -> None:
    s = "B-city new york E-city on B-date monday E-date B-open never closed"
    assert dm.parse_slots(s) == [("city", "new york"), ("date", "monday")]


def test_slot_filling_hand_computed() -> None:
    refs = [[("city", "new york"), ("date", "monday")], [], [("artist", "abba")]]
    hyps = [[("city", "new yorc")], [], [("album", "abba")]]
    r = dm.slot_filling(hyps, refs)
    assert r.slot_type_f1 == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    # pairs: (new york, new yorc) 1/8, (monday, '') 6/6, (abba, '') 4/4 -> corpus 11/18
    assert r.slot_value_cer == pytest.approx(11 / 18)
    assert r.n == 3 and r.n_ref_slots == 3
    best = dm.slot_filling([[("city", "boston"), ("city", "new york")]], [[("city", "new york")]])
    assert best.slot_value_cer == 0.0 and best.slot_type_f1 == 1.0


def test_slot_value_cer_against_levenshtein() -> None:
    alphabet = list("abcde ")
    types = ["t1", "t2", "t3"]

    def word() -> str:
        return "".join(RNG.choice(alphabet[:-1], size=int(RNG.integers(1, 7))))

    refs, hyps = [], []
    for _ in range(40):
        refs.append([(str(RNG.choice(types)), word()) for _ in range(int(RNG.integers(0, 3)))])
        hyps.append([(str(RNG.choice(types)), word()) for _ in range(int(RNG.integers(0, 3)))])
    r = dm.slot_filling(hyps, refs)
    edits = chars = 0
    f1s = []
    for h, ref in zip(hyps, refs, strict=True):
        rt, ht = {t for t, _ in ref}, {t for t, _ in h}
        tp = len(rt & ht)
        f1s.append(1.0 if not rt and not ht else (2 * tp / (len(rt) + len(ht))))
        for t, v in ref:
            edits += min(_lev(v, c) for c in ([c for tt, c in h if tt == t] or [""]))
            chars += len(v)
    assert r.slot_value_cer == pytest.approx(edits / chars)
    assert r.slot_type_f1 == pytest.approx(np.mean(f1s))


# --- EER / minDCF --------------------------------------------------------------------------------


def _brute_verification(s, y, p, cm, cf):
    """Every threshold (distinct scores, plus one above all) counted directly."""
    s, y = np.asarray(s), np.asarray(y, bool)
    best_gap, eer, dcf = math.inf, None, math.inf
    for t in [*sorted(set(s.tolist())), math.inf]:
        pm = np.mean(s[y] < t)
        pf = np.mean(s[~y] >= t)
        if abs(pm - pf) < best_gap - 1e-15:
            best_gap, eer = abs(pm - pf), (pm + pf) / 2
        dcf = min(dcf, cm * pm * p + cf * pf * (1 - p))
    return eer, dcf


def test_verification_eer_tie_takes_the_lowest_threshold() -> None:
    # Non-targets 0.9 0.8 0.4 0.3 0.2, targets 0.7 0.6 0.5 0.5 0.1. (P_miss, P_fa) at 0.6 is
    # (3/5, 2/5) and at 0.5 (1/5, 2/5): both gaps 1/5, the smallest. speechbrain takes the
    # lowest threshold: EER = (1/5 + 2/5) / 2, not (3/5 + 2/5) / 2.
    scores = [0.9, 0.8, 0.4, 0.3, 0.2, 0.7, 0.6, 0.5, 0.5, 0.1]
    labels = [0] * 5 + [1] * 5
    r = dm.speaker_verification(scores, labels)
    assert r.eer == pytest.approx(0.3) and r.eer_threshold == pytest.approx(0.5)
    assert _brute_verification(scores, labels, 0.01, 1.0, 1.0)[0] == pytest.approx(0.3)


def test_verification_hand_computed() -> None:
    scores = [0.9, 0.8, 0.3, 0.5, 0.1, 0.2]
    labels = [1, 1, 1, 0, 0, 0]
    r = dm.speaker_verification(scores, labels)
    # threshold 0.5: one target of three missed (0.3), one non-target of three accepted (0.5)
    assert r.eer == pytest.approx(1 / 3) and r.eer_threshold == pytest.approx(0.5)
    # p=0.01: best is threshold 0.8 (P_miss 1/3, P_fa 0): 0.01/3; normalised by 0.01
    assert r.min_dcf_raw == pytest.approx(0.01 / 3) and r.min_dcf == pytest.approx(1 / 3)
    r5 = dm.speaker_verification(scores, labels, p_target=0.5)
    assert r5.min_dcf_raw == pytest.approx(0.5 / 3) and r5.min_dcf == pytest.approx(1 / 3)
    assert r.n_target == 3 and r.n_nontarget == 3 and "p_target=0.01" in r.convention
    with pytest.raises(DataError, match="need target and non-target trials"):
        dm.speaker_verification([0.1, 0.2], [1, 1])


@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.3])
def test_verification_against_brute_force(p_target: float) -> None:
    n = 300
    y = RNG.random(n) < 0.3
    s = np.round(np.where(y, RNG.normal(1.0, 1.0, n), RNG.normal(-0.5, 1.0, n)), 1)  # ties
    r = dm.speaker_verification(s, y, p_target=p_target, c_miss=1.0, c_fa=2.0)
    eer, dcf = _brute_verification(s, y, p_target, 1.0, 2.0)
    assert r.eer == pytest.approx(eer)
    assert r.min_dcf_raw == pytest.approx(dcf)
    assert r.min_dcf == pytest.approx(dcf / min(p_target, 2.0 * (1 - p_target)))


def test_verification_against_speechbrain() -> None:
    ms = pytest.importorskip("speechbrain.utils.metric_stats")
    import torch

    for tied in (False, True, False, True, True):
        n = 400
        y = RNG.random(n) < 0.4
        s = np.where(y, RNG.normal(1.0, 1.0, n), RNG.normal(-0.5, 1.0, n))
        s = np.round(s, 1) if tied else s
        r = dm.speaker_verification(s, y, p_target=0.01)
        pos, neg = torch.tensor(s[y]), torch.tensor(s[~y])
        sb_eer, _ = ms.EER(pos, neg)
        sb_dcf, _ = ms.minDCF(pos, neg, c_miss=1.0, c_fa=1.0, p_target=0.01)
        assert r.eer == pytest.approx(float(sb_eer), abs=1e-6)
        assert r.min_dcf_raw == pytest.approx(float(sb_dcf), abs=1e-6)


# --- DER and RTTM --------------------------------------------------------------------------------

T = dm.Turn


def test_der_hand_computed_and_collar_per_side() -> None:
    ref = {"f": [T(0, 10, "A")]}
    hyp = {"f": [T(0, 9.8, "x")]}
    assert dm.diarization_error_rate(ref, hyp).der == pytest.approx(0.2 / 10)
    # 0.1 s each side of the boundaries at 0 and 10: scored [0.1, 9.9], miss [9.8, 9.9]
    assert dm.diarization_error_rate(ref, hyp, collar=0.1).der == pytest.approx(0.1 / 9.8)
    assert dm.diarization_error_rate(ref, hyp, collar=0.25).der == pytest.approx(0.0)
    conf = dm.diarization_error_rate(
        {"f": [T(0, 5, "A"), T(5, 10, "B")]}, {"f": [T(0, 6, "x"), T(6, 10, "y")]}
    )
    assert conf.der == pytest.approx(0.1) and conf.confusion == pytest.approx(1.0)
    assert conf.missed == pytest.approx(0.0) and conf.false_alarm == pytest.approx(0.0)


def test_der_skip_overlap_hand_computed() -> None:
    ref = {"f": [T(0, 7, "A"), T(4, 10, "B")]}
    hyp = {"f": [T(0, 10, "x")]}
    # overlap scored: x->A; [4,7] misses B (3 s), [7,10] is B said as x (3 s); total 13 s
    r = dm.diarization_error_rate(ref, hyp)
    assert r.der == pytest.approx(6 / 13) and r.total == pytest.approx(13)
    # overlap [4,7] removed: A [0,4], B [7,10]; x->A; confusion 3 of 7
    assert dm.diarization_error_rate(ref, hyp, skip_overlap=True).der == pytest.approx(3 / 7)


def _random_turns(speakers: list[str], length: int) -> list[dm.Turn]:
    """Per speaker, active 100 ms blocks merged into turns (a speaker never overlaps itself)."""
    turns = []
    for spk in speakers:
        active = RNG.random(length) < 0.4
        k = 0
        while k < length:
            if active[k]:
                j = k
                while j < length and active[j]:
                    j += 1
                turns.append(T(k / 10, j / 10, spk))
                k = j
            else:
                k += 1
    return turns


def _brute_der(ref: dict, hyp: dict, length: int) -> float:
    """Frame grid (100 ms, the turns' grid), every speaker mapping tried, collar 0."""
    err = total = 0
    for f, rt in ref.items():
        ht = hyp.get(f, [])
        rs, hs = sorted({t.speaker for t in rt}), sorted({t.speaker for t in ht})

        def frames(turns, spk):
            a = np.zeros(length, bool)
            for t in turns:
                if t.speaker == spk:
                    a[round(t.start * 10) : round(t.end * 10)] = True
            return a

        R = {s: frames(rt, s) for s in rs}
        H = {s: frames(ht, s) for s in hs}
        nr = sum(R.values()) if rs else np.zeros(length, int)
        nh = sum(H.values()) if hs else np.zeros(length, int)
        best = 0
        k = min(len(rs), len(hs))
        for hsub in itertools.permutations(hs, k):
            for rsub in itertools.combinations(rs, k):
                best = max(
                    best, sum(int(np.sum(R[r] & H[h])) for r, h in zip(rsub, hsub, strict=True))
                )
        total += int(nr.sum())
        err += int(np.sum(np.maximum(nr, nh))) - best  # miss + false alarm + confusion
    return err / total


def test_der_against_frame_brute_force() -> None:
    for trial in range(8):
        length = 50
        ref = {f"f{i}": _random_turns(["A", "B", "C"][: 2 + trial % 2], length) for i in range(3)}
        hyp = {
            f"f{i}": _random_turns(["x", "y", "z"][: 2 + (trial // 2) % 2], length)
            for i in range(3)
        }
        ref = {f: t for f, t in ref.items() if t}
        r = dm.diarization_error_rate(ref, hyp)
        assert r.der == pytest.approx(_brute_der(ref, hyp, length), abs=1e-9)
        assert r.n == len(ref)


def test_rttm_round_trip_and_errors(tmp_path: Path) -> None:
    turns = {"a": [T(0.5, 1.25, "s1"), T(0.0, 0.5, "s2")], "b": [T(2.0, 3.0, "s1")]}
    p = tmp_path / "x.rttm"
    dm.write_rttm(p, turns)
    back = dm.read_rttm(p)
    assert back == {"a": [T(0.0, 0.5, "s2"), T(0.5, 1.25, "s1")], "b": [T(2.0, 3.0, "s1")]}
    p.write_text("SPKR-INFO a 1 <NA> <NA> <NA> unknown s1 <NA> <NA>\n" + p.read_text())
    assert dm.read_rttm(p) == back  # other line types are skipped
    bad = tmp_path / "bad.rttm"
    bad.write_text(
        "SPEAKER a 1 0.0 1.0 <NA> <NA> s1 <NA> <NA>\nSPEAKER a 1 zero 1.0 <NA> <NA> s1\n"
    )
    with pytest.raises(DataError, match=r"bad.rttm: line 2: onset 'zero'"):
        dm.read_rttm(bad)
    bad.write_text("SPEAKER a 1 1.0 -1 <NA> <NA> s1 <NA> <NA>\n")
    with pytest.raises(DataError, match=r"line 1: onset must be >= 0 and duration > 0"):
        dm.read_rttm(bad)
    with pytest.raises(DataError, match=r"missing.rttm: cannot read"):
        dm.read_rttm(tmp_path / "missing.rttm")
    with pytest.raises(DataError, match="hypothesis files without a reference: zz"):
        dm.diarization_error_rate(turns, {"zz": [T(0, 1, "s")]})


# --- SI-SDRi -------------------------------------------------------------------------------------


def _si_sdr_np(est: np.ndarray, ref: np.ndarray, zero_mean: bool) -> float:
    if zero_mean:
        est, ref = est - est.mean(), ref - ref.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return 10 * np.log10((target @ target) / ((est - target) @ (est - target)))


def test_si_sdri_hand_computed_with_swapped_sources() -> None:
    s1 = np.array([1.0, -1.0, 0.0, 0.0])
    s2 = np.array([0.0, 0.0, 1.0, -1.0])
    mix = s1 + s2  # SI-SDR(mix, s_k) = 10 log10(2/2) = 0 dB
    est = np.stack([s2 + 0.5 * s1, s1 + 0.5 * s2])  # in swapped order; 10 log10(2/0.5) dB each
    r = dm.si_sdr_improvement([est], [np.stack([s1, s2])], [mix])
    assert r.si_sdri == pytest.approx(10 * np.log10(4), abs=1e-6)
    assert r.si_sdr == pytest.approx(10 * np.log10(4), abs=1e-6)
    assert r.permutations == [[1, 0]] and r.n == 1


@pytest.mark.parametrize("zero_mean", [True, False])
def test_si_sdri_against_numpy_permutations(zero_mean: bool) -> None:
    ests, refs, mixes, want = [], [], [], []
    for _ in range(4):
        n_src, t = 3, 800
        ref = RNG.standard_normal((n_src, t)) + 0.3
        mix = ref.sum(0)
        perm = RNG.permutation(n_src)
        est = ref[perm] + 0.4 * RNG.standard_normal((n_src, t)) + 0.1 * mix
        ests.append(est)
        refs.append(ref)
        mixes.append(mix)
        best = max(
            np.mean([_si_sdr_np(est[p[k]], ref[k], zero_mean) for k in range(n_src)])
            for p in itertools.permutations(range(n_src))
        )
        base = np.mean([_si_sdr_np(mix, ref[k], zero_mean) for k in range(n_src)])
        want.append(best - base)
    r = dm.si_sdr_improvement(ests, refs, mixes, zero_mean=zero_mean)
    assert r.si_sdri == pytest.approx(np.mean(want), abs=1e-6)
    with pytest.raises(DataError, match=r"utterance 0: estimates \(2, 5\)"):
        dm.si_sdr_improvement([np.zeros((2, 5))], [np.zeros((2, 6))], [np.zeros(6)])


# --- MTWV ----------------------------------------------------------------------------------------


def test_twv_hand_computed() -> None:
    q = ["q1"] * 4 + ["q2"] * 4 + ["q3"] * 2
    s = [0.9, 0.7, 0.6, 0.1, 0.8, 0.5, 0.4, 0.2, 0.95, 0.3]
    y = [1, 0, 1, 0, 1, 0, 0, 0, 0, 0]  # q3 has no occurrence: not scored
    # beta = (1/1)(1/0.5 - 1) = 1. TWV at 0.9: 0.25; 0.8: 0.75; 0.7: 0.5; 0.6: 0.75; 0.5: 0.583
    r = dm.term_weighted_value(
        q, s, y, p_target=0.5, c_miss=1, c_fa=1, decisions=[x >= 0.65 for x in s]
    )
    assert r.mtwv == pytest.approx(0.75) and r.threshold == pytest.approx(0.8)
    # decisions: q1 accepts 0.9 (hit) and 0.7 (FA): 1 - (0.5 + 0.5); q2 hits: 1 - 0 -> 0.5
    assert r.atwv == pytest.approx(0.5)
    assert r.beta == pytest.approx(1.0) and r.n_queries == 2 and r.n_queries_excluded == 1
    none = dm.term_weighted_value(["a", "a"], [0.9, 0.1], [0, 1], p_target=0.5, c_miss=1, c_fa=1)
    assert none.mtwv == 0.0 and none.threshold == math.inf  # nothing accepted beats any guess
    # A threshold accepts tied scores together: the hit cannot be taken without the FA.
    tie = dm.term_weighted_value(["a", "a"], [0.5, 0.5], [1, 0], p_target=0.5, c_miss=1, c_fa=1)
    assert tie.mtwv == 0.0


def test_twv_against_brute_force_with_quesst2015_costs() -> None:
    costs = dm.QUESST2015_SCORER_COSTS
    beta = (costs["c_fa"] / costs["c_miss"]) * (1 / costs["p_target"] - 1)
    assert beta == pytest.approx(12.49)
    n_q, n_d = 12, 40
    q = np.repeat([f"q{i}" for i in range(n_q)], n_d)
    y = RNG.random(n_q * n_d) < 0.08
    s = np.round(np.where(y, RNG.normal(1.5, 1, y.size), RNG.normal(0, 1, y.size)), 1)
    r = dm.term_weighted_value(list(q), s, y, **costs)
    best = 0.0
    for t in sorted(set(s.tolist())):
        vals = []
        for name in np.unique(q):
            m = q == name
            nt = y[m].sum()
            if nt == 0:
                continue
            p_miss = 1 - np.sum((s[m] >= t) & y[m]) / nt
            p_fa = np.sum((s[m] >= t) & ~y[m]) / (m.sum() - nt)
            vals.append(p_miss + beta * p_fa)
        best = max(best, 1 - np.mean(vals))
    assert r.mtwv == pytest.approx(best, abs=1e-12)
    assert r.n_queries == len({n for n, t in zip(q, y, strict=True) if t})
