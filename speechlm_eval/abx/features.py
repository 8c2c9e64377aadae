"""Features for ABX: loading per-file arrays, validating them, cutting out each item's frames.

Which frames an item selects (the reference's rule, libri-light ``ABX_src``): with ``r``
frames per second and the item's ``onset``/``offset`` in seconds, frames
``ceil(r * onset - 0.5)`` (at least 0) up to, *excluding*, ``floor(r * offset - 0.5)``
(at most the number of frames). Frame ``i`` is thus taken to sit at ``(i + 0.5) / r``
seconds; an explicit ``feature_offset`` (seconds, default 0) shifts the item times for
models whose first frame is centred elsewhere. An item whose selection is empty (a very
short item at a low frame rate, or one that starts past the last frame) is dropped by the
reference without notice; here it is either an error or skipped *and counted* in the
report (option ``empty_items``).

Features are normalised per file as the reference does it for every distance (its
``normalize_with_singularity``): each frame divided by its L2 norm, plus one extra
dimension that is 1e-12 for ordinary frames and -2e12 for all-zero frames, so that a zero
frame is at the maximal cosine distance from every other frame and at distance 0 from
another zero frame. Option ``normalize: false`` turns this off (e.g. plain KL on
posteriorgrams).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .items import Item, first_appearance_ids

FEATURE_EXTENSIONS = (".npy", ".pt", ".txt")


def load_feature_file(path: Path) -> np.ndarray:
    """One file's features: ``.npy`` (numpy), ``.pt`` (a tensor, loaded with
    ``weights_only=True``) or ``.txt`` (one frame per line, as ZeroSpeech 2021 submissions)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".pt":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(obj, torch.Tensor):
                raise DataError(
                    f"{path}: expected a tensor (frames x dims), got {type(obj).__name__}"
                )
            arr = obj.detach().cpu().numpy()
        elif suffix == ".txt":
            arr = np.loadtxt(path, ndmin=2)
        else:
            raise DataError(
                f"{path}: unknown feature file type; expected one of {FEATURE_EXTENSIONS}"
            )
    except DataError:
        raise
    except Exception as e:  # numpy/torch raise many parser error types
        raise DataError(f"{path}: cannot read features ({type(e).__name__}: {e})") from None
    return np.asarray(arr)


def find_feature_files(feature_dir: Path, stems: Sequence[str]) -> dict[str, Path]:
    """ZeroSpeech submission layout: ``<dir>/**/<stem>.{npy,pt,txt}``, one file per stem.

    Every stem must be found exactly once; files for other stems are ignored.
    """
    feature_dir = Path(feature_dir)
    if not feature_dir.is_dir():
        raise DataError(f"{feature_dir}: feature folder not found")
    wanted = set(stems)
    found: dict[str, Path] = {}
    for p in sorted(feature_dir.rglob("*")):
        if p.suffix.lower() not in FEATURE_EXTENSIONS or p.stem not in wanted or not p.is_file():
            continue
        if p.stem in found:
            raise DataError(
                f"{feature_dir}: two feature files for {p.stem!r}: {found[p.stem]} and {p}"
            )
        found[p.stem] = p
    missing = [s for s in stems if s not in found]
    if missing:
        raise DataError(
            f"{feature_dir}: no features for {len(missing)} of {len(wanted)} file(s) of the item "
            f"file, e.g. {missing[0]!r} (expected {missing[0]}.npy, .pt or .txt)"
        )
    return found


def frame_span(
    onset: float, offset: float, frame_rate: float, n_frames: int, feature_offset: float = 0.0
) -> tuple[int, int]:
    """``[start, end)`` frame indices of an item (the reference's rounding; see module doc)."""
    on, off = onset - feature_offset, offset - feature_offset
    start = max(0, math.ceil(frame_rate * on - 0.5))
    end = min(n_frames, math.floor(frame_rate * off - 0.5))
    return start, end


def normalize_with_singularity(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, plus an extra column (1e-12, or -2e12 for zero rows).

    Written from the reference's description (see module doc); computed in ``x``'s dtype.
    """
    n, d = x.shape
    sq = (x * x).sum(dim=1, keepdim=True)
    zero = (sq == 0).view(n)
    out = x / torch.sqrt(torch.where(sq == 0, torch.ones_like(sq), sq))
    out[zero] = 1.0 / math.sqrt(d)
    extra = torch.full((n, 1), 1e-12, dtype=x.dtype)
    extra[zero] = -2e12
    return torch.cat([out, extra], dim=1)


@dataclass
class ItemFeatures:
    """The frames of every kept item, concatenated, with per-item labels.

    Items are in the canonical order: files in order of first appearance in the item
    file, items of a file in line order (the reference visits files in the order it
    finds them on disk, which differs between file systems; see ``score.py``).
    """

    data: torch.Tensor  # (total frames, dims) float32
    starts: np.ndarray  # (n_items,) int64: first row of each item in ``data``
    lengths: np.ndarray  # (n_items,) int64: frames per item (>= 1)
    items: list[Item]
    context_id: np.ndarray  # (n_items,) ids in order of first appearance in the item file
    phone_id: np.ndarray
    speaker_id: np.ndarray
    contexts: list[str]  # id -> label
    phones: list[str]
    speakers: list[str]
    skipped: list[Item] = field(default_factory=list)  # items whose frame selection is empty

    def frames(self, i: int) -> torch.Tensor:
        """Frames of item ``i`` (a view into ``data``)."""
        s = int(self.starts[i])
        return self.data[s : s + int(self.lengths[i])]


def _as_matrix(stem: str, arr: np.ndarray, n_units: int | None) -> np.ndarray:
    """2-D float features; 1-D integer unit sequences become one-hot rows over ``n_units``."""
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if n_units is None:  # pragma: no cover - callers compute it first
            raise AssertionError("n_units needed for unit sequences")
        if arr.size and (arr.min() < 0):
            raise DataError(f"features of {stem!r}: negative unit id {int(arr.min())}")
        out = np.zeros((arr.size, n_units), dtype=np.float32)
        out[np.arange(arr.size), arr] = 1.0
        return out
    if arr.ndim != 2:
        raise DataError(
            f"features of {stem!r}: expected a 2-D array (frames x dims) or a 1-D integer unit "
            f"sequence, got shape {arr.shape} ({arr.dtype})"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"features of {stem!r}: expected numbers, got dtype {arr.dtype}")
    return arr


def prepare_features(
    items: Sequence[Item],
    features: Mapping[str, tuple[np.ndarray, float]],
    *,
    durations: Mapping[str, float] | None = None,
    normalize: bool = True,
    feature_offset: float = 0.0,
    frame_tolerance: float = 3.0,
    empty_items: str = "skip",
    nonnegative: bool = False,
    sources: Mapping[str, Path] | None = None,
) -> ItemFeatures:
    """Validate every file's features and cut out the frames of every item.

    ``features`` maps a file stem to ``(array, frame_rate)``. Errors (one
    :class:`DataError` each, naming the file): a file of the item file without features,
    non-numeric / wrong-rank arrays, NaN or inf, a non-positive frame rate, a feature
    dimension that differs between files, and -- when ``durations`` (seconds, from the
    audio) are given -- a frame count further than ``frame_tolerance`` frames from
    ``duration * frame_rate``. Encoders lose or add a frame or two at the edges: HuBERT's
    convolutions give ``floor((samples - 400) / 320) + 1`` frames (up to 1.25 short), a
    25 ms window at a 10 ms hop without padding (Kaldi MFCC, ``snip_edges``) up to 2.5
    short, hence the default of 3; a wrong frame rate is off by a factor, e.g. 15 frames
    for a 0.3 s file at 50 vs 100 frames/s. ``nonnegative`` (for KL distances) requires
    features >= 0 after normalisation.
    """
    if empty_items not in ("skip", "error"):
        raise ValueError(f"empty_items must be 'skip' or 'error', got {empty_items!r}")

    def where(stem: str) -> str:
        src = sources.get(stem) if sources else None
        return f"{src}" if src is not None else f"features of {stem!r}"

    file_order = list(dict.fromkeys(it.file for it in items))
    missing = [f for f in file_order if f not in features]
    if missing:
        raise DataError(
            f"no features for {len(missing)} file(s) of the item file, e.g. {missing[0]!r}"
        )
    # Unit sequences (1-D integers) share one one-hot vocabulary: the largest id + 1.
    unit_max = [
        int(np.asarray(features[f][0]).max(initial=-1))
        for f in file_order
        if np.asarray(features[f][0]).ndim == 1
        and np.issubdtype(np.asarray(features[f][0]).dtype, np.integer)
    ]
    n_units = max(unit_max) + 1 if unit_max else None

    by_file: dict[str, list[Item]] = {}
    for it in items:
        by_file.setdefault(it.file, []).append(it)

    ctx_ids, phone_ids, spk_ids = first_appearance_ids(items)
    chunks: list[torch.Tensor] = []
    kept: list[Item] = []
    lengths: list[int] = []
    skipped: list[Item] = []
    dim: int | None = None
    total = 0
    starts: list[int] = []
    for stem in file_order:
        raw, rate = features[stem]
        arr = _as_matrix(stem, np.asarray(raw), n_units)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise DataError(f"{where(stem)}: frame rate must be a number, got {rate!r}") from None
        if not (math.isfinite(rate) and rate > 0):
            raise DataError(f"{where(stem)}: frame rate must be positive, got {rate}")
        if arr.shape[0] == 0:
            raise DataError(f"{where(stem)}: no frames")
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise DataError(
                f"{where(stem)}: features contain NaN or inf (first at frame {bad[0]}, "
                f"dim {bad[1]})"
            )
        if dim is None:
            dim = arr.shape[1]
        elif arr.shape[1] != dim:
            raise DataError(
                f"{where(stem)}: {arr.shape[1]} feature dimensions, other files have {dim}"
            )
        if durations is not None and stem in durations:
            expected = durations[stem] * rate
            if abs(arr.shape[0] - expected) > frame_tolerance:
                raise DataError(
                    f"{where(stem)}: {arr.shape[0]} frames, but the audio lasts "
                    f"{durations[stem]:.3f} s, i.e. about {expected:.1f} frames at the declared "
                    f"{rate:g} frames/s (tolerance +-{frame_tolerance:g} frames); is the frame "
                    f"rate right?"
                )
        # The reference normalises in the array's own precision, then stores float32.
        t = torch.from_numpy(np.ascontiguousarray(arr))
        t = t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float32)
        if normalize:
            t = normalize_with_singularity(t)
        t = t.to(torch.float32)
        if nonnegative and bool((t < 0).any()):
            why = "; normalisation adds a -2e12 column for all-zero frames" if normalize else ""
            raise DataError(
                f"{where(stem)}: the KL distances need non-negative features (probabilities, "
                f"e.g. posteriorgrams){why}"
            )
        n = t.shape[0]
        for it in by_file[stem]:
            start, end = frame_span(it.onset, it.offset, rate, n, feature_offset)
            if start >= n or end <= start:
                if empty_items == "error":
                    raise DataError(
                        f"item file line {it.line}: item {it.file} {it.onset}-{it.offset} s "
                        f"selects no frame at {rate:g} frames/s ({n} frames; frames "
                        f"[{start}, {end})); set scoring option empty_items: skip to skip such "
                        f"items (they are counted in the report)"
                    )
                skipped.append(it)
                continue
            chunks.append(t[start:end])
            starts.append(total)
            lengths.append(end - start)
            total += end - start
            kept.append(it)
    if skipped:
        warnings.warn(
            f"ABX: {len(skipped)} of {len(items)} item(s) select no frame and were skipped "
            f"(e.g. line {skipped[0].line}); they are counted in the report",
            stacklevel=2,
        )
    if not kept:
        raise DataError("ABX: no item selects any frame; check the frame rate")
    return ItemFeatures(
        data=torch.cat(chunks, dim=0),
        starts=np.asarray(starts, dtype=np.int64),
        lengths=np.asarray(lengths, dtype=np.int64),
        items=kept,
        context_id=np.asarray([ctx_ids[it.context] for it in kept], dtype=np.int64),
        phone_id=np.asarray([phone_ids[it.phone] for it in kept], dtype=np.int64),
        speaker_id=np.asarray([spk_ids[it.speaker] for it in kept], dtype=np.int64),
        contexts=list(ctx_ids),
        phones=list(phone_ids),
        speakers=list(spk_ids),
        skipped=skipped,
    )
