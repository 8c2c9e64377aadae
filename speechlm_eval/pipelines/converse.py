"""The ``converse`` pipeline: stream each stimulus to the model, judge the two channels.

For each stimulus of a :class:`~speechlm_eval.dataset.SessionDataset`, one streaming
session (:mod:`speechlm_eval.streaming`: frame by frame, causal) through the cached
executor, one session per batch so that a killed run keeps every finished session and
restarts an unfinished one from its beginning (sessions are deterministic given the user
audio and the seed). Sessions are judged a part at a time (:data:`PART_SESSIONS`), then
their audio is dropped; the scorer (:class:`~speechlm_eval.scorers.base.SessionScorer`)
turns every part's rows into metrics at the end.

The model's wall-clock behaviour (real-time factor, whether it kept up) is recorded under
``scoring.<task>.realtime`` as measured when each session was computed; it never enters a
metric, which are all on the audio timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import Audio, AudioRef
from ..cache import BlobStore
from ..dataset import SessionDataset, SessionItem
from ..errors import ConfigError, DataError
from ..execute import BatchSizer, converse_capability, run_requests
from ..scorers.base import SessionScorer
from .base import SpilledAudio, TaskContext, TaskOutcome, filtered_entries

# Sessions per part: generated, judged and reduced to rows before the next part, so memory
# does not grow with the number of stimuli (Full-Duplex-Bench has ~700 of ~30 s).
PART_SESSIONS = 16


@dataclass(frozen=True)
class Session:
    """One finished session as scorers see it: the item, the user channel as the dataset has
    it and the model channel (at the model's rate), both starting at time 0; ``variants``:
    the sessions on the item's variant user channels the scorer asked for (its ``variants``
    attribute), name -> (user channel, model channel)."""

    item: SessionItem
    user: Audio
    model: Audio
    variants: dict[str, tuple[Audio, Audio]] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return self.item.doc_id


def realtime_totals(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessions' wall-clock figures (:func:`streaming.realtime_summary`) summed up."""
    if not sessions:
        return {"sessions": 0}
    rtf = np.array([s["rtf"] for s in sessions], dtype=float)
    return {
        "sessions": len(sessions),
        "frame_seconds": sessions[0]["frame_seconds"],
        "rtf_mean": round(float(rtf.mean()), 4),
        "rtf_max": round(float(rtf.max()), 4),
        "max_step_ratio": round(max(s["max_step_ratio"] for s in sessions), 4),
        "max_lag_seconds": round(max(s["max_lag_seconds"] for s in sessions), 4),
        "kept_up": sum(bool(s["kept_up"]) for s in sessions),
        "note": "wall clock of the machine that computed each session (cached sessions keep "
        "the figures of their first run); metrics are on the audio timeline",
    }


def run_converse(ctx: TaskContext) -> TaskOutcome:
    """Stream every stimulus to the model, judge and score (see the module docstring)."""
    ds = ctx.dataset
    if not isinstance(ds, SessionDataset):
        raise ConfigError(
            f"task {ctx.name!r}: the converse pipeline needs a session dataset "
            f"(readers dialogue_sessions, fdbench...), got {type(ds).__name__}"
        )
    scorer = ctx.scorer(SessionScorer)
    cap = converse_capability(ctx.model, ctx.blobs, ctx.seed)
    rate = ctx.cfg.dataset.sample_rate
    kept = SpilledAudio(BlobStore(None)) if ctx.log_samples else None
    one_at_a_time = BatchSizer(1)  # every finished session is committed before the next
    wanted = tuple(getattr(scorer, "variants", ()) or ())
    parts: list[Any] = []
    realtime: list[dict[str, Any]] = []
    hashes: list[str] = []
    items = ds.items
    n_parts = -(-len(items) // PART_SESSIONS)
    for k in range(n_parts):
        part = items[k * PART_SESSIONS : (k + 1) * PART_SESSIONS]
        desc = ctx.name if n_parts == 1 else f"{ctx.name} [{k + 1}/{n_parts}]"
        # Variant sessions (scorer.variants) are sessions of their own, keyed "<doc>#<name>".
        inputs = {it.doc_id: ds.files[it.doc_id] for it in part}
        for it in part:
            for v in wanted:
                if v not in it.variants:
                    raise DataError(
                        f"task {ctx.name!r}: stimulus {it.doc_id!r} has no {v!r} variant of its "
                        f"user channel (the scorer {scorer.name!r} needs it)"
                    )
                inputs[f"{it.doc_id}#{v}"] = it.variants[v]
        got = run_requests(
            ctx.model,
            ctx.model_key,
            inputs,
            cap,
            expected_rate=rate,
            cache=ctx.cache,
            sizer=one_at_a_time,
            desc=desc,
            stats=ctx.stats,
            unit="session",
        )
        sessions = [
            Session(
                it,
                AudioRef.of(ds.files[it.doc_id], rate).load(),
                got[it.doc_id].model,
                {
                    v: (AudioRef.of(it.variants[v], rate).load(), got[f"{it.doc_id}#{v}"].model)
                    for v in wanted
                },
            )
            for it in part
        ]
        parts.append(scorer.judge(sessions, ctx.judges, ctx.cache, stats=ctx.stats, desc=desc))
        realtime.extend(got[it.doc_id].realtime for it in part)
        if kept is not None:
            hashes.extend(kept.add(s.model) for s in sessions)
    report = scorer.finish(items, parts)
    entry, hib, head = filtered_entries(report)
    scoring = {
        **head,
        "protocol": {
            "frame_seconds": ctx.model.converse_frame_seconds,
            "model_sample_rate": ctx.model.sample_rate,
            "output_delay_frames": 1,
            "seed": ctx.seed,
        },
        "realtime": realtime_totals(realtime),
        "options": dict(ctx.cfg.scoring.options),
    }
    if kept is None:
        return TaskOutcome(entry, hib, scoring)
    samples = list(report.per_item)
    by_doc = dict(zip([it.doc_id for it in items], hashes, strict=True))
    for row in samples:
        row["model_audio"] = f"audio/{by_doc[row['doc_id']]}.wav"
    return TaskOutcome(entry, hib, scoring, samples=samples, kept_audio=kept)
