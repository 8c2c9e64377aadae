"""Speech synthesis for the build, in worker processes.

Synthesis dominates the build (Piper's VITS graph is about 90% of the CPU time of a
``small`` build), and the voices cannot run in threads: eSpeak NG is process-global C
state, and onnxruntime runs on one thread here on purpose (see ``voices.py``). So the
work is spread over ``jobs`` processes with ``concurrent.futures.ProcessPoolExecutor``;
each worker loads the voice pool once.

Every utterance is a pure function of (voice, kind, content), so the files do not
depend on how many workers made them, or in which order: results come back in the
order asked and are written by the main process only.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .voices import Voice


@dataclass(frozen=True)
class Utterance:
    """One thing to say: a voice name, ``kind`` "text" or "phones", and what to say."""

    voice: str
    kind: str
    content: str | tuple[str, ...]

    @staticmethod
    def of(voice: str, kind: str, content: str | Sequence[str]) -> Utterance:
        return Utterance(voice, kind, content if isinstance(content, str) else tuple(content))


def default_jobs() -> int:
    """Worker processes by default: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- worker side
_WORKER_VOICES: dict[str, Voice] = {}


def _init_worker(voices: dict[str, Voice]) -> None:
    # Ctrl-C goes to the whole process group; only the main process handles it (it
    # keeps the partial build and shuts the pool down).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_VOICES.clear()
    _WORKER_VOICES.update(voices)


def _run(voices: dict[str, Voice], op: str, utts: Sequence[Utterance]) -> tuple[list, float]:
    t0 = time.process_time()
    if op == "audio":
        out: list = [voices[u.voice].say(u.kind, u.content) for u in utts]
    elif op == "length":
        out = [voices[u.voice].length(u.kind, u.content) for u in utts]
    else:
        raise ValueError(f"unknown synthesis op {op!r}")
    return out, time.process_time() - t0


def _run_in_worker(op: str, utts: Sequence[Utterance]) -> tuple[list, float]:
    return _run(_WORKER_VOICES, op, utts)


def _warm_worker() -> float:
    t0 = time.process_time()
    for v in _WORKER_VOICES.values():
        v.warm()
    return time.process_time() - t0


# ---------------------------------------------------------------- main side
class Synthesizer:
    """Ordered, streaming synthesis over the voice pool in ``jobs`` processes (1: in this one).

    ``audio`` yields arrays in the order of the utterances, computing ahead by at most
    ``window`` chunks (bounded memory); ``lengths`` returns exact sample counts. With
    more than one job everything runs in the workers (the voices are loaded there only).
    ``cpu_seconds`` accumulates the CPU time the workers spent (for the build record).
    """

    def __init__(self, voices: dict[str, Voice], jobs: int = 1, chunk: int = 8) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.voices = voices
        self.jobs = jobs
        self.chunk = chunk
        self.window = 3 * jobs
        self.cpu_seconds = 0.0
        self._pool: ProcessPoolExecutor | None = None
        self._warming: list[Future] = []
        self._warm_started = False

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            # Not fork: onnxruntime and eSpeak hold native state that must not be copied.
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.voices,),
            )
        return self._pool

    def warm(self) -> None:
        """Start the workers and load the voices in them now (e.g. while the main process
        prepares texts) rather than at the first utterance. Once; nothing for one job."""
        if self.jobs > 1 and not self._warm_started:
            self._warm_started = True
            pool = self._executor()
            self._warming = [pool.submit(_warm_worker) for _ in range(self.jobs)]

    def _account_warm(self) -> None:
        pending = []
        for f in self._warming:
            if not f.done():
                pending.append(f)
            elif not f.cancelled() and f.exception() is None:
                self.cpu_seconds += f.result()
        self._warming = pending

    def _stream(self, op: str, utts: Sequence[Utterance], chunk: int) -> Iterator[Any]:
        if self.jobs > 1:  # small requests: spread over the workers rather than one chunk
            chunk = max(1, min(chunk, -(-len(utts) // (2 * self.jobs))))
        chunks = [list(utts[i : i + chunk]) for i in range(0, len(utts), chunk)]
        if self.jobs == 1:
            for ch in chunks:
                out, _ = _run(self.voices, op, ch)  # in-process: already in process_time
                yield from out
            return
        pool = self._executor()
        todo = iter(chunks)
        pending: deque[Future] = deque()
        try:
            for ch in todo:
                pending.append(pool.submit(_run_in_worker, op, ch))
                if len(pending) >= self.window:
                    break
            while pending:
                out, cpu = pending.popleft().result()
                self.cpu_seconds += cpu
                self._account_warm()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(_run_in_worker, op, nxt))
                yield from out
        finally:
            for f in pending:
                f.cancel()

    def audio(self, utts: Iterable[Utterance]) -> Iterator[np.ndarray]:
        """The audio of each utterance, in order, as it becomes ready."""
        return self._stream("audio", list(utts), self.chunk)

    def lengths(self, utts: Iterable[Utterance]) -> list[int]:
        """Exact 16 kHz sample count of each utterance (cheaper than synthesis for Piper)."""
        return list(self._stream("length", list(utts), 4 * self.chunk))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._account_warm()
            self._pool = None

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
