"""What a subset builder gets: seeded randomness, voices, and atomic, resumable file writes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .synth import Synthesizer, Utterance
from .voices import SAMPLE_RATE, Voice

SIZES = ("tiny", "small", "full")


def stem(seed: int, *keys: object) -> str:
    """Opaque file stem, as in the official data: names reveal nothing about the label."""
    return hashlib.sha256(repr((seed, *keys)).encode()).hexdigest()[:12]


class _Prefetched(Voice):
    """A voice of the pool that first looks in the build's prefetched audio.

    Subsets call ``ctx.voices[name].text(...)`` as if synthesis were local; after
    ``ctx.prefetch`` those calls return audio the worker processes already made
    (identical bytes: synthesis is a pure function of its input).
    """

    def __init__(self, voice: Voice, ctx: BuildContext) -> None:
        self.voice, self.ctx, self.info = voice, ctx, voice.info

    def _get(self, kind: str, content: str | Sequence[str]) -> np.ndarray:
        got = self.ctx._take(Utterance.of(self.info.name, kind, content))
        return got if got is not None else self.voice.say(kind, content)

    def text(self, text: str) -> np.ndarray:
        return self._get("text", text)

    def phones(self, phones: Sequence[str]) -> np.ndarray:
        return self._get("phones", phones)

    def length(self, kind: str, content: str | Sequence[str]) -> int:
        return self.voice.length(kind, content)


@dataclass
class BuildContext:
    """Everything a subset needs; all files go below ``work`` (a private staging folder).

    ``voices`` are the pool's voices (wrapped so that prefetched audio is used);
    ``synth`` runs synthesis in the build's worker processes (``jobs``).
    """

    work: Path
    seed: int
    size: str
    voices: dict[str, Voice]
    subset: str
    progress: Any = None  # a tqdm bar (or None)
    written: int = field(default=0)
    synth: Synthesizer | None = None
    _cache: dict[Utterance, np.ndarray] = field(default_factory=dict, repr=False)
    _uses: Counter = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        raw = {k: v.voice if isinstance(v, _Prefetched) else v for k, v in self.voices.items()}
        if self.synth is None:
            self.synth = Synthesizer(raw, jobs=1)
        self.voices = {k: _Prefetched(v, self) for k, v in raw.items()}

    # ------------------------------------------------------------ synthesis
    def synthesize(self, utts: Iterable[Utterance]) -> Iterator[np.ndarray]:
        """Audio of each utterance, in order, made in the worker processes as they go."""
        assert self.synth is not None
        return self.synth.audio(utts)

    def lengths(self, utts: Iterable[Utterance]) -> list[int]:
        """Exact sample counts (16 kHz) of the utterances, without keeping any audio."""
        assert self.synth is not None
        return self.synth.lengths(utts)

    def prefetch(self, utts: Iterable[Utterance]) -> None:
        """Make these utterances in the worker processes now; ``voices`` calls then use them.

        Each prefetched array is kept until it has been asked for as many times as it
        was listed. With one job this does nothing (synthesis happens on demand).
        """
        assert self.synth is not None
        if self.synth.jobs == 1:
            return
        utts = list(utts)
        self._uses.update(utts)
        todo = [u for u in dict.fromkeys(utts) if u not in self._cache]
        for u, audio in zip(todo, self.synth.audio(todo), strict=True):
            self._cache[u] = audio

    def _take(self, u: Utterance) -> np.ndarray | None:
        audio = self._cache.get(u)
        if audio is not None:
            self._uses[u] -= 1
            if self._uses[u] <= 0:
                del self._cache[u], self._uses[u]
            else:  # handed out again later: a caller changing it in place must not matter
                audio = audio.copy()
        return audio

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
        # Encoded in memory, then written and renamed: the same bytes as sf.write to the
        # path, without libsndfile's fsync on close (7 ms a file here, 1.4 ms this way).
        buf = io.BytesIO()
        sf.write(buf, x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_bytes(buf.getvalue())
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

    def write_csv(self, rel: str, rows: Sequence[dict[str, Any]]) -> Path:
        """Rows (columns in the first row's key order) as a CSV with ``\\n`` line ends."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return self.write_text(rel, buf.getvalue())

    def write_planned(self, todo: Sequence[tuple[str, int, Utterance]]) -> None:
        """Synthesise ``(rel, planned samples, utterance)`` and write each file.

        For subsets whose duration balance was computed on exact lengths before synthesis:
        a file of any other length would silently break that balance, so it is an error.
        """
        self.status("synthesising")
        for (rel, n, _), audio in zip(todo, self.synthesize(u for *_, u in todo), strict=True):
            if audio.size != n:
                raise AssertionError(f"{rel}: {audio.size} samples, planned {n}")
            self.write_wav(rel, audio)
            self.tick()

    def memo(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` (JSON-able), kept in the staging folder so that a resumed build reuses it.

        For plans that cost synthesis to compute (duration screening). The staging folder
        is specific to (subset, version, seed, size), and the file is not an output.
        """
        rel = f".{name}.json"
        if self.has(rel):
            return json.loads(self.path(rel).read_text(encoding="utf-8"))
        value = make()
        self.write_text(rel, json.dumps(value))
        return json.loads(json.dumps(value))  # same types whether fresh or resumed

    def status(self, text: str) -> None:
        """Show what the build is doing next to the progress bar."""
        if self.progress is not None:
            self.progress.set_postfix_str(text, refresh=True)

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
