"""Data-parallel runs under torchrun (gloo, several CPU processes on this machine)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import N_FILES, TASKS, cli_data, committed, run_args

from speechlm_eval.distributed import Dist
from speechlm_eval.results import strip_volatile

pytestmark = pytest.mark.slow


def torchrun(n: int, args: list) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    return [*cmd, "-m", "speechlm_eval.cli", *map(str, args)]


def _descendants(pid: int) -> list[int]:
    """Child processes, recursively (torchrun starts each rank in a session of its own, so
    killing the launcher's process group would leave the ranks running)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for c in kids:
            out += [c, *_descendants(c)]
    return out


def kill_tree(pid: int) -> None:
    procs = [pid, *_descendants(pid)]
    for sig in (signal.SIGSTOP, signal.SIGKILL):  # freeze all first: nobody reacts to a death
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)


def _results(out: Path) -> dict:
    files = list((out / "energy").glob("results_*.json"))
    assert len(files) == 1, files  # rank 0 alone writes
    res = strip_volatile(json.loads(files[0].read_text()))
    for k in ("use_cache", "model_args", "batch_size"):
        res["config"].pop(k)
    return res


def test_shard_takes_every_world_size_th():
    order = list(range(10))
    parts = [Dist(r, 4).shard(order) for r in range(4)]
    assert parts[1] == [1, 5, 9]
    assert sorted(x for p in parts for x in p) == order  # a partition: nothing lost or doubled


def test_results_do_not_depend_on_world_size(env, tmp_path):
    data = cli_data(tmp_path / "data")
    runs = {}
    for n in (1, 2, 4):
        out, cache = tmp_path / f"out{n}", tmp_path / f"c{n}.sqlite"
        p = subprocess.run(
            torchrun(n, run_args(data, out, cache, "zerospeech,storycloze", "--batch_size", "3")),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        raw = json.loads(next((out / "energy").glob("results_*.json")).read_text())
        assert raw["runtime"]["world_size"] == n
        # Every request computed exactly once across ranks.
        assert (
            sum(c["computed"] for c in raw["runtime"]["cache"].values()) == N_FILES - 18
        )  # without salmon_gender_consistency's 18 files
        runs[n] = _results(out)
    assert runs[1] == runs[2] == runs[4]


def test_run_killed_at_four_ranks_resumes_at_two(env, tmp_path):
    data = cli_data(tmp_path / "data")
    ref = subprocess.run(
        torchrun(1, run_args(data, tmp_path / "ref", tmp_path / "ref.sqlite")),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    cache, out, log = tmp_path / "c.sqlite", tmp_path / "out", tmp_path / "calls.log"
    args = run_args(
        data, out, cache, TASKS, "--batch_size", "2", "--model_args", f"calls_log={log},delay=0.1"
    )
    proc = subprocess.Popen(
        torchrun(4, args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed"
    kill_tree(proc.pid)  # the launcher and all four ranks at once, like a lost node
    proc.wait()
    time.sleep(1)  # a surviving rank would write its results within this time
    before = committed(cache)
    assert 0 < before < N_FILES
    assert not list(out.rglob("results_*.json"))
    final = subprocess.run(torchrun(2, args), env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    raw = json.loads(next((out / "energy").glob("results_*.json")).read_text())
    assert sum(c["computed"] for c in raw["runtime"]["cache"].values()) == N_FILES - before
    assert _results(out) == _results(tmp_path / "ref")
