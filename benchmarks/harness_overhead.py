#!/usr/bin/env python
"""Harness overhead: ``slm-eval run`` on ``hf-unit-lm`` vs the same model's raw batched forward.

Usage::

    python benchmarks/harness_overhead.py [--n-items N] [--seconds S] [--batch-size B]
                                          [--repeats R] [--conv-dim C] [--profile]

What it does, all in one process and in a temporary directory (nothing is downloaded):

1. Builds a randomly initialised HuBERT-base-shaped (but smaller) encoder, random K-means
   centroids and a small GPT-2, and saves them with ``save_pretrained`` / ``np.save``.
2. Writes a Spoken-StoryCloze-layout dataset (``sStoryCloze/<i>_correct.wav`` and
   ``<i>_incorrect.wav``) of ``N`` items of synthetic speech-like audio (16 kHz, 16-bit PCM,
   durations uniform in [S/3, S] seconds, seeded).
3. Builds ``HFUnitLM`` once and times, on the same files:

   - **raw**: ``model.loglikelihood(batch)`` over the files sorted longest first, in batches
     of ``B``. The audio is decoded into memory (soundfile) and wrapped in requests *before*
     the clock starts: this is the model's forward and nothing else.
   - **harness, cold**: ``speechlm_eval.runner.evaluate("hf-unit-lm", ...)`` with the same
     model object and a fresh SQLite cache: reading the task YAML and the dataset, reading
     and validating the wavs, hashing, cache look-ups and writes, scoring, results file.
   - **harness, cached**: the same call again on the now warm cache (the cached re-run).

   Each repeat alternates the order (raw first, then harness first) to cancel drift; the
   medians are reported. Before the repeats, one untimed warm-up of each path pays the
   one-time costs of the process (torch kernels, imports, entry points, ``git rev-parse``);
   those per-process costs are measured and printed separately.
4. Checks that the harness' per-file log-probabilities equal the raw ones exactly (a
   benchmark of wrong numbers is worthless): per repeat from the cache the cold run wrote,
   and per file from a final untimed ``log_samples`` run.

The goal is harness / raw <= 1.05. The exit code is 0 whether or not it is met (this is a
benchmark, not a test); it prints GOAL MET or GOAL NOT MET. ``--profile`` adds a cProfile
breakdown of one extra (untimed) cold harness run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import transformers

from reference_models.hf_unit_lm import HFUnitLM
from speechlm_eval.audio import Audio
from speechlm_eval.model import LoglikelihoodRequest
from speechlm_eval.provenance import git_hash, package_versions
from speechlm_eval.runner import RunOptions, evaluate
from speechlm_eval.tasks import load_index

GOAL = 1.05
SR = 16000
SEED = 0
MODEL = "hf-unit-lm"
TASK = "ssc"
K_UNITS = 100
HIDDEN = 256


# --- model files -------------------------------------------------------------------------------


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def build_model_files(root: Path, conv_dim: int) -> dict[str, str]:
    """Encoder, centroids and LM on disk; returns ``--model_args`` (strings, as the CLI has)."""
    torch.manual_seed(SEED)
    enc_cfg = transformers.HubertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        # Default kernels and strides (7 conv layers, total stride 320 = 20 ms frames, 50 Hz);
        # only the channel count is reduced from HuBERT-base's 512 (see --conv-dim).
        conv_dim=(conv_dim,) * 7,
    )
    encoder = transformers.HubertModel(enc_cfg).eval()
    encoder.save_pretrained(root / "hubert")

    rng = np.random.default_rng(SEED)
    np.save(root / "km.npy", rng.standard_normal((K_UNITS, HIDDEN)).astype(np.float32))

    torch.manual_seed(SEED + 1)
    lm_cfg = transformers.GPT2Config(
        n_layer=4,
        n_embd=HIDDEN,
        n_head=4,
        vocab_size=K_UNITS + 2,  # PAD=0, <S>=1 (BOS and EOS), units from 2
        bos_token_id=1,
        eos_token_id=1,
    )
    lm = transformers.GPT2LMHeadModel(lm_cfg).eval()
    lm.save_pretrained(root / "gpt2")

    frame_hz = SR / float(np.prod(enc_cfg.conv_stride))
    print(
        f"encoder: HuBERT, {enc_cfg.num_hidden_layers} layers, hidden {HIDDEN}, "
        f"{enc_cfg.num_attention_heads} heads, ffn {enc_cfg.intermediate_size}, "
        f"{len(enc_cfg.conv_dim)} conv layers x {conv_dim} channels, {frame_hz:g} Hz frames; "
        f"{_n_params(encoder) / 1e6:.2f} M parameters"
    )
    print(f"k-means: {K_UNITS} random centroids x {HIDDEN} dims")
    print(
        f"LM: GPT-2, {lm_cfg.n_layer} layers, n_embd {lm_cfg.n_embd}, {lm_cfg.n_head} heads, "
        f"vocab {lm_cfg.vocab_size}, context {lm_cfg.n_positions}; "
        f"{_n_params(lm) / 1e6:.2f} M parameters"
    )
    return {
        "encoder": str(root / "hubert"),
        "kmeans": str(root / "km.npy"),
        "lm": str(root / "gpt2"),
    }


# --- data --------------------------------------------------------------------------------------


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Voiced syllables (harmonics of a drifting F0 shaped by moving formants), noise bursts
    and short pauses: not speech, but non-stationary and broadband like it."""
    n = round(seconds * SR)
    t = np.arange(n) / SR
    # F0 contour: slow random walk around a speaker mean, plus a declination.
    f0_mean = rng.uniform(100, 220)
    knots = rng.normal(0, 0.08, int(seconds * 4) + 2).cumsum()
    f0 = (
        f0_mean
        * np.exp(np.interp(t, np.linspace(0, seconds, knots.size), knots))
        * (1 - 0.1 * t / seconds)
    )
    phase = 2 * np.pi * np.cumsum(f0) / SR
    # Syllables of 120-320 ms, each with its own two formants, a Hann envelope and sometimes
    # a pause or a fricative (noise) instead.
    f1, f2, env, fric = np.empty(n), np.empty(n), np.zeros(n), np.zeros(n)
    i = 0
    while i < n:
        m = min(n - i, int(rng.uniform(0.12, 0.32) * SR))
        f1[i : i + m], f2[i : i + m] = rng.uniform(300, 900), rng.uniform(900, 2500)
        kind = rng.random()
        if kind < 0.75:
            env[i : i + m] = np.hanning(m) * rng.uniform(0.4, 1.0)
        elif kind < 0.9:
            fric[i : i + m] = np.hanning(m) * rng.uniform(0.05, 0.2)
        i += m
    x = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0
        gain = 1 / (1 + ((fk - f1) / 90) ** 2) + 0.5 / (1 + ((fk - f2) / 120) ** 2) + 0.02 / k
        gain[fk > 7500] = 0.0
        x += gain * np.sin(k * phase)
    x = x * env / 3 + fric * rng.standard_normal(n) + 0.003 * rng.standard_normal(n)
    return (0.9 * x / max(1e-9, np.abs(x).max())).astype(np.float32)


def write_storycloze(root: Path, n_items: int, max_seconds: float) -> Path:
    """``root/sStoryCloze/<i>_correct.wav`` and ``<i>_incorrect.wav``; returns the data dir."""
    rng = np.random.default_rng(SEED)
    d = root / "sStoryCloze"
    d.mkdir(parents=True)
    for i in range(n_items):
        base = rng.uniform(max_seconds / 3, max_seconds)
        for label in ("correct", "incorrect"):
            secs = float(np.clip(base + rng.uniform(-0.3, 0.3), max_seconds / 3, max_seconds))
            sf.write(str(d / f"{i}_{label}.wav"), speechlike(secs, rng), SR, subtype="PCM_16")
    return root


# --- the two paths -----------------------------------------------------------------------------


def raw_batches(data_dir: Path, batch_size: int) -> list[list[LoglikelihoodRequest]]:
    """Every file decoded into memory, longest first (the harness' order), in batches."""
    reqs = []
    for p in sorted((data_dir / "sStoryCloze").glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        reqs.append(
            LoglikelihoodRequest(audio=Audio(np.ascontiguousarray(x[:, 0]), sr), key=p.stem)
        )
    reqs.sort(key=lambda r: (-r.audio.duration, r.key))
    return [reqs[i : i + batch_size] for i in range(0, len(reqs), batch_size)]


def run_raw(
    model: HFUnitLM, batches: list[list[LoglikelihoodRequest]]
) -> tuple[float, float, dict[str, tuple[float, int]]]:
    """(wall seconds, process CPU seconds, stem -> (logprob, num_tokens))."""
    out: list[tuple[str, Any]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        out.extend(zip([r.key for r in batch], model.loglikelihood(batch), strict=True))
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return dt, dc, {k: (float(r.logprob), int(r.num_tokens)) for k, r in out}


class ModelClock:
    """Time spent inside ``model.loglikelihood`` during a harness run (an instance attribute
    wrapping the bound method; removed afterwards)."""

    def __init__(self, model: HFUnitLM) -> None:
        self.model, self.seconds, self.calls = model, 0.0, 0

    def __enter__(self) -> ModelClock:
        inner = self.model.loglikelihood

        def timed(requests: list[LoglikelihoodRequest]) -> list[Any]:
            t0 = time.perf_counter()
            try:
                return inner(requests)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        self.model.loglikelihood = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.model.loglikelihood  # back to the class' method


def run_harness(
    model: HFUnitLM,
    model_args: dict[str, str],
    data_dir: Path,
    out_dir: Path,
    cache: Path,
    batch_size: int,
    log_samples: bool = False,
    limit: float | None = None,
) -> tuple[float, float, float, dict[str, Any]]:
    """(wall s, process CPU s, wall s inside the model, results) of one ``evaluate`` call."""
    opts = RunOptions(
        tasks=TASK,
        data_dir=str(data_dir),
        output_path=str(out_dir),
        batch_size=batch_size,
        use_cache=str(cache),
        log_samples=log_samples,
        limit=limit,
    )
    with ModelClock(model) as clock:
        t0, c0 = time.perf_counter(), time.process_time()
        res = evaluate(MODEL, model_args, opts, model=model)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return dt, dc, clock.seconds, res


# --- checks ------------------------------------------------------------------------------------


def cached_values(cache: Path) -> list[tuple[float, int]]:
    """Every (logprob, num_tokens) in a cache file (one per file for one model and task)."""
    with sqlite3.connect(str(cache)) as db:
        rows = db.execute("SELECT value FROM results").fetchall()
    values = [json.loads(v) for (v,) in rows]
    return sorted((float(v["logprob"]), int(v["num_tokens"])) for v in values)


def check_cache(cache: Path, raw: dict[str, tuple[float, int]]) -> None:
    got, want = cached_values(cache), sorted(raw.values())
    assert len(got) == len(want), f"cache holds {len(got)} results, expected {len(want)}"
    assert got == want, "harness log-probabilities (cache) differ from the raw forward"


def check_samples(out_dir: Path, raw: dict[str, tuple[float, int]]) -> int:
    """Per file: the samples file's logprob/num_tokens equal the raw ones. Returns #files."""
    (path,) = out_dir.rglob(f"samples_{TASK}_*.jsonl")
    seen = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for stem, lp, nt in zip(row["candidates"], row["logprob"], row["num_tokens"], strict=True):
            assert (lp, nt) == raw[stem], f"{stem}: harness {(lp, nt)} != raw {raw[stem]}"
            seen += 1
    assert seen == len(raw), f"samples cover {seen} files, expected {len(raw)}"
    return seen


def check_run(res: dict[str, Any], n_files: int, cold: bool) -> None:
    c = res["runtime"]["cache"][TASK]
    if cold:
        assert (c["computed"], c["hits"]) == (n_files, 0), f"cold run: {c}"
    else:
        assert (c["computed"], c["hits"], c["model_calls"]) == (0, n_files, 0), c


# --- profile -----------------------------------------------------------------------------------

# (label, part of the file path, function): cumulative times; rows nest (AudioRef.load includes
# audio_info; execute includes everything indented below it).
PROFILE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("evaluate (total)", "speechlm_eval/runner.py", "evaluate"),
    ("  load_index (task YAML)", "speechlm_eval/tasks.py", "load_index"),
    ("  read_task_data (reader)", "speechlm_eval/data_sources.py", "read_task_data"),
    ("  execute (the executor)", "speechlm_eval/execute.py", "execute"),
    ("    model.loglikelihood", "reference_models/hf_unit_lm.py", "loglikelihood"),
    ("    audio_info (sf.info)", "speechlm_eval/audio.py", "audio_info"),
    ("    AudioRef.load (sf.read)", "speechlm_eval/audio.py", "load"),
    ("    Audio validation", "speechlm_eval/audio.py", "__post_init__"),
    ("    content_hash (sha256)", "speechlm_eval/audio.py", "content_hash"),
    ("    digest (json+sha256)", "speechlm_eval/", "digest"),
    ("    cache.get_many", "speechlm_eval/cache.py", "get_many"),
    ("    cache.put_many (commit)", "speechlm_eval/cache.py", "put_many"),
    ("    tqdm update/close", "tqdm/std.py", "update"),
    ("  scorer.score", "speechlm_eval/scorers/choice.py", "score"),
    ("  _header (versions, git)", "speechlm_eval/runner.py", "_header"),
    ("  _write (results file)", "speechlm_eval/runner.py", "_write"),
    ("  cache open/close", "speechlm_eval/cache.py", "__init__"),
)


def profile_harness(
    model: HFUnitLM, model_args: dict[str, str], data_dir: Path, tmp: Path, batch_size: int
) -> None:
    prof = cProfile.Profile()
    prof.enable()
    run_harness(model, model_args, data_dir, tmp / "prof_out", tmp / "prof.sqlite", batch_size)
    prof.disable()
    stats = pstats.Stats(prof)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cum(suffix: str, func: str) -> tuple[float, int]:
        hits = [(v[3], v[1]) for (f, _, fn), v in table.items() if fn == func and suffix in f]
        return (sum(h[0] for h in hits), sum(h[1] for h in hits)) if hits else (0.0, 0)

    total = cum("speechlm_eval/runner.py", "evaluate")[0]
    model_t = cum("reference_models/hf_unit_lm.py", "loglikelihood")[0]
    print("\nprofile of one cold harness run (cProfile; inflates Python-heavy code):")
    print(f"  {'where':34} {'cum s':>8} {'calls':>6} {'% of non-model':>15}")
    for label, suffix, func in PROFILE_ROWS:
        t, n = cum(suffix, func)
        share = (
            ""
            if "model" in label or "total" in label or "run_loglik" in label
            else (f"{100 * t / max(total - model_t, 1e-9):14.1f}%")
        )
        print(f"  {label:34} {t:8.4f} {n:6d} {share:>15}")
    print(f"  {'non-model (total - model)':34} {total - model_t:8.4f}")
    print("\n  top functions by own time, torch/transformers/model code excluded:")
    own = sorted(
        (
            (v[2], f"{Path(f).name}:{ln}:{fn}", v[1])
            for (f, ln, fn), v in table.items()
            if not any(
                x in f"{f}:{fn}" for x in ("torch", "transformers", "hf_unit_lm", "units.py")
            )
        ),
        reverse=True,
    )
    for t, name, n in own[:15]:
        print(f"    {t:8.4f} s {n:7d}x  {name}")


# --- main --------------------------------------------------------------------------------------


def fixed_costs() -> dict[str, float]:
    """Per-process costs of a run, paid once by ``slm-eval run`` (not in the ratio)."""
    steps: dict[str, Callable[[], Any]] = {
        "load_index": lambda: load_index([]),
        "git_hash": getattr(git_hash, "__wrapped__", git_hash),  # uncached: once per process
        "package_versions": package_versions,
    }
    out = {}
    for name, fn in steps.items():
        t0 = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-items", type=int, default=40, help="StoryCloze items (2 files each)")
    ap.add_argument(
        "--seconds", type=float, default=6.0, help="longest file; durations are in [S/3, S]"
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--conv-dim", type=int, default=256, help="encoder conv channels (HuBERT-base: 512)"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile one extra cold harness run")
    args = ap.parse_args(argv)

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    load0 = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cores ({usable} usable), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"transformers {transformers.__version__}, python {platform.python_version()}, "
        f"{platform.machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="slm_overhead_") as tmp_s:
        tmp = Path(tmp_s)
        model_args = build_model_files(tmp / "models", args.conv_dim)
        t0 = time.perf_counter()
        data_dir = write_storycloze(tmp / "data", args.n_items, args.seconds)
        batches = raw_batches(data_dir, args.batch_size)
        n_files = sum(len(b) for b in batches)
        audio_s = sum(r.audio.duration for b in batches for r in b)
        wav_mb = sum(p.stat().st_size for p in (data_dir / "sStoryCloze").glob("*.wav")) / 1e6
        print(
            f"data: {args.n_items} items, {n_files} wav files (16 kHz PCM_16, {wav_mb:.1f} MB), "
            f"{audio_s:.1f} s of audio, {audio_s / n_files:.2f} s/file "
            f"(written in {time.perf_counter() - t0:.1f} s); batch size {args.batch_size}, "
            f"{len(batches)} batches"
        )
        t0 = time.perf_counter()
        model = HFUnitLM(**model_args)
        print(f"HFUnitLM construction (load + weight hashing): {time.perf_counter() - t0:.2f} s")

        # Warm-up, untimed: torch kernels on the longest batch; the harness' imports, entry
        # points and git revision (cached per process) on a 2-item run.
        *_, warm_raw = run_raw(model, batches[:1])
        run_harness(
            model, model_args, data_dir, tmp / "warm", tmp / "warm.sqlite", args.batch_size, limit=2
        )
        fixed = fixed_costs()

        # wall and CPU seconds of raw / harness cold / cached; wall seconds inside the model
        t: dict[str, list[float]] = {
            k: [] for k in ("raw", "raw_cpu", "cold", "cold_cpu", "inside", "side", "warm")
        }
        raw_ref: dict[str, tuple[float, int]] | None = None
        cold_res = None
        for r in range(args.repeats):
            cache = tmp / f"cache_{r}.sqlite"
            out = tmp / f"out_{r}"

            def do_raw() -> None:
                nonlocal raw_ref
                dt, dc, scores = run_raw(model, batches)
                t["raw"].append(dt)
                t["raw_cpu"].append(dc)
                assert raw_ref is None or scores == raw_ref, "raw forward is not deterministic"
                raw_ref = scores

            def do_harness(cache: Path = cache, out: Path = out) -> None:
                nonlocal cold_res
                dt, dc, inside, res = run_harness(
                    model, model_args, data_dir, out / "cold", cache, args.batch_size
                )
                check_run(res, n_files, cold=True)
                t["cold"].append(dt)
                t["cold_cpu"].append(dc)
                t["inside"].append(inside)
                t["side"].append(dt - inside)
                dt, *_, res2 = run_harness(
                    model, model_args, data_dir, out / "warm", cache, args.batch_size
                )
                check_run(res2, n_files, cold=False)
                t["warm"].append(dt)
                assert res["results"] == res2["results"], "cached re-run changed the results"
                assert cold_res is None or res["results"] == cold_res["results"]
                cold_res = res

            steps = (do_raw, do_harness) if r % 2 == 0 else (do_harness, do_raw)
            for step in steps:
                step()
            assert raw_ref is not None
            check_cache(cache, raw_ref)
            print(
                f"repeat {r + 1}/{args.repeats} ({'raw first' if r % 2 == 0 else 'harness first'})"
                f": raw {t['raw'][-1]:.3f} s, harness cold {t['cold'][-1]:.3f} s "
                f"(in model {t['inside'][-1]:.3f} s, outside {t['side'][-1]:.3f} s), "
                f"cached {t['warm'][-1]:.3f} s",
                flush=True,
            )
        assert raw_ref is not None and cold_res is not None
        assert all(warm_raw[k] == raw_ref[k] for k in warm_raw)

        # Per-file check through the public output (samples file) of an untimed warm run.
        run_harness(
            model,
            model_args,
            data_dir,
            tmp / "samples",
            tmp / f"cache_{0}.sqlite",
            args.batch_size,
            log_samples=True,
        )
        n_checked = check_samples(tmp / "samples", raw_ref)

        med = {k: statistics.median(v) for k, v in t.items()}
        low = {k: min(v) for k, v in t.items()}
        raw_m, cold_m, side_m = med["raw"], med["cold"], med["side"]
        ratio, cached_ratio = cold_m / raw_m, med["warm"] / raw_m
        acc = cold_res["results"][TASK]
        print(
            f"\nscores: harness == raw for all {n_checked} files (exact float equality; "
            f"acc,nll_mean {acc['acc,nll_mean']:.3f}, acc,nll_sum {acc['acc,nll_sum']:.3f} on "
            f"random weights); tokens/file {np.mean([v[1] for v in raw_ref.values()]):.0f}"
        )
        print(
            f"\nmedians of {args.repeats} repeats, {n_files} files, batch size {args.batch_size}:"
        )
        w = 34
        print(f"  {'(wall clock)':{w}} {'median s':>9} {'ms/file':>9} {'x raw':>7} {'min s':>8}")
        rows = (
            ("raw batched forward", "raw"),
            ("harness, cold cache", "cold"),
            ("  of which inside the model", "inside"),
            ("  of which harness (outside model)", "side"),
            ("harness, cached re-run", "warm"),
        )
        for label, k in rows:
            v = med[k]
            print(
                f"  {label:{w}} {v:9.3f} {1000 * v / n_files:9.2f} {v / raw_m:7.3f} {low[k]:8.3f}"
            )
        print(
            f"  process CPU time: raw {med['raw_cpu']:.3f} s, harness cold {med['cold_cpu']:.3f} s"
            f", ratio {med['cold_cpu'] / med['raw_cpu']:.3f}; ratio of the minima (wall) "
            f"{low['cold'] / low['raw']:.3f}"
        )
        print(
            f"  per item (2 files): raw {1000 * raw_m / args.n_items:.1f} ms, "
            f"harness {1000 * cold_m / args.n_items:.1f} ms"
        )
        print(
            "  fixed costs of one run, measured apart: "
            f"load_index {1000 * fixed['load_index']:.1f} ms and package_versions "
            f"{1000 * fixed['package_versions']:.1f} ms (both inside every harness time above), "
            f"git rev-parse {1000 * fixed['git_hash']:.1f} ms (cached per process: not inside)"
        )
        print(
            f"  load average (1 min): {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end "
            f"on {os.cpu_count()} cores (other processes make the model times drift)"
        )
        print(
            f"\nratio harness/raw = {ratio:.3f} (goal <= {GOAL}): "
            f"{'GOAL MET' if ratio <= GOAL else 'GOAL NOT MET'}; "
            f"cached re-run / raw = {cached_ratio:.3f}"
        )
        print(
            f"(drift-free estimate from the split above: (raw + harness outside model) / raw = "
            f"{(raw_m + side_m) / raw_m:.3f})"
        )
        if args.profile:
            profile_harness(model, model_args, data_dir, tmp, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
