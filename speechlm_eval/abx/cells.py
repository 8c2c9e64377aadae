"""Which (A, B, X) groups are compared: the ABX cells, with the reference's seeded sub-sampling.

Conditions (zerospeech/libri-light-abx2, which extends libri-light's ``ABX_src``):

- *within speaker*: A, B and X from one speaker; X is drawn from A's group (the pair X = A
  itself is excluded);
- *across speaker*: A and B from one speaker, X (with A's phone) from another;
- *within context*: A, B (and X) share the context (previous and next phone);
  *any context*: context is ignored.

A *cell* is one (speaker of A, phone A, phone B[, context][, speaker of X]) combination
with its groups; its score is the fraction of (x, a, b) triples where X is closer to A
than to B (ties count 1/2), and its error is one minus that.

Sub-sampling, as the reference does it, so that the same seed picks the same items:

- items are sorted (stably, from the canonical item order) by (context, speaker, phone)
  ids -- by (speaker, phone) for any context -- with ids in order of first appearance in
  the item file; a group is a run of equal keys;
- one ``random.Random(seed)`` stream per (speaker mode, context mode) run (the reference
  re-seeds Python's global ``random`` when it builds each iterator);
- each time a group is taken for a cell and holds more than ``max_size_group`` items,
  ``rng.sample(positions, max_size_group)`` picks them, in the order of the calls below
  (so A is re-drawn for every B);
- across speakers, when more than ``max_x_across`` other speakers have A's (context and)
  phone, ``rng.sample(their groups, max_x_across)`` picks them once per A group.

Order of draws per cell: within speaker, B then A (X is that same draw of A); across
speaker, the X speakers once per A group, then A, B, X for every (X speaker, B).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SPEAKER_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")


@dataclass(frozen=True)
class Cell:
    """One ABX cell: item indices of A, B, X (X is A for within speaker)."""

    speaker: int  # speaker id of A and B
    phone_a: int
    phone_b: int
    context: int  # context id; -1 for any context
    speaker_x: int  # speaker id of X (== speaker within speaker)
    a: tuple[int, ...]
    b: tuple[int, ...]
    x: tuple[int, ...]
    symmetric: bool  # X is A: pairs with x == a are excluded


Range = tuple[int, int]


def _groups(keys: np.ndarray) -> list[tuple[tuple[int, ...], Range]]:
    """Runs of equal rows in sorted ``keys`` (n, k): [(key, (start, end))]."""
    out = []
    start = 0
    rows = [tuple(int(v) for v in r) for r in keys]
    for key, run in itertools.groupby(range(len(rows)), key=lambda r: rows[r]):
        n = sum(1 for _ in run)
        out.append((key, (start, start + n)))
        start += n
    return out


def group_order(
    context_id: np.ndarray, phone_id: np.ndarray, speaker_id: np.ndarray, context_mode: str
) -> np.ndarray:
    """Item indices stably sorted by (context, speaker, phone) ids, or (speaker, phone)."""
    ctx = np.asarray(context_id) if context_mode == "within" else np.full(len(phone_id), -1)
    # np.lexsort is stable and sorts by the last key first.
    return np.lexsort((phone_id, speaker_id, ctx)).astype(np.int64)


def iter_cells(
    context_id: np.ndarray,
    phone_id: np.ndarray,
    speaker_id: np.ndarray,
    *,
    speaker_mode: str,
    context_mode: str,
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
) -> Iterator[Cell]:
    """Yield the cells of one (speaker mode, context mode) condition in the reference's order.

    ``*_id`` are per-item labels in the canonical item order. ``max_size_group`` /
    ``max_x_across`` of None disable the corresponding cap.
    """
    if speaker_mode not in SPEAKER_MODES or context_mode not in CONTEXT_MODES:
        raise ValueError(f"bad ABX condition {speaker_mode!r}/{context_mode!r}")
    n = len(phone_id)
    ctx = np.asarray(context_id) if context_mode == "within" else np.full(n, -1)
    order = group_order(context_id, phone_id, speaker_id, context_mode)
    keys = np.stack([ctx[order], np.asarray(speaker_id)[order], np.asarray(phone_id)[order]], 1)
    rng = random.Random(seed)

    def take(rg: Range) -> tuple[int, ...]:
        positions = list(range(rg[0], rg[1]))
        if max_size_group is not None and len(positions) > max_size_group:
            positions = rng.sample(positions, k=max_size_group)
        return tuple(int(order[p]) for p in positions)

    # Nest the runs: context -> speaker -> [(phone, range)].
    nested: list[tuple[int, list[tuple[int, list[tuple[int, Range]]]]]] = []
    for (c, s, p), rg in _groups(keys):
        if not nested or nested[-1][0] != c:
            nested.append((c, []))
        spk = nested[-1][1]
        if not spk or spk[-1][0] != s:
            spk.append((s, []))
        spk[-1][1].append((p, rg))

    if speaker_mode == "within":
        for c, speakers in nested:
            for s, phones in speakers:
                if len(phones) == 1:
                    continue
                for ia, (pa, ra) in enumerate(phones):
                    if ra[1] - ra[0] == 1:  # X must differ from A: needs two tokens of A
                        continue
                    for ib, (pb, rb) in enumerate(phones):
                        if ib == ia:
                            continue
                        b = take(rb)
                        a = take(ra)
                        yield Cell(s, pa, pb, c, s, a, b, a, True)
        return

    # Across: for each (context, phone), the group of each speaker, in speaker-id order.
    by_cp: dict[tuple[int, int], list[tuple[int, Range]]] = {}
    for c, speakers in nested:
        for s, phones in speakers:
            for p, rg in phones:
                by_cp.setdefault((c, p), []).append((s, rg))
    for c, speakers in nested:
        for s, phones in speakers:
            if len(phones) == 1:
                continue
            for ia, (pa, ra) in enumerate(phones):
                others = [(s2, rg) for s2, rg in by_cp[(c, pa)] if s2 != s]
                if max_x_across is not None and len(others) > max_x_across:
                    others = rng.sample(others, k=max_x_across)
                for sx, rx in others:
                    for ib, (pb, rb) in enumerate(phones):
                        if ib == ia:
                            continue
                        a = take(ra)
                        b = take(rb)
                        x = take(rx)
                        yield Cell(s, pa, pb, c, sx, a, b, x, False)
