"""The regression gate: stderr-aware pass/fail, direction, missing metrics, tolerance files."""

from __future__ import annotations

import json

import pytest

from speechlm_eval.cli import main
from speechlm_eval.compare import Tolerances, compare, failed


def _res(val, se=0.01, task="swuggy", hib=True, extra=None):
    entry = {"alias": task, "acc,nll_sum": val, "acc_stderr,nll_sum": se}
    entry.update(extra or {})
    return {"results": {task: entry}, "higher_is_better": {task: {"acc": hib}}}


def test_stderr_aware_threshold():
    tol = Tolerances(default=0.01, k=2.0)
    # combined se = sqrt(2) * 0.02 = 0.0283; allowed = 0.0566
    rows = compare(_res(0.80, 0.02), _res(0.75, 0.02), tol)
    assert rows[0].allowed == pytest.approx(2 * (2 * 0.02**2) ** 0.5)
    assert not failed(rows)
    assert failed(compare(_res(0.80, 0.02), _res(0.74, 0.02), tol))
    # without stderr, the absolute tolerance decides
    assert failed(compare(_res(0.80, "N/A"), _res(0.785, "N/A"), tol))
    assert not failed(compare(_res(0.80, "N/A"), _res(0.795, "N/A"), tol))
    # improvements never fail
    assert not failed(compare(_res(0.5, 0.0), _res(0.9, 0.0), tol))


def test_lower_is_better_direction():
    tol = Tolerances(default=0.01, k=0)
    assert failed(compare(_res(0.10, hib=False), _res(0.20, hib=False), tol))
    assert not failed(compare(_res(0.20, hib=False), _res(0.10, hib=False), tol))


def test_missing_task_or_metric_fails_new_task_passes():
    tol = Tolerances()
    rows = compare(_res(0.8), {"results": {}}, tol)
    assert failed(rows) and rows[0].status == "missing"
    rows = compare({"results": {}}, _res(0.8), tol)
    assert not failed(rows) and rows[0].status == "new"


def test_tolerance_file_and_cli(tmp_path, capsys):
    tf = tmp_path / "tol.yaml"
    tf.write_text("default: 0.001\nk: 0\ntasks:\n  swuggy: 0.2\n")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_res(0.8)))
    b.write_text(json.dumps(_res(0.7)))
    assert main(["compare", str(a), str(b), "--tolerance_file", str(tf)]) == 0
    assert main(["compare", str(a), str(b), "--tolerance", "0.05", "--k", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 failed" in out
    tf.write_text("defaults: 1\n")
    assert main(["compare", str(a), str(b), "--tolerance_file", str(tf)]) == 2
    assert "unknown key(s) ['defaults']" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "none.json")]) == 2


def test_degraded_samples_fail_the_gate_that_aggregates_miss(tmp_path):
    """40 pairs, 30 won; NEW loses 6 of them and wins none back: a 0.15 drop inside the
    aggregate allowance (0.21), but 6 of 6 changed pairs went down (one-sided p = 1/64)."""
    ts = "2025-01-02T03-04-05.678901"
    paths = []
    for name, scores in (("base", [1] * 30 + [0] * 10), ("new", [0] * 6 + [1] * 24 + [0] * 10)):
        d = tmp_path / name
        d.mkdir()
        rows = [
            {"doc_id": f"u{i}", "candidates": [f"p{i}", f"f{i}"], "score,nll_sum": float(s)}
            for i, s in enumerate(scores)
        ]
        (d / f"samples_swuggy_{ts}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        acc = sum(scores) / len(scores)
        se = (acc * (1 - acc) / (len(scores) - 1)) ** 0.5
        res = _res(acc, se)
        res["scoring"] = {"swuggy": {"primary_metric": "acc,nll_sum"}}
        (d / f"results_{ts}.json").write_text(json.dumps(res))
        paths.append(str(d / f"results_{ts}.json"))
    assert main(["compare", *paths]) == 1  # paired: the samples are beside the results
    assert main(["compare", *paths, "--aggregate"]) == 0
