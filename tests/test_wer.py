"""WER/CER scoring: hand-computed cases, a brute-force edit distance, bootstrap checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.scorers.wer import WERScorer, get_normalizer

NONE = {"normalizer": "none"}


def levenshtein(a: list, b: list) -> int:
    """Plain dynamic-programming edit distance (unit costs): the independent formulation."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_hand_computed_corpus_rates_sum_errors_not_mean_of_rates():
    refs = {"u1": "the cat sat on the mat", "u2": "hello world"}
    hyps = {"u1": "the cat sat on mat", "u2": "yellow"}
    rep = WERScorer({**NONE, "bootstrap_resamples": 0}).score(refs, hyps)
    # u1: one deletion of 6 words; u2: one substitution + one deletion of 2 words.
    assert rep.metrics["wer"].value == pytest.approx(3 / 8)
    assert rep.metrics["wer"].value != pytest.approx((1 / 6 + 2 / 2) / 2)  # not a mean of rates
    # Characters (spaces count): u1 deletes "the " (4 of 22); u2 "hello world" -> "yellow" is
    # h->y plus deleting " orld"... = 1 substitution + 5 deletions (6 of 11).
    assert rep.metrics["cer"].value == pytest.approx(10 / 33)
    rows = {r["doc_id"]: r for r in rep.per_item}
    assert (rows["u1"]["wer_errors"], rows["u1"]["wer_deletions"]) == (1, 1)
    assert (rows["u2"]["wer_substitutions"], rows["u2"]["wer_deletions"]) == (1, 1)
    assert rows["u2"]["wer"] == 1.0 and rows["u1"]["wer_reference_length"] == 6
    assert rows["u2"]["cer_errors"] == 6 and rows["u2"]["cer_reference_length"] == 11
    assert all(not m.higher_is_better for m in rep.metrics.values())
    assert rep.metrics["wer"].stderr is None  # bootstrap switched off
    assert rep.info["totals"]["wer"] == {
        "errors": 3,
        "reference_length": 8,
        "substitutions": 1,
        "deletions": 2,
        "insertions": 0,
    }


def test_insertions_and_empty_hypothesis():
    refs = {"a": "one two", "b": "three"}
    hyps = {"a": "one extra two more", "b": ""}
    rep = WERScorer({**NONE, "bootstrap_resamples": 0}).score(refs, hyps)
    rows = {r["doc_id"]: r for r in rep.per_item}
    assert rows["a"]["wer_insertions"] == 2 and rows["b"]["wer_deletions"] == 1
    assert rep.metrics["wer"].value == pytest.approx(3 / 3)


def test_matches_brute_force_edit_distance_on_random_sentences():
    rng = np.random.default_rng(7)
    words = ["a", "b", "c", "dd", "e", "ff", "g"]
    refs, hyps = {}, {}
    for i in range(60):
        ref = list(rng.choice(words, size=rng.integers(1, 9)))
        hyp = [w for w in ref if rng.random() > 0.2]  # deletions
        hyp = [w if rng.random() > 0.2 else str(rng.choice(words)) for w in hyp]  # substitutions
        for _ in range(rng.integers(0, 3)):  # insertions
            hyp.insert(int(rng.integers(0, len(hyp) + 1)), str(rng.choice(words)))
        refs[f"u{i}"], hyps[f"u{i}"] = " ".join(ref), " ".join(hyp)
    rep = WERScorer({**NONE, "bootstrap_resamples": 0}).score(refs, hyps)
    werr = cerr = wn = cn = 0
    for row in rep.per_item:
        r, h = refs[row["doc_id"]], hyps[row["doc_id"]]
        assert row["wer_errors"] == levenshtein(r.split(), h.split())
        assert row["cer_errors"] == levenshtein(list(r), list(h))
        werr += levenshtein(r.split(), h.split())
        cerr += levenshtein(list(r), list(h))
        wn, cn = wn + len(r.split()), cn + len(r)
    assert rep.metrics["wer"].value == pytest.approx(werr / wn)
    assert rep.metrics["cer"].value == pytest.approx(cerr / cn)


def test_whisper_english_normaliser_is_applied_and_recorded():
    norm = get_normalizer("whisper_english")
    # Whisper's documented rules: British -> American spelling, "Mr." -> mister, fillers and
    # bracketed text dropped, spelled-out numbers -> digits, case and punctuation removed.
    assert norm("Mr. Smith's colour!") == "mister smith is color"
    assert norm("Hmm, uh, I think [laughs] so.") == "i think so"
    assert norm("twenty five dollars") == "$25"
    refs = {"x": "THE THEATRE WAS ORGANISED"}
    rep = WERScorer({"bootstrap_resamples": 0}).score(refs, {"x": "The theater was organized."})
    assert rep.metrics["wer"].value == 0.0
    assert rep.per_item[0]["reference_normalized"] == "the theater was organized"
    ident = rep.info["normalizer"]
    assert ident["class"] == "whisper.normalizers.EnglishTextNormalizer"
    assert ident["package"] == "openai-whisper" and ident["version"]
    # Without the normaliser the same pair has errors (case, spelling, punctuation).
    assert (
        WERScorer({**NONE, "bootstrap_resamples": 0})
        .score(refs, {"x": "The theater was organized."})
        .metrics["wer"]
        .value
        == 1.0
    )


def test_empty_reference_after_normalisation_counts_insertions():
    refs = {"a": "uh", "b": "good morning"}
    rep = WERScorer({"bootstrap_resamples": 0}).score(refs, {"a": "well", "b": "good morning"})
    rows = {r["doc_id"]: r for r in rep.per_item}
    assert rows["a"]["wer_reference_length"] == 0 and rows["a"]["wer"] is None
    assert rep.metrics["wer"].value == pytest.approx(1 / 2)  # one insertion over two words
    assert rep.info["empty_references_after_normalisation"] == 1
    with pytest.raises(DataError, match="every reference is empty"):
        WERScorer().score({"a": "uh"}, {"a": "x"})


def _random_corpus(n: int, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    rng = np.random.default_rng(seed)
    refs, hyps = {}, {}
    for i in range(n):
        k = int(rng.integers(3, 15))
        ref = [f"w{j}" for j in range(k)]
        hyp = [w if rng.random() > 0.15 else "x" for w in ref]
        refs[str(i)], hyps[str(i)] = " ".join(ref), " ".join(hyp)
    return refs, hyps


def test_bootstrap_degenerate_case_is_exact():
    # Every utterance has 1 error in 4 words: every resample has WER exactly 0.25.
    refs = {str(i): "a b c d" for i in range(10)}
    hyps = {str(i): "a b c x" for i in range(10)}
    rep = WERScorer({**NONE, "bootstrap_resamples": 200}).score(refs, hyps)
    assert rep.metrics["wer"].value == 0.25
    assert rep.metrics["wer"].stderr == pytest.approx(0.0, abs=1e-12)
    assert rep.intervals["wer"]["low"] == pytest.approx(0.25)
    assert rep.intervals["wer"]["high"] == pytest.approx(0.25)


def test_bootstrap_agrees_with_independent_estimates():
    refs, hyps = _random_corpus(300, seed=1)
    rep = WERScorer({**NONE, "bootstrap_resamples": 2000, "seed": 3}).score(refs, hyps)
    rows = rep.per_item
    e = np.array([r["wer_errors"] for r in rows], float)
    n = np.array([r["wer_reference_length"] for r in rows], float)
    wer = e.sum() / n.sum()
    # (1) delta method (linearisation) of the ratio estimator sum(e) / sum(n).
    k = e.size
    delta_se = math.sqrt(k / (k - 1) * np.sum((e - wer * n) ** 2)) / n.sum()
    # (2) a plain numpy bootstrap with another generator.
    idx = np.random.default_rng(99).integers(0, k, size=(4000, k))
    boot = e[idx].sum(1) / n[idx].sum(1)
    se = rep.metrics["wer"].stderr
    assert se == pytest.approx(delta_se, rel=0.1)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.1)
    lo, hi = rep.intervals["wer"]["low"], rep.intervals["wer"]["high"]
    assert lo < wer < hi
    assert lo == pytest.approx(np.quantile(boot, 0.025), abs=0.3 * delta_se)
    assert hi == pytest.approx(np.quantile(boot, 0.975), abs=0.3 * delta_se)


def test_bootstrap_is_seeded():
    refs, hyps = _random_corpus(40, seed=2)
    a = WERScorer({**NONE, "seed": 5}).score(refs, hyps)
    b = WERScorer({**NONE, "seed": 5}).score(refs, hyps)
    c = WERScorer({**NONE, "seed": 6}).score(refs, hyps)
    assert a.metrics["wer"].stderr == b.metrics["wer"].stderr
    assert a.intervals == b.intervals
    assert a.metrics["wer"].stderr != c.metrics["wer"].stderr
    assert a.info["bootstrap"]["resamples"] == 1000  # the default


def test_original_audio_transcripts_and_paired_delta():
    refs, hyps = _random_corpus(50, seed=4)
    rng = np.random.default_rng(0)
    # The "original" transcripts are better: drop half of the errors.
    orig = {
        u: " ".join(
            w if w != "x" or rng.random() < 0.5 else ref.split()[i] for i, w in enumerate(h.split())
        )
        for (u, h), ref in zip(hyps.items(), refs.values(), strict=True)
    }
    rep = WERScorer(NONE).score(refs, hyps, original=orig)
    m = rep.metrics
    only = WERScorer(NONE).score(refs, orig)
    assert m["wer_original"].value == pytest.approx(only.metrics["wer"].value)
    assert m["wer_delta"].value == pytest.approx(m["wer"].value - m["wer_original"].value)
    assert m["wer_delta"].value > 0 and m["cer_delta"].value > 0
    # Paired: the delta's spread is far below what two independent samples would give.
    indep = math.hypot(m["wer"].stderr, m["wer_original"].stderr)
    assert m["wer_delta"].stderr < indep
    assert rep.per_item[0]["hypothesis_original"] == orig[rep.per_item[0]["doc_id"]]
    # Identical transcripts: the degradation and its interval are exactly 0.
    same = WERScorer(NONE).score(refs, hyps, original=hyps)
    assert same.metrics["wer_delta"].value == 0.0
    assert same.intervals["wer_delta"] == {"low": 0.0, "high": 0.0}


def test_bad_inputs_and_options():
    with pytest.raises(DataError, match=r"missing \['b'\]"):
        WERScorer(NONE).score({"a": "x", "b": "y"}, {"a": "x"})
    with pytest.raises(DataError, match=r"unknown \['c'\]"):
        WERScorer(NONE).score({"a": "x"}, {"a": "x", "c": "y"})
    with pytest.raises(ConfigError, match="unknown key"):
        WERScorer({"judgee": "x"})
    with pytest.raises(ConfigError, match="normalizer"):
        WERScorer({"normalizer": "lowercase"})
    with pytest.raises(ConfigError, match="metric"):
        WERScorer({"metric": "bleu"})
    with pytest.raises(ConfigError, match="confidence_level"):
        WERScorer({"confidence_level": 95})
    with pytest.raises(ConfigError, match="bootstrap_resamples"):
        WERScorer({"bootstrap_resamples": -1})


def test_describe_names_the_headline_metric():
    assert WERScorer({"metric": "cer"}).describe()["primary_metric"] == "cer,none"
    d = WERScorer().describe()
    assert d["primary_metric"] == "wer,none"
    assert d["bootstrap"]["method"] == "percentile"
