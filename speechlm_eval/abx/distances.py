"""Frame-wise distances and the path-normalised DTW of the Libri-light ABX.

Frame distances (the reference's four, same definitions):

- ``cosine`` (alias ``angular``): ``arccos(clamp(<u, v>, -1, 1)) / pi`` on (normalised)
  frames, in [0, 1];
- ``euclidean`` (alias ``euclidian``, the reference's spelling): ``||u - v||``;
- ``kl``: ``sum_d u_d * log((u_d + eps) / (v_d + eps))`` with ``eps = 1e-6``;
- ``kl_symmetric``: the mean of the two KL directions, term by term.

Precision. The reference computes everything in float32. Here products and sums are
computed in float64 and the frame distance is rounded to float32 once; the DTW then runs
in float32 exactly as the reference's (same additions, same minima, same division), so the
two implementations here (``exact.py``, ``fast.py``) get bit-identical DTW values whatever
their batching: float64 round-off of different summation orders (matrix-product kernels
pick their blocking by shape) does not survive the rounding to float32. For ``cosine`` the
inner product is rounded to float32 *before* the arccos, which is steep near +-1: two
identical frames must give exactly distance 0 wherever they occur, or ties (common with
discrete units) would be broken by round-off. Against the reference's own float32 sums the
distances differ by about one float32 ulp, so a comparison ``d(X, A) < d(X, B)`` can only
come out differently when the two DTW values agree to ~1e-7.

DTW (reference ``dtw.pyx``): cumulative cost ``C[i, j] = d[i, j] + min(C[i-1, j],
C[i-1, j-1], C[i, j-1])`` with the first row and column cumulated, then the path is traced
back from the end, preferring the diagonal, then ``j - 1``, then ``i - 1`` (``<=`` on ties),
and ``C[n-1, m-1]`` is divided by the number of cells on that path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

KL_EPS = 1e-6
DISTANCES = ("cosine", "euclidean", "kl", "kl_symmetric")
ALIASES = {"angular": "cosine", "euclidian": "euclidean"}


def canonical_distance(name: str) -> str:
    """The distance's canonical name (aliases resolved); ValueError for unknown names."""
    name = ALIASES.get(name, name)
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; expected one of {[*DISTANCES, *ALIASES]}")
    return name


def angular_from_dots(dots: torch.Tensor) -> torch.Tensor:
    """``arccos(clamp(dot, -1, 1)) / pi`` as float32 from float64 inner products.

    ``dots`` may also be float64 products already rounded to float32 (same result).

    The inner product is rounded to float32 first (see module doc: identical frames must
    give exactly 0 wherever they occur), the arccos is taken in float64, the result rounded.
    """
    d = dots.to(torch.float32).clamp(-1.0, 1.0).to(torch.float64)
    return torch.acos_(d).div_(math.pi).to(torch.float32)


def frame_distances(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Distances between every frame of ``x`` (..., n, D) and of ``y`` (..., m, D): (..., n, m).

    Leading dimensions broadcast (batched pairs). Output is float32 (see module doc).
    """
    distance = canonical_distance(distance)
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    if distance == "cosine":
        return angular_from_dots(torch.matmul(x64, y64.transpose(-1, -2)))
    if distance == "euclidean":
        # Direct differences (not the |u|^2 + |v|^2 - 2<u, v> expansion): identical frames
        # must give exactly 0, not a round-off residue.
        diff = x64.unsqueeze(-2) - y64.unsqueeze(-3)
        return torch.sqrt((diff * diff).sum(-1)).to(torch.float32)
    p = x64.unsqueeze(-2)
    q = y64.unsqueeze(-3)
    lp, lq = torch.log(p + KL_EPS), torch.log(q + KL_EPS)
    if distance == "kl":
        return (p * (lp - lq)).sum(-1).to(torch.float32)
    return (0.5 * p * (lp - lq) + 0.5 * q * (lq - lp)).sum(-1).to(torch.float32)


def bytes_per_frame_pair(dim: int, distance: str) -> int:
    """Working memory (bytes) per frame pair of :func:`frame_distances`, for chunk sizing."""
    distance = canonical_distance(distance)
    if distance == "cosine":
        return 8 * 4  # float64 product, float32 and float64 copies, float32 result
    return 8 * (3 * dim + 4)  # broadcast (n, m, D) float64 intermediates


def dtw_exact(dist: np.ndarray) -> np.float32:
    """Path-normalised DTW of one float32 distance matrix (n, m), with plain loops.

    The clear definition (see module doc); :func:`dtw_batch` is the vectorised version.
    """
    d = np.asarray(dist, dtype=np.float32)
    n, m = d.shape
    cost = np.empty((n, m), dtype=np.float32)
    cost[0, 0] = d[0, 0]
    for i in range(1, n):
        cost[i, 0] = d[i, 0] + cost[i - 1, 0]
    for j in range(1, m):
        cost[0, j] = d[0, j] + cost[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            cost[i, j] = d[i, j] + min(cost[i - 1, j], cost[i - 1, j - 1], cost[i, j - 1])
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j  # the straight run along the first row or column (one of i, j is 0)
    return np.float32(cost[n - 1, m - 1] / np.float32(length))


def dtw_batch(dist: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Path-normalised DTW of a batch of padded distance matrices ``dist`` (B, N, M).

    Pair ``b`` uses ``dist[b, :n[b], :m[b]]``. Returns (B,) float32, equal bit for bit to
    :func:`dtw_exact` on each pair. See :func:`dtw_batch_last` (the same, batch last).
    """
    return dtw_batch_last(dist.permute(1, 2, 0).contiguous(), n, m)


def dtw_batch_last(dist: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Path-normalised DTW of padded distance matrices stored batch last: ``dist`` (N, M, B).

    Pair ``b`` uses ``dist[:n[b], :m[b], b]``; cells beyond are ignored (a DTW cell only
    depends on cells above and to the left), so padding may hold anything.

    Layout: the cumulative cost is stored by anti-diagonal, ``q[k, r, b]`` holding cell
    ``(i, j) = (r - 1, k - r - 1)``, with a border row/column ``-1`` (``+inf``, and ``0`` at
    ``(-1, -1)`` so that ``cost[0, 0] = d[0, 0]`` exactly). A diagonal then depends on the
    previous two through plain shifted slices, so each step is a few vectorised operations
    over contiguous memory; the trace-back then moves every pair one step at a time.
    """
    n_max, m_max, b_size = dist.shape
    dev = dist.device
    n_diag = n_max + m_max + 1
    # An inf column appended: cell (i, j) of diagonal k is row i * (m_max + 1) + j of
    # ``flat_d``, and a j outside [0, m_max) reads the inf column (a border).
    flat_d = torch.cat(
        [dist, torch.full((n_max, 1, b_size), math.inf, dtype=dist.dtype, device=dev)], dim=1
    ).view(n_max * (m_max + 1), b_size)
    r_idx = torch.arange(1, n_max + 1, device=dev)
    q = torch.empty((n_diag, n_max + 1, b_size), dtype=torch.float32, device=dev)
    q[:2] = math.inf
    q[:, 0] = math.inf
    q[0, 0] = 0.0
    tmp = torch.empty((n_max, b_size), dtype=torch.float32, device=dev)
    for k in range(2, n_diag):
        j = k - r_idx - 1
        j = torch.where((j >= 0) & (j < m_max), j, m_max)
        d_k = flat_d.index_select(0, (r_idx - 1) * (m_max + 1) + j)
        # up = (i-1, j): q[k-1, r-1]; diagonal = (i-1, j-1): q[k-2, r-1]; left = (i, j-1): q[k-1, r]
        torch.minimum(q[k - 1, :-1], q[k - 2, :-1], out=tmp)
        torch.minimum(tmp, q[k - 1, 1:], out=tmp)
        torch.add(d_k, tmp, out=q[k, 1:])
    cols = torch.arange(b_size, device=dev)
    n = n.to(dev)
    m = m.to(dev)
    i, j = n - 1, m - 1
    length = torch.ones(b_size, dtype=torch.int64, device=dev)
    qf = q.view(-1)
    width = n_max + 1
    for _ in range(n_max + m_max):
        active = (i > 0) & (j > 0)
        if not bool(active.any()):
            break
        k = i + j + 2
        up = qf[((k - 1) * width + i) * b_size + cols]
        left = qf[((k - 1) * width + i + 1) * b_size + cols]
        diag = qf[((k - 2) * width + i) * b_size + cols]
        go_diag = (diag <= left) & (diag <= up)
        go_left = ~go_diag & (left <= up)
        go_up = ~go_diag & ~go_left
        i = torch.where(active & (go_diag | go_up), i - 1, i)
        j = torch.where(active & (go_diag | go_left), j - 1, j)
        length += active.to(torch.int64)
    length += i + j
    final = qf[((n + m) * width + n) * b_size + cols]
    return final / length.to(torch.float32)
