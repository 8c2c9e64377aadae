"""ABX phone discriminability (Libri-light / ZeroSpeech), exact and fast implementations.

- ``items``: item files (``#file onset offset #phone prev-phone next-phone speaker``) and
  :class:`ABXDataset`, what the ``abx_item`` reader returns;
- ``features``: loading per-file features, checks, the frames each item selects;
- ``distances``: frame distances and the path-normalised DTW;
- ``cells``: which (A, B, X) groups are compared, with the reference's seeded sub-sampling;
- ``exact`` / ``fast``: the error of each cell (plain loops / vectorised torch, identical);
- ``score``: options, averaging, the report; ``score_features`` and ``score_feature_dir``;
- ``reference``: a script running the installed reference (zerospeech-libriabx2) for
  cross-checks; ``synthetic``: synthetic item files and features for tests and benchmarks.
"""

from .items import ABXDataset, Item, read_item_file
from .score import ABXOptions, ABXScoreReport, score_feature_dir, score_features

__all__ = [
    "ABXDataset",
    "ABXOptions",
    "ABXScoreReport",
    "Item",
    "read_item_file",
    "score_feature_dir",
    "score_features",
]
