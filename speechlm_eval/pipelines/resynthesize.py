"""Resynthesis tasks: ``resynthesize`` every utterance, transcribe the model's output *and* the
input with the task's ``asr`` judge, and score WER/CER of both (plus their paired difference),
so the degradation due to the model is visible in one run."""

from __future__ import annotations

from ..audio import load_audio
from ..execute import resynthesize_capability
from ..scorers.base import TranscriptScorer
from .base import TaskContext, TaskOutcome, keep_audio, metric_entries


def run_resynthesize(ctx: TaskContext) -> TaskOutcome:
    ds = ctx.dataset
    outs = ctx.run(resynthesize_capability(ctx.model, ctx.blobs))
    rate = ctx.cfg.dataset.sample_rate
    ids = sorted(ds.files)
    report = ctx.scorer(TranscriptScorer).score_audio(
        {i: ds.texts[i] for i in ids},
        {i: outs[i] for i in ids},
        ctx.cache,
        judge=ctx.judges["asr"],
        original={i: load_audio(ds.files[i], rate) for i in ids},
        stats=ctx.stats,
        desc=ctx.name,
    )
    # wer, cer, *_original (the judge on the input itself), *_delta (paired difference).
    entry, hib = metric_entries(report, "none")
    scoring = {**report.info, "options": dict(ctx.cfg.scoring.options)}
    samples = list(report.per_item) if ctx.log_samples else []  # sample_records of the scorer
    kept = keep_audio(samples, outs, "output_audio")  # the resynthesised audio, playable
    return TaskOutcome(entry, hib, scoring, samples=samples, kept_audio=kept)
