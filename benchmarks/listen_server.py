"""How many answers per second does ``slm-eval listen serve`` store, on this machine?

Builds a MOS study from synthetic runs (2 systems, ``--items`` items of ``--seconds`` s each),
starts the server in a subprocess on 127.0.0.1, and with an aiohttp client:

- **baseline**: ``--requests`` GETs of ``/static/style.css`` (the cheapest route: no
  validation, no disk write), ``--concurrency`` at a time;
- **answers**: ``--requests`` POSTs of valid answers from ``--raters`` raters, the same
  concurrency; each one is validated and its rater's file rewritten atomically (fsync + rename).

Prints both rates, their ratio (answers / baseline: the cost of validation and durable
storage), and the bytes of the study folder (``du``-style, audio included).

    python benchmarks/listen_server.py [--items 20] [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def _runs(root: Path, items: int, seconds: float) -> list[Path]:
    sr = 16000
    paths = []
    for k, name in enumerate(("sys-a", "sys-b")):
        run = root / name
        (run / "audio").mkdir(parents=True)
        rows = []
        for i in range(items):
            t = np.arange(int(seconds * sr)) / sr
            x = 0.2 * np.sin(2 * np.pi * (200 + 40 * k + 5 * i) * t)
            h = f"{k:02d}{i:062d}"
            sf.write(run / "audio" / f"{h}.wav", x.astype(np.float32), sr, subtype="FLOAT")
            rows.append({"doc_id": f"doc{i:04d}", "output_audio": f"audio/{h}.wav"})
        (run / "samples_resynth_wer_B.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
        res = {"results": {"resynth_wer": {"wer,none": 0.0}}, "model_name": name, "config": {}}
        (run / "results_B.json").write_text(json.dumps(res))
        paths.append(run / "results_B.json")
    return paths


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def _hammer(port: int, reqs: list[tuple[str, str, bytes | None]], conc: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(conc)
    bad = 0

    async def one(session, method, path, body):
        nonlocal bad
        async with sem:
            headers = {"Content-Type": "application/json"} if body else {}
            async with session.request(
                method, f"http://127.0.0.1:{port}{path}", data=body, headers=headers
            ) as r:
                await r.read()
                bad += r.status != 200

    async with aiohttp.ClientSession() as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(s, *r) for r in reqs))
        dt = time.perf_counter() - t0
    if bad:
        raise SystemExit(f"{bad} requests failed")
    return len(reqs) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--raters", type=int, default=8)
    a = ap.parse_args()

    from speechlm_eval.listen.study import create_study

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        st = create_study(_runs(root / "runs", a.items, a.seconds), "mos", root / "study")
        size = _du(st.root)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "speechlm_eval.cli", "listen", "serve", str(st.root)]
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            plans = {f"b{r}": st.plan(f"b{r}") for r in range(a.raters)}
            posts = []
            for i in range(a.requests):
                rater = f"b{i % a.raters}"
                t = plans[rater][(i // a.raters) % len(plans[rater])]
                body = {"trial": t["id"], "value": 1 + i % 5, "played": t["stimuli"]}
                posts.append(("POST", f"/api/{rater}/answer", json.dumps(body).encode()))
            gets = [("GET", "/static/style.css", None)] * a.requests
            base = asyncio.run(_hammer(port, gets, a.concurrency))
            rate = asyncio.run(_hammer(port, posts, a.concurrency))
        finally:
            proc.terminate()
            proc.wait()
    print(f"cpus: {os.cpu_count()}, requests: {a.requests}, concurrency: {a.concurrency}")
    print(f"baseline GET /static/style.css: {base:8.1f} req/s")
    print(f"answers POST (validated, fsync): {rate:8.1f} answers/s")
    print(f"ratio answers / baseline: {rate / base:.3f}")
    print(
        f"study folder: {size} bytes for {a.items} items x 2 systems "
        f"({len(st.trials)} trials, {len(st.stimuli)} stimuli of {a.seconds:g} s)"
    )


if __name__ == "__main__":
    main()
