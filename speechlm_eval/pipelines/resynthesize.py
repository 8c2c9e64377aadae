"""Resynthesis tasks: ``resynthesize`` every utterance, transcribe the model's output *and* the
input with the same ASR judge, and score WER/CER of both (plus their paired difference), so the
degradation due to the model is visible in one run."""

from __future__ import annotations

from ..audio import load_audio
from ..execute import resynthesize_capability
from .base import TaskContext, TaskOutcome, metric_entries


def run_resynthesize(ctx: TaskContext) -> TaskOutcome:
    from ..judges import (  # judges import heavy packages lazily
        judge_record,
        load_judge,
        transcribe_cached,
    )

    ds = ctx.dataset
    outs = ctx.run(resynthesize_capability(ctx.model, ctx.blobs))
    scorer = ctx.scorer()
    judge = load_judge(str(scorer.options["judge"]), **dict(scorer.options["judge_args"]))
    ids = sorted(ds.files)
    rate = ctx.cfg.dataset.sample_rate
    hyp = transcribe_cached(judge, [outs[i] for i in ids], ctx.cache, desc=f"{ctx.name} asr")
    ref_audio = [load_audio(ds.files[i], rate) for i in ids]
    orig = transcribe_cached(judge, ref_audio, ctx.cache, desc=f"{ctx.name} asr (input)")
    report = scorer.score(
        {i: ds.texts[i] for i in ids},
        dict(zip(ids, hyp, strict=True)),
        original=dict(zip(ids, orig, strict=True)),
    )
    # wer, cer, *_original (the judge on the input itself), *_delta (paired difference).
    entry, hib = metric_entries(report, "none")
    scoring = {**report.info, "options": dict(ctx.cfg.scoring.options)}
    samples = list(report.per_item) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, judges={"asr": judge_record(judge)}, samples=samples)
