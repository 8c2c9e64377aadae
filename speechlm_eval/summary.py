"""The console summary of a run: what was measured, on which data, how far to trust it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data_sources import describe_source

# Below these sizes a score is a smoke test: a handful of items per task (the tiny suite has
# 3 SALMon items and 4 stories) moves by tens of points between runs of equally good models.
SMOKE_SIZES = ("tiny",)


def _value(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _short(why: str) -> str:
    head, sep, _ = why.partition(": ")
    return f"{head})" if sep and head.startswith("skipped (") else why


def smoke_reasons(res: dict[str, Any]) -> list[str]:
    """Why the scores of ``res`` are not comparable with other runs (empty when they are)."""
    reasons = []
    limit = res.get("config", {}).get("limit")
    if limit is not None:
        reasons.append(f"--limit {limit} kept only part of each task")
    tiny = sorted(
        t
        for t, d in res.get("datasets", {}).items()
        if isinstance(d, dict) and (d.get("builtin") or {}).get("size") in SMOKE_SIZES
    )
    if tiny:
        reasons.append(f"{len(tiny)} task(s) ran on the tiny built-in suite")
    return reasons


def format_summary(res: dict[str, Any], results_path: Path | None = None) -> str:
    """The summary ``slm-eval run`` and ``slm-eval score`` print."""
    cfg = res.get("config", {})
    n_tasks, n_skipped = len(res.get("results", {})), len(res.get("skipped", {}))
    head = f"speechlm-eval {res.get('speechlm_eval_version', '')}".rstrip()
    if cfg.get("model"):
        head += f" | model {cfg['model']}"
    if cfg.get("random_seed") is not None:
        head += f" | seed {cfg['random_seed']}"
    lines = [f"{head} | {n_tasks} task(s) scored, {n_skipped} skipped", ""]
    width = max(
        (len(k) for e in res.get("results", {}).values() for k in e if "_stderr," not in k),
        default=0,
    )
    for task, entry in res.get("results", {}).items():
        primary = res.get("scoring", {}).get(task, {}).get("primary_metric", "")
        n = res.get("n-samples", {}).get(task, {})
        ds = res.get("datasets", {}).get(task)
        where = f"data: {describe_source(ds)}" if isinstance(ds, dict) else "data: not recorded"
        size = (
            f"{n.get('effective')} of {n.get('original')} docs"
            if n.get("effective") != n.get("original")
            else f"{n.get('original')} docs"
        )
        lines.append(f"{task}  ({size}; {where})")
        for key, val in entry.items():
            if key == "alias" or "_stderr," in key:
                continue
            name, _, filt = key.partition(",")
            se = entry.get(f"{name}_stderr,{filt}")
            se_s = f" ± {se:.4f}" if isinstance(se, float) else ""
            mark = "  *" if key == primary else ""
            lines.append(f"  {key:<{width}}  {_value(val)}{se_s}{mark}")
    if res.get("results"):
        lines.append("")
        lines.append("* = the task's headline metric (scoring.<task>.primary_metric); ± = stderr")
    for task, why in res.get("skipped", {}).items():
        # The full reason was printed as a warning when the task was skipped and is in the
        # results file; here only its head, so that no warning is printed twice.
        lines.append(f"{task:<28} {_short(why)}")
    reasons = smoke_reasons(res)
    if reasons:
        lines.append(
            "note: smoke-test sized ("
            + "; ".join(reasons)
            + "): these scores are not comparable with other runs or published numbers"
        )
    if results_path is not None:
        lines.append(f"results: {results_path}")
    return "\n".join(lines)
