"""Screen the raters of a study and compute its statistics; write them as results files.

Screening (every exclusion is counted and reported, with its reason):

- ``incomplete``: the rater did not answer every trial (P.808 uses only complete sessions).
- ``failed_gold`` / ``failed_trap``: a gold clip answered outside its known range (P.808: within
  1 of the known score), or the trapping clip answered wrongly.
- ``mushra_hidden_reference`` / ``mushra_mid_anchor``: ITU-R BS.1534-3 post-screening, the hidden
  reference rated below 90, or the mid anchor (7 kHz) above 90, in more than 15 % of the items.
- ``straight_lining``: the variance of the rater's scores below 0.1 on the 5-point scale (P.808's
  rule), scaled by the square of the scale's range for the other scales (so the same rule on
  0-100 is a variance below 62.5); for A/B, the same position chosen in every trial.

Statistics on the raters kept: per system the mean with its Student-t 95 % interval (and the
crowdMOS listener x item interval for MOS and SMOS), pairwise Wilcoxon signed-rank tests on
ratings paired by (rater, item) with Holm's correction, CMOS against 0 (Wilcoxon, Holm), and for
A/B the preference with an exact sign test (Holm).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import DataError
from ..provenance import package_versions
from ..results import (
    RunResult,
    TaskResult,
    atomic_write_text,
    dumps,
    load_results,
    sanitize_model_name,
    timestamp,
    to_results_dict,
)
from .answers import load_all_answers
from .stats import crowdmos, holm, sign_test, t_interval, wilcoxon_p
from .study import REFERENCE, SCALES, Study

ANALYSIS_VERSION = 1
P808_MIN_VARIANCE = 0.1  # on the 1..5 scale (range 4)
BS1534_LIMIT = 0.15
METRIC = {"mos": "mos", "smos": "smos", "cmos": "cmos", "mushra": "mushra", "ab": "preference"}


def _min_variance(test: str) -> float:
    sc = SCALES[test]
    return P808_MIN_VARIANCE * ((sc["max"] - sc["min"]) / 4) ** 2


def _score(study: Study, trial: dict[str, Any], ans: dict[str, Any]) -> Any:
    """The answer in the study's canonical orientation: CMOS sign-corrected so it always reads
    'system (second canonical stimulus) compared to the baseline (first)'."""
    if study.test == "cmos":
        canonical_order = ans["shown"] == trial["stimuli"]
        return ans["value"] if canonical_order else -ans["value"]
    return ans["value"]


def screen(study: Study, record: dict[str, Any]) -> list[str]:
    """The reasons to exclude one rater (empty: kept)."""
    answers = record["answers"]
    reasons: list[str] = []
    if set(answers) != {t["id"] for t in study.trials}:
        reasons.append("incomplete")
    test = study.test
    tests, values = 0, []
    hidden_low = mid_high = 0
    positions = []
    for t in study.trials:
        a = answers.get(t["id"])
        if a is None:
            continue
        v = _score(study, t, a)
        if t["kind"] in ("gold", "trap"):
            exp = t.get("expect")
            ok = (v == exp) if test == "ab" else (exp[0] <= v <= exp[1])
            if not ok:
                tag = f"failed_{t['kind']}"
                if tag not in reasons:
                    reasons.append(tag)
            continue
        tests += 1
        if test == "mushra":
            for sid, s in v.items():
                sys = study.stimuli[sid]["system"]
                if sys == "hidden_reference" and s < 90:
                    hidden_low += 1
                if sys == "anchor70" and s > 90:
                    mid_high += 1
                values.append(s)
        elif test == "ab":
            positions.append(a["shown"].index(v))
        else:
            values.append(a["value"])  # as answered: straight-lining is about the raw answers
    if test == "mushra" and tests:
        if hidden_low / tests > BS1534_LIMIT:
            reasons.append("mushra_hidden_reference")
        if mid_high / tests > BS1534_LIMIT:
            reasons.append("mushra_mid_anchor")
    if test == "ab":
        if len(positions) >= 4 and len(set(positions)) == 1:
            reasons.append("straight_lining")
    elif len(values) >= 2 and float(np.var(values, ddof=1)) < _min_variance(test):
        reasons.append("straight_lining")
    return reasons


def _ci(m: Any) -> dict[str, Any]:
    return {"mean": m.mean, "stderr": m.se, "ci95_t": [m.low, m.high], "n": m.n}


def _ratings(study: Study, kept: list[dict[str, Any]]) -> dict[str, dict[tuple[str, str], float]]:
    """system -> {(rater, item): score} over the test trials of the kept raters."""
    out: dict[str, dict[tuple[str, str], float]] = {}
    for rec in kept:
        r = rec["rater"]
        for t in study.trials:
            if t["kind"] != "test":
                continue
            a = rec["answers"].get(t["id"])
            if a is None:
                continue
            v = _score(study, t, a)
            if study.test == "mushra":
                for sid, s in v.items():
                    out.setdefault(study.stimuli[sid]["system"], {})[(r, t["item"])] = float(s)
            elif study.test in ("mos", "smos", "cmos"):
                out.setdefault(t["system"], {})[(r, t["item"])] = float(v)
    return out


def _pairwise(ratings: dict[str, dict[tuple[str, str], float]], systems: list[str]) -> list:
    rows = []
    for a, b in combinations(systems, 2):
        keys = sorted(set(ratings.get(a, {})) & set(ratings.get(b, {})))
        d = [ratings[a][k] - ratings[b][k] for k in keys]
        rows.append(
            {
                "a": a,
                "b": b,
                "n_pairs": len(d),
                "mean_difference": float(np.mean(d)) if d else math.nan,
                "p_wilcoxon": wilcoxon_p(d),
            }
        )
    for row, p in zip(rows, holm([r["p_wilcoxon"] for r in rows]), strict=True):
        row["p_holm"] = p
    return rows


def analyze_study(study: Study, extra_answers: list[Path] | None = None) -> dict[str, Any]:
    """Screening and statistics of a study (see the module doc) as one JSON-able mapping."""
    records = load_all_answers(study, extra_answers)
    if not records:
        raise DataError(
            f"{study.root / 'answers'}: no answers yet (serve the study, or pass the files the "
            "static page downloaded with --answers)"
        )
    raters = {}
    kept = []
    counts: dict[str, int] = {}
    for rec in records:
        reasons = screen(study, rec)
        raters[rec["rater"]] = {"answers": len(rec["answers"]), "excluded": reasons}
        for r in reasons:
            counts[r] = counts.get(r, 0) + 1
        if not reasons:
            kept.append(rec)
    systems = list(study.data["systems"])
    out: dict[str, Any] = {
        "study_id": study.study_id,
        "test": study.test,
        "seed": study.data["seed"],
        "task": study.data.get("task"),
        "n_items": len(study.data["items"]),
        "n_trials": len(study.trials),
        "raters": raters,
        "n_raters": len(records),
        "n_raters_kept": len(kept),
        "exclusions": counts,
        "screening": {
            "p808_min_variance_1to5": P808_MIN_VARIANCE,
            "min_variance_this_scale": _min_variance(study.test),
            "bs1534_limit": BS1534_LIMIT if study.test == "mushra" else None,
        },
        "correction": "holm",
        "systems": {},
    }
    test = study.test
    if test == "ab":
        pairs = []
        wins = {s: 0 for s in systems}
        total = {s: 0 for s in systems}
        for a, b in combinations(systems, 2):
            wa = wb = 0
            for rec in kept:
                for t in study.trials:
                    if t["kind"] != "test" or t["systems"] != [a, b]:
                        continue
                    ans = rec["answers"].get(t["id"])
                    if ans is None:
                        continue
                    if ans["value"] == t["stimuli"][0]:
                        wa += 1
                    else:
                        wb += 1
            p, lo, hi = sign_test(wa, wb)
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "wins_a": wa,
                    "wins_b": wb,
                    "p_sign_test": p,
                    "pref_a_ci95": [lo, hi],
                }
            )
            wins[a] += wa
            wins[b] += wb
            total[a] += wa + wb
            total[b] += wa + wb
        for row, p in zip(pairs, holm([r["p_sign_test"] for r in pairs]), strict=True):
            row["p_holm"] = p
        out["pairwise"] = pairs
        for s in systems:
            n = total[s]
            if n:
                _, lo, hi = sign_test(wins[s], n - wins[s])
                out["systems"][s] = {"mean": wins[s] / n, "n": n, "ci95_exact": [lo, hi]}
        return out
    ratings = _ratings(study, kept)
    conds = list(systems)
    if test == "mushra":
        conds += ["hidden_reference", "anchor35", "anchor70"]
    for s in conds:
        vals = list(ratings.get(s, {}).values())
        if not vals:
            continue
        entry = _ci(t_interval(vals))
        if test in ("mos", "smos") and len(vals) >= 2:
            raters_s = sorted({k[0] for k in ratings[s]})
            items_s = sorted({k[1] for k in ratings[s]})
            z = np.full((len(raters_s), len(items_s)), np.nan)
            for (r, it), v in ratings[s].items():
                z[raters_s.index(r), items_s.index(it)] = v
            c = crowdmos(z)
            entry["ci95_crowdmos"] = [c.low, c.high]
            entry["crowdmos_variances"] = {
                "listener": c.v_listener,
                "item": c.v_item,
                "residual": c.v_residual,
            }
        if test == "cmos":
            entry["baseline"] = study.data.get("baseline")
            entry["p_wilcoxon_vs_0"] = wilcoxon_p(vals)
        out["systems"][s] = entry
    if test == "cmos":
        ps = [out["systems"][s]["p_wilcoxon_vs_0"] for s in out["systems"]]
        for s, p in zip(list(out["systems"]), holm(ps), strict=True):
            out["systems"][s]["p_holm"] = p
    else:
        out["pairwise"] = _pairwise(ratings, systems)
    return out


def _source(study: Study, system: str) -> dict[str, Any]:
    info = study.data["systems"][system]
    try:
        return load_results(info["results_file"])
    except Exception:  # the run's file moved: the study's record is enough to name the model
        return {"model_name": info["model_name"], "config": {"model": info["model_name"]}}


def write_results(study: Study, analysis: dict[str, Any], output_path: Path) -> list[Path]:
    """One results file per system (task ``human_<test>``) under
    ``output_path/<model>/results_<ts>.json``, so the leaderboard puts the human score in the
    model's row beside its automatic metrics; the full analysis goes to
    ``output_path/listen_<study_id>.json``."""
    test = study.test
    task = f"human_{test}"
    metric = METRIC[test]
    ts = timestamp()
    written = []
    atomic_write_text(output_path / f"listen_{study.study_id}.json", dumps(analysis))
    for system, s in analysis["systems"].items():
        if system not in study.data["systems"]:
            continue  # reference and anchors are in the analysis file, not models
        src = _source(study, system)
        cfg = src.get("config") if isinstance(src.get("config"), dict) else {}
        ds = dict((src.get("datasets") or {}).get(study.data.get("task")) or {})
        ds["listening_study"] = study.study_id
        se = s.get("stderr")
        entry = {f"{metric},none": s["mean"], f"{metric}_stderr,none": se if se else "N/A"}
        run = RunResult(
            tasks={
                task: TaskResult(
                    task=task,
                    metrics=entry,
                    higher_is_better={metric: True},
                    config={
                        "task": task,
                        "family": "quality",
                        "human": True,
                        "test": test,
                        "source_task": study.data.get("task"),
                    },
                    version=ANALYSIS_VERSION,
                    task_hash=study.study_id,
                    n_samples={"original": analysis["n_items"], "effective": int(s.get("n", 0))},
                    dataset=ds,
                    scoring={
                        "primary_metric": f"{metric},none",
                        "human": True,
                        "system": system,
                        **{k: v for k, v in s.items() if k not in ("mean", "stderr")},
                        "raters": analysis["n_raters"],
                        "raters_kept": analysis["n_raters_kept"],
                        "exclusions": analysis["exclusions"],
                        "pairwise": [
                            p for p in analysis.get("pairwise", []) if system in (p["a"], p["b"])
                        ],
                        "correction": analysis["correction"],
                        "study": {
                            "id": study.study_id,
                            "manifest_sha256": study_hash(study),
                            "test": test,
                            "seed": study.data["seed"],
                            "created": study.data.get("created"),
                            "baseline": study.data.get("baseline"),
                            "results_sha256": study.data["systems"][system]["results_sha256"],
                        },
                    },
                )
            },
            header={
                "config": {
                    **{k: cfg[k] for k in ("model", "model_args", "model_identity") if k in cfg},
                    "listening_study": study.study_id,
                },
                "model_name": src.get("model_name") or study.data["systems"][system]["model_name"],
                "speechlm_eval_version": __version__,
                "packages": package_versions(("aiohttp",)),
            },
            times={"date": time.time()},
        )
        name = sanitize_model_name(str(run.header["model_name"]))
        path = output_path / name / f"results_{ts}.json"
        atomic_write_text(path, dumps(to_results_dict(run)))
        written.append(path)
    return written


def format_report(analysis: dict[str, Any]) -> str:
    """A short text summary: raters, exclusions, per-system means with intervals."""
    lines = [
        f"study {analysis['study_id']} ({analysis['test']}): {analysis['n_raters']} raters, "
        f"{analysis['n_raters_kept']} kept, {analysis['n_items']} items",
    ]
    if analysis["exclusions"]:
        ex = ", ".join(f"{k}: {v}" for k, v in sorted(analysis["exclusions"].items()))
        lines.append(f"excluded (a rater may have several reasons): {ex}")
    for s, e in analysis["systems"].items():
        ci = e.get("ci95_t") or e.get("ci95_exact") or [None, None]
        lo, hi = ("n/a" if v is None else f"{v:.3f}" for v in ci)
        lines.append(f"  {s:<24} {e['mean']:.3f}  95% CI [{lo}, {hi}]  n={e['n']}")
    for p in analysis.get("pairwise", []):
        pv = p.get("p_wilcoxon", p.get("p_sign_test"))
        lines.append(f"  {p['a']} vs {p['b']}: p={pv:.4g}, Holm p={p['p_holm']:.4g}")
    return "\n".join(lines)


def study_hash(study: Study) -> str:
    """SHA-256 of the study manifest (provenance)."""
    return hashlib.sha256(json.dumps(study.data, sort_keys=True).encode()).hexdigest()


__all__ = ["REFERENCE", "analyze_study", "format_report", "screen", "write_results"]
