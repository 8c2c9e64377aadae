"""``stsp``: SPIRIT-LM's Speech-Text Sentiment Preservation accuracy.

Per output, 1 when the judge's sentiment of the output equals the prompt's label
(``spiritlm/eval/eval_stsp.py``: ``pred == ref["sentiment"]``, exact strings), else 0. An
empty output (no text, or digital silence: the pipeline says which) has no prediction: it is
**counted wrong** and reported (``empty_rate``, ``n_empty``), never dropped from the
denominator. With N outputs per prompt, each prompt's outputs are averaged first, then the
prompts (``acc`` with its closed-form stderr over prompts; N = 1 is SPIRIT-LM's setting).

Metrics: ``acc``; ``acc_<label>`` per prompt label (positive, negative, neutral);
``empty_rate`` (lower is better). Info: counts per label, the majority-class rate (what
always answering the most frequent label scores: the chance reference) and the empty policy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..metrics import SampleScore, ScoreReport, grouped, mean
from ..readers.stsp import LABELS
from .base import no_options, sample_records


def per_prompt(samples: Sequence[SampleScore], key: str) -> list[float]:
    """``values[key]`` averaged over each prompt's samples, prompts in first-seen order."""
    by_doc: dict[str, list[float]] = {}
    for s in samples:
        by_doc.setdefault(s.doc_id, []).append(float(s.values[key]))
    return [sum(v) / len(v) for v in by_doc.values()]


def majority_rate(labels: Mapping[str, str]) -> dict[str, Any]:
    """The share of the most frequent label (ties: the first of positive, negative, neutral)."""
    counts = Counter(labels.values())
    if not counts:
        return {"label": None, "rate": float("nan")}
    best = max(LABELS, key=lambda lab: (counts.get(lab, 0), -LABELS.index(lab)))
    return {"label": best, "rate": counts[best] / sum(counts.values())}


class STSPScorer:
    name = "stsp"
    inputs = "sentiment_outputs"
    # The task binds text_sentiment (text outputs) or speech_sentiment (speech outputs); the
    # pipeline checks the one its direction needs, so neither is required of every task.
    roles: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = no_options(self.name, options)

    def score_sample(
        self,
        doc_id: str,
        label: str,
        prediction: str | None,
        meta: Mapping[str, Any] | None = None,
    ) -> SampleScore:
        if label not in LABELS:
            raise ValueError(f"stsp: {doc_id!r}: label {label!r} is not one of {LABELS}")
        empty = prediction is None
        return SampleScore(
            doc_id,
            {"acc": float(not empty and prediction == label), "empty": float(empty)},
            groups={"label": label},
            answer=prediction,
            explanation="empty output: counted wrong" if empty else None,
            meta={"label": label, **dict(meta or {})},
        )

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport:
        metrics = {"acc": mean(per_prompt(samples, "acc"))}
        by_label = grouped(samples, "label", lambda ss: mean(per_prompt(ss, "acc")), order=LABELS)
        metrics.update({f"acc_{lab}": m for lab, m in by_label.items()})
        metrics["empty_rate"] = mean(per_prompt(samples, "empty"), higher_is_better=False)
        labels = {s.doc_id: s.groups["label"] for s in samples}
        counts = Counter(labels.values())
        info = {
            "n_prompts": len(labels),
            "n_outputs": len(samples),
            "n_empty": int(sum(s.values["empty"] for s in samples)),
            "empty_outputs": "counted wrong (no prediction) and reported as empty_rate",
            "labels": {lab: counts.get(lab, 0) for lab in LABELS},
            "chance_majority_class": majority_rate(labels),
        }
        return ScoreReport(metrics, sample_records(samples), info)

    def score(
        self,
        labels: Mapping[str, str],
        predictions: Mapping[str, Sequence[str | None]],
    ) -> ScoreReport:
        """Score in one go: prompt id -> label, prompt id -> its outputs' predictions."""
        return self.aggregate(
            [self.score_sample(d, labels[d], p) for d in labels for p in predictions[d]]
        )
