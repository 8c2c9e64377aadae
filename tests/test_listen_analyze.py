"""``slm-eval listen analyze``: screening rules, sign correction, statistics, results files.

Raters are simulated by writing answers files in the server's format (the browser test drives
the real page); every expected number is computed here from the answers, independently of the
analysis code (scipy for the tests, plain numpy for the means).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as ss
from test_listen_study import make_runs

from speechlm_eval.errors import DataError
from speechlm_eval.leaderboard import main as leaderboard
from speechlm_eval.listen.analyze import analyze_study, write_results
from speechlm_eval.listen.answers import read_rater, write_rater
from speechlm_eval.listen.study import Study, create_study
from speechlm_eval.results import load_results


def answer(study: Study, rater: str, rate: Callable[[dict, dict], object], skip: int = 0) -> None:
    """Write ``rater``'s answers: ``rate(trial, shown)`` -> value, as the page would send it."""
    rec = read_rater(study, rater)
    plan = study.plan(rater)
    for shown in plan[: len(plan) - skip]:
        t = study.trial(shown["id"])
        rec["answers"][t["id"]] = {
            "trial": t["id"],
            "value": rate(t, shown),
            "shown": shown["stimuli"],
            "elapsed_ms": 900,
            "time": "2026-12-05T00:00:00+00:00",
        }
    write_rater(study, rec)


def canonical_cmos(value_for: dict[str, int]) -> Callable[[dict, dict], int]:
    """A rater whose opinion 'system vs baseline' is ``value_for[system]``, answering on the
    page's scale 'second vs first' in whatever order the page showed the pair."""

    def rate(t: dict, shown: dict) -> int:
        if t["kind"] == "gold":
            v = 0 if t["stimuli"][0] == t["stimuli"][1] else -3
        else:
            v = value_for[t["system"]]
        return v if shown["stimuli"] == t["stimuli"] else -v

    return rate


def test_cmos_is_sign_corrected_and_tested_against_zero(tmp_path):
    st = create_study(make_runs(tmp_path, n_items=6), "cmos", tmp_path / "s", seed=2)
    opinion = {"alpha": 2, "beta": -1}
    for r in ("r1", "r2", "r3"):
        answer(st, r, canonical_cmos(opinion))
    # answers "+2, second better" whatever the order: the gold pair catches it
    answer(st, "naive", lambda t, shown: 2)
    a = analyze_study(st)
    assert a["raters"]["naive"]["excluded"] == ["failed_gold", "straight_lining"]
    assert a["n_raters_kept"] == 3
    # the page showed both orders (else the correction would be untested)
    raw = json.loads((st.root / "answers" / "r1.json").read_text())["answers"].values()
    assert {r["value"] for r in raw} >= {2, -2}
    assert a["systems"]["alpha"]["mean"] == 2 and a["systems"]["beta"]["mean"] == -1
    assert a["systems"]["alpha"]["n"] == 18
    assert a["systems"]["alpha"]["p_wilcoxon_vs_0"] == pytest.approx(ss.wilcoxon([2] * 18).pvalue)
    p = [a["systems"][s]["p_wilcoxon_vs_0"] for s in ("alpha", "beta")]
    assert a["systems"]["alpha"]["p_holm"] == pytest.approx(min(1, 2 * max(p)))  # both equal


def test_mushra_post_screening_bs1534(tmp_path):
    # 7 items: one bad trial is 14.3 % (kept), two are 28.6 % (excluded)
    st = create_study(make_runs(tmp_path, n_items=7), "mushra", tmp_path / "s")
    items = st.data["items"]
    score = {"alpha": 70, "beta": 40, "anchor35": 15, "anchor70": 45, "hidden_reference": 100}

    def rater(bad_hidden: set[int], bad_mid: set[int], jitter: int):
        def rate(t: dict, shown: dict) -> dict:
            i = items.index(t["item"])
            out = {}
            for s in shown["stimuli"]:
                system = st.stimuli[s]["system"]
                v = score[system] + (jitter * i) % 7
                if system == "hidden_reference" and i in bad_hidden:
                    v = 80
                if system == "anchor70" and i in bad_mid:
                    v = 95
                out[s] = min(v, 100)
            return out

        return rate

    answer(st, "ok", rater(set(), set(), 1))
    answer(st, "one_slip", rater({3}, set(), 2))
    answer(st, "ref_low", rater({1, 4}, set(), 3))
    answer(st, "mid_high", rater(set(), {0, 5}, 4))
    answer(st, "flat", lambda t, shown: {s: 50 for s in shown["stimuli"]})
    a = analyze_study(st)
    ex = {r: v["excluded"] for r, v in a["raters"].items()}
    assert ex["ok"] == [] and ex["one_slip"] == []
    assert ex["ref_low"] == ["mushra_hidden_reference"]
    assert ex["mid_high"] == ["mushra_mid_anchor"]
    assert ex["flat"] == ["mushra_hidden_reference", "straight_lining"]
    assert a["exclusions"] == {
        "mushra_hidden_reference": 2,
        "mushra_mid_anchor": 1,
        "straight_lining": 1,
    }
    kept = ("ok", "one_slip")
    for system in ("alpha", "beta", "hidden_reference", "anchor35"):
        vals = []
        for r in kept:
            rec = json.loads((st.root / "answers" / f"{r}.json").read_text())
            for ans in rec["answers"].values():
                vals += [v for s, v in ans["value"].items() if st.stimuli[s]["system"] == system]
        e = a["systems"][system]
        assert e["mean"] == pytest.approx(np.mean(vals)) and e["n"] == 14
        lo, hi = ss.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=ss.sem(vals))
        assert e["ci95_t"] == pytest.approx([lo, hi])
    pw = a["pairwise"][0]
    assert (pw["a"], pw["b"], pw["n_pairs"]) == ("alpha", "beta", 14)


def test_ab_preferences_sign_test_and_position_bias(tmp_path):
    st = create_study(
        make_runs(tmp_path, systems=("alpha", "beta", "gamma"), n_items=5), "ab", tmp_path / "s"
    )

    def prefers(order: list[str]) -> Callable[[dict, dict], str]:
        def rate(t: dict, shown: dict) -> str:
            if t["kind"] == "gold":
                return t["expect"]
            a, b = t["systems"]
            return t["stimuli"][0] if order.index(a) < order.index(b) else t["stimuli"][1]

        return rate

    answer(st, "p1", prefers(["alpha", "beta", "gamma"]))
    answer(st, "p2", prefers(["alpha", "gamma", "beta"]))
    answer(st, "left", lambda t, shown: shown["stimuli"][0])  # always the first position
    answer(st, "half", prefers(["alpha", "beta", "gamma"]), skip=4)
    a = analyze_study(st)
    assert "straight_lining" in a["raters"]["left"]["excluded"]
    assert a["raters"]["half"]["excluded"] == ["incomplete"]
    pairs = {(p["a"], p["b"]): p for p in a["pairwise"]}
    ab = pairs[("alpha", "beta")]
    assert (ab["wins_a"], ab["wins_b"]) == (10, 0)
    assert ab["p_sign_test"] == pytest.approx(2 * 0.5**10)
    bg = pairs[("beta", "gamma")]
    assert (bg["wins_a"], bg["wins_b"]) == (5, 5) and bg["p_sign_test"] == pytest.approx(1.0)
    assert a["systems"]["alpha"]["mean"] == 1.0  # won all 20 of its comparisons


def test_mos_results_files_load_and_show_as_human_on_the_leaderboard(tmp_path):
    st = create_study(make_runs(tmp_path), "mos", tmp_path / "s")
    good = {"alpha": 4, "beta": 2}

    def rate(k: int) -> Callable[[dict, dict], int]:
        def f(t: dict, shown: dict) -> int:
            if t["kind"] != "test":
                return t["expect"][0]
            return good[t["system"]] + (k + st.data["items"].index(t["item"])) % 2

        return f

    for k in range(3):
        answer(st, f"r{k}", rate(k))
    a = analyze_study(st)
    assert a["n_raters_kept"] == 3
    assert "ci95_crowdmos" in a["systems"]["alpha"]
    out = tmp_path / "out"
    files = write_results(st, a, out)
    assert len(files) == 2
    res = load_results(out / "alpha" / files[0].name)
    assert res["results"]["human_mos"]["mos,none"] == pytest.approx(a["systems"]["alpha"]["mean"])
    assert res["configs"]["human_mos"]["family"] == "quality"
    assert res["scoring"]["human_mos"]["study"]["id"] == st.study_id
    assert res["scoring"]["human_mos"]["raters_kept"] == 3
    assert res["config"]["model_identity"] == {"name": "alpha"}  # same leaderboard row
    lb = tmp_path / "lb"
    leaderboard([str(f) for f in files], str(lb), reported=False, plots=False)
    md = (lb / "leaderboard.md").read_text()
    assert "MOS (human listening test)" in md and "## Quality" in md


def test_tampered_or_foreign_answers_files_are_refused(tmp_path):
    st = create_study(make_runs(tmp_path), "mos", tmp_path / "s")
    answer(st, "r1", lambda t, shown: 3)
    path = st.root / "answers" / "r1.json"
    data = json.loads(path.read_text())
    tid = next(iter(data["answers"]))
    bad = json.loads(json.dumps(data))
    bad["answers"][tid]["value"] = 9
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"r1\.json: answers\.t\d+: value"):
        analyze_study(st)
    other = dict(data, study_id="0" * 16)
    path.write_text(json.dumps(other))
    with pytest.raises(DataError, match="not this study"):
        analyze_study(st)
    path.write_text(json.dumps(data))
    dup = tmp_path / "again.json"
    dup.write_text(json.dumps(data))
    with pytest.raises(DataError, match="already answered"):
        analyze_study(st, [Path(dup)])


def test_no_answers_is_a_clear_error(tmp_path):
    st = create_study(make_runs(tmp_path), "mos", tmp_path / "s")
    with pytest.raises(DataError, match="no answers yet"):
        analyze_study(st)
