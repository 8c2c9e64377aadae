"""STSP tasks (capability ``continue``, scorer inputs ``sentiment_outputs``): SPIRIT-LM's
Speech-Text Sentiment Preservation. Each prompt (speech: its wav; text: its transcript) is
continued in the task's direction, the output's sentiment is judged, and the scorer compares
it with the prompt's label (``../shared/reference/generation-dialogue-metrics.md`` section 3;
``spiritlm/eval/stsp/predict_stsp.py``).

Options under ``generation:`` (recorded in the results):

- ``direction``: ``speech->speech`` | ``speech->text`` | ``text->speech`` | ``text->text``;
  a model that does not declare it in ``continue_modalities`` is skipped by the runner;
- ``temperature`` 0.8, ``top_p`` 0.95 (``top_k`` off), ``num_samples`` 1, seed = the run's;
- ``max_seconds`` (speech out; default 12 = SPIRIT-LM's 300 new tokens at HuBERT's 25 Hz)
  and ``max_tokens`` (text out, the model's own text tokens; SPIRIT-LM: 50);
- ``few_shot``: 0 (default) or n > 0: ``ceil(n / 3)`` examples per sentiment drawn from the
  direction's pool (seeded by the run's seed; one prefix for the whole run, examples grouped
  by sentiment in sorted order, as SPIRIT-LM's pandas ``groupby().sample``), each example its
  prompt then its generation; a speech prompt is the first half of its wav, a speech
  generation the second half. Text: examples joined by ``\\n`` with a trailing ``\\n``, a space
  between an example's prompt and generation (SPIRIT-LM puts its own ``[Text]`` marker there,
  which a plain text request cannot carry). Speech: examples joined by ``few_shot_gap`` seconds
  of silence (for SPIRIT-LM's ``\\n`` text token). **The test item is appended** to the prefix:
  SPIRIT-LM's released ``predict_stsp.py`` passes the few-shot string as ``prompt``, which
  ``Spiritlm.generate`` uses *instead of* the test input, so its few-shot runs never see the
  item being tested (pitfall 9 of the reference notes). Implemented for ``text->text`` and
  ``speech->speech`` only: the cross-modal prefixes interleave speech and text, which a
  ``ContinueRequest`` (one audio or one text prompt) cannot carry.

Judges by role: ``text_sentiment`` for text outputs, ``speech_sentiment`` for speech outputs
(only the continuation is judged, never the prompt). Empty outputs (text that is blank after
stripping; audio that is digital silence, every sample 0) are not judged: counted wrong and
reported by the scorer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import Audio, AudioRef
from ..config import TaskConfig
from ..errors import ConfigError, DataError
from ..execute import Item, continue_capability, execute
from ..hashing import digest
from ..model import CONTINUE_MODALITIES, ContinueRequest
from ..options import Opt, Spec
from ..readers.stsp import LABELS, FewShotExample, STSPDataset, read_few_shot_pool
from ..scorers.base import SentimentScorer
from .base import TaskContext, TaskOutcome, metric_entries

TEXT_CHARS_PER_SECOND = 15.0  # orders text prompts among audio ones (longest first): a cost only
FEW_SHOT_DIRECTIONS = ("text->text", "speech->speech")

GENERATION = Spec(
    {
        "direction": Opt(str, "speech->speech", choices=CONTINUE_MODALITIES),
        "temperature": Opt(float, 0.8, ge=0),
        "top_k": Opt(int, None, ge=1),
        "top_p": Opt(float, 0.95, gt=0, le=1),
        "num_samples": Opt(int, 1, ge=1, doc="outputs per prompt"),
        "max_seconds": Opt(float, 12.0, gt=0, doc="speech output budget"),
        "max_tokens": Opt(int, 50, ge=1, doc="text output budget (the model's text tokens)"),
        "few_shot": Opt(int, 0, ge=0, doc="examples in the prefix: ceil(n/3) per sentiment"),
        "few_shot_gap": Opt(float, 0.5, ge=0, doc="silence between speech examples (s)"),
    },
    noun="key",
    strict=True,
)


def continue_direction(cfg: TaskConfig) -> str:
    """The direction a continue task asks for (``generation.direction``; speech->speech when
    absent, as every GSLM-style task). The value is checked by the pipeline's option spec."""
    d = (cfg.generation or {}).get("direction", "speech->speech")
    return d if isinstance(d, str) else repr(d)


def judge_role(direction: str) -> str:
    return "text_sentiment" if direction.endswith("->text") else "speech_sentiment"


# --- few-shot ----------------------------------------------------------------------------------


def choose_examples(pool: list[FewShotExample], n_shots: int, seed: int) -> list[FewShotExample]:
    """``ceil(n_shots / 3)`` examples of each sentiment, drawn without replacement by a
    generator seeded from ``seed``; grouped by sentiment in sorted order (negative, neutral,
    positive), each group in pool order."""
    k = math.ceil(n_shots / 3)
    rng = random.Random(int(digest(["stsp-few-shot", int(seed)])[:16], 16))
    out: list[FewShotExample] = []
    for label in sorted(LABELS):
        group = [i for i, ex in enumerate(pool) if ex.sentiment == label]
        if len(group) < k:
            raise DataError(
                f"few-shot pool: {len(group)} {label} example(s), {k} needed for few_shot={n_shots}"
            )
        out += [pool[i] for i in sorted(rng.sample(group, k))]
    return out


def half(audio: Audio, first: bool) -> Audio:
    """The first (``x[:n//2]``) or second (``x[n//2:]``) half of a clip, as SPIRIT-LM cuts."""
    n = audio.samples.size // 2
    x = audio.samples[:n] if first else audio.samples[n:]
    if x.size == 0:
        raise DataError(f"{audio.source}: too short to halve for a few-shot example")
    return Audio(np.ascontiguousarray(x), audio.sample_rate, audio.source)


def text_prefix(examples: list[FewShotExample]) -> str:
    """``"p1 g1\\np2 g2\\n...\\n"``: the test item's text follows."""
    return "".join(f"{ex.prompt} {ex.generation}\n" for ex in examples)


def speech_prefix(examples: list[FewShotExample], rate: int | None, gap: float) -> list[Audio]:
    """First half of each example's prompt wav, second half of its generation wav, each
    example followed by ``gap`` s of silence: the pieces to put before the test item."""
    pieces: list[Audio] = []
    for ex in examples:
        p = AudioRef(Path(ex.prompt), expected_rate=rate).load()
        g = AudioRef(Path(ex.generation), expected_rate=rate).load()
        if g.sample_rate != p.sample_rate:
            raise DataError(f"{ex.where}: prompt and generation have different sample rates")
        pieces += [half(p, True), half(g, False)]
        if gap > 0:
            silence = np.zeros(round(gap * p.sample_rate), dtype=np.float32)
            pieces.append(Audio(silence, p.sample_rate, "few-shot gap"))
    return pieces


def join_audio(pieces: list[Audio], source: str) -> Audio:
    rate = pieces[-1].sample_rate
    x = np.concatenate([a.resample(rate).samples for a in pieces])
    return Audio(np.ascontiguousarray(x, dtype=np.float32), rate, source)


# --- the pipeline ------------------------------------------------------------------------------


def _is_empty(out: Any) -> bool:
    if isinstance(out, str):
        return not out.strip()
    return not np.any(out.samples)


def run_stsp(ctx: TaskContext) -> TaskOutcome:
    opts = GENERATION.parse(f"task {ctx.name!r}: generation", ctx.cfg.generation)
    scorer = ctx.scorer(SentimentScorer)
    ds = ctx.dataset
    if not isinstance(ds, STSPDataset):
        raise ConfigError(
            f"task {ctx.name!r}: the stsp pipeline needs the stsp reader's data, got "
            f"{type(ds).__name__} (dataset.reader)"
        )
    direction = opts["direction"]
    source, output = direction.split("->")
    role = judge_role(direction)
    if role not in ctx.judges:
        raise ConfigError(
            f"{ctx.cfg.source_file or ctx.name}: direction {direction} is judged by the role "
            f"{role!r}; add it under 'judges:' (e.g. judges: {{{role}: "
            f"{role.replace('_', '-')}}})"
        )
    rate = ctx.cfg.dataset.sample_rate
    few: dict[str, Any] = {"n_shots": opts["few_shot"]}
    text_head, audio_head = "", []
    if opts["few_shot"] > 0:
        if direction not in FEW_SHOT_DIRECTIONS:
            raise ConfigError(
                f"task {ctx.name!r}: generation.few_shot is implemented for "
                f"{' and '.join(FEW_SHOT_DIRECTIONS)} only ({direction} needs interleaved "
                "speech and text prompts)"
            )
        pool_path, pool = read_few_shot_pool(ds, direction)
        examples = choose_examples(pool, opts["few_shot"], ctx.seed)
        if source == "text":
            text_head = text_prefix(examples)
        else:
            audio_head = speech_prefix(examples, rate, opts["few_shot_gap"])
        few.update(
            pool=str(pool_path),
            examples=[ex.where for ex in examples],
            test_item_appended=True,
        )

    docs = ds.doc_ids()
    for d in docs:
        if source == "text" and ds.texts.get(d) is None:
            field = "asr" if ds.identity.get("layout") == "spirit-lm" else "text"
            raise DataError(
                f"{ds.where.get(d, d)}: field {field!r} (the text prompt) is missing; "
                f"direction {direction} needs it"
            )

    def request(d: str, prompt: Audio | None) -> ContinueRequest:
        return ContinueRequest(
            prompt=prompt,
            prompt_text=None if prompt is not None else text_head + str(ds.texts[d]),
            output=output,
            num_samples=opts["num_samples"],
            temperature=opts["temperature"],
            top_k=opts["top_k"],
            top_p=opts["top_p"],
            max_seconds=opts["max_seconds"] if output == "speech" else 10.0,
            max_tokens=opts["max_tokens"] if output == "text" else None,
            seed=ctx.seed,
            key=d,
        )

    def make_text(_conform: Callable[[Audio], Audio], d: str) -> ContinueRequest:
        return request(d, None)

    def make_audio(conform: Callable[[Audio], Audio], d: str) -> ContinueRequest:
        a = AudioRef(ds.files[d], expected_rate=rate).load()
        if audio_head:
            a = join_audio([*audio_head, a], f"few-shot prefix + {a.source}")
        return request(d, conform(a))

    def item(d: str) -> Item:
        if source == "text":
            cost = len(text_head + str(ds.texts[d])) / TEXT_CHARS_PER_SECOND
            return Item(d, cost, lambda c, d=d: make_text(c, d))
        ref = AudioRef(ds.files[d], expected_rate=rate)
        seconds = ref.seconds(ref.info()) + sum(a.duration for a in audio_head)
        return Item(d, seconds, lambda c, d=d: make_audio(c, d))

    cap = continue_capability(ctx.model, ctx.blobs)
    outputs = execute(
        cap.job(ctx.model, ctx.model_key),
        [item(d) for d in docs],
        cache=ctx.cache,
        sizer=ctx.sizer,
        stats=ctx.stats,
        desc=f"{ctx.name} {direction}",
    )

    flat = [(d, j, o) for d, outs in zip(docs, outputs, strict=True) for j, o in enumerate(outs)]
    to_judge = [o for _, _, o in flat if not _is_empty(o)]
    judge = ctx.judges[role]
    verdicts = iter(
        judge.classify(to_judge, stats=ctx.stats, cache=ctx.cache, desc=f"{ctx.name} {role}")
        if to_judge
        else []
    )
    samples = []
    kept: dict[str, Audio] = {}
    n_empty_transcripts = 0
    for d, j, o in flat:
        meta: dict[str, Any] = {"sample": j, **ds.meta.get(d, {})}
        if output == "text":
            meta["output_text"] = o
        elif ctx.log_samples:
            h = o.content_hash()
            kept[h] = o
            meta["output_audio"] = f"audio/{h}.wav"
        if _is_empty(o):
            samples.append(scorer.score_sample(d, ds.labels[d], None, meta))
            continue
        v = next(verdicts)
        if "transcript" in v:
            meta["transcript"] = v["transcript"]
            n_empty_transcripts += not str(v["transcript"]).strip()
        samples.append(scorer.score_sample(d, ds.labels[d], v["label"], meta))
    report = scorer.aggregate(samples)
    entry, hib = metric_entries(report, "none")
    scoring = {
        "primary_metric": "acc,none",
        **report.info,
        "direction": direction,
        "judge_role": role,
        "empty_output": "blank text" if output == "text" else "digital silence (all samples 0)",
        "generation": {**opts, "seed": ctx.seed},
        "few_shot": few,
        "options": dict(ctx.cfg.scoring.options),
    }
    if n_empty_transcripts:  # judged as the judge says (a lexical judge: usually neutral)
        scoring["n_empty_transcripts"] = n_empty_transcripts
    rows = list(report.per_item) if ctx.log_samples else []
    return TaskOutcome(entry, hib, scoring, samples=rows, kept_audio=kept if rows else {})
