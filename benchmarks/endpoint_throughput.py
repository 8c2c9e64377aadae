#!/usr/bin/env python
"""Throughput of ``openai-chat`` with N requests in flight, against a local server with latency.

Usage::

    python benchmarks/endpoint_throughput.py [--latency S] [--rounds R] [--repeats K]
                                             [--seconds A] [--concurrency 1,2,4,8,16]

What it does:

1. Starts the OpenAI-compatible test server (``tests/openai_server.py``, echo backend) in its
   own process on 127.0.0.1, every answer delayed by ``--latency`` seconds (default 0.2): a
   stand-in for a model server's compute time, so the adapter's concurrency is what is
   measured. Its own process: its work is not timed as the adapter's, nor fights it for the
   interpreter lock.
2. For each N: an ``OpenAIChat`` with ``max_concurrency=N`` answers one batch of ``R × N``
   requests (``respond``, as the executor calls it), each a distinct text plus ``A`` seconds
   of 16 kHz audio (base64 WAV). Throughput = requests / wall time; the ideal at N is N times
   the single-request rate measured in the same run (N = 1); the ratio is throughput / ideal.
   Each N is repeated ``K`` times (median); one untimed warm-up batch comes first.
3. The adapter's own cost per request, three ways: **in process** (building the payload, JSON
   and base64, parsing a canned answer; no network), **client CPU** (this process' CPU time
   per request during the timed batches: the adapter plus httpx), and **end to end** at N = 1
   (wall time per request minus the injected latency: payload, HTTP on the loopback, the
   server's decoding of the audio, parsing).

The goal is ratio >= 0.9 for every N up to 16; it prints GOAL MET or GOAL NOT MET and always
exits 0 (a benchmark, not a test). On a busy machine the in-process row is the stable one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_models.openai_compat import OpenAIChat  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.model import RespondRequest  # noqa: E402

SR = 16000


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py"), "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the test server did not start (said {url!r})")
    return proc, url


def requests_for(n: int, tag: str, seconds: float) -> list[RespondRequest]:
    rng = np.random.default_rng(0)
    audio = Audio((0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
    return [
        RespondRequest(text=f"{tag} question {i}", audio=audio, key=f"{tag}-{i}") for i in range(n)
    ]


def timed_batch(model: OpenAIChat, reqs: list[RespondRequest]) -> tuple[float, float]:
    """(wall seconds, this process' CPU seconds) of one ``respond`` batch."""
    c0, t0 = time.process_time(), time.perf_counter()
    res = model.respond(reqs)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(res) == len(reqs) and all(r.text for r in res)
    return took, cpu


def in_process_cost(model: OpenAIChat, reqs: list[RespondRequest]) -> float:
    """Seconds per request of building, encoding and parsing, without the network."""
    body = {
        "id": "x",
        "model": model.served_name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "an answer"}}],
    }
    t0 = time.perf_counter()
    for r in reqs:
        json.dumps(model.build_payload(r)).encode()
        model.parse_response(r, json.loads(json.dumps(body)))
    return (time.perf_counter() - t0) / len(reqs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.2, help="server delay per answer (s)")
    p.add_argument("--rounds", type=int, default=5, help="requests per N = rounds × N")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0, help="audio per request (s)")
    p.add_argument("--concurrency", default="1,2,4,8,16")
    a = p.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    if levels[0] != 1:
        levels = [1, *levels]

    proc, url = start_server(a.latency)
    try:
        print(
            f"server {url} (own process), latency {a.latency:g} s, {a.rounds} rounds per N, "
            f"{a.repeats} repeats (median), {a.seconds:g} s of audio per request; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        )
        models = {
            n: OpenAIChat(base_url=url, model="test-audio-model", max_concurrency=n) for n in levels
        }
        timed_batch(models[max(levels)], requests_for(max(levels), "warm", a.seconds))
        cost = in_process_cost(models[1], requests_for(200, "cost", a.seconds))
        rate: dict[int, float] = {}
        took: dict[int, float] = {}
        cpu: dict[int, float] = {}
        for n in levels:
            count = a.rounds * n
            runs = [
                timed_batch(models[n], requests_for(count, f"n{n}r{k}", a.seconds))
                for k in range(a.repeats)
            ]
            took[n] = statistics.median(t for t, _ in runs)
            cpu[n] = statistics.median(c for _, c in runs) / count
            rate[n] = count / took[n]
        single = rate[1]
        print(
            f"\n{'N':>3} {'requests':>8} {'seconds':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6} "
            f"{'client CPU ms/req':>18}"
        )
        worst = 1e9
        for n in levels:
            ratio = rate[n] / (n * single)
            worst = min(worst, ratio)
            print(
                f"{n:>3} {a.rounds * n:>8} {took[n]:>8.3f} {rate[n]:>8.2f} "
                f"{n * single:>8.2f} {ratio:>6.3f} {cpu[n] * 1e3:>18.2f}"
            )
        e2e = took[1] / a.rounds - a.latency
        print(
            f"\nadapter cost per request: {cost * 1e3:.2f} ms in process (payload + base64 + "
            f"JSON + parse, no network); {statistics.median(cpu.values()) * 1e3:.2f} ms of "
            f"client CPU with HTTP (median over N); {e2e * 1e3:.2f} ms of wall time at N=1 "
            f"beyond the {a.latency:g} s latency (incl. loopback HTTP and the server's work)"
        )
        print(
            f"worst ratio {worst:.3f}: {'GOAL MET' if worst >= 0.9 else 'GOAL NOT MET'} "
            "(>= 0.9 × N × single-request rate)"
        )
        for m in models.values():
            m.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
