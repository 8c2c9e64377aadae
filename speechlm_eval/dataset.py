"""Datasets as readers produce them, and where their files are looked for.

The likelihood-pair family (sWUGGY, sBLIMP, StoryCloze, SALMon, ...) is one
shape: *items*, each a choice among candidate audio files, candidate 0 being
the correct one. Scorers see only stems and per-stem scores, which is also what
a ZeroSpeech submission file holds, so scoring a submission and scoring a model
are the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import DataNotFoundError


@runtime_checkable
class TaskData(Protocol):
    """What every reader returns (:class:`ChoiceDataset`, ``TranscribedDataset``,
    ``ABXDataset``): the audio files by stem, the task's items, the data's identity (recorded
    in results), and the *docs* — the unit of ``--limit`` and of the first averaging step."""

    root: Path
    files: dict[str, Path]
    identity: dict[str, Any]

    @property
    def items(self) -> Any: ...

    def doc_ids(self) -> list[str]: ...

    def limited(self, limit: int | None) -> TaskData: ...


@dataclass(frozen=True)
class ChoiceItem:
    """One choice: ``candidates[0]`` is correct, the rest are foils (file stems)."""

    doc_id: str  # unit of --limit and of the first averaging step (e.g. ZR2021 pair id)
    candidates: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChoiceDataset:
    root: Path
    files: dict[str, Path]  # stem -> audio path
    items: list[ChoiceItem]
    identity: dict[str, Any]  # reader, root, manifest path and content hash, counts

    def doc_ids(self) -> list[str]:
        """Distinct doc ids in dataset order."""
        return list(dict.fromkeys(i.doc_id for i in self.items))

    def limited(self, limit: int | None) -> ChoiceDataset:
        """The first ``limit`` docs (all their items), as lm-evaluation-harness' --limit does."""
        if limit is None:
            return self
        keep = set(self.doc_ids()[:limit])
        items = [i for i in self.items if i.doc_id in keep]
        stems = {s for i in items for s in i.candidates}
        files = {s: p for s, p in self.files.items() if s in stems}
        return ChoiceDataset(self.root, files, items, self.identity)


@dataclass(frozen=True)
class SessionItem:
    """One stimulus of a ``converse`` task: the user channel ``files[doc_id]`` is streamed to
    the model; ``kind`` says what the stimulus tests (``conversation``, ``fullduplex``,
    ``pause_handling``, ``turn_taking``, ``backchannel``, ``user_interruption``, ...);
    ``meta``: the reader's annotations in seconds on the user channel's timeline (IPUs,
    planned pauses, turn ends, interruptions); ``reference``: the other side of a recorded
    conversation, when the data has it (its audio path; the human reference for statistics);
    ``variants``: other versions of the user channel the same model is also run on when a
    scorer asks for them (name -> audio path; Full-Duplex-Bench v1.5's ``clean``: the input
    without the overlap event)."""

    doc_id: str
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    reference: Any = None  # Path or AudioRef
    variants: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionDataset:
    """The stimuli of a ``converse`` task (see :class:`SessionItem`)."""

    root: Path
    files: dict[str, Any]  # doc_id -> user channel (Path, or AudioRef for a channel view)
    items: list[SessionItem]
    identity: dict[str, Any]

    def doc_ids(self) -> list[str]:
        return [i.doc_id for i in self.items]

    def limited(self, limit: int | None) -> SessionDataset:
        """The first ``limit`` stimuli."""
        if limit is None:
            return self
        items = self.items[:limit]
        keep = {i.doc_id for i in items}
        files = {k: v for k, v in self.files.items() if k in keep}
        return SessionDataset(self.root, files, items, self.identity)


def listing_hash(root: Path, paths: Iterable[Path]) -> str:
    """Content identity of a folder layout without a manifest: relative names and sizes."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def locate(task: str, subdirs: Iterable[str], roots: Iterable[tuple[str, Path]]) -> Path:
    """First existing ``root/subdir`` over ``roots`` ((label, path) pairs, in search order); a
    clear error listing every place looked at otherwise (:mod:`speechlm_eval.data_sources`
    chooses the roots)."""
    tried: list[str] = []
    roots = list(roots)
    for src, root in roots:
        for sub in subdirs:
            p = root / sub if sub != "." else root
            if p.is_dir():
                return p
            tried.append(f"{p} ({src})")
    if not roots:
        raise DataNotFoundError(
            f"task {task!r}: no data location configured; the task expects one of these "
            f"sub-folders: {', '.join(subdirs)}"
        )
    raise DataNotFoundError(f"task {task!r}: data folder not found; looked in: {'; '.join(tried)}")
