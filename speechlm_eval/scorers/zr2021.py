"""ZeroSpeech 2021 lexical and syntactic scoring, as the official scripts define it.

From zerospeech/zerospeech2021 (``lexical.py``, ``syntactic.py``, ``leaderboard.py``):
each pair scores 1 / 0.5 (tie) / 0; scores are first averaged over voices for
each pair id; the overall score is the plain mean over ids. Lexical frequency
bands are ``pandas.cut`` with edges [0, 1, 5, 20, 100, inf), right-open, labelled
oov, 1-5, 6-20, 21-100, >100 (so "oov" is frequency 0 and "1-5" is 1..4);
"invocab" is every band but oov. Syntactic breaks down by ``type``.

In the scorer contract: each (pair, voice) item is a SampleScore (its point, grouped by
band or type), and the averaging over voices then ids is :func:`cluster_mean` with the pair
id as cluster and ``weighting="cluster"``; an id's band or type is that of its first item
(the scripts' ``first``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..dataset import ChoiceItem
from ..metrics import Metric, SampleScore, ScoreReport, cluster_mean, grouped
from .base import sample_records
from .choice import ChoiceScorer

FREQ_EDGES = [0, 1, 5, 20, 100, np.inf]
FREQ_LABELS = ["oov", "1-5", "6-20", "21-100", ">100"]


def frequency_band(frequency: Any) -> str | None:
    """The band of a frequency as ``pandas.cut(pandas.to_numeric(f, errors="coerce"),
    FREQ_EDGES, right=False, labels=FREQ_LABELS)`` gives it; None outside the bands (NaN,
    negative, infinite or not a number). Per item, without building a Series per item."""
    f = pd.to_numeric(frequency, errors="coerce")
    try:
        x = float(f)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(x) and x >= FREQ_EDGES[0]):
        return None
    return FREQ_LABELS[bisect.bisect_right(FREQ_EDGES, x) - 1]


def _by_id(samples: Sequence[SampleScore]) -> Metric:
    """Mean over voices per pair id, then over ids (the official averaging)."""
    return cluster_mean(
        [s.values["score"] for s in samples], [s.doc_id for s in samples], weighting="cluster"
    )


class LexicalScorer(ChoiceScorer):
    """sWUGGY: overall, by frequency band, and in-vocabulary accuracy."""

    name = "zr2021_lexical"

    def groups(self, item: ChoiceItem) -> dict[str, str | None]:
        """The item's frequency band (``frequency`` in the item's metadata)."""
        return {"frequency": frequency_band(item.meta.get("frequency"))}

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport:
        """``acc``, ``acc_freq_<band>`` for each band with items, ``acc_invocab``."""
        metrics = {"acc": _by_id(samples)}
        bands = grouped(samples, "frequency", _by_id, order=FREQ_LABELS, by_doc=True)
        metrics.update({f"acc_freq_{b}": m for b, m in bands.items()})
        first: dict[str, str | None] = {}
        for s in samples:
            first.setdefault(s.doc_id, s.groups.get("frequency"))
        invocab = [s for s in samples if first[s.doc_id] not in (None, "oov")]
        if invocab:
            metrics["acc_invocab"] = _by_id(invocab)
        return ScoreReport(metrics, sample_records(samples))


class SyntacticScorer(ChoiceScorer):
    """sBLIMP: overall accuracy over pair ids and the breakdown by ``type``."""

    name = "zr2021_syntactic"

    def groups(self, item: ChoiceItem) -> dict[str, str | None]:
        """The item's sBLIMP ``type`` (phenomenon)."""
        t = item.meta.get("type")
        return {"type": None if t is None else str(t)}

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport:
        """``acc`` and ``acc_type_<type>`` for each type, types sorted."""
        metrics = {"acc": _by_id(samples)}
        types = grouped(samples, "type", _by_id, by_doc=True)
        metrics.update({f"acc_type_{t}": m for t, m in types.items()})
        return ScoreReport(metrics, sample_records(samples))
