"""What a subset builder gets: seeded randomness, voices, and atomic, resumable file writes."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .voices import SAMPLE_RATE, Voice

SIZES = ("tiny", "small", "full")


def stem(seed: int, *keys: object) -> str:
    """Opaque file stem, as in the official data: names reveal nothing about the label."""
    return hashlib.sha256(repr((seed, *keys)).encode()).hexdigest()[:12]


@dataclass
class BuildContext:
    """Everything a subset needs; all files go below ``work`` (a private staging folder)."""

    work: Path
    seed: int
    size: str
    voices: dict[str, Voice]
    subset: str
    progress: Any = None  # a tqdm bar (or None)
    written: int = field(default=0)

    def _seed(self, *keys: object) -> int:
        h = hashlib.sha256(repr((self.seed, self.subset, *keys)).encode()).digest()
        return int.from_bytes(h[:8], "little")

    def rng(self, *keys: object) -> random.Random:
        """A random generator determined by (seed, subset, keys) only, not by call order."""
        return random.Random(self._seed(*keys))

    def np_rng(self, *keys: object) -> np.random.Generator:
        return np.random.default_rng(self._seed(*keys))

    def path(self, rel: str) -> Path:
        return self.work / rel

    def has(self, rel: str) -> bool:
        """True when a previous, interrupted build already wrote this file (resume)."""
        return (self.work / rel).is_file()

    def write_wav(self, rel: str, audio: np.ndarray) -> Path:
        """16-bit PCM at 16 kHz, written to a temporary name and renamed (never half-written)."""
        p = self.work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"{rel}: refusing to write empty or non-finite audio")
        tmp = p.with_name(f".{p.name}.tmp")
        sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, p)
        self.written += 1
        return p

    def write_text(self, rel: str, text: str) -> Path:
        p = self.work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
        return p

    def tick(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(n)


@dataclass
class SubsetResult:
    """What a subset reports after building: counts for the manifest and the card."""

    counts: dict[str, int]
    voices: list[str]
    notes: dict[str, Any] = field(default_factory=dict)


class Subset:
    """One benchmark of the suite. Subclasses set the class attributes and ``build``."""

    name: str = ""
    version: int = 1
    outputs: tuple[str, ...] = ()  # folders (official layout) this subset produces
    description: str = ""

    def planned(self, size: str) -> int:
        """Roughly how many files ``build`` will write (for the progress bar)."""
        return 0

    def build(self, ctx: BuildContext) -> SubsetResult:
        raise NotImplementedError
