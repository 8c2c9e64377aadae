"""Per-request result cache in SQLite, shared by processes and runs.

Keys combine the model's identity with a request hash, so a cached value is
reused only for the same model on the same input. Each batch is committed in
one transaction: a run killed at any point leaves every finished batch behind
and nothing half-written, and the next run (any number of processes) skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

TIMEOUT_S = 120.0  # how long a process waits for another one's lock before giving up


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    """Connect, switch to WAL and create the table, retrying while another process holds a lock.

    SQLite's busy timeout does not cover everything here: when several processes open a new
    cache at once (the ranks of a distributed run), switching the journal mode to WAL can
    fail at once with "database is locked" (measured: 8 of 40 rounds of 8 processes opening
    a fresh file together). So the set-up is retried with a growing pause up to ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        try:
            # WAL is persistent: only the first opener of a file has to switch it.
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            return db
        except sqlite3.OperationalError as e:
            db.close()
            busy = "locked" in str(e) or "busy" in str(e)
            if not busy or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.5)


class ResultCache:
    """A key -> JSON value store.

    ``path=None`` (``--no_cache``) writes nothing to disk: values stay in memory for the run,
    so a request repeated within it (the same input transcribed for two tasks) is computed
    once, and nothing is read from or left for another run.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._db: sqlite3.Connection | None = None
        self._mem: dict[str, str] = {}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _open(self.path, TIMEOUT_S)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        if self._db is None:
            return {k: json.loads(self._mem[k]) for k in keys if k in self._mem}
        keys = list(keys)
        out: dict[str, Any] = {}
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[i : i + 500]
            q = f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(chunk))})"
            out.update((k, json.loads(v)) for k, v in self._db.execute(q, chunk))
        return out

    def put_many(self, values: Mapping[str, Any]) -> None:
        if self._db is None:
            # Stored as JSON text, as on disk: a reader gets a fresh copy, never a shared object.
            self._mem.update((k, json.dumps(v)) for k, v in values.items())
            return
        if not values:
            return
        rows = [(k, json.dumps(v)) for k, v in values.items()]
        with self._db:  # one transaction per batch
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class BlobStore:
    """Arrays and audio too large for the JSON cache: one ``.npy`` file per key, written atomically.

    Lives next to the SQLite cache (``<cache>.blobs/``); the SQLite row of a request names its
    blob, so a row without its file (deleted by hand) is treated as a miss and recomputed.
    ``root=None`` keeps nothing across runs (``--no_cache``): values go to a temporary folder
    deleted with the store, so a run's memory stays bounded by what it holds at once, not by
    how many outputs it made (a large generation task would not fit in memory).
    """

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None
        if self.root is None:
            self._spill = Path(tempfile.mkdtemp(prefix="slm-eval-blobs-"))
            # Removed when the store is collected or at exit (no ResourceWarning, unlike an
            # implicitly cleaned TemporaryDirectory).
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._spill, True)

    def close(self) -> None:
        """Remove the temporary folder of a store without a root (no-op otherwise)."""
        if self.root is None:
            self._cleanup()

    @classmethod
    def beside(cls, cache_path: str | Path | None) -> BlobStore:
        return cls(Path(f"{cache_path}.blobs") if cache_path else None)

    def _path(self, key: str) -> Path:
        root = self.root if self.root is not None else self._spill
        return root / key[:2] / f"{key}.npy"

    def put(self, key: str, array: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, path)  # readers see the whole file or none

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # truncated by a crash before os.replace cannot happen,
            return None  # but a disk error or a hand-edited file is a miss, not a failure
