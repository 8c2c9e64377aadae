"""Prosody in stream space (capability ``continue``, scorer inputs ``prosody_streams``): the
prosody streams of a model's sampled continuations and of the reference utterances, scored as
pGSLM scores its streams (:mod:`speechlm_eval.scorers.prosody_streams`).

Only for models with the ``prosody_streams`` extra (``SpeechLM.continue_extras``; the runner
skips the task for others with the reason). Same prompts and sampling as the ``continue``
pipeline (:func:`speechlm_eval.pipelines.continuation.select_prompts` and its ``generation:``
options: ``prompt_seconds``, ``prompt_end_field``, ``min_seconds``, ``max_prompts``,
``num_samples``, ``temperatures``, ``top_k``, ``top_p``, ``max_seconds``, seed = the run's),
and the very same :class:`~speechlm_eval.model.ContinueRequest` s: the model's contract makes
sample ``j`` of ``continue_prosody`` the sample ``j`` that ``continue`` returns, so a task
scoring the audio of these continuations (``prosody_pgslm``) and this one describe the same
samples when their ``generation:`` options agree.

- the model's streams of each sample: ``continue_prosody``, through the executor and the
  cache under its own method name (never mixed with ``continue``'s rows);
- the reference: the model's ``prosody_streams`` of each whole reference utterance (cached
  under that method name), split into prompt and continuation by the scorer.

``with_prompt`` and ``cut_to_reference`` shape the audio judges hear; no judge hears anything
here, so they are not used (and not recorded). ``baselines`` are defined for judged audio only:
a task that asks for one is a ConfigError.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..execute import continue_prosody_capability, prosody_streams_capability, run_requests
from ..model import ProsodyStreams
from ..scorers.base import ProsodyStreamScorer
from ..scorers.prosody_streams import StreamSample
from .base import TaskContext, TaskOutcome, filtered_entries
from .continuation import GENERATION, sample_continuations, select_prompts

UNUSED = ("with_prompt", "cut_to_reference", "baselines")


def run_prosody_streams(ctx: TaskContext) -> TaskOutcome:
    opts = GENERATION.parse(f"task {ctx.name!r}: generation", ctx.cfg.generation)
    if opts["baselines"]:
        raise ConfigError(
            f"task {ctx.name!r}: generation.baselines ({', '.join(opts['baselines'])}) are "
            "judged audio; stream-space prosody has no baseline"
        )
    scorer = ctx.scorer(ProsodyStreamScorer)
    prompts, counts = select_prompts(ctx, opts)
    rate = ctx.cfg.dataset.sample_rate
    cap = continue_prosody_capability(ctx.model, ctx.blobs)
    # The requests run_continue makes (one sampler builds both): the same samples.
    samples = [
        StreamSample(doc, t, j, s)
        for doc, t, streams in sample_continuations(ctx, cap, prompts, opts, f"{ctx.name} streams")
        for j, s in enumerate(streams)
    ]

    references: dict[str, ProsodyStreams] = run_requests(
        ctx.model,
        ctx.model_key,
        {p.doc_id: p.ref for p in prompts},
        prosody_streams_capability(ctx.model, ctx.blobs),
        expected_rate=rate,
        cache=ctx.cache,
        sizer=ctx.sizer,
        desc=f"{ctx.name} reference streams",
        stats=ctx.stats,
    )
    cls = type(ctx.model)
    report = scorer.score_streams(
        prompts, samples, references, model=f"model {cls.__module__}.{cls.__qualname__}"
    )
    entry, hib, head = filtered_entries(report)
    generation = {k: v for k, v in opts.items() if k not in UNUSED}
    scoring = {
        **head,
        "generation": {**generation, "seed": ctx.seed},
        "prompts": counts,
        "options": dict(ctx.cfg.scoring.options),
    }
    rows = list(report.per_item) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, samples=rows)
