"""ABX error rates from features: options, averaging, the report.

Averaging (as zerospeech/libri-light-abx2 ``eval_ABX.py``): cell errors are averaged
over contexts (and, across speakers, over the X speakers) for each (speaker, phone A,
phone B); then over speakers for each ordered pair (phone A, phone B); the score is the
plain mean over those phone pairs. Lower is better; chance is 0.5.

Differences from the reference, all deliberate:

- Item order. The reference lists feature files with ``os.walk`` (directory order, which
  depends on the file system) and keeps that order inside each group, so with group caps
  active its result can change with the disk it runs on. Here files are taken in order of
  first appearance in the item file, which the reference reproduces when given that file
  list (that is how the tests compare the two, caps included).
- Files of the item file without features are an error here (the reference ignores them),
  and items that select no frame are counted in the report (option ``empty_items``).
- Aggregation is in float64 (the reference uses float32: differences ~1e-7).
- ``stderr`` is the closed-form standard error of the last averaging step (sample std over
  the phone pairs / sqrt(number of pairs)), the harness' convention for means; phone pairs
  share items and speakers, so it understates the uncertainty of the whole protocol.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import Metric, ScoreReport
from ..options import Opt, Spec
from . import exact, fast
from .cells import CONTEXT_MODES, SPEAKER_MODES, Cell, group_order, iter_cells
from .distances import canonical_distance
from .features import ItemFeatures, find_feature_files, load_feature_file, prepare_features
from .items import ABXDataset

REFERENCE_SEED = 3459  # libri-light-abx2's default --seed


@dataclass(frozen=True)
class ABXOptions:
    """Scoring options (``scoring.options`` of an ABX task)."""

    speaker_mode: str = "within"  # within | across
    context_mode: str = "all"  # within | any | all (both; "within" is the headline)
    distance: str = "cosine"  # cosine (angular) | euclidean | kl | kl_symmetric
    normalize: bool = True  # L2-normalise frames (+ the reference's singularity column)
    max_size_group: int | None = 10  # reference default; None: no cap
    max_x_across: int | None = 5  # reference default; None: no cap
    seed: int = REFERENCE_SEED
    feature_offset: float = 0.0  # seconds: time of frame i is (i + 0.5) / rate + offset
    frame_tolerance: float = 3.0  # frames: allowed |n_frames - duration * rate| (see features)
    empty_items: str = "skip"  # skip (counted in the report) | error
    implementation: str = "fast"  # fast | exact
    device: str = "cpu"
    max_pairs: int = fast.DEFAULT_MAX_PAIRS
    max_batch_mb: float = fast.DEFAULT_MAX_BATCH_BYTES / 2**20

    @property
    def context_modes(self) -> tuple[str, ...]:
        return CONTEXT_MODES if self.context_mode == "all" else (self.context_mode,)

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None, where: str = "ABX options") -> ABXOptions:
        """Validate a mapping; unknown keys and bad values are :class:`ConfigError`."""
        return cls(**OPTIONS.parse(where, options))


_DEFAULTS = {f.name: f.default for f in fields(ABXOptions)}
# ``scoring.options`` of an ABX task: YAML-typed (strict), keys named bare in messages.
OPTIONS = Spec(
    {
        "speaker_mode": Opt(str, _DEFAULTS["speaker_mode"], choices=SPEAKER_MODES),
        "context_mode": Opt(str, _DEFAULTS["context_mode"], choices=(*CONTEXT_MODES, "all")),
        "distance": Opt(str, _DEFAULTS["distance"], check=canonical_distance),
        "normalize": Opt(bool, _DEFAULTS["normalize"]),
        "max_size_group": Opt(
            int, _DEFAULTS["max_size_group"], nullable=True, ge=2, expect="an integer >= 2 or null"
        ),
        "max_x_across": Opt(
            int, _DEFAULTS["max_x_across"], nullable=True, ge=1, expect="an integer >= 1 or null"
        ),
        "seed": Opt(int, _DEFAULTS["seed"], expect="an integer"),
        "feature_offset": Opt(float, _DEFAULTS["feature_offset"], expect="a number"),
        "frame_tolerance": Opt(float, _DEFAULTS["frame_tolerance"], ge=0),
        "empty_items": Opt(str, _DEFAULTS["empty_items"], choices=("skip", "error")),
        "implementation": Opt(str, _DEFAULTS["implementation"], choices=("fast", "exact")),
        "device": Opt(str, _DEFAULTS["device"], expect="a string such as 'cpu' or 'cuda:0'"),
        "max_pairs": Opt(int, _DEFAULTS["max_pairs"], ge=1),
        "max_batch_mb": Opt(float, _DEFAULTS["max_batch_mb"], gt=0),
    },
    quote=False,
    strict=True,
)


@dataclass
class ABXScoreReport(ScoreReport):
    """A :class:`ScoreReport` plus what the ABX run used (items kept and skipped, cells)."""

    info: dict[str, Any] = field(default_factory=dict)


def cell_errors(
    feats: ItemFeatures, opts: ABXOptions, speaker_mode: str, context_mode: str
) -> Iterator[tuple[Cell, float]]:
    """Every cell of one condition with its error (a stream), by the chosen implementation."""
    cells = iter_cells(
        feats.context_id,
        feats.phone_id,
        feats.speaker_id,
        speaker_mode=speaker_mode,
        context_mode=context_mode,
        max_size_group=opts.max_size_group,
        max_x_across=opts.max_x_across,
        seed=opts.seed,
    )
    if opts.implementation == "exact":
        return exact.cell_errors(feats, cells, opts.distance)
    return fast.cell_errors(
        feats,
        cells,
        opts.distance,
        order=group_order(feats.context_id, feats.phone_id, feats.speaker_id, context_mode),
        device=opts.device,
        max_pairs=opts.max_pairs,
        max_batch_bytes=int(opts.max_batch_mb * 2**20),
    )


def aggregate(
    cell_results: Iterable[tuple[Cell, float]],
) -> tuple[dict[tuple[int, int], float], int]:
    """Mean over (context, X speaker) per (speaker, A, B), then over speakers per (A, B).

    Returns the per-(phone A, phone B) errors and the number of cells. Streams: only one
    running sum per (speaker, A, B) is kept, so memory does not grow with the cells.
    """
    sums: dict[tuple[int, int, int], list[float]] = defaultdict(lambda: [0.0, 0])
    n_cells = 0
    for cell, err in cell_results:
        acc = sums[(cell.speaker, cell.phone_a, cell.phone_b)]
        acc[0] += err
        acc[1] += 1
        n_cells += 1
    per_pair: dict[tuple[int, int], list[float]] = defaultdict(list)
    for (_, pa, pb), (total, count) in sums.items():
        per_pair[(pa, pb)].append(total / count)
    return {k: float(np.mean(v)) for k, v in sorted(per_pair.items())}, n_cells


def score_items(feats: ItemFeatures, options: ABXOptions | Mapping[str, Any]) -> ABXScoreReport:
    """ABX error rates of prepared item features (see the module doc for the averaging)."""
    opts = options if isinstance(options, ABXOptions) else ABXOptions.parse(options)
    s = opts.speaker_mode
    metrics: dict[str, Metric] = {}
    per_item: list[dict[str, Any]] = []
    n_cells: dict[str, int] = {}
    for c in opts.context_modes:
        pairs, n_cells[c] = aggregate(cell_errors(feats, opts, s, c))
        vals = np.array(list(pairs.values()), dtype=np.float64)
        n = int(vals.size)
        se = float(vals.std(ddof=1) / math.sqrt(n)) if n > 1 else None
        metrics[f"abx_{s}_{c}_context"] = Metric(
            float(vals.mean()) if n else math.nan, se, n, higher_is_better=False
        )
        per_item.extend(
            {
                "speaker_mode": s,
                "context_mode": c,
                "phone_a": feats.phones[pa],
                "phone_b": feats.phones[pb],
                "error": err,
            }
            for (pa, pb), err in pairs.items()
        )
    headline = "within" if "within" in opts.context_modes else opts.context_modes[0]
    metrics = {f"abx_{s}": metrics[f"abx_{s}_{headline}_context"], **metrics}
    info = {
        "speaker_mode": s,
        "context_modes": list(opts.context_modes),
        "headline_context_mode": headline,
        "distance": opts.distance,
        "normalize": opts.normalize,
        "max_size_group": opts.max_size_group,
        "max_x_across": opts.max_x_across,
        "seed": opts.seed,
        "implementation": opts.implementation,
        "n_items": len(feats.items),
        "n_items_skipped": len(feats.skipped),
        "skipped_lines": [it.line for it in feats.skipped[:20]],
        "n_speakers": len(set(feats.speaker_id.tolist())),
        "n_phones": len(set(feats.phone_id.tolist())),
        "n_contexts": len(set(feats.context_id.tolist())),
        "n_cells": n_cells,
    }
    return ABXScoreReport(metrics, per_item, info)


def score_features(
    dataset: ABXDataset,
    features: Mapping[str, tuple[np.ndarray, float]],
    options: ABXOptions | Mapping[str, Any] | None = None,
    sources: Mapping[str, Path] | None = None,
) -> ABXScoreReport:
    """ABX error rates of ``features`` (file stem -> (frames x dims array, frames/s))."""
    opts = options if isinstance(options, ABXOptions) else ABXOptions.parse(options)
    feats = prepare_features(
        dataset.items,
        features,
        durations=dataset.durations or None,
        normalize=opts.normalize,
        feature_offset=opts.feature_offset,
        frame_tolerance=opts.frame_tolerance,
        empty_items=opts.empty_items,
        nonnegative=opts.distance in ("kl", "kl_symmetric"),
        sources=sources,
    )
    return score_items(feats, opts)


def score_feature_dir(
    dataset: ABXDataset,
    feature_dir: str | Path,
    frame_rate: float,
    options: ABXOptions | Mapping[str, Any] | None = None,
) -> ABXScoreReport:
    """Score precomputed features in the ZeroSpeech submission layout.

    ``feature_dir/**/<stem>.{npy,pt,txt}`` for every file of the dataset, all at
    ``frame_rate`` frames per second (ZeroSpeech's ``feature_size`` is its inverse).
    """
    paths = find_feature_files(Path(feature_dir), dataset.doc_ids())
    feats = {stem: (load_feature_file(p), frame_rate) for stem, p in paths.items()}
    return score_features(dataset, feats, options, sources=paths)
