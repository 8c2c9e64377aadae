"""Synthetic ABX data (item file + per-file features) for tests and benchmarks.

Each file belongs to one speaker and holds consecutive triphone items; an item's frames
are its phone's mean vector, plus a speaker offset, plus a context offset, plus noise, so
that ABX errors are neither 0 nor chance and within/across speaker differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .items import HEADER


@dataclass
class SyntheticABX:
    item_path: Path
    feature_dir: Path
    features: dict[str, tuple[np.ndarray, float]]  # stem -> (frames x dims, frames/s)
    durations: dict[str, float]  # stem -> seconds
    n_items: int


def make_synthetic(
    out: Path,
    *,
    n_files: int = 20,
    items_per_file: int = 6,
    n_speakers: int = 4,
    n_phones: int = 5,
    n_contexts: int = 3,
    dim: int = 8,
    frame_rate: float = 50.0,
    frames_per_item: tuple[int, int] = (3, 9),
    speaker_scale: float = 0.6,
    noise: float = 0.8,
    seed: int = 0,
    dtype: type = np.float32,
) -> SyntheticABX:
    """Write ``out/items.item`` and ``out/features/<stem>.npy``; return them and the arrays."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    fdir = out / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    phone_means = rng.normal(size=(n_phones, dim))
    spk = rng.normal(scale=speaker_scale, size=(n_speakers, dim))
    ctx = rng.normal(scale=0.3, size=(n_contexts, dim))
    phones = [f"p{i}" for i in range(n_phones)]
    contexts = [(f"c{i}a", f"c{i}b") for i in range(n_contexts)]
    lines = [HEADER]
    features: dict[str, tuple[np.ndarray, float]] = {}
    durations: dict[str, float] = {}
    n_items = 0
    # Files are listed in an order unrelated to their names, so that "order of first
    # appearance" and "sorted by name" differ.
    stems = [f"f{rng.integers(10**6):06d}_{i}" for i in range(n_files)]
    for stem in stems:
        s = int(rng.integers(n_speakers))
        frames: list[np.ndarray] = []
        t = int(rng.integers(1, 4))  # leading frames of silence-like noise
        frames.append(rng.normal(scale=0.1, size=(t, dim)))
        for _ in range(items_per_file):
            p = int(rng.integers(n_phones))
            c = int(rng.integers(n_contexts))
            n = int(rng.integers(frames_per_item[0], frames_per_item[1] + 1))
            x = phone_means[p] + spk[s] + ctx[c] + rng.normal(scale=noise, size=(n, dim))
            # The item's frames are [t, t + n): onset/offset inverting the reference rule
            # (start = ceil(r * on - 0.5), end = floor(r * off - 0.5)) with a margin.
            onset = (t + 0.25) / frame_rate
            offset = (t + n + 0.75) / frame_rate
            lines.append(
                f"{stem} {onset:.4f} {offset:.4f} {phones[p]} {contexts[c][0]} {contexts[c][1]} "
                f"spk{s}"
            )
            frames.append(x)
            t += n
            n_items += 1
        frames.append(rng.normal(scale=0.1, size=(2, dim)))
        arr = np.concatenate(frames).astype(dtype)
        np.save(fdir / f"{stem}.npy", arr)
        features[stem] = (arr, frame_rate)
        durations[stem] = arr.shape[0] / frame_rate
    # Shuffle lines (keeping the header) so that files interleave in the item file.
    body = lines[1:]
    order = rng.permutation(len(body))
    item_path = out / "items.item"
    item_path.write_text("\n".join([lines[0], *(body[i] for i in order)]) + "\n")
    return SyntheticABX(item_path, fdir, features, durations, n_items)
