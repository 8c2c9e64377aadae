"""Continuation tasks (capability ``continue``): spoken prompts -> sampled continuations ->
judged (ASR, text LM, and optionally MOS and speaker similarity) -> the task's scorer.

The protocol follows GSLM (fairseq ``examples/textless_nlp/gslm``; notes in
``../shared/reference/generation-dialogue-metrics.md`` section 1) with every choice a task
option under ``generation:`` in the task YAML, recorded in the results:

- prompts are the first ``prompt_seconds`` (3) of utterances at least ``min_seconds`` (6)
  long (``prompt_end_field``: each utterance's own prompt end, from its metadata, e.g. the
  end of its first sentence); shorter ones are excluded and counted, never silently;
  ``max_prompts`` keeps the shortest N (GSLM scores the 1000 shortest);
- per prompt and per temperature of ``temperatures``, ``num_samples`` continuations, each
  seeded from the run's seed (the request's seed is part of its cache key, so a resumed run
  gets the same samples);
- ``max_seconds``: how long a continuation may be: ``reference`` (the rest of the reference
  utterance: GSLM cuts the generated audio to the ground truth's length) or seconds;
- ``with_prompt``: the judged audio is the *original* prompt followed by the continuation
  (both anchors transcribe prompt + continuation; they use the resynthesised prompt, which a
  ``continue`` model does not return: the contract is continuation only), else the
  continuation alone; ``cut_to_reference``: the judged audio is cut to the reference
  utterance's length (GSLM ``cut_as.py``).

The reference ("oracle") is the reference utterance itself through the same judges (its
whole audio when ``with_prompt``, else the part after the prompt), so judge errors weigh on
both sides alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ..audio import Audio, AudioRef
from ..cache import BlobStore
from ..errors import ConfigError, DataError
from ..execute import Capability, continue_capability, run_requests
from ..model import ContinueRequest
from ..options import Opt, Spec
from ..scorers.base import ContinuationScorer
from ..scorers.continuation import Judged, Prompt
from .base import SpilledAudio, TaskContext, TaskOutcome, filtered_entries


def _temperatures(v: Any) -> list[float]:
    if not isinstance(v, list) or not v:
        raise ValueError("")
    out = []
    for t in v:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 100:
            raise ValueError("")
        out.append(float(t))
    if len(set(out)) != len(out):
        raise ValueError("temperatures are listed twice")
    return out


def _max_seconds(v: Any) -> str | float:
    if v == "reference":
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError("")
    return float(v)


# Trivial reference continuations, judged and scored like the model's, under their own filter.
# repeat_prompt: the prompt's own audio again, tiled to the continuation's budget (what
# "repeat what you heard" scores: lexically perfect, maximally repetitive).
BASELINES = ("repeat_prompt",)


def _baselines(v: Any) -> list[str]:
    if not isinstance(v, list) or any(b not in BASELINES for b in v) or len(set(v)) != len(v):
        raise ValueError("")
    return list(v)


def repeat_prompt(prompt: Audio, seconds: float) -> Audio:
    """The prompt tiled to ``seconds`` (the ``repeat_prompt`` baseline's continuation)."""
    n = max(1, round(seconds * prompt.sample_rate))
    x = np.resize(prompt.samples, n).astype(np.float32)  # numpy tiles when growing
    return Audio(x, prompt.sample_rate, f"repeat_prompt of {prompt.source}")


GENERATION = Spec(
    {
        "prompt_seconds": Opt(float, 3.0, gt=0, doc="prompt = the first seconds of an utterance"),
        "prompt_end_field": Opt(
            str, None, doc="a metadata field giving each utterance's prompt end (seconds)"
        ),
        "min_seconds": Opt(float, 6.0, ge=0, doc="shorter utterances are excluded (counted)"),
        "max_prompts": Opt(int, None, ge=1, doc="keep the shortest N utterances (GSLM: 1000)"),
        "num_samples": Opt(int, 1, ge=1, doc="continuations per prompt and temperature"),
        "temperatures": Opt(
            list, [1.0], check=_temperatures, expect="a non-empty list of numbers in [0, 100)"
        ),
        "top_k": Opt(int, None, ge=1),
        "top_p": Opt(float, None, gt=0, le=1),
        "max_seconds": Opt(
            object, "reference", check=_max_seconds, expect="'reference' or seconds > 0"
        ),
        "with_prompt": Opt(bool, True, doc="judge the original prompt + the continuation"),
        "cut_to_reference": Opt(bool, True, doc="cut the judged audio to the reference length"),
        "baselines": Opt(
            list,
            [],
            check=_baselines,
            expect=f"a list of {', '.join(BASELINES)}",
            doc="trivial reference continuations scored beside the model (no model involved)",
        ),
    },
    noun="key",
    strict=True,
)


def _prompt_end(ctx: TaskContext, doc: str, field: str | None, default: float) -> float:
    if field is None:
        return default
    v = (getattr(ctx.dataset, "meta", {}) or {}).get(doc, {}).get(field)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise DataError(
            f"task {ctx.name!r}: utterance {doc!r}: metadata field {field!r} "
            f"(generation.prompt_end_field) must be a number of seconds > 0, got {v!r}"
        )
    return float(v)


def select_prompts(ctx: TaskContext, opts: dict[str, Any]) -> tuple[list[Prompt], dict[str, Any]]:
    """The utterances long enough to prompt with, shortest first when ``max_prompts`` cuts
    (ties by id); the rest counted by reason."""
    ds = ctx.dataset
    rate = ctx.cfg.dataset.sample_rate
    kept: list[Prompt] = []
    short: list[str] = []
    for doc in ds.doc_ids():
        ref = AudioRef(ds.files[doc], expected_rate=rate)
        seconds = ref.seconds(ref.info())
        head = _prompt_end(ctx, doc, opts["prompt_end_field"], opts["prompt_seconds"])
        # Strictly longer than the prompt: a prompt must leave something to continue.
        if seconds < opts["min_seconds"] or seconds <= head:
            short.append(doc)
            continue
        kept.append(Prompt(doc, ref, seconds, ds.texts[doc], ds.speakers.get(doc), head))
    n_long = len(kept)
    if opts["max_prompts"] is not None:
        kept = sorted(kept, key=lambda p: (p.seconds, p.doc_id))[: opts["max_prompts"]]
    counts = {
        "utterances": len(ds.doc_ids()),
        "excluded_too_short": len(short),
        "excluded_by_max_prompts": n_long - len(kept),
        "prompts": len(kept),
    }
    if not kept:
        need = max(opts["min_seconds"], opts["prompt_seconds"])
        raise ConfigError(
            f"task {ctx.name!r}: no utterance is at least {need:g} s long and longer than "
            f"its prompt ({len(short)} too short; generation.min_seconds / prompt_seconds)"
        )
    return kept, counts


def budget(p: Prompt, opts: dict[str, Any]) -> float:
    """How long ``p``'s continuations may be (``generation.max_seconds``): the rest of its
    reference utterance (``reference``) or the seconds given."""
    if opts["max_seconds"] == "reference":
        return p.seconds - p.prompt_seconds
    return float(opts["max_seconds"])


def continue_request(
    p: Prompt, audio: Audio, opts: dict[str, Any], temperature: float, seed: int, key: str
) -> ContinueRequest:
    """The one :class:`ContinueRequest` of prompt ``p`` at ``temperature`` (its prompt audio
    ``audio`` at the model's rate, the run's ``seed``, the request ``key``). Every pipeline
    that samples continuations of a prompt builds its request here (``continue`` and, through
    ``continue_prosody``, the stream-space prosody tasks), so equal ``generation:`` options
    make equal requests, and the model's contract makes them the same samples."""
    return ContinueRequest(
        prompt=audio,
        num_samples=opts["num_samples"],
        temperature=temperature,
        top_k=opts["top_k"],
        top_p=opts["top_p"],
        max_seconds=budget(p, opts),
        seed=seed,
        key=key,
    )


def _judged_audio(p: Prompt, cont: Audio, prompt: Audio, opts: dict[str, Any]) -> Audio:
    """What the judges hear: [original prompt +] continuation, cut to the reference length."""
    x = cont.samples
    limit = p.seconds
    if opts["with_prompt"]:
        x = np.concatenate([prompt.resample(cont.sample_rate).samples, x])
    else:
        limit = p.seconds - p.prompt_seconds
    if opts["cut_to_reference"]:
        x = x[: max(1, round(limit * cont.sample_rate))]
    return Audio(np.ascontiguousarray(x, dtype=np.float32), cont.sample_rate, cont.source)


def _reference_audio(p: Prompt, opts: dict[str, Any]) -> Audio:
    if opts["with_prompt"]:
        return p.ref.load()
    return replace(p.ref, offset=p.prompt_seconds).load()


# Prompts per part: the pipeline generates, judges and scores the rows of this many prompts,
# then drops their audio, so memory does not grow with the number of prompts (the judges'
# batches fill up within a part: 16 prompts x samples x temperatures requests).
PART_PROMPTS = 16


def sample_continuations(
    ctx: TaskContext, cap: Capability, part: list[Prompt], opts: dict[str, Any], desc: str
) -> Iterator[tuple[str, float, list[Any]]]:
    """``(doc_id, temperature, outputs)`` for each prompt of ``part`` and temperature: the
    model's outputs of ``cap`` (``continue`` audio, or ``continue_prosody`` streams) for the
    requests :func:`continue_request` builds, through the cached executor. Both continue
    pipelines sample here, so equal options give them the very same requests."""
    by_id = {p.doc_id: p for p in part}
    head = {p.doc_id: p.ref.head(p.prompt_seconds) for p in part}
    for t in opts["temperatures"]:

        def make(stem: str, a: Audio, t: float = t) -> ContinueRequest:
            return continue_request(by_id[stem.rpartition("@")[0]], a, opts, t, ctx.seed, stem)

        got = run_requests(
            ctx.model,
            ctx.model_key,
            {f"{d}@{t:g}": r for d, r in head.items()},
            replace(cap, make=make),
            expected_rate=ctx.cfg.dataset.sample_rate,
            cache=ctx.cache,
            sizer=ctx.sizer,
            desc=f"{desc} T={t:g}",
            stats=ctx.stats,
        )
        for stem, outputs in got.items():
            yield stem.rpartition("@")[0], t, outputs


def _generate(
    ctx: TaskContext, cap: Capability, part: list[Prompt], opts: dict[str, Any], desc: str
) -> tuple[list[Judged], dict[str, Audio]]:
    """Every sampled (and baseline) continuation of ``part``'s prompts, as the judges hear
    them, and the prompts' audio."""
    by_id = {p.doc_id: p for p in part}
    prompt_audio = {p.doc_id: p.ref.head(p.prompt_seconds).load() for p in part}
    judged: list[Judged] = []
    for doc, t, conts in sample_continuations(ctx, cap, part, opts, desc):
        p = by_id[doc]
        for j, c in enumerate(conts):
            judged.append(Judged(doc, t, j, c, _judged_audio(p, c, prompt_audio[doc], opts)))
    for name in opts["baselines"]:  # only repeat_prompt exists (checked by the Spec)
        for p in part:
            c = repeat_prompt(prompt_audio[p.doc_id], budget(p, opts))
            a = _judged_audio(p, c, prompt_audio[p.doc_id], opts)
            judged.append(Judged(p.doc_id, None, 0, c, a, baseline=name))
    return judged, prompt_audio


def _judge_part(
    ctx: TaskContext,
    scorer: ContinuationScorer,
    cap: Capability,
    part: list[Prompt],
    opts: dict[str, Any],
    desc: str,
    kept: SpilledAudio | None,
) -> tuple[Any, list[str]]:
    """Generate and judge one part's continuations: the scorer's rows and, with kept audio,
    the continuations' content hashes. Its audio is gone when this returns."""
    judged, prompt_audio = _generate(ctx, cap, part, opts, desc)
    references = {p.doc_id: _reference_audio(p, opts) for p in part}
    rows = scorer.judge(
        part, judged, references, prompt_audio, ctx.judges, ctx.cache, stats=ctx.stats, desc=desc
    )
    hashes = [kept.add(item.continuation) for item in judged] if kept is not None else []
    return rows, hashes


def run_continue(ctx: TaskContext) -> TaskOutcome:
    opts = GENERATION.parse(f"task {ctx.name!r}: generation", ctx.cfg.generation)
    scorer = ctx.scorer(ContinuationScorer)
    prompts, counts = select_prompts(ctx, opts)
    cap = continue_capability(ctx.model, ctx.blobs)
    # Kept audio goes to a store of its own (a temporary folder), not into the cache's blobs.
    kept = SpilledAudio(BlobStore(None)) if ctx.log_samples else None
    hashes: list[str] = []
    parts: list[Any] = []
    n_parts = -(-len(prompts) // PART_PROMPTS)
    for i in range(n_parts):
        part = prompts[i * PART_PROMPTS : (i + 1) * PART_PROMPTS]
        desc = ctx.name if n_parts == 1 else f"{ctx.name} [{i + 1}/{n_parts}]"
        rows, h = _judge_part(ctx, scorer, cap, part, opts, desc, kept)
        parts.append(rows)
        hashes.extend(h)
    report = scorer.finish(prompts, parts)
    # The headline (scoring.options.primary) is said missing when the run lacks it (e.g. the
    # mos role rebound to a predictor with other keys: mos_nisqa instead of mos_ovrl).
    entry, hib, head = filtered_entries(report)
    scoring = {
        **head,
        "generation": {**opts, "seed": ctx.seed},
        "prompts": counts,
        "options": dict(ctx.cfg.scoring.options),
    }
    if kept is None:
        return TaskOutcome(entry, hib, scoring)
    samples = list(report.per_item)
    for row, h in zip(samples, hashes, strict=True):
        row["continuation_audio"] = f"audio/{h}.wav"
    return TaskOutcome(entry, hib, scoring, samples=samples, kept_audio=kept)
