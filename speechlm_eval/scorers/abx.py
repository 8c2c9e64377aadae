"""The ``abx`` scorer: ABX error rates (lower is better) from a model's frame features.

Interface for the runner (capability ``encode``)::

    report = ABXScorer(task.scoring.options).score(dataset, features)

with ``dataset`` the :class:`speechlm_eval.abx.ABXDataset` of the ``abx_item`` reader
and ``features`` mapping each file stem to ``(frames x dims array, frame rate in Hz)``
(an ``EncodeResult``'s ``features`` and ``frame_rate``). Metrics, for speaker mode ``S``
(``within`` or ``across``, option ``speaker_mode``): ``abx_S`` (the headline: within
context when computed), ``abx_S_within_context``, ``abx_S_any_context``; all with
``higher_is_better=False``. Options: see :class:`speechlm_eval.abx.ABXOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..abx.items import ABXDataset
from ..abx.score import ABXOptions, ABXScoreReport, score_feature_dir, score_features


class ABXScorer:
    """Libri-light / ZeroSpeech ABX (see :mod:`speechlm_eval.abx.score` for the definition).

    A dataset-level scorer (:class:`~speechlm_eval.scorers.base.DatasetScorer`): no
    ``score_sample``/``aggregate``, because ABX has no per-sample unit -- an error rate is
    defined per (context, phone pair, speaker) cell over all its A/B/X triples, which reuse
    the same files, and the report averages cells. Its ``per_item`` rows are per cell.
    """

    name = "abx"
    inputs = "dataset"  # what it scores (scorers.base protocols)

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = ABXOptions.parse(options, "scoring options of the abx scorer")

    def score(
        self, dataset: ABXDataset, features: Mapping[str, tuple[np.ndarray, float]]
    ) -> ABXScoreReport:
        """Error rates from per-file features (stem -> (frames x dims, frames per second))."""
        return score_features(dataset, features, self.options)

    def score_feature_dir(
        self, dataset: ABXDataset, feature_dir: str | Path, frame_rate: float
    ) -> ABXScoreReport:
        """Error rates from a ZeroSpeech-style folder of ``<stem>.{npy,pt,txt}`` features."""
        return score_feature_dir(dataset, feature_dir, frame_rate, self.options)
