"""ZeroSpeech 2021 lexical and syntactic scoring, as the official scripts define it.

From zerospeech/zerospeech2021 (``lexical.py``, ``syntactic.py``, ``leaderboard.py``):
each pair scores 1 / 0.5 (tie) / 0; scores are first averaged over voices for
each pair id; the overall score is the plain mean over ids. Lexical frequency
bands are ``pandas.cut`` with edges [0, 1, 5, 20, 100, inf), right-open, labelled
oov, 1-5, 6-20, 21-100, >100 (so "oov" is frequency 0 and "1-5" is 1..4);
"invocab" is every band but oov. Syntactic breaks down by ``type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..dataset import ChoiceItem
from .base import ScoreReport, item_scores, mean_metric, no_options

FREQ_EDGES = [0, 1, 5, 20, 100, np.inf]
FREQ_LABELS = ["oov", "1-5", "6-20", "21-100", ">100"]


def _by_doc(
    items: Sequence[ChoiceItem], scores: Mapping[str, float], keys: list[str]
) -> pd.DataFrame:
    rows = [
        {"doc_id": it.doc_id, "score": s, **{k: it.meta.get(k) for k in keys}}
        for it, s in zip(items, item_scores(items, scores), strict=True)
    ]
    df = pd.DataFrame(rows, columns=["doc_id", "score", *keys])
    # Average over voices per id; the other keys are constant within an id.
    agg = {"score": "mean", **{k: "first" for k in keys}}
    return df.groupby("doc_id", sort=False).agg(agg).reset_index()


class LexicalScorer:
    """sWUGGY: overall, by frequency band, and in-vocabulary accuracy."""

    name = "zr2021_lexical"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = no_options("zr2021_lexical", options)

    def score(self, items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> ScoreReport:
        df = _by_doc(items, scores, ["frequency"])
        metrics = {"acc": mean_metric(df["score"])}
        freq = pd.to_numeric(df["frequency"], errors="coerce")
        band = pd.cut(freq, FREQ_EDGES, right=False, labels=FREQ_LABELS)
        for label in FREQ_LABELS:
            sel = df["score"][band == label]
            if len(sel):
                metrics[f"acc_freq_{label}"] = mean_metric(sel)
        invocab = df["score"][band.notna() & (band != "oov")]
        if len(invocab):
            metrics["acc_invocab"] = mean_metric(invocab)
        per = df.to_dict("records")
        return ScoreReport(metrics, per)


class SyntacticScorer:
    """sBLIMP: overall accuracy over pair ids and the breakdown by ``type``."""

    name = "zr2021_syntactic"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = no_options("zr2021_syntactic", options)

    def score(self, items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> ScoreReport:
        df = _by_doc(items, scores, ["type"])
        metrics = {"acc": mean_metric(df["score"])}
        for t in sorted(df["type"].unique()):
            metrics[f"acc_type_{t}"] = mean_metric(df["score"][df["type"] == t])
        return ScoreReport(metrics, df.to_dict("records"))
