"""Test helpers: tiny official-layout datasets written by the tests, and a fake model.

Audio here is synthetic (tones) on purpose: these tests check the harness'
bookkeeping, not a model. Each file's content is unique so the cache keys
differ, and the fake model's score is a known function of the samples.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speechlm_eval import LoglikelihoodResult, SpeechLM

SR = 16000


def tone(seed: int, seconds: float = 0.25, amp: float = 0.1, sr: int = SR) -> np.ndarray:
    """A short deterministic tone with a little seeded noise (unique content per seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * (200 + 10 * (seed % 50)) * t) + 0.001 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def _slow_down_final_renames(log: str, seconds: float) -> None:
    """Crash tests: log "write <name>" and pause just before each results file is renamed into
    place, so a test can SIGKILL the run in the middle of writing its results."""
    import types

    import speechlm_eval.results as results

    def replace(src: str, dst: str) -> None:
        with open(log, "a") as f:
            f.write(f"write {Path(dst).name}\n")
            f.flush()
            os.fsync(f.fileno())
        time.sleep(seconds)
        os.replace(src, dst)

    results.os = types.SimpleNamespace(**{**vars(os), "replace": replace})


class EnergyLM(SpeechLM):
    """Fake model: log-prob = -1000 * mean energy per token, tokens = 50 per second.

    Quiet audio is "more likely", so fixtures control which candidate wins by
    amplitude, and sum vs mean scoring differ when durations differ. Calls are
    appended to ``calls_log`` (a file) when given, so tests can count them.
    """

    capabilities = frozenset({"loglikelihood"})
    sample_rate = SR

    def __init__(
        self, calls_log: str | None = None, delay: str = "0", slow_write: str = "0", **kw: str
    ) -> None:
        super().__init__(calls_log=calls_log, delay=delay, slow_write=slow_write, **kw)
        self.calls_log = calls_log
        self.delay = float(delay)
        self.calls: list[list[str]] = []
        if float(slow_write) > 0 and calls_log:
            _slow_down_final_renames(calls_log, float(slow_write))

    def identity(self) -> dict:
        return {"class": "EnergyLM", "version": 1}

    def loglikelihood(self, requests):
        self.calls.append([r.key for r in requests])
        if self.calls_log:
            with open(self.calls_log, "a") as f:
                f.write(json.dumps([r.key for r in requests]) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if self.delay:
            time.sleep(self.delay)
        out = []
        for r in requests:
            x = r.audio.samples.astype(np.float64)
            n = max(1, round(r.audio.duration * 50))
            out.append(LoglikelihoodResult(-1000.0 * float(np.mean(x**2)) * n, n))
        return out


def make_lexical(
    root: Path,
    ids: int = 4,
    voices: tuple[str, ...] = ("v1", "v2"),
    freqs: tuple[int, ...] = (0, 3, 10, 50, 500),
    win: set | None = None,
) -> Path:
    """ZR2021 lexical/dev: for pair (id, voice) the word wins unless (id, voice) is in ``win``
    (then the non-word is the quieter one)."""
    d = root / "zerospeech2021" / "lexical" / "dev"
    rows = []
    seed = 0
    for i in range(ids):
        for v in voices:
            lose = win is not None and (i, v) in win
            for correct in (1, 0):
                seed += 1
                quiet = (correct == 1) != lose
                name = f"{'w' if correct else 'n'}{i}_{v}"
                write_wav(d / f"{name}.wav", tone(seed, amp=0.05 if quiet else 0.2))
                rows.append(
                    {
                        "filename": name,
                        "id": f"id{i}",
                        "voice": v,
                        "frequency": freqs[i % len(freqs)] if correct else "",
                        "word": f"word{i}" if correct else "",
                        "phones": "a b",
                        "length": 2,
                        "correct": correct,
                    }
                )
    with open(d / "gold.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return d


def make_storycloze(
    root: Path, name: str = "sStoryCloze", n: int = 5, lose: set | None = None, seed: int = 100
) -> Path:
    d = root / name
    for i in range(n):
        bad = lose is not None and i in lose
        write_wav(d / f"{i}_correct.wav", tone(seed + 2 * i, amp=0.2 if bad else 0.05))
        write_wav(
            d / f"{i}_incorrect.wav", tone(seed + 1 + 2 * i, seconds=0.3, amp=0.05 if bad else 0.2)
        )
    return d


def make_salmon(root: Path, part: str = "speaker_consistency", n: int = 4, k: int = 2) -> Path:
    d = root / "salmon" / part
    for i in range(n):
        for j in range(k):
            write_wav(
                d / f"sample_{i}_{j}.wav", tone(300 + 10 * i + j, amp=0.05 if j == 0 else 0.2)
            )
    return d


def make_syntactic(
    root: Path, ids: int = 4, voices: tuple[str, ...] = ("v1", "v2"), types=("agr", "isl")
) -> Path:
    """ZR2021 syntactic/dev: correct rows first, then incorrect rows in the same order
    (pairs are formed by position). The correct sentence is the quieter one."""
    d = root / "zerospeech2021" / "syntactic" / "dev"
    good, bad = [], []
    seed = 700
    for i in range(ids):
        for v in voices:
            for correct, rows in ((1, good), (0, bad)):
                seed += 1
                name = f"{'c' if correct else 'x'}{i}_{v}"
                write_wav(d / f"{name}.wav", tone(seed, amp=0.05 if correct else 0.2))
                rows.append(
                    {
                        "filename": name,
                        "id": str(i),
                        "voice": v,
                        "type": types[i % len(types)],
                        "subtype": "s",
                        "transcription": "",
                        "correct": correct,
                    }
                )
    with open(d / "gold.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(good[0]))
        w.writeheader()
        w.writerows(good + bad)
    return d


def build_tiny(out: Path, names: list[str], voices: dict | None = None) -> dict:
    """Build registered built-in subsets at size tiny (optionally with another voice pool)."""
    import pytest

    from speechlm_eval.builtin import build as build_mod

    with pytest.MonkeyPatch.context() as mp:
        if voices is not None:
            mp.setattr(build_mod, "all_voices", lambda: voices)
        return build_mod.build(out, seed=0, size="tiny", names=names, progress=False)
