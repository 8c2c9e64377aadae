"""Metric helpers (speechlm_eval.metrics), reducers, per-sample rows and the scorer loader."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from reference import assert_matches_reference, assert_order_invariant

from speechlm_eval.config import DatasetConfig, ScoringConfig, TaskConfig
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.metrics import (
    Metric,
    SampleScore,
    ScoreReport,
    bootstrap,
    cluster_mean,
    grouped,
    mean,
    paired_ratio_delta,
    ratio,
    ratio_of_sums,
)
from speechlm_eval.scorers.base import (
    ChoiceItemScorer,
    DatasetScorer,
    TranscriptScorer,
    load_scorer,
    sample_records,
)
from speechlm_eval.scorers.reducers import REDUCERS, get_reducer, reduce_samples

# --- mean and clustered means -------------------------------------------------------------------


def test_mean_closed_form():
    m = mean([1.0, 0.0, 0.5, 1.0])
    assert m.value == 0.625 and m.n == 4 and m.higher_is_better
    assert m.stderr == pytest.approx(statistics.stdev([1, 0, 0.5, 1]) / 2)
    assert mean([3.0]).stderr is None
    empty = mean([], higher_is_better=False)
    assert math.isnan(empty.value) and empty.n == 0 and not empty.higher_is_better


def test_cluster_weighting_is_the_two_stage_average():
    # id a: voices 1, 0 -> 0.5; id b: 1; id c: 0, 0, 1 -> 1/3. Mean over ids, SE over ids.
    vals = [1, 0, 1, 0, 0, 1]
    ids = ["a", "a", "b", "c", "c", "c"]
    m = cluster_mean(vals, ids, weighting="cluster")
    per_id = [0.5, 1.0, 1 / 3]
    assert m.value == pytest.approx(sum(per_id) / 3) and m.n == 3
    assert m.stderr == pytest.approx(statistics.stdev(per_id) / math.sqrt(3))


def _sandwich_se(y: np.ndarray, g: list[str]) -> float:
    """Reference: the CR1 sandwich (X'X)^-1 X' Omega X (X'X)^-1 of an intercept-only fit, with
    matrices (the regression view, not the summed-residual shortcut of the implementation)."""
    x = np.ones((y.size, 1))
    bread = np.linalg.inv(x.T @ x)
    resid = y - x @ (bread @ x.T @ y)
    labels = sorted(set(g))
    meat = np.zeros((1, 1))
    for lab in labels:
        idx = [i for i, c in enumerate(g) if c == lab]
        score = x[idx].T @ resid[idx]
        meat += np.outer(score, score)
    k = len(labels)
    return float(np.sqrt((k / (k - 1)) * (bread @ meat @ bread))[0, 0])


def test_item_weighting_cluster_robust_matches_sandwich_reference():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(20):
        n_clusters = int(rng.integers(2, 30))
        sizes = rng.integers(1, 6, size=n_clusters)
        ids = [f"c{i}" for i, s in enumerate(sizes) for _ in range(s)]
        effect = rng.normal(size=n_clusters).repeat(sizes)  # correlated within clusters
        cases.append((effect + rng.normal(size=len(ids)), ids))
    assert_matches_reference(
        lambda c: {"se": cluster_mean(*c).stderr, "mean": cluster_mean(*c).value},
        lambda c: {"se": _sandwich_se(c[0], c[1]), "mean": float(np.mean(c[0]))},
        cases,
        rtol=1e-10,
    )


def test_cluster_robust_special_cases():
    rng = np.random.default_rng(1)
    y = rng.normal(size=40)
    # One item per cluster: the closed-form standard error.
    single = cluster_mean(y, [str(i) for i in range(40)])
    assert single.stderr == pytest.approx(mean(y).stderr, rel=1e-12)
    # Equal cluster sizes: the standard error of the cluster means (the ZR2021 rule's SE).
    ids = [f"c{i // 4}" for i in range(40)]
    assert cluster_mean(y, ids).stderr == pytest.approx(
        cluster_mean(y, ids, weighting="cluster").stderr, rel=1e-12
    )
    # Shared clusters widen the interval relative to treating items as independent.
    clustered = np.repeat(rng.normal(size=10), 4) + 0.1 * rng.normal(size=40)
    assert cluster_mean(clustered, ids).stderr > 1.5 * mean(clustered).stderr
    # Any hashable label, e.g. (pair id, speaker) tuples.
    pairs = [("a", 1), ("a", 1), ("b", 2), ("c", 3)]
    assert cluster_mean([1, 0, 1, 1], pairs, weighting="cluster").value == pytest.approx(5 / 6)
    one = cluster_mean([1.0, 2.0], ["a", "a"])
    assert one.value == 1.5 and one.stderr is None and one.n == 2
    assert math.isnan(cluster_mean([], []).value)
    with pytest.raises(ValueError, match="weighting"):
        cluster_mean([1.0], ["a"], weighting="voice")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 values but 1 cluster"):
        cluster_mean([1.0, 2.0], ["a"])


# --- grouped ------------------------------------------------------------------------------------


def _s(doc, value, **groups):
    return SampleScore(doc, {"x": value}, groups=groups)


def test_grouped_order_skips_and_first_group_per_doc():
    samples = [
        _s("1", 1.0, band="b"),
        _s("2", 0.0, band="a"),
        _s("3", 1.0),  # no key: in no group
        _s("4", 0.5, band=None),  # None: in no group
        _s("2", 1.0, band="b"),  # doc 2's second sample, another band
    ]

    def metric(ss):
        return mean([s.values["x"] for s in ss])

    g = grouped(samples, "band", metric)
    assert list(g) == ["a", "b"] and g["a"].value == 0.0 and g["b"].n == 2
    assert list(grouped(samples, "band", metric, order=["b", "z", "a"])) == ["b", "a"]
    by_doc = grouped(samples, "band", metric, by_doc=True)  # doc 2 stays in band a
    assert by_doc["a"].n == 2 and by_doc["b"].n == 1
    assert grouped([], "band", metric) == {}


# --- ratios and bootstrap -----------------------------------------------------------------------


def test_ratio_statistics():
    e, n = np.array([1, 2, 0]), np.array([4, 4, 2])
    assert ratio(e, n) == 0.3
    assert math.isnan(ratio([0], [0]))
    assert ratio_of_sums(np.array([[1, 2], [3, 4]]), np.array([[2, 2], [2, 2]])).tolist() == [
        0.75,
        1.75,
    ]
    assert paired_ratio_delta(np.array([3, 1]), np.array([1, 1]), np.array([4, 4])) == 0.25
    assert bootstrap((e, n), ratio_of_sums, 100, 0.95, "percentile", 0) is not None
    assert bootstrap((e[:1], n[:1]), ratio_of_sums, 100, 0.95, "percentile", 0) is None
    assert bootstrap((e, n), ratio_of_sums, 0, 0.95, "percentile", 0) is None
    a = bootstrap((e, n), ratio_of_sums, 200, 0.9, "percentile", 3)
    assert a == bootstrap((e, n), ratio_of_sums, 200, 0.9, "percentile", 3)  # seeded
    se, lo, hi = a
    assert se > 0 and lo <= 0.3 <= hi


# --- reducers -----------------------------------------------------------------------------------


def test_reducers_registered_and_min_mae():
    assert {"mean", "min", "max", "median"} <= set(REDUCERS)
    # pGSLM-style min-MAE: 3 continuations per prompt, the best (lowest) MAE per prompt.
    samples = [
        SampleScore("p1", {"mae": 3.0, "n": 1}, groups={"t": "0.7"}, answer="x"),
        SampleScore("p2", {"mae": 5.0, "n": 1}),
        SampleScore("p1", {"mae": 1.0, "n": 1}, groups={"t": "0.7"}, answer="x"),
        SampleScore("p1", {"mae": 2.0, "n": 1}, groups={"t": "0.7"}, answer="y"),
        SampleScore("p2", {"mae": 4.0, "n": 1}),
    ]
    mins = reduce_samples(samples, "min")
    assert [s.doc_id for s in mins] == ["p1", "p2"]
    assert [s.values["mae"] for s in mins] == [1.0, 4.0]
    assert mins[0].groups == {"t": "0.7"} and mins[0].meta["num_samples"] == 3
    assert mins[0].answer is None  # the samples' answers differ
    expect = {"mean": [2.0, 4.5], "max": [3.0, 5.0], "median": [2.0, 4.5]}
    for name, vals in expect.items():
        assert [s.values["mae"] for s in reduce_samples(samples, name)] == vals
    assert mean([s.values["mae"] for s in mins]).n == 2  # the stderr counts prompts
    same = reduce_samples([SampleScore("a", {"v": 1.0}, answer="B")] * 2, "mean")
    assert same[0].answer == "B"
    # A custom key (e.g. per prompt and temperature) and a callable reducer.
    by_t = reduce_samples(samples, np.ptp, key=lambda s: (s.doc_id, s.groups.get("t")))
    assert [s.values["mae"] for s in by_t] == [2.0, 1.0]


def test_reducer_errors():
    with pytest.raises(ConfigError, match="unknown reducer 'best'; known: max, mean, median, min"):
        get_reducer("best")
    with pytest.raises(DataError, match="group keys differ"):
        reduce_samples([_s("a", 1.0, t="x"), _s("a", 1.0, t="y")])
    with pytest.raises(DataError, match="same values"):
        reduce_samples([SampleScore("a", {"x": 1.0}), SampleScore("a", {"y": 1.0})])


# --- per-sample rows ----------------------------------------------------------------------------


def test_sample_records_single_and_by_filter():
    a = SampleScore("1", {"score": 1.0}, meta={"candidates": ["p", "f"]})
    b = SampleScore("1", {"score": 0.0}, meta={"candidates": ["p", "f"]})
    assert sample_records([a]) == [{"doc_id": "1", "candidates": ["p", "f"], "score": 1.0}]
    rows = sample_records({"nll_sum": [a], "nll_mean": [b]}, extra=[{"logprob": [-1, -2]}])
    assert rows == [
        {
            "doc_id": "1",
            "candidates": ["p", "f"],
            "score,nll_sum": 1.0,
            "score,nll_mean": 0.0,
            "logprob": [-1, -2],
        }
    ]
    parsed = SampleScore("q", {"acc": 0.0, "parse_failure": 1.0}, explanation="no match")
    assert sample_records({"strict": [parsed]})[0] == {
        "doc_id": "q",
        "acc,strict": 0.0,
        "parse_failure,strict": 1.0,
        "explanation,strict": "no match",
    }
    assert sample_records([SampleScore("q", {}, answer="B")])[0]["answer"] == "B"
    assert sample_records([]) == [] and sample_records({}) == []


def test_sample_records_refuse_collisions_and_misalignment():
    with pytest.raises(ValueError, match="'score' written twice"):
        sample_records([SampleScore("1", {"score": 1.0}, meta={"score": 2})])
    with pytest.raises(ValueError, match="'logprob' written twice"):
        sample_records([SampleScore("1", {"logprob": 1.0})], extra=[{"logprob": 1}])
    with pytest.raises(ValueError, match="not aligned"):
        sample_records({"a": [SampleScore("1", {})], "b": []})
    with pytest.raises(ValueError, match="'2' != '1'"):
        sample_records({"a": [SampleScore("1", {})], "b": [SampleScore("2", {})]})


# --- the contract's loader ----------------------------------------------------------------------


def _cfg(scorer: str, capability: str = "loglikelihood", **options) -> TaskConfig:
    return TaskConfig(
        task="t",
        version=1,
        capability=capability,
        dataset=DatasetConfig(reader="manifest", subdirs=("x",)),
        scoring=ScoringConfig(scorer=scorer, options=options),
    )


def test_load_scorer_checks_the_protocol():
    assert isinstance(load_scorer(_cfg("choice"), ChoiceItemScorer), ChoiceItemScorer)
    wer = load_scorer(_cfg("wer", "resynthesize", normalizer="none"), TranscriptScorer)
    assert wer.name == "wer"
    assert isinstance(load_scorer(_cfg("abx", "encode"), DatasetScorer), DatasetScorer)
    with pytest.raises(ConfigError, match=r"task 't' \(loglikelihood\): scorer 'wer' does not"):
        load_scorer(_cfg("wer", normalizer="none"), ChoiceItemScorer)
    with pytest.raises(ConfigError, match="scorer 'abx' does not score transcripts"):
        load_scorer(_cfg("abx", "resynthesize"), TranscriptScorer)


def test_order_invariance_helper_catches_an_order_dependent_aggregate():
    samples = [SampleScore(str(i), {"x": float(i)}) for i in range(10)]

    def ok(ss):
        return ScoreReport({"m": mean([s.values["x"] for s in ss])})

    def first(ss):
        return ScoreReport({"m": Metric(ss[0].values["x"], None, 1)})

    assert_order_invariant(ok, samples)
    with pytest.raises(AssertionError, match="shuffle"):
        assert_order_invariant(first, samples)


def test_reference_helper_reports_the_failing_case():
    with pytest.raises(AssertionError, match="case 1, value: metric 2.0 != reference 3.0"):
        assert_matches_reference(lambda c: c, lambda c: c + (c == 2), [1, 2])
    with pytest.raises(AssertionError, match="no value was compared"):
        assert_matches_reference(lambda c: c, lambda c: c, [])
    with pytest.raises(AssertionError, match=r"\['b'\] not computed by both"):
        assert_matches_reference(lambda c: {"a": 1}, lambda c: {"b": 1}, [0])
