"""The ABX error of each cell with plain loops: the readable definition, used to check ``fast.py``.

For a cell with groups A, B, X: the score is the fraction of triples (x, a, b) with
``d(x, a) < d(x, b)``, ties counting 1/2, over x in X, a in A, b in B (for within speaker
X is A and the triples with x = a are left out); the error is 1 - score. ``d`` is the
path-normalised DTW of the frame distances (``distances.dtw_exact``).

Orientation matters only for ties of the DTW trace-back: ``d(x, b)`` is DTW with x's frames
as rows. Within speaker the reference computes the X-vs-A matrix once per unordered pair
and mirrors it, so ``d(A[i], A[j])`` is DTW with rows ``A[min(i, j)]`` (positions in the
drawn group); we do the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .cells import Cell
from .distances import dtw_exact, frame_distances
from .features import ItemFeatures


def item_distance(feats: ItemFeatures, row: int, col: int, distance: str) -> np.float32:
    """DTW distance between items ``row`` (rows of the frame-distance matrix) and ``col``."""
    d = frame_distances(feats.frames(row), feats.frames(col), distance)
    return dtw_exact(d.numpy())


def cell_error(
    feats: ItemFeatures,
    cell: Cell,
    distance: str,
    cache: dict[tuple[int, int], np.float32] | None = None,
) -> float:
    """ABX error of one cell, triple by triple (``cache``: item-pair DTW values to reuse)."""
    cache = {} if cache is None else cache

    def d(row: int, col: int) -> np.float32:
        if (row, col) not in cache:
            cache[(row, col)] = item_distance(feats, row, col, distance)
        return cache[(row, col)]

    wins = 0.0
    triples = 0
    for ix, x in enumerate(cell.x):
        for ia, a in enumerate(cell.a):
            if cell.symmetric:
                if ix == ia:
                    continue
                first, second = (x, a) if ix < ia else (a, x)
                dxa = d(first, second)
            else:
                dxa = d(x, a)
            for b in cell.b:
                dxb = d(x, b)
                if dxa < dxb:
                    wins += 1.0
                elif dxa == dxb:
                    wins += 0.5
                triples += 1
    return 1.0 - wins / triples


def cell_errors(
    feats: ItemFeatures, cells: Iterable[Cell], distance: str
) -> Iterator[tuple[Cell, float]]:
    """(cell, error) for every cell, in order."""
    cache: dict[tuple[int, int], np.float32] = {}
    for cell in cells:
        yield cell, cell_error(feats, cell, distance, cache)
