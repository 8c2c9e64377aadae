"""The paired regression gate (``slm-eval compare`` on per-sample files) and ``--exact``.

Every input is a synthetic results/samples pair written here; no model runs.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval import paired
from speechlm_eval.cli import main
from speechlm_eval.compare import (
    PairedOptions,
    Tolerances,
    compare,
    compare_exact,
    compare_paired,
    failed,
    gate_failed,
)
from speechlm_eval.errors import DataError

TS = "2025-01-02T03-04-05.678901"
ROOT = Path(__file__).resolve().parents[1]


# --- synthetic runs -----------------------------------------------------------------------------


def choice_rows(scores, voices=1, other=None):
    """One row per (unit, voice): ``scores[u]`` (or ``scores[u][v]``) for ``score,nll_sum``;
    ``score,nll_mean`` is ``other`` (default: the same)."""
    rows = []
    for u, s in enumerate(scores):
        per = s if isinstance(s, (list, tuple)) else [s] * voices
        for v, x in enumerate(per):
            rows.append(
                {
                    "doc_id": f"u{u}",
                    "candidates": [f"p{u}_{v}", f"f{u}_{v}"],
                    "meta": {"type": "t" + str(u % 2), "voice": f"v{v}"},
                    "logprob": [-1.0, -2.0],
                    "num_tokens": [3, 3],
                    "score,nll_sum": float(x),
                    "score,nll_mean": float(x if other is None else other),
                }
            )
    return rows


def choice_entry(rows, task="sblimp"):
    """The results entry the ZeroSpeech scorer would write: per-unit means first."""
    out = {"alias": task}
    for v in ("nll_sum", "nll_mean"):
        by: dict[str, list[float]] = {}
        for r in rows:
            by.setdefault(r["doc_id"], []).append(r[f"score,{v}"])
        m = np.array([np.mean(x) for x in by.values()])
        out[f"acc,{v}"] = float(m.mean())
        out[f"acc_stderr,{v}"] = float(m.std(ddof=1) / math.sqrt(m.size))
    return out


def wer_rows(errors, lengths):
    return [
        {
            "doc_id": f"utt{i}",
            "reference": "x",
            "wer_errors": int(e),
            "wer_reference_length": int(n),
            "cer_errors": int(e) * 3,
            "cer_reference_length": int(n) * 5,
        }
        for i, (e, n) in enumerate(zip(errors, lengths, strict=True))
    ]


def wer_entry(rows, task="resynth_wer"):
    out = {"alias": task}
    for u in ("wer", "cer"):
        e = sum(r[f"{u}_errors"] for r in rows)
        n = sum(r[f"{u}_reference_length"] for r in rows)
        out[f"{u},none"] = e / n
        out[f"{u}_stderr,none"] = 0.05
    return out


def results(tasks: dict[str, list[dict]]) -> dict:
    """A results dict for ``{task: samples rows}``: choice tasks by default, WER for resynth_*."""
    res: dict = {"results": {}, "higher_is_better": {}, "scoring": {}}
    for task, rows in tasks.items():
        if task.startswith("resynth"):
            res["results"][task] = wer_entry(rows, task)
            res["higher_is_better"][task] = {"wer": False, "cer": False}
            res["scoring"][task] = {"scorer": "wer", "primary_metric": "wer,none"}
        else:
            res["results"][task] = choice_entry(rows, task)
            res["higher_is_better"][task] = {"acc": True}
            res["scoring"][task] = {
                "scorer": "zr2021_syntactic",
                "variants": ["nll_sum", "nll_mean"],
                "primary_metric": "acc,nll_sum",
            }
    return res


def write_run(folder: Path, tasks: dict[str, list[dict]], samples=True, res=None) -> Path:
    """``results_<ts>.json`` and, beside it, ``samples_<task>_<ts>.jsonl``; the results path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{TS}.json"
    path.write_text(json.dumps(res or results(tasks)))
    if samples:
        for task, rows in tasks.items():
            with open(folder / f"samples_{task}_{TS}.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def degraded_pair():
    """40 units, 30 won; NEW loses 6 of them and wins nothing back (acc 0.75 -> 0.60)."""
    base = [1] * 30 + [0] * 10
    new = [0] * 6 + [1] * 24 + [0] * 10
    return choice_rows(base), choice_rows(new)


# --- statistics, hand-computed and against independent formulations ---------------------------


def test_sign_test_hand_computed():
    # 12 units: base wins 10; NEW loses 6 of them and wins 1 of the 2 it lost.
    base = choice_rows([1] * 10 + [0, 0])
    new = choice_rows([0] * 6 + [1] * 4 + [1, 0])
    t = paired.choice_test("sblimp", "acc,nll_sum", base, new, resamples=0)
    assert t.test == "McNemar exact"  # every unit scores 0 or 1: McNemar on discordant units
    assert (t.n, t.note) == (12, "6 worse, 1 better")
    assert t.p == pytest.approx(8 / 128)  # P(X >= 6), X ~ Bin(7, 1/2): (C(7,6) + C(7,7)) / 2^7
    assert t.delta == pytest.approx(-5 / 12)
    assert (t.base, t.new) == (pytest.approx(10 / 12), pytest.approx(5 / 12))
    assert t.ci is None  # resamples=0: no interval
    # nothing changed: p = 1, delta 0
    same = paired.choice_test("sblimp", "acc,nll_sum", base, base)
    assert (same.p, same.delta, same.ci) == (1.0, 0.0, (0.0, 0.0))
    # improvements are never evidence of a regression
    # reversed: 1 worse, 6 better -> P(X >= 1) = 1 - 2^-7
    assert paired.choice_test("sblimp", "acc,nll_sum", new, base).p == pytest.approx(127 / 128)


def test_sign_test_units_average_voices_first():
    # 3 voices per unit; unit means 2/3 -> 1/3 count as one worse unit, not one worse row.
    base = choice_rows([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    new = choice_rows([[1, 0, 0], [1, 0, 0], [1, 1, 1]])
    t = paired.choice_test("sblimp", "acc,nll_sum", base, new, resamples=0)
    assert t.test == "sign test exact" and t.note == "1 worse, 0 better" and t.p == 0.5
    assert t.delta == pytest.approx(-1 / 9)  # (1/3 - 2/3) / 3 units
    item = paired.choice_test("x", "acc,nll_sum", base, new, weighting="item", resamples=0)
    assert item.delta == pytest.approx(-1 / 9)  # same row count per unit: same weighting


@pytest.mark.parametrize("worse,better", [(0, 0), (1, 0), (5, 0), (6, 1), (7, 9), (20, 11)])
def test_sign_test_against_enumeration(worse, better):
    n = worse + better
    if n <= 16:  # P(#worse >= observed) over every outcome of n fair coins
        hits = sum(sum(o) >= worse for o in itertools.product((0, 1), repeat=n))
    else:  # the same count, by binomial coefficients
        hits = sum(math.comb(n, k) for k in range(worse, n + 1))
    assert paired.sign_test_p(worse, better) == pytest.approx(hits / 2**n, rel=1e-12)


def test_holm_hand_computed_and_sequential():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> cumulative max .06
    assert paired.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert paired.holm([0.5]) == [0.5] and paired.holm([]) == []
    assert paired.adjust([0.02, 0.3], "bonferroni") == [0.04, 0.6]
    assert paired.adjust([0.02, 0.3], "none") == [0.02, 0.3]

    def step_down(p, alpha):
        """Holm as a procedure: walk the sorted p, reject while p_(i) <= alpha / (m - i)."""
        rejected = set()
        for i, j in enumerate(sorted(range(len(p)), key=lambda k: p[k])):
            if p[j] > alpha / (len(p) - i):
                break
            rejected.add(j)
        return rejected

    rng = np.random.default_rng(0)
    for _ in range(200):
        p = (rng.random(int(rng.integers(1, 8))) ** 3).tolist()
        adj = paired.holm(p)
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, a in enumerate(adj) if a <= alpha} == step_down(p, alpha)


def test_paired_bootstrap_against_numpy_loop():
    rng = np.random.default_rng(1)
    n = 30
    eb, lb = rng.integers(0, 5, n), rng.integers(3, 12, n)
    en = eb + rng.integers(0, 3, n)
    base, new = wer_rows(eb, lb), wer_rows(en, lb)
    t = paired.corpus_test("resynth_wer", "wer,none", base, new, resamples=1000, seed=7, alpha=0.05)
    assert t.test == "paired bootstrap" and t.n == n
    assert t.delta == pytest.approx(en.sum() / lb.sum() - eb.sum() / lb.sum())
    # The same resamples by hand: utterance indices drawn as scipy.stats.bootstrap draws them
    # for paired data (one index row per resample, shared by all four arrays), then both
    # corpus ratios recomputed on each.
    idx = np.random.default_rng(7).integers(0, n, (1000, n))
    d = en[idx].sum(1) / lb[idx].sum(1) - eb[idx].sum(1) / lb[idx].sum(1)
    assert t.ci == pytest.approx(tuple(np.percentile(d, [5, 95])), abs=1e-12)
    assert t.p == pytest.approx((1 + (d <= 0).sum()) / 1001)
    # Normal approximation as a sanity bound on the interval's width.
    assert t.ci[1] - t.ci[0] == pytest.approx(2 * 1.645 * d.std(), rel=0.15)


def test_choice_bootstrap_interval_against_numpy_loop():
    rng = np.random.default_rng(3)
    b = (rng.random(50) < 0.7).astype(int).tolist()
    n = [x if rng.random() < 0.8 else 1 - x for x in b]
    t = paired.choice_test(
        "ssc", "acc,nll_sum", choice_rows(b), choice_rows(n), resamples=800, seed=3, alpha=0.1
    )
    d = np.array(n, float) - np.array(b, float)
    idx = np.random.default_rng(3).integers(0, 50, (800, 50))
    assert t.ci == pytest.approx(tuple(np.percentile(d[idx].mean(1), [10, 90])), abs=1e-12)


def test_corpus_test_direction_and_identity():
    rows = wer_rows([1, 2, 0, 3], [5, 6, 4, 7])
    t = paired.corpus_test("resynth_wer", "wer,none", rows, rows)
    assert (t.delta, t.p, t.ci) == (0.0, 1.0, (0.0, 0.0))
    worse = wer_rows([3, 4, 2, 5], [5, 6, 4, 7])
    assert paired.corpus_test("resynth_wer", "wer,none", rows, worse).p < 0.01
    assert paired.corpus_test("resynth_wer", "wer,none", worse, rows).p == 1.0


# --- the gate ------------------------------------------------------------------------------------


def test_degraded_copy_fails_paired_but_passes_aggregate(tmp_path, capsys):
    base, new = degraded_pair()
    a = write_run(tmp_path / "base", {"sblimp": base})
    b = write_run(tmp_path / "new", {"sblimp": new})
    # the aggregate rule cannot see it: 0.15 drop < 2 * sqrt(0.069^2 + 0.078^2) = 0.21
    agg = compare(json.loads(a.read_text()), json.loads(b.read_text()), Tolerances())
    assert not failed(agg)
    assert main(["compare", str(a), str(b), "--aggregate"]) == 0
    capsys.readouterr()
    # the paired gate does: 6 units lost, none won, p = 2^-6
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("sblimp") and "nll_sum" in x)
    assert "McNemar exact" in line and "FAIL" in line and "6 worse, 0 better" in line
    assert "0.0156" in line and "-0.1500" in line
    assert "Holm-Bonferroni" in out and "alpha = 0.05" in out


def test_paired_gate_passes_identical_and_improved(tmp_path):
    base, new = degraded_pair()
    a = write_run(tmp_path / "a", {"sblimp": base})
    b = write_run(tmp_path / "b", {"sblimp": base})
    c = write_run(tmp_path / "c", {"sblimp": new})
    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(c), str(a)]) == 0  # NEW better: never a failure


def test_sign_test_with_headline_up_does_not_fail():
    # 20 units lose one voice of three, 8 units win all three back: most units are worse
    # (sign test p = 0.018) but the headline went up; the gate needs both to fail.
    base = choice_rows([[1, 1, 0]] * 20 + [[0, 0, 0]] * 8 + [[1, 0, 0]] * 12)
    new = choice_rows([[1, 0, 0]] * 20 + [[1, 1, 1]] * 8 + [[1, 0, 0]] * 12)
    base_res, new_res = results({"sblimp": base}), results({"sblimp": new})
    rows = compare_paired(base_res, new_res, {"sblimp": base}, {"sblimp": new}, Tolerances())
    head = rows[0]
    assert head.p is not None and head.p < 0.05 and head.delta is not None and head.delta > 0
    assert head.status == "ok"


def test_holm_across_tasks(tmp_path):
    # two tasks, each 5 units lost and none won: raw p = 1/32 each; Holm: 1/16 > 0.05
    base = choice_rows([1] * 10)
    new = choice_rows([0] * 5 + [1] * 5)
    tasks_b, tasks_n = {"sblimp": base, "swuggy": base}, {"sblimp": new, "swuggy": new}
    bres, nres = results(tasks_b), results(tasks_n)
    for method, fails in (("holm", False), ("bonferroni", False), ("none", True)):
        rows = compare_paired(
            bres, nres, tasks_b, tasks_n, Tolerances(), PairedOptions(multiple=method)
        )
        gated = [r for r in rows if r.p_adj is not None]
        assert len(gated) == 2 and all(r.p == pytest.approx(1 / 32) for r in gated)
        assert gate_failed(rows) is fails
        if method == "holm":
            assert [r.p_adj for r in gated] == pytest.approx([1 / 16, 1 / 16])
    a = write_run(tmp_path / "a", tasks_b)
    b = write_run(tmp_path / "b", tasks_n)
    assert main(["compare", str(a), str(b)]) == 0
    assert main(["compare", str(a), str(b), "--multiple", "none"]) == 1
    assert main(["compare", str(a), str(b), "--alpha", "0.1"]) == 1  # 1/16 <= 0.1


def test_wer_task_paired_bootstrap(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 15, 40)
    eb = rng.integers(0, 3, 40)
    tasks_b = {"resynth_wer": wer_rows(eb, lengths)}
    tasks_n = {"resynth_wer": wer_rows(eb + (rng.random(40) < 0.5), lengths)}
    a = write_run(tmp_path / "a", tasks_b)
    b = write_run(tmp_path / "b", tasks_n)
    assert main(["compare", str(a), str(b), "--resamples", "500"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("resynth_wer  wer"))
    assert "paired bootstrap" in line and "FAIL" in line
    assert "cer,none" in out  # the other rate is shown (info), not gated
    assert main(["compare", str(b), str(a), "--resamples", "500"]) == 0


def test_task_without_samples_uses_aggregate_and_missing_task_fails(tmp_path, capsys):
    base, _ = degraded_pair()
    other = choice_rows([1, 0, 1, 1])
    a = write_run(tmp_path / "a", {"sblimp": base, "ssc": other})
    b = write_run(tmp_path / "b", {"sblimp": base, "ssc": other})
    (tmp_path / "b" / f"samples_ssc_{TS}.jsonl").unlink()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    ssc = [x for x in out.splitlines() if x.startswith("ssc")]
    assert ssc and all("aggregate" in x and "no samples in NEW" in x for x in ssc)
    # a task of BASE that NEW dropped still fails
    c = write_run(tmp_path / "c", {"sblimp": base})
    assert main(["compare", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert any(x.startswith("ssc") and "missing" in x for x in out.splitlines())


def test_abx_samples_fall_back_to_aggregate():
    rows = [
        {"speaker_mode": "within", "context_mode": "within", "phone_a": "a", "phone_b": "b",
         "error": 0.1}
    ]  # fmt: skip
    res = {
        "results": {"abx_within": {"abx_within,none": 0.1, "abx_within_stderr,none": 0.01}},
        "higher_is_better": {"abx_within": {"abx_within": False}},
        "scoring": {"abx_within": {"primary_metric": "abx_within,none"}},
    }
    out = compare_paired(res, res, {"abx_within": rows}, {"abx_within": rows}, Tolerances())
    assert [(r.test, r.status) for r in out] == [("aggregate", "ok")]
    assert "no independent paired unit" in out[0].note


def test_explicit_samples_folders(tmp_path, capsys):
    base, new = degraded_pair()
    a = write_run(tmp_path / "a", {"sblimp": base})
    b = write_run(tmp_path / "b", {"sblimp": new})
    baseline = tmp_path / "baseline.json"  # a committed baseline: no timestamp in its name
    baseline.write_text(a.read_text())
    assert main(["compare", str(baseline), str(b)]) == 0  # no samples found: aggregate rule
    assert "aggregate rule" in capsys.readouterr().out
    assert main(["compare", str(baseline), str(b), "--samples_base", str(tmp_path / "a")]) == 1
    assert "McNemar exact" in capsys.readouterr().out
    # two runs' files for one task in a folder: ambiguous
    (tmp_path / "a" / "samples_sblimp_2024-01-01T00-00-00.0.jsonl").write_text("{}\n")
    assert main(["compare", str(baseline), str(b), "--samples_base", str(tmp_path / "a")]) == 2
    assert "several samples files for task 'sblimp'" in capsys.readouterr().err


def test_unmatched_items_are_an_error(tmp_path, capsys):
    base, _ = degraded_pair()
    a = write_run(tmp_path / "a", {"sblimp": base})
    b = write_run(tmp_path / "b", {"sblimp": base[:-3]})
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "task sblimp: samples do not pair up" in err
    assert "40 rows in BASE, 37 in NEW; 3 only in BASE, 0 only in NEW" in err
    with pytest.raises(DataError, match="only in NEW"):
        paired.choice_test("sblimp", "acc,nll_sum", base[:-1], base)


def test_samples_of_another_run_are_refused(tmp_path, capsys):
    base, new = degraded_pair()
    a = write_run(tmp_path / "a", {"sblimp": base})
    b = write_run(tmp_path / "b", {"sblimp": new}, res=results({"sblimp": base}))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "samples of sblimp do not reproduce results.sblimp.acc,nll_sum" in err
    bad = tmp_path / "a" / f"samples_sblimp_{TS}.jsonl"
    bad.write_text("not json\n")
    assert main(["compare", str(a), str(b)]) == 2
    assert "line 1: not JSON" in capsys.readouterr().err


def test_bad_flags(tmp_path, capsys):
    a = write_run(tmp_path / "a", {"sblimp": choice_rows([1, 0])})
    for flags in (["--alpha", "0.7"], ["--alpha", "x"], ["--exact", "--aggregate"]):
        with pytest.raises(SystemExit) as e:
            main(["compare", str(a), str(a), *flags])
        assert e.value.code == 2
    capsys.readouterr()


# --- --exact ------------------------------------------------------------------------------------


def test_exact_mode(tmp_path, capsys):
    base, _ = degraded_pair()
    a = write_run(tmp_path / "a", {"sblimp": base})
    b = write_run(tmp_path / "b", {"sblimp": base})
    assert main(["compare", str(a), str(b), "--exact"]) == 0
    assert "per-sample rows compared for 1 task(s)" in capsys.readouterr().out
    # a 1e-9 change of one metric fails (the paired and aggregate rules let it pass)
    res = json.loads(b.read_text())
    res["results"]["sblimp"]["acc,nll_mean"] += 1e-9
    c = write_run(tmp_path / "c", {"sblimp": base}, samples=False, res=res)
    assert main(["compare", str(a), str(c), "--aggregate"]) == 0
    assert main(["compare", str(a), str(c), "--exact"]) == 1
    out = capsys.readouterr().out
    assert any("acc,nll_mean" in x and "FAIL" in x for x in out.splitlines())
    # one per-sample value changed (results identical) fails too
    rows = [dict(r) for r in base]
    rows[3]["logprob"] = [-1.0, -2.0000001]
    d = write_run(tmp_path / "d", {"sblimp": rows}, res=json.loads(a.read_text()))
    assert main(["compare", str(a), str(d), "--exact"]) == 1
    assert "samples: 2 of 80 rows differ" in capsys.readouterr().out
    # stderr "N/A" equal to "N/A", NaN equal to NaN; a missing metric fails
    x = {"results": {"t": {"m,none": float("nan"), "m_stderr,none": "N/A"}}}
    assert not failed(compare_exact(x, x))
    assert failed(compare_exact(x, {"results": {"t": {"m,none": float("nan")}}}))


# --- the power benchmark runs -----------------------------------------------------------------


def test_gate_power_benchmark_runs(tmp_path, capsys):
    rows = choice_rows([1] * 30 + [0] * 20, voices=2)
    path = write_run(tmp_path / "run", {"sblimp": rows})
    spec = importlib.util.spec_from_file_location("gate_power", ROOT / "benchmarks/gate_power.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    samples = path.parent / f"samples_sblimp_{TS}.jsonl"
    assert mod.main([str(samples), "--drops", "0,0.3", "--replicates", "5", "--churn", "0"]) == 0
    out = capsys.readouterr().out
    assert "smallest drop with >= 80% power: paired 0.3000" in out
