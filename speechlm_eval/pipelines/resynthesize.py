"""Resynthesis tasks: ``resynthesize`` every utterance, transcribe the model's output *and* the
input with the task's ``asr`` judge, and score WER/CER of both (plus their paired difference),
so the degradation due to the model is visible in one run.

When the task binds them, the ``mos`` judge scores the output and the input (``mos_<key>``,
``mos_<key>_original``, ``mos_<key>_delta``: the paired difference) and the ``speaker`` judge
the cosine similarity of each output to its input (``speaker_similarity``; an audio in which
the judge finds no signal is excluded and counted)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..audio import Audio, load_audio
from ..execute import resynthesize_capability
from ..metrics import Metric, finite_cluster_mean
from ..scorers.base import TranscriptScorer
from .base import TaskContext, TaskOutcome, keep_audio, metric_entries


def run_resynthesize(ctx: TaskContext) -> TaskOutcome:
    ds = ctx.dataset
    outs = ctx.run(resynthesize_capability(ctx.model, ctx.blobs))
    rate = ctx.cfg.dataset.sample_rate
    ids = sorted(ds.files)
    original = {i: load_audio(ds.files[i], rate) for i in ids}
    report = ctx.scorer(TranscriptScorer).score_audio(
        {i: ds.texts[i] for i in ids},
        {i: outs[i] for i in ids},
        ctx.cache,
        judge=ctx.judges["asr"],
        original=original,
        stats=ctx.stats,
        desc=ctx.name,
    )
    quality, per_item, info = _quality(ctx, ids, outs, original)
    report.metrics.update(quality)
    # wer, cer, *_original (the judge on the input itself), *_delta (paired difference).
    entry, hib = metric_entries(report, "none")
    scoring = {**report.info, **info, "options": dict(ctx.cfg.scoring.options)}
    samples = list(report.per_item) if ctx.log_samples else []  # sample_records of the scorer
    for row in samples:
        row.update(per_item.get(row["doc_id"], {}))
    kept = keep_audio(samples, outs, "output_audio")  # the resynthesised audio, playable
    return TaskOutcome(entry, hib, scoring, samples=samples, kept_audio=kept)


def _quality(
    ctx: TaskContext, ids: list[str], outs: dict[str, Audio], original: dict[str, Audio]
) -> tuple[dict[str, Metric], dict[str, dict[str, Any]], dict[str, Any]]:
    """MOS of output and input (paired) and speaker similarity, for the roles the task binds."""
    metrics: dict[str, Metric] = {}
    rows: dict[str, dict[str, Any]] = {i: {} for i in ids}
    info: dict[str, Any] = {}
    mos = ctx.judges.get("mos")
    if mos is not None:
        scored = mos.predict(
            [outs[i] for i in ids] + [original[i] for i in ids], ctx.stats, ctx.cache, ctx.name
        )
        out_s, in_s = scored[: len(ids)], scored[len(ids) :]
        no_value: dict[str, int] = {}
        for key in sorted(out_s[0]) if out_s else []:
            a = np.array([s[key] for s in out_s], dtype=np.float64)
            b = np.array([s[key] for s in in_s], dtype=np.float64)
            # NaN: the judge has no value (e.g. a clip too short): excluded and counted; the
            # paired delta over the utterances with both values.
            for name, v in (
                (f"mos_{key}", a),
                (f"mos_{key}_original", b),
                (f"mos_{key}_delta", a - b),
            ):
                m, no_value[f"{name},none"] = finite_cluster_mean(v, ids)
                if m is not None:
                    metrics[name] = m
            for i, x, y in zip(ids, a, b, strict=True):
                rows[i][f"mos_{key}"] = float(x) if math.isfinite(x) else None
                rows[i][f"mos_{key}_original"] = float(y) if math.isfinite(y) else None
        info.setdefault("excluded", {})["mos_no_value"] = no_value  # zeros too: computed
    spk = ctx.judges.get("speaker")
    if spk is not None:
        sims = spk.similarity(
            [original[i] for i in ids], [outs[i] for i in ids], ctx.stats, ctx.cache, ctx.name
        )
        m, n_out = finite_cluster_mean(sims, ids)
        info.setdefault("excluded", {})["speaker_no_signal"] = n_out
        if m is not None:
            metrics["speaker_similarity"] = m
        for i, s in zip(ids, sims, strict=True):
            rows[i]["speaker_similarity"] = (
                float(s) if s is not None and math.isfinite(float(s)) else None
            )
    return metrics, rows, info
