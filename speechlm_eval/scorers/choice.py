"""Plain n-way choice accuracy (Spoken StoryCloze, SALMon, generic manifests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..dataset import ChoiceItem
from .base import ScoreReport, item_scores, mean_metric, no_options


class ChoiceScorer:
    """Accuracy over items; the positive must beat every foil (ties share the point)."""

    name = "choice"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = no_options("choice", options)

    def score(self, items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> ScoreReport:
        vals = item_scores(items, scores)
        per = [{"doc_id": it.doc_id, "score": v} for it, v in zip(items, vals, strict=True)]
        return ScoreReport({"acc": mean_metric(vals)}, per)
