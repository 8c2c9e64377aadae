"""Libri-light / ZeroSpeech ABX item files and the dataset type the ``abx_item`` reader returns.

An item file is a header line, then one line per triphone token::

    #file onset offset #phone prev-phone next-phone speaker
    84-121123-0000 0.3725 0.5025 IH B L 84

``onset``/``offset`` are seconds into the file; the central phone is ``#phone``; its
context is ``prev-phone`` + ``next-phone``. The reference implementations
(facebookresearch/libri-light ``eval/ABX_src``, zerospeech/libri-light-abx2) skip the
first line whatever it holds, give phones, contexts (``prev+next``) and speakers integer
ids in order of first appearance, and use those ids to order the groups; we keep both
facts because the random sub-sampling of large groups depends on that order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

N_COLUMNS = 7
HEADER = "#file onset offset #phone prev-phone next-phone speaker"


@dataclass(frozen=True)
class Item:
    """One triphone token of an item file (``line`` is its 1-based line number)."""

    file: str
    onset: float
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str
    line: int

    @property
    def context(self) -> str:
        """The context label as the reference builds it: ``prev+next``."""
        return f"{self.prev}+{self.next}"


def read_item_file(path: Path) -> list[Item]:
    """Parse and validate an item file; any malformed line is a :class:`DataError` with its number.

    Checks: a header line first (starting with ``#``, as in every official file: the
    reference skips line 1 unread, so a data row there would be lost silently), 7
    whitespace-separated columns, finite numeric onset/offset with ``0 <= onset < offset``.
    Blank lines are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: item file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read item file ({e})") from None
    lines = text.splitlines()
    if not lines or not lines[0].lstrip().startswith("#"):
        raise DataError(
            f"{path}: line 1: expected the header line '{HEADER}' (the first line is never "
            f"read as an item), got {lines[0][:80]!r}"
            if lines
            else f"{path}: empty item file"
        )
    items: list[Item] = []
    for n, line in enumerate(lines[1:], start=2):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != N_COLUMNS:
            raise DataError(
                f"{path}: line {n}: expected {N_COLUMNS} columns ({HEADER}), got {len(cols)}: "
                f"{line.strip()[:120]!r}"
            )
        try:
            onset, offset = float(cols[1]), float(cols[2])
        except ValueError:
            raise DataError(
                f"{path}: line {n}: onset and offset must be numbers (seconds), got "
                f"{cols[1]!r} and {cols[2]!r}"
            ) from None
        if not (math.isfinite(onset) and math.isfinite(offset)):
            raise DataError(f"{path}: line {n}: onset/offset must be finite, got {cols[1:3]}")
        if onset < 0:
            raise DataError(f"{path}: line {n}: onset {onset} is negative")
        if onset >= offset:
            raise DataError(
                f"{path}: line {n}: onset {onset} must be before offset {offset} (file {cols[0]!r})"
            )
        items.append(Item(cols[0], onset, offset, cols[3], cols[4], cols[5], cols[6], n))
    if not items:
        raise DataError(f"{path}: no items after the header line")
    return items


def first_appearance_ids(
    items: Iterable[Item],
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Integer ids of contexts, phones and speakers in order of first appearance.

    The reference orders groups by these ids (not alphabetically), which fixes the order
    in which groups are visited and therefore which items the seeded sub-sampling picks.
    """
    contexts: dict[str, int] = {}
    phones: dict[str, int] = {}
    speakers: dict[str, int] = {}
    for it in items:
        contexts.setdefault(it.context, len(contexts))
        phones.setdefault(it.phone, len(phones))
        speakers.setdefault(it.speaker, len(speakers))
    return contexts, phones, speakers


def check_against_durations(
    items: Iterable[Item], durations: dict[str, float], where: Path
) -> None:
    """Each item must lie inside its file: onset before the end, offset at most 25 ms past it.

    The 25 ms slack covers item times rounded up to the aligner's 10 ms grid at the very
    end of a file; anything later means the item file does not belong to this audio.
    """
    for it in items:
        dur = durations.get(it.file)
        if dur is None:
            continue
        if it.onset >= dur:
            raise DataError(
                f"{where}: line {it.line}: onset {it.onset} s is beyond the end of file "
                f"{it.file!r} ({dur:.4f} s long)"
            )
        if it.offset > dur + 0.025:
            raise DataError(
                f"{where}: line {it.line}: offset {it.offset} s is beyond the end of file "
                f"{it.file!r} ({dur:.4f} s long)"
            )


@dataclass
class ABXDataset:
    """What the ``abx_item`` reader returns: the items and the audio they point into.

    ``files`` maps each file stem named by the item file to its audio path;
    ``durations`` holds each file's duration in seconds (from the audio header), used to
    check that features were produced at the frame rate the model declares.
    """

    root: Path
    files: dict[str, Path]
    items: list[Item]
    identity: dict[str, Any]  # reader, root, item file and its SHA-256, counts
    item_path: Path
    durations: dict[str, float] = field(default_factory=dict)

    def doc_ids(self) -> list[str]:
        """Distinct file stems in item-file order: the unit of ``--limit`` for ABX."""
        return list(dict.fromkeys(it.file for it in self.items))

    def limited(self, limit: int | None) -> ABXDataset:
        """The first ``limit`` files (in item-file order) and all their items."""
        if limit is None:
            return self
        keep = set(self.doc_ids()[:limit])
        return ABXDataset(
            self.root,
            {s: p for s, p in self.files.items() if s in keep},
            [it for it in self.items if it.file in keep],
            self.identity,
            self.item_path,
            {s: d for s, d in self.durations.items() if s in keep},
        )
