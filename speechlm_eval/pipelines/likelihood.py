"""Likelihood-choice tasks (sWUGGY, sBLIMP, StoryCloze, SALMon, manifests): ``loglikelihood``."""

from __future__ import annotations

from typing import Any

from ..config import NLL_VARIANTS
from ..dataset import ChoiceDataset
from ..execute import run_loglikelihood
from ..scorers.base import choice_score
from .base import TaskContext, TaskOutcome, metric_entries


def nll_scores(ll: dict[str, dict[str, float]], variant: str) -> dict[str, float]:
    """Per-file score (higher = more likely): total log-prob, or its per-token mean."""
    if variant == "sum":
        return {s: v["logprob"] for s, v in ll.items()}
    return {s: v["logprob"] / v["num_tokens"] for s, v in ll.items()}


def run_likelihood(ctx: TaskContext) -> TaskOutcome:
    ds: ChoiceDataset = ctx.dataset
    ll = run_loglikelihood(
        ctx.model,
        ctx.model_key,
        ds.files,
        expected_rate=ctx.cfg.dataset.sample_rate,
        cache=ctx.cache,
        sizer=ctx.sizer,
        desc=ctx.name,
        stats=ctx.stats,
    )
    scorer = ctx.scorer()
    entry: dict[str, Any] = {}
    hib: dict[str, bool] = {}
    for variant in NLL_VARIANTS:
        e, hib = metric_entries(scorer.score(ds.items, nll_scores(ll, variant)), f"nll_{variant}")
        entry.update(e)
    nll = ctx.cfg.scoring.nll
    scoring = {
        "scorer": ctx.cfg.scoring.scorer,
        "variants": [f"nll_{v}" for v in NLL_VARIANTS],
        "default": f"nll_{nll}",
        "primary_metric": f"acc,nll_{nll}",
        "item_rule": "1 if positive > every foil, 0 if below one, shared point on ties",
    }
    samples = _samples(ds, ll) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, samples=samples)


def _samples(ds: ChoiceDataset, ll: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for it in ds.items:
        row = {
            "doc_id": it.doc_id,
            "candidates": list(it.candidates),
            "meta": it.meta,
            "logprob": [ll[s]["logprob"] for s in it.candidates],
            "num_tokens": [ll[s]["num_tokens"] for s in it.candidates],
        }
        for v in NLL_VARIANTS:
            sc = nll_scores({s: ll[s] for s in it.candidates}, v)
            row[f"score,nll_{v}"] = choice_score([sc[s] for s in it.candidates])
        rows.append(row)
    return rows
