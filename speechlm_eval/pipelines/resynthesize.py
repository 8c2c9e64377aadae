"""Resynthesis tasks: ``resynthesize`` every utterance, transcribe input and output with an ASR
judge, score WER/CER of both so the degradation is visible in one run."""

from __future__ import annotations

from typing import Any

from ..audio import load_audio
from ..execute import resynthesize_capability, run_requests
from .base import TaskContext, TaskOutcome, metric_entries


def run_resynthesize(ctx: TaskContext) -> TaskOutcome:
    from ..judges import load_judge, transcribe_cached  # judges import heavy packages lazily

    ds = ctx.dataset
    outs = run_requests(
        ctx.model,
        ctx.model_key,
        ds.files,
        resynthesize_capability(ctx.model, ctx.blobs),
        expected_rate=ctx.cfg.dataset.sample_rate,
        cache=ctx.cache,
        sizer=ctx.sizer,
        desc=ctx.name,
        stats=ctx.stats,
    )
    opts: dict[str, Any] = dict(ctx.cfg.scoring.options)
    judge = load_judge(str(opts.get("judge", "faster-whisper")), **dict(opts.get("judge_args", {})))
    ids = sorted(ds.files)
    rate = ctx.cfg.dataset.sample_rate
    hyp = transcribe_cached(judge, [outs[i] for i in ids], ctx.cache, desc=f"{ctx.name} asr")
    ref_audio = [load_audio(ds.files[i], rate) for i in ids]
    orig = transcribe_cached(judge, ref_audio, ctx.cache, desc=f"{ctx.name} asr (input)")
    scorer = ctx.scorer()
    refs = {i: ds.texts[i] for i in ids}
    report = scorer.score(refs, dict(zip(ids, hyp, strict=True)))
    baseline = scorer.score(refs, dict(zip(ids, orig, strict=True)))
    entry, hib = metric_entries(report, "none")
    # The judge on the unprocessed input, same run: the floor the resynthesis is compared to.
    e0, h0 = metric_entries(baseline, "original")
    entry.update(e0)
    scoring = {
        "scorer": ctx.cfg.scoring.scorer,
        "options": opts,
        "primary_metric": f"{next(iter(report.metrics))},none",
        "filters": {"none": "model's resynthesis", "original": "the input audio itself"},
    }
    samples = []
    if ctx.log_samples:
        samples = [
            {"doc_id": i, "reference": refs[i], "hypothesis": h, "hypothesis_original": o}
            for i, h, o in zip(ids, hyp, orig, strict=True)
        ]
    return TaskOutcome(
        entry, {**h0, **hib}, scoring, judges={"asr": judge.identity()}, samples=samples
    )
