#!/usr/bin/env python
"""ABX: our fast path vs the reference implementation (zerospeech-libriabx2), and memory.

Usage::

    python benchmarks/abx.py [--n-items N] [--dim D] [--speakers S] [--phones P]
                             [--contexts C] [--frame-rate R] [--max-size-group G]
                             [--max-x-across X] [--threads T] [--reference-python PY]
                             [--memory-items N1,N2] [--skip-speed] [--skip-memory]

What it does (in a temporary directory; nothing is downloaded):

1. **Speed, same inputs.** Writes synthetic features of realistic shape (``N`` triphone
   items of 8-16 frames at 50 frames/s, ``D`` dims, ``S`` speakers, ``P`` phones, ``C``
   contexts; one speaker per file) as ``<stem>.npy`` plus an item file, then computes the
   four ABX conditions (within / across speaker x within / any context) with the
   reference defaults (groups capped at 10, 5 X speakers, seed 3459):

   - **reference**: ``speechlm_eval/abx/reference.py`` (the installed ``zrc_abx2``
     ``EvalABX._ABX``) in a subprocess, by default with the interpreter given by
     ``--reference-python`` or ``$SLM_EVAL_ABX_REFERENCE_PYTHON``, else this one; its
     time is measured inside that process around the computation (feature loading
     included, interpreter start-up and imports excluded);
   - **ours**: ``speechlm_eval.abx.score.score_items`` (fast path) on the same features,
     timed from the arrays in memory (feature checks and slicing included).

   Both run with ``T`` torch threads (default 1: the reference's DTW is single-threaded
   Cython). Prints wall-clock and CPU times, the ratio and the largest score difference;
   the ratio of CPU times is the headline because it does not depend on what else runs on
   the machine (both processes are single-threaded). Goal: ratio >= 5 at scores equal to
   1e-6 (``GOAL MET`` / ``GOAL NOT MET``; exit code 0 either way).

2. **Memory vs items.** For each size in ``--memory-items`` (default ``N/2`` and ``5N``: 10x
   apart), a fresh subprocess loads the features, prepares them, resets the kernel's peak
   RSS counter (``/proc/self/clear_refs``), scores all four conditions and reports the peak
   RSS above the RSS before scoring (the working memory of the scorer; the features
   themselves, which necessarily grow with the data, are excluded and printed apart; freed
   memory is returned to the OS with ``malloc_trim`` before the baseline is taken, so that
   the baseline is live memory only).
   Goal: the working memory at 10x the items stays within 1.5x (flat: bounded by the chunk
   and batch budgets, not by the number of items or cells).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechlm_eval.abx.features import prepare_features
from speechlm_eval.abx.items import read_item_file
from speechlm_eval.abx.score import ABXOptions, score_items
from speechlm_eval.abx.synthetic import make_synthetic

GOAL_RATIO = 5.0
GOAL_DIFF = 1e-6
GOAL_MEMORY = 1.5
REFERENCE = Path(__file__).resolve().parents[1] / "speechlm_eval" / "abx" / "reference.py"
CONDITIONS = [(s, c) for s in ("within", "across") for c in ("within", "any")]


def reference_python(arg: str | None) -> str | None:
    """An interpreter that can import the reference, or None."""
    for cand in (arg, os.environ.get("SLM_EVAL_ABX_REFERENCE_PYTHON")):
        if cand:
            return cand
    return sys.executable if importlib.util.find_spec("zrc_abx2") else None


def make_data(root: Path, n_items: int, args: argparse.Namespace, seed: int = 0):
    per_file = 8
    return make_synthetic(
        root,
        n_files=max(1, n_items // per_file),
        items_per_file=per_file,
        n_speakers=args.speakers,
        n_phones=args.phones,
        n_contexts=args.contexts,
        dim=args.dim,
        frame_rate=args.frame_rate,
        frames_per_item=(8, 16),
        noise=args.noise,
        speaker_scale=args.speaker_scale,
        seed=seed,
    )


def options(args: argparse.Namespace, speaker: str) -> ABXOptions:
    return ABXOptions(
        speaker_mode=speaker,
        context_mode="all",
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
    )


def run_ours(syn, args: argparse.Namespace) -> tuple[float, float, dict[str, float]]:
    t0, c0 = time.perf_counter(), time.process_time()
    feats = prepare_features(read_item_file(syn.item_path), syn.features, durations=syn.durations)
    scores = {}
    for s in ("within", "across"):
        rep = score_items(feats, options(args, s))
        for c in ("within", "any"):
            scores[f"{s}-{c}"] = rep.metrics[f"abx_{s}_{c}_context"].value
    return time.perf_counter() - t0, time.process_time() - c0, scores


def run_reference(py: str, syn, args: argparse.Namespace, out: Path) -> tuple[float, float, dict]:
    cmd = [
        py,
        str(REFERENCE),
        str(syn.item_path),
        str(syn.feature_dir),
        str(out),
        "--frame-rate",
        str(args.frame_rate),
        "--max-size-group",
        str(args.max_size_group),
        "--max-x-across",
        str(args.max_x_across),
        "--threads",
        str(args.threads),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    res = json.loads(out.read_text())
    return res["seconds"], res["cpu_seconds"], res["scores"]


MEMORY_CHILD = r"""
import ctypes, gc, json, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from pathlib import Path
from speechlm_eval.abx.features import prepare_features
from speechlm_eval.abx.items import read_item_file
from speechlm_eval.abx.score import ABXOptions, score_items

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
root = Path(sys.argv[1]); cfg = json.loads(sys.argv[2])
items = read_item_file(root / "items.item")
feats = {p.stem: (np.load(p), cfg["frame_rate"]) for p in (root / "features").glob("*.npy")}
prepared = prepare_features(items, feats)
del feats, items
gc.collect()
try:  # hand freed heap memory back to the OS, so the baseline is what is alive
    ctypes.CDLL("libc.so.6").malloc_trim(0)
except OSError:
    pass
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM (peak RSS) to the current RSS
    f.write("5")
for s in ("within", "across"):
    opts = ABXOptions(speaker_mode=s, max_size_group=cfg["g"], max_x_across=cfg["x"])
    score_items(prepared, opts)
peak = status("VmHWM:")
print(json.dumps({"before": before, "peak": peak,
                  "features": prepared.data.numel() * prepared.data.element_size(),
                  "n_items": len(prepared.items)}))
"""


def memory(root: Path, n_items: int, args: argparse.Namespace) -> dict:
    syn = make_data(root, n_items, args)
    cfg = {"frame_rate": args.frame_rate, "g": args.max_size_group, "x": args.max_x_across}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(root), json.dumps(cfg), str(args.threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["requested"] = syn.n_items
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-items", type=int, default=3000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--speakers", type=int, default=10)
    p.add_argument("--phones", type=int, default=20)
    p.add_argument("--contexts", type=int, default=30)
    p.add_argument("--frame-rate", type=float, default=50.0)
    p.add_argument("--max-size-group", type=int, default=10)
    p.add_argument("--max-x-across", type=int, default=5)
    p.add_argument("--noise", type=float, default=5.0, help="frame noise (std per dim)")
    p.add_argument("--speaker-scale", type=float, default=2.0, help="speaker offset (std)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference-python", default=None)
    p.add_argument("--memory-items", default=None, help="two sizes, e.g. 1500,15000")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores, {args.threads} torch thread(s); load average {load0:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="slm_abx_bench_") as tmp_s:
        tmp = Path(tmp_s)
        if not args.skip_speed:
            py = reference_python(args.reference_python)
            syn = make_data(tmp / "speed", args.n_items, args)
            frames = sum(a.shape[0] for a, _ in syn.features.values())
            print(
                f"\ndata: {syn.n_items} items in {len(syn.features)} files, {frames} frames x "
                f"{args.dim} dims at {args.frame_rate:g}/s, {args.speakers} speakers, "
                f"{args.phones} phones, {args.contexts} contexts; caps: max_size_group "
                f"{args.max_size_group}, max_x_across {args.max_x_across}, seed 3459"
            )
            ours_t, ours_c, ours = run_ours(syn, args)
            print(f"ours (fast path): {ours_t:.2f} s wall, {ours_c:.2f} s CPU")
            if py is None:
                print(
                    "reference: not installed (pip install --no-deps zerospeech-libriabx2, or "
                    "set SLM_EVAL_ABX_REFERENCE_PYTHON); speed comparison skipped"
                )
            else:
                ref_t, ref_c, ref = run_reference(py, syn, args, tmp / "ref.json")
                print(f"reference (zrc_abx2, {py}): {ref_t:.2f} s wall, {ref_c:.2f} s CPU")
                diff = max(abs(ours[k] - ref[k]) for k in ours)
                print(f"\n  {'condition':20} {'ours':>12} {'reference':>12} {'diff':>10}")
                for k in ours:
                    print(f"  {k:20} {ours[k]:12.8f} {ref[k]:12.8f} {ours[k] - ref[k]:10.2e}")
                ratio, ratio_wall = ref_c / ours_c, ref_t / ours_t
                met = ratio >= GOAL_RATIO and diff <= GOAL_DIFF
                print(
                    f"\nspeed-up reference/ours = {ratio:.1f}x in CPU time ({ratio_wall:.1f}x "
                    f"wall; "
                    f"goal >= {GOAL_RATIO:g}x), max |score diff| = {diff:.1e} (goal <= "
                    f"{GOAL_DIFF:g}): {'GOAL MET' if met else 'GOAL NOT MET'}"
                )
        if not args.skip_memory:
            sizes = (
                [int(v) for v in args.memory_items.split(",")]
                if args.memory_items
                else [args.n_items // 2, 5 * args.n_items]
            )
            print("\nmemory (peak RSS while scoring, above the RSS before scoring):")
            rows = []
            for n in sizes:
                r = memory(tmp / f"mem_{n}", n, args)
                work = (r["peak"] - r["before"]) / 2**20
                rows.append(work)
                print(
                    f"  {r['n_items']:6d} items: working {work:7.1f} MiB; features "
                    f"{r['features'] / 2**20:7.1f} MiB; RSS before {r['before'] / 2**20:7.1f} MiB"
                )
            growth = rows[-1] / max(rows[0], 1e-9)
            print(
                f"  working memory x{growth:.2f} for x{sizes[-1] / sizes[0]:g} items (goal <= "
                f"{GOAL_MEMORY:g}): {'GOAL MET' if growth <= GOAL_MEMORY else 'GOAL NOT MET'}"
            )
    print(f"\nload average (1 min): {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
