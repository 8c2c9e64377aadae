"""Representation tasks (ABX): ``encode`` every file, score the features."""

from __future__ import annotations

from ..execute import encode_capability
from ..scorers.base import DatasetScorer
from .base import TaskContext, TaskOutcome, metric_entries


def run_encode(ctx: TaskContext) -> TaskOutcome:
    ds = ctx.dataset
    feats = ctx.run(encode_capability(ctx.model, ctx.blobs))
    # ABX is aggregate-only (no per-sample unit): its rows are per-cell, as the scorer says.
    report = ctx.scorer(DatasetScorer).score(ds, feats)
    entry, hib = metric_entries(report, "none")
    info = dict(report.info)  # e.g. ABX: items used/skipped, cells
    scoring = {
        "scorer": ctx.cfg.scoring.scorer,
        "options": dict(ctx.cfg.scoring.options),
        # The scorer's first metric is the task's headline unless it names one.
        "primary_metric": info.pop("primary_metric", f"{next(iter(report.metrics))},none"),
        "frame_rates": sorted({float(r) for _, r in feats.values()}),
        **info,
    }
    samples = list(report.per_item) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, samples=samples)
