"""Likelihood-choice tasks (sWUGGY, sBLIMP, StoryCloze, SALMon, manifests): ``loglikelihood``."""

from __future__ import annotations

from typing import Any

from ..config import NLL_VARIANTS
from ..dataset import ChoiceDataset
from ..execute import loglikelihood_capability
from ..metrics import SampleScore
from ..scorers.base import ChoiceItemScorer, sample_records
from .base import TaskContext, TaskOutcome, metric_entries


def nll_scores(ll: dict[str, dict[str, float]], variant: str) -> dict[str, float]:
    """Per-file score (higher = more likely): total log-prob, or its per-token mean."""
    if variant == "sum":
        return {s: v["logprob"] for s, v in ll.items()}
    return {s: v["logprob"] / v["num_tokens"] for s, v in ll.items()}


def run_likelihood(ctx: TaskContext) -> TaskOutcome:
    ds: ChoiceDataset = ctx.dataset
    ll = ctx.run(loglikelihood_capability(ctx.model))
    scorer = ctx.scorer(ChoiceItemScorer)
    entry: dict[str, Any] = {}
    hib: dict[str, bool] = {}
    by_filter: dict[str, list[SampleScore]] = {}
    for variant in NLL_VARIANTS:
        scores = nll_scores(ll, variant)
        samples = [scorer.score_sample(it, scores) for it in ds.items]
        e, hib = metric_entries(scorer.aggregate(samples), f"nll_{variant}")
        entry.update(e)
        by_filter[f"nll_{variant}"] = samples
    nll = ctx.cfg.scoring.nll
    scoring = {
        "scorer": ctx.cfg.scoring.scorer,
        "variants": [f"nll_{v}" for v in NLL_VARIANTS],
        "default": f"nll_{nll}",
        "primary_metric": f"acc,nll_{nll}",
        "item_rule": "1 if positive > every foil, 0 if below one, shared point on ties",
    }
    rows: list[dict[str, Any]] = []
    if ctx.log_samples:
        # One row per item: its candidates and metadata, the item's point under each
        # variant (``score,nll_sum``...) and the model's outputs behind them.
        model_out = [
            {
                "logprob": [ll[s]["logprob"] for s in it.candidates],
                "num_tokens": [ll[s]["num_tokens"] for s in it.candidates],
            }
            for it in ds.items
        ]
        rows = sample_records(by_filter, extra=model_out)
    return TaskOutcome(entry, hib, scoring, samples=rows)
