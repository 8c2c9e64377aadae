#!/usr/bin/env python
"""Wall time of the generation and paralinguistic tasks for one model on the built-in suite,
from a cold cache, against the issue's goal (<= 20 min for gslm-mini on the small suite, 2
cores).

Usage::

    slm-eval data build --size small --subsets continuation,prosody,stsp --out /tmp/small
    python benchmarks/generation_suite.py --data /tmp/small [--model gslm-mini]
                                          [--tasks continuation_gslm,...] [--goal-min 20]

It runs ``slm-eval run --model M --tasks T --data_source builtin`` with ``SLM_EVAL_BUILTIN``
set to ``--data``, a fresh cache in a temporary folder (nothing reused: every continuation is
generated and every audio judged) and ``--output_path`` in that folder, under ``/usr/bin/time``
when present (peak RSS). It prints each task's own timing (``runtime.timings`` of the results
file), the whole command's wall time, and the ratio to the goal; then, from the same results,
the number of generated continuations and judged clips (the work the time buys). Exit code 0
whether or not the goal is met; prints GOAL MET / GOAL NOT MET.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS = (
    "continuation_gslm,genppl,continuation_quality,continuation_llm,prosody_pgslm,"
    "prosody_pgslm_stream,stsp_s2s,stsp_s2t,stsp_t2s,stsp_t2t"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="built-in suite folder (small)")
    ap.add_argument("--model", default="gslm-mini")
    ap.add_argument("--tasks", default=TASKS)
    ap.add_argument("--goal-min", type=float, default=20.0)
    ap.add_argument("--keep", type=Path, default=None, help="copy the results file here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="slm-gen-bench-") as tmp:
        out = Path(tmp) / "out"
        cmd = [
            "slm-eval", "run", "--model", args.model, "--tasks", args.tasks,
            "--data_source", "builtin", "--use_cache", str(Path(tmp) / "cache.sqlite"),
            "--output_path", str(out),
        ]  # fmt: skip
        timer = shutil.which("time") or (
            "/usr/bin/time" if Path("/usr/bin/time").exists() else None
        )
        if timer:
            cmd = [timer, "-v", *cmd]
        env = {**os.environ, "SLM_EVAL_BUILTIN": str(args.data)}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        files = sorted(out.rglob("results_*.json"))
        res = json.loads(files[-1].read_text())
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(files[-1], args.keep / files[-1].name)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    load = os.getloadavg()
    print(f"model {args.model}, data {args.data}, {os.cpu_count()} cpus, load avg {load[0]:.2f}")
    print(f"{'task':24}{'seconds':>10}{'prompts':>9}{'samples':>9}")
    for name in res["results"]:
        sc = res.get("scoring", {}).get(name, {})
        gen = sc.get("generation", {})
        prompts = (sc.get("prompts") or {}).get("prompts", "")
        n = (
            prompts * gen.get("num_samples", 1) * len(gen.get("temperatures", [1]))
            if prompts
            else ""
        )
        timing = res.get("runtime", {}).get("timings", {}).get(name, "")
        print(f"{name:24}{timing!s:>10}{prompts!s:>9}{n!s:>9}")
    for name, why in res.get("skipped", {}).items():
        print(f"{name:24}{'skipped':>10}  {why}")
    print(f"whole command: {wall / 60:.1f} min (goal {args.goal_min:g} min), "
          f"ratio {wall / 60 / args.goal_min:.2f}")  # fmt: skip
    if rss:
        print(f"peak RSS: {int(rss.group(1)) / 1024**2:.2f} GiB")
    print("GOAL MET" if wall / 60 <= args.goal_min else "GOAL NOT MET")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
