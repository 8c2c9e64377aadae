"""The SQLite result cache opened by many processes at once (the ranks of a distributed run).

Before the set-up retried, 8 processes opening a fresh cache file together failed with
"database is locked" in 8 of 40 rounds here (seen first as a flaky
``tests/test_distributed.py`` run); every process must now open it and write its value.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from speechlm_eval.cache import ResultCache, _open

N_PROCS = 8
ROUNDS = 30


def _worker(path: str, barrier, queue, i: int) -> None:
    barrier.wait()  # all processes open the same new file at the same moment
    try:
        cache = ResultCache(path)
        cache.put_many({f"k{i}": i})
        cache.close()
        queue.put(None)
    except Exception as e:  # reported to the parent, which fails the test
        queue.put(repr(e))


def test_processes_opening_a_new_cache_together(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    errors: list[str] = []
    for r in range(ROUNDS):
        path = tmp_path / f"cache{r}.sqlite"
        barrier, queue = ctx.Barrier(N_PROCS), ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(str(path), barrier, queue, i)) for i in range(N_PROCS)
        ]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        errors += [e for e in results if e]
        got = ResultCache(path).get_many(f"k{i}" for i in range(N_PROCS))
        assert got == {f"k{i}": i for i in range(N_PROCS)}, f"round {r}"
    assert errors == []


def test_open_gives_up_after_the_timeout(tmp_path: Path) -> None:
    """A lock held for longer than the timeout still ends in SQLite's own error."""
    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # nobody else can even read the schema
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _open(path, timeout=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
