#!/usr/bin/env python
"""Power of the regression gate: which accuracy drop does ``slm-eval compare`` detect?

Usage::

    python benchmarks/gate_power.py SAMPLES.jsonl [--results RESULTS.json] [--variant V]
        [--drops 0,0.005,...] [--churn 0,0.1] [--replicates R] [--alpha A] [--family M]
        [--seed S]

Takes one likelihood task's samples file (``slm-eval run --log_samples``) as BASE and builds
seeded degraded copies of it as NEW, for a range of true accuracy drops, ``R`` replicates
each. A copy is made in two steps, on doc_id units (the headline's first averaging step):

1. *churn* ``c`` (run-to-run instability of a changed model, no net effect): each unit, with
   probability ``c``, takes the per-row outcomes of a random unit (same number of rows);
2. *drop* ``delta``: each unit the copy still wins (mean score > 0), with probability
   ``delta / acc``, is flipped to lost (every row 0). The expected accuracy drop is ``delta``.

On every copy it runs:

- the **paired gate** (:func:`speechlm_eval.paired.choice_test`: exact sign / McNemar test of
  the units, one-sided; detection = ``p <= alpha / M`` and the headline moved down, which is
  Holm over a family of ``M`` tasks whose other ``M - 1`` are unchanged; ``--family 1``: one
  task, no multiplicity);
- the **aggregate gate** (:func:`speechlm_eval.compare.compare`, default tolerance 0.01,
  ``k = 2``) on the metrics the task's real scorer computes from the copy: on the headline
  only, and on every metric of the variant (headline and breakdowns, as ``slm-eval compare``
  without samples checks them).

It prints the detection rate of each gate per drop (drop 0 = the false-alarm rate), the
smallest drop of the grid detected with at least 80 % power by each, and their ratio.
Exit code 0 always.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from speechlm_eval import paired, registry
from speechlm_eval.compare import Tolerances, compare
from speechlm_eval.dataset import ChoiceItem
from speechlm_eval.pipelines.base import metric_entries

DROPS = "0,0.0025,0.005,0.0075,0.01,0.0125,0.015,0.02,0.025,0.03,0.04,0.05,0.06,0.08,0.1"


def score_rows(scorer: Any, rows: list[dict[str, Any]], key: str, filt: str) -> dict[str, Any]:
    """The task's results entry for per-row scores ``rows[i][key]``, by its real scorer: each
    row becomes per-candidate scores that reproduce the row's outcome (1, 0 or a tie)."""
    items, scores = [], {}
    for r in rows:
        cands = [str(c) for c in r["candidates"]]
        s = float(r[key])
        items.append(ChoiceItem(str(r["doc_id"]), tuple(cands), dict(r.get("meta") or {})))
        pos, foil = (1.0, 0.0) if s == 1.0 else (0.0, 1.0) if s == 0.0 else (0.0, 0.0)
        scores[cands[0]] = pos
        scores.update({c: foil for c in cands[1:]})
    entry, hib = metric_entries(scorer.score(items, scores), filt)
    return {"results": {"task": entry}, "higher_is_better": {"task": hib}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("samples", type=Path, help="samples_<task>_<ts>.jsonl of a likelihood task")
    ap.add_argument("--results", type=Path, default=None, help="default: beside, same <ts>")
    ap.add_argument("--variant", default=None, help="score variant (default: the headline's)")
    ap.add_argument("--drops", default=DROPS, help="comma-separated true accuracy drops")
    ap.add_argument("--churn", default="0", help="comma-separated churn probabilities")
    ap.add_argument("--replicates", type=int, default=400)
    ap.add_argument("--alpha", type=float, default=paired.ALPHA)
    ap.add_argument("--family", type=int, default=1, help="Holm family size M (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    m = paired.SAMPLES_NAME.match(a.samples.name)
    if not m:
        ap.error(f"{a.samples}: not a samples_<task>_<ts>.jsonl file")
    task = m["task"]
    res_path = a.results or a.samples.parent / f"results_{m['ts']}.json"
    res = json.loads(res_path.read_text(encoding="utf-8"))
    scoring = res["scoring"][task]
    primary = scoring["primary_metric"]
    name, _, filt = primary.partition(",")
    filt = a.variant or filt
    metric, key = f"{name},{filt}", f"score,{filt}"
    scorer = registry.get("scorers", scoring["scorer"])({})
    weighting = "unit" if str(scoring["scorer"]).startswith("zr2021") else "item"

    rows = paired.read_rows(a.samples)
    base_res = score_rows(scorer, rows, key, filt)
    acc = base_res["results"]["task"][metric]
    if not np.isclose(acc, res["results"][task][metric]):
        raise SystemExit(f"scorer gives {acc} but {res_path} says {res['results'][task][metric]}")

    # Units: the rows of each doc_id, grouped by row count (churn copies within a group).
    unit_of: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        unit_of.setdefault(str(r["doc_id"]), []).append(i)
    units = list(unit_of.values())
    base_scores = np.array([float(r[key]) for r in rows])
    by_size: dict[int, list[int]] = {}
    for u, idx in enumerate(units):
        by_size.setdefault(len(idx), []).append(u)

    tol = Tolerances()
    drops = [float(x) for x in a.drops.split(",")]
    churns = [float(x) for x in a.churn.split(",")]
    rng = np.random.default_rng(a.seed)
    level = a.alpha / a.family
    print(
        f"task {task} ({a.samples.name}): {len(rows)} rows, {len(units)} units, "
        f"{metric} = {acc:.4f}, {weighting}-weighted headline"
    )
    print(
        f"paired gate: one-sided exact sign test at alpha = {a.alpha:g}"
        + (f", Holm over {a.family} tasks (threshold {level:.4g})" if a.family > 1 else "")
        + f"; aggregate gate: tolerance {tol.default}, k = {tol.k}; "
        f"{a.replicates} replicates per drop, seed {a.seed}"
    )
    t0 = time.perf_counter()
    for churn in churns:
        print(f"\nchurn {churn:g}")
        print("true drop  mean drop  paired  aggregate(headline)  aggregate(all metrics)")
        power: dict[str, dict[float, float]] = {"paired": {}, "agg_head": {}, "agg_all": {}}
        for delta in drops:
            hits = {k: 0 for k in power}
            realised = []
            q = delta / acc
            for _ in range(a.replicates):
                new = base_scores.copy()
                for members in by_size.values():
                    chosen = [u for u in members if rng.random() < churn]
                    src = rng.choice(members, size=len(chosen))
                    for u, v in zip(chosen, src, strict=True):
                        new[units[u]] = base_scores[units[v]]
                for idx in units:
                    if new[idx].mean() > 0 and rng.random() < q:
                        new[idx] = 0.0
                new_rows = [{**r, key: float(s)} for r, s in zip(rows, new, strict=True)]
                t = paired.choice_test(
                    task, metric, rows, new_rows, weighting=weighting, alpha=a.alpha, resamples=0
                )
                realised.append(-t.delta)
                hits["paired"] += t.p <= level and t.delta < 0
                new_res = score_rows(scorer, new_rows, key, filt)
                agg = compare(base_res, new_res, tol)
                hits["agg_head"] += any(r.metric == metric and r.status == "FAIL" for r in agg)
                hits["agg_all"] += any(r.status == "FAIL" for r in agg)
            for k in power:
                power[k][delta] = hits[k] / a.replicates
            print(
                f"{delta:9.4f}  {np.mean(realised):9.4f}  {power['paired'][delta]:6.3f}  "
                f"{power['agg_head'][delta]:19.3f}  {power['agg_all'][delta]:22.3f}"
            )
        mdd = {k: next((d for d in drops if d > 0 and v[d] >= 0.8), None) for k, v in power.items()}

        def fmt(x: float | None) -> str:
            return f"{x:.4f}" if x is not None else f"> {max(drops):g}"

        print(
            f"smallest drop with >= 80% power: paired {fmt(mdd['paired'])}, aggregate "
            f"(headline) {fmt(mdd['agg_head'])}, aggregate (all metrics) {fmt(mdd['agg_all'])}"
        )
        if mdd["paired"] and mdd["agg_head"]:
            print(f"ratio aggregate(headline) / paired: {mdd['agg_head'] / mdd['paired']:.2f}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
