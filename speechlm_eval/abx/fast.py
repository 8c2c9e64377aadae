"""The ABX error of each cell, vectorised: same numbers as ``exact.py``, bit for bit.

How it is faster than the reference (which, per cell, recomputes every distance matrix
and runs a Cython DTW pair by pair from Python):

1. cells are processed in chunks; the item pairs a chunk needs are de-duplicated (a pair
   of items recurs in many cells: A is compared with every B, X with every A);
2. cosine frame distances come from blocks of one matrix product (the frames of a run of
   row items against the frames of the items they are paired with; items are numbered in
   group order so such runs stay local) instead of one small product per pair;
3. the DTW of thousands of pairs runs as one padded batch, anti-diagonal by
   anti-diagonal, in torch, on any device;
4. the comparisons of all cells of one shape (|X|, |A|, |B|) are one tensor operation.

Memory is bounded by the chunk size (``max_pairs`` item pairs per chunk) and the batch
budget (``max_batch_bytes`` for the frame-distance blocks and DTW tensors), not by the
number of items: only the current chunk's values and the per-cell errors are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .cells import Cell
from .distances import angular_from_dots, bytes_per_frame_pair, dtw_batch_last, frame_distances
from .features import ItemFeatures

DEFAULT_MAX_PAIRS = 100_000
DEFAULT_MAX_BATCH_BYTES = 64 * 2**20
ROW_FRAMES = 1024  # frames of row items per product block (then limited by the budget)


class _PairDTW:
    """DTW distances between items, computed in padded batches."""

    def __init__(
        self,
        feats: ItemFeatures,
        distance: str,
        device: str | torch.device,
        max_batch_bytes: int,
    ) -> None:
        self.device = torch.device(device)
        self.data = feats.data.to(self.device)
        self.starts = torch.from_numpy(feats.starts).to(self.device)
        self.lengths_cpu = torch.from_numpy(feats.lengths)
        self.lengths = self.lengths_cpu.to(self.device)
        self.distance = distance
        self.budget = max_batch_bytes
        self.dim = int(self.data.shape[1])

    def __call__(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(P,) float32: DTW(frames of item rows[k] as rows, of cols[k] as columns).

        Pairs should come sorted by row (in group order) for the product blocks to be local.
        """
        out = torch.empty(len(rows), dtype=torch.float32)
        if not len(rows):
            return out
        n_r = self.lengths_cpu[rows]
        n_c = self.lengths_cpu[cols]
        n_max, m_max = int(n_r.max()), int(n_c.max())
        # DTW working set per pair (float32): distances, the same with a border column, and
        # the cumulative cost by anti-diagonal.
        per_pair = 4 * (2 * n_max * (m_max + 1) + (n_max + m_max + 1) * (n_max + 1))
        step = max(1, self.budget // per_pair)
        for s in range(0, len(rows), step):
            r, c = rows[s : s + step], cols[s : s + step]
            nr, nc = n_r[s : s + step], n_c[s : s + step]
            nb, mb = int(nr.max()), int(nc.max())
            dist = self._distances(r, c, nb, mb)
            out[s : s + step] = dtw_batch_last(dist, nr, nc).cpu()
        return out

    # --- frame distances -----------------------------------------------------------------

    def _frames(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames of ``items`` stacked (T, D) as float64, and each item's first row."""
        items = items.to(self.device)
        lens = self.lengths[items]
        offs = torch.cumsum(lens, 0) - lens
        total = int(lens.sum())
        idx = torch.repeat_interleave(self.starts[items] - offs, lens) + torch.arange(
            total, device=self.device
        )
        return self.data[idx].to(torch.float64), offs

    def _block_bytes(self, t_r: int, t_c: int) -> int:
        """Memory of one product block: float64 frames, float64 products, float32 copy."""
        return 8 * self.dim * (t_r + t_c) + 12 * t_r * t_c

    def _distances(self, r: torch.Tensor, c: torch.Tensor, nb: int, mb: int) -> torch.Tensor:
        """(nb, mb, P) float32 frame distances of the pairs, batch last (padding: unused)."""
        if self.distance == "cosine":
            return self._cosine_blocks(r, c, nb, mb)
        out = torch.empty((nb, mb, len(r)), dtype=torch.float32, device=self.device)
        per_pair = (
            nb * mb * bytes_per_frame_pair(self.dim, self.distance) + 16 * (nb + mb) * self.dim
        )
        step = max(1, self.budget // per_pair)
        ar_n = torch.arange(nb, device=self.device)
        ar_m = torch.arange(mb, device=self.device)
        last = self.data.shape[0] - 1
        for s in range(0, len(r), step):
            rr, cc = r[s : s + step].to(self.device), c[s : s + step].to(self.device)
            x = self.data[(self.starts[rr][:, None] + ar_n).clamp_(max=last)]
            y = self.data[(self.starts[cc][:, None] + ar_m).clamp_(max=last)]
            out[:, :, s : s + step] = frame_distances(x, y, self.distance).permute(1, 2, 0)
        return out

    def _cosine_blocks(self, r: torch.Tensor, c: torch.Tensor, nb: int, mb: int) -> torch.Tensor:
        """Angular distances (nb, mb, P) from products of blocks of frames (pairs sorted by row)."""
        out = torch.empty((nb, mb, len(r)), dtype=torch.float32, device=self.device)
        # Runs of pairs with the same row item.
        change = torch.ones(len(r), dtype=torch.bool)
        change[1:] = r[1:] != r[:-1]
        seg = [*torch.nonzero(change).flatten().tolist(), len(r)]
        seg_len = self.lengths_cpu[r[torch.tensor(seg[:-1], dtype=torch.int64)]].tolist()
        ar_n = torch.arange(nb, device=self.device)[:, None]
        ar_m = torch.arange(mb, device=self.device)[:, None]
        i = 0
        n_seg = len(seg) - 1
        while i < n_seg:
            # As many row items as fit in ROW_FRAMES, then fewer while the block is too big.
            j, t_r = i + 1, seg_len[i]
            while j < n_seg and t_r + seg_len[j] <= ROW_FRAMES:
                t_r += seg_len[j]
                j += 1
            while True:
                lo, hi = seg[i], seg[j]
                cols_u = torch.unique(c[lo:hi])
                t_c = int(self.lengths_cpu[cols_u].sum())
                if self._block_bytes(t_r, t_c) <= self.budget or j == i + 1:
                    break
                j = i + max(1, (j - i) // 2)
                t_r = sum(seg_len[i:j])
            rows_u = torch.unique(r[lo:hi])
            fr, off_r = self._frames(rows_u)
            r_loc = torch.searchsorted(rows_u, r[lo:hi]).to(self.device)
            # One row item with too many columns for the budget: split its columns.
            parts = -(-self._block_bytes(t_r, t_c) // self.budget)
            for cols_p in torch.tensor_split(cols_u, max(1, parts)):
                fc, off_c = self._frames(cols_p)
                # Rounded to float32 once for the whole block (as angular_from_dots would).
                dots = (fr @ fc.T).to(torch.float32).view(-1)
                pos = (
                    torch.arange(lo, hi)
                    if parts <= 1
                    else torch.nonzero(torch.isin(c[lo:hi], cols_p)).flatten() + lo
                )
                # Gather in slices: ~32 bytes per frame pair (indices, values, float64 arccos).
                step = max(1, self.budget // (32 * nb * mb))
                for s in range(0, len(pos), step):
                    ps = pos[s : s + step]
                    ri = (off_r[r_loc[ps - lo].to(self.device)][None, :] + ar_n).clamp_(
                        max=fr.shape[0] - 1
                    )
                    c_loc = torch.searchsorted(cols_p, c[ps]).to(self.device)
                    ci = (off_c[c_loc][None, :] + ar_m).clamp_(max=fc.shape[0] - 1)
                    vals = angular_from_dots(dots[ri[:, None, :] * fc.shape[0] + ci[None, :, :]])
                    if parts <= 1:  # contiguous pairs: a slice
                        out[:, :, lo + s : lo + s + len(ps)] = vals
                    else:
                        out[:, :, ps.to(self.device)] = vals
            i = j
        return out


def _cell_keys(cell: Cell, rank: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair keys ``row * n_items + col`` (ranked ids) of d(x, a) (|X|, |A|), d(x, b) (|X|, |B|)."""
    x = rank[np.asarray(cell.x, dtype=np.int64)]
    a = rank[np.asarray(cell.a, dtype=np.int64)]
    b = rank[np.asarray(cell.b, dtype=np.int64)]
    if cell.symmetric:
        # d(A[i], A[j]) is DTW with rows A[min(i, j)] (the reference mirrors its matrix).
        pos = np.arange(len(a))
        lo = np.minimum(pos[:, None], pos[None, :])
        hi = np.maximum(pos[:, None], pos[None, :])
        xa = a[lo] * n_items + a[hi]
        # The diagonal (x = a) is excluded from the score; point it at a pair the cell needs
        # anyway instead of computing DTW of an item with itself.
        xa[pos, pos] = a[0] * n_items + a[1]
    else:
        xa = x[:, None] * n_items + a[None, :]
    xb = x[:, None] * n_items + b[None, :]
    return xa, xb


def _chunk_errors(
    cells: list[Cell], rank: np.ndarray, order: np.ndarray, pair_dtw: _PairDTW
) -> list[float]:
    n_items = len(rank)
    keys = [_cell_keys(c, rank, n_items) for c in cells]
    flat = np.concatenate([k.ravel() for xa, xb in keys for k in (xa, xb)])
    # Sorted unique keys: pairs ordered by row rank, i.e. grouped by row item, in group order.
    uniq, inverse = np.unique(flat, return_inverse=True)
    rows = torch.from_numpy(order[uniq // n_items])
    cols = torch.from_numpy(order[uniq % n_items])
    values = pair_dtw(rows, cols)
    errors = [0.0] * len(cells)
    buckets: dict[tuple[int, int, int, bool], list[int]] = {}
    offsets = []
    pos = 0
    for k, (xa, xb) in enumerate(keys):
        offsets.append(pos)
        pos += xa.size + xb.size
        shape = (xa.shape[0], xa.shape[1], xb.shape[1], cells[k].symmetric)
        buckets.setdefault(shape, []).append(k)
    inv = torch.from_numpy(inverse.astype(np.int64).ravel())
    for (nx, na, nb, sym), members in buckets.items():
        base = torch.tensor([offsets[k] for k in members], dtype=torch.int64)
        ia = base[:, None] + torch.arange(nx * na)
        ib = base[:, None] + nx * na + torch.arange(nx * nb)
        dxa = values[inv[ia]].view(-1, nx, na, 1)
        dxb = values[inv[ib]].view(-1, nx, 1, nb)
        lt = dxa < dxb
        eq = dxa == dxb
        triples = nx * na * nb
        if sym:
            off_diag = ~torch.eye(nx, na, dtype=torch.bool).view(1, nx, na, 1)
            lt &= off_diag
            eq &= off_diag
            triples -= na * nb
        wins = lt.sum(dim=(1, 2, 3)).to(torch.float64) + 0.5 * eq.sum(dim=(1, 2, 3)).to(
            torch.float64
        )
        for k, e in zip(members, (1.0 - wins / triples).tolist(), strict=True):
            errors[k] = e
    return errors


def cell_errors(
    feats: ItemFeatures,
    cells: Iterable[Cell],
    distance: str,
    *,
    order: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    max_pairs: int = DEFAULT_MAX_PAIRS,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[tuple[Cell, float]]:
    """(cell, error) for every cell, in order; identical to ``exact.cell_errors``.

    ``order``: item indices in group order (``cells.group_order``), used only to number
    items so that the items of a group are neighbours (locality of the product blocks).
    """
    n_items = len(feats.items)
    order = np.arange(n_items, dtype=np.int64) if order is None else np.asarray(order, np.int64)
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items, dtype=np.int64)
    pair_dtw = _PairDTW(feats, distance, device, max_batch_bytes)
    buf: list[Cell] = []
    n_keys = 0
    for cell in cells:
        buf.append(cell)
        n_keys += len(cell.x) * (len(cell.a) + len(cell.b))
        if n_keys >= max_pairs:
            yield from zip(buf, _chunk_errors(buf, rank, order, pair_dtw), strict=True)
            buf, n_keys = [], 0
    if buf:
        yield from zip(buf, _chunk_errors(buf, rank, order, pair_dtw), strict=True)
