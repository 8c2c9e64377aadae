"""SIGKILL ``slm-eval run`` at 20 seeded random points and resume each time.

Kill points fall across tasks, inside model batches (the fake model sleeps inside its
call) and while the results file is being written (the test plugin pauses just before
the final rename). After every kill: no results file and no partial file; at the end:
results equal to an uninterrupted run, every request computed once except the one in
flight at each kill, and the cache holds every request.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

from cli_helpers import N_FILES, TASKS, cli_data, committed, run_args, slm

from speechlm_eval.results import strip_volatile

KILLS = 20
WRITE_KILLS = 4  # the last ones: by then every request is cached and the run goes to writing


def _log(path) -> tuple[list[list[str]], int]:
    if not path.exists():
        return [], 0
    lines = path.read_text().splitlines()
    calls = [json.loads(x) for x in lines if x.startswith("[")]
    return calls, sum(1 for x in lines if x.startswith("write "))


def _comparable(res: dict) -> dict:
    r = strip_volatile(res)
    for k in ("use_cache", "model_args", "batch_size"):
        r["config"].pop(k)
    return r


def test_twenty_sigkills_lose_nothing(env, tmp_path):
    data = cli_data(tmp_path / "data")
    slm(env, *run_args(data, tmp_path / "ref", tmp_path / "ref.sqlite"), check=0)
    cache, out, log = tmp_path / "c.sqlite", tmp_path / "out", tmp_path / "calls.log"
    args = run_args(
        data,
        out,
        cache,
        TASKS,
        "--batch_size",
        "1",
        "--model_args",
        f"calls_log={log},delay=0.04,slow_write=2",
    )
    cmd = [sys.executable, "-m", "speechlm_eval.cli", *map(str, args)]
    rng = random.Random(20)
    history = []
    for i in range(KILLS):
        calls0, writes0 = _log(log)
        writing = i >= KILLS - WRITE_KILLS
        want = rng.randint(1, 4)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            calls, writes = _log(log)
            if (writes > writes0) if writing else (len(calls) >= len(calls0) + want):
                break
            time.sleep(0.005)
        if not writing:
            time.sleep(rng.uniform(0, 0.04))  # somewhere inside the next batch
        assert proc.poll() is None, f"kill {i}: the run ended before the kill point"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        history.append(("write" if writing else "batch", committed(cache)))
        assert not list(out.rglob("results_*.json")), f"kill {i} left a results file"
    n_before = committed(cache)
    assert n_before == N_FILES  # the write-phase kills came after all work was cached
    # Counting every request the model was ever asked: each kill loses at most the one
    # request in flight (batch size 1); nothing committed was asked for again.
    asked = sum(len(c) for c in _log(log)[0])
    assert N_FILES <= asked <= N_FILES + KILLS - WRITE_KILLS
    final = slm(env, *args, check=0)
    assert final.returncode == 0
    res = json.loads(next((out / "energy").glob("results_*.json")).read_text())
    assert sum(c["computed"] for c in res["runtime"]["cache"].values()) == 0
    ref = json.loads(next((tmp_path / "ref" / "energy").glob("results_*.json")).read_text())
    assert _comparable(res) == _comparable(ref)
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == [], leftovers  # the final write swept the killed writers' temp files
    assert [h for h in history if h[0] == "write"] and len(history) == KILLS
