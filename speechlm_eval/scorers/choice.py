"""Plain n-way choice accuracy (Spoken StoryCloze, SALMon, generic manifests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..dataset import ChoiceItem
from ..metrics import SampleScore, ScoreReport, mean
from .base import choice_score, no_options, sample_records


class ChoiceScorer:
    """Accuracy over items; the positive must beat every foil (ties share the point).

    The base of the ZR2021 scorers too: they score items the same way and differ in
    :meth:`groups` (breakdown keys) and :meth:`aggregate` (the official averaging).
    """

    name = "choice"
    inputs = "choice_items"  # what it scores (scorers.base protocols)

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = no_options(self.name, options)

    def groups(self, item: ChoiceItem) -> dict[str, str | None]:
        """Breakdown keys of an item (none for plain accuracy)."""
        return {}

    def score_sample(self, item: ChoiceItem, scores: Mapping[str, float]) -> SampleScore:
        """The item's point (``values["score"]``: 1, 0, or the shared point of a tie)."""
        point = choice_score([scores[s] for s in item.candidates])
        return SampleScore(
            item.doc_id,
            {"score": point},
            groups=self.groups(item),
            meta={"candidates": list(item.candidates), "meta": item.meta},
        )

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport:
        """``acc``: the mean over items, closed-form standard error (items independent)."""
        acc = mean([s.values["score"] for s in samples])
        return ScoreReport({"acc": acc}, sample_records(samples))

    def score(self, items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> ScoreReport:
        """Every item scored, then aggregated."""
        return self.aggregate([self.score_sample(it, scores) for it in items])
