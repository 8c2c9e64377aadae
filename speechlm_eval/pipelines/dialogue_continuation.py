"""Two-channel dialogue continuation (dGSLM-style; ``continue`` direction dialogue->dialogue).

Each recorded two-channel conversation is cut after ``prompt_seconds``: both channels of
that head are the prompt; the model continues both channels for ``max_seconds``
(:class:`~speechlm_eval.model.ContinueRequest` with ``prompt_dialogue``). This is offline
and non-streaming: the model sees the whole prompt at once and writes both sides, so it is
a different evaluation from ``converse`` and never feeds the full-duplex metrics.
Conversations shorter than ``prompt_seconds + max_seconds`` are excluded and counted. The
scorer (``inputs: dialogue_continuations``) gets the prompt, the model's continuation and
the true continuation (the next ``max_seconds`` of the recording) of each conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..audio import AudioRef, TwoChannelAudio
from ..dataset import SessionDataset, SessionItem
from ..errors import ConfigError
from ..execute import Item, continue_capability, execute
from ..model import ContinueRequest
from ..options import Opt, Spec
from ..scorers.base import DialogueContinuationScorer
from .base import TaskContext, TaskOutcome, filtered_entries

GENERATION = Spec(
    {
        "direction": Opt(str, "dialogue->dialogue", choices=("dialogue->dialogue",)),
        "prompt_seconds": Opt(float, 10.0, gt=0, doc="prompt = the first seconds of both channels"),
        "max_seconds": Opt(float, 10.0, gt=0, doc="length of the continuation (both channels)"),
        "temperature": Opt(float, 1.0, ge=0, doc="dGSLM's sample_speech_dlm.py default"),
        "top_k": Opt(int, None, ge=1),
        "top_p": Opt(float, None, gt=0, le=1),
    },
    noun="key",
    strict=True,
)


@dataclass(frozen=True)
class DialogueSample:
    """One conversation's prompt, the model's continuation and the true continuation."""

    item: SessionItem
    prompt: TwoChannelAudio
    continuation: TwoChannelAudio
    reference: TwoChannelAudio

    @property
    def doc_id(self) -> str:
        return self.item.doc_id


def _view(ds: SessionDataset, it: SessionItem, rate: int | None, start: float, sec: float):
    a = replace(AudioRef.of(ds.files[it.doc_id], rate), offset=start, duration=sec)
    b = replace(AudioRef.of(it.reference, rate), offset=start, duration=sec)
    return a, b


def run_dialogue_continue(ctx: TaskContext) -> TaskOutcome:
    """Continue every long-enough conversation, judge and score (see the module doc)."""
    ds = ctx.dataset
    if not isinstance(ds, SessionDataset):
        raise ConfigError(
            f"task {ctx.name!r}: dialogue continuation needs two-channel conversations "
            f"(reader dialogue_conversations), got {type(ds).__name__}"
        )
    o = GENERATION.parse(f"task {ctx.name!r}: generation", ctx.cfg.generation)
    scorer = ctx.scorer(DialogueContinuationScorer)
    rate = ctx.cfg.dataset.sample_rate
    need = o["prompt_seconds"] + o["max_seconds"]
    usable, short = [], []
    for it in ds.items:
        if it.reference is None:
            raise ConfigError(f"task {ctx.name!r}: conversation {it.doc_id!r} has one channel")
        ref = AudioRef.of(ds.files[it.doc_id], rate)
        (usable if ref.seconds(ref.info()) >= need else short).append(it)
    cap = continue_capability(ctx.model, ctx.blobs)
    job = cap.job(ctx.model, ctx.model_key)

    def item(it: SessionItem) -> Item:
        a, b = _view(ds, it, rate, 0.0, o["prompt_seconds"])

        def make(conform: Any) -> ContinueRequest:
            prompt = TwoChannelAudio(conform(a.load()), conform(b.load()), f"{it.doc_id} prompt")
            return ContinueRequest(
                prompt_dialogue=prompt,
                output="dialogue",
                num_samples=1,
                temperature=o["temperature"],
                top_k=o["top_k"],
                top_p=o["top_p"],
                max_seconds=o["max_seconds"],
                seed=ctx.seed,
                key=it.doc_id,
            )

        return Item(it.doc_id, need, make)

    outs = execute(
        job,
        [item(it) for it in usable],
        cache=ctx.cache,
        sizer=ctx.sizer,
        stats=ctx.stats,
        desc=ctx.name,
        unit="conversation",
    )
    samples = []
    for it, out in zip(usable, outs, strict=True):
        pa, pb = _view(ds, it, rate, 0.0, o["prompt_seconds"])
        ra, rb = _view(ds, it, rate, o["prompt_seconds"], o["max_seconds"])
        samples.append(
            DialogueSample(
                it,
                TwoChannelAudio(pa.load(), pb.load(), f"{it.doc_id} prompt"),
                out[0],
                TwoChannelAudio(ra.load(), rb.load(), f"{it.doc_id} true continuation"),
            )
        )
    report = scorer.score_dialogues(samples, ctx.judges, ctx.cache, stats=ctx.stats, desc=ctx.name)
    entry, hib, head = filtered_entries(report)
    scoring = {
        **head,
        "generation": {**o, "seed": ctx.seed},
        "conversations": {
            "usable": len(usable),
            "excluded_too_short": len(short),
            "min_seconds": need,
        },
        "options": dict(ctx.cfg.scoring.options),
    }
    samples_rows = list(report.per_item) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, samples=samples_rows)
