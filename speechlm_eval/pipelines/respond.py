"""Instruction tasks (capability ``respond``): each item's instruction (a template filled with
the item's text and choices) and/or its audio go to the model; the text answer is parsed by
the task's filter chains and scored (scorer inputs ``responses``:
:class:`~speechlm_eval.scorers.instruction.InstructionScorer`).

Options under ``generation:`` (recorded in the results):

- ``templates``: the instruction, or a list of paraphrases. Each item gets one, drawn by a
  generator seeded from the run's seed and the item's id (so ``--limit`` and the order of
  items do not change an item's draw); the index and the text sent are in its samples row.
  Placeholders: ``{text}`` (the item's question as text: required when ``input`` includes
  text, refused otherwise), ``{choices}`` (the item's choices, one per line as ``A. ...``),
  ``{letters}`` (``A, B or C``). A template that does not format, names another
  placeholder, or lacks ``{text}`` where it is needed is one ConfigError naming the task and
  the template. ``{{``/``}}`` write literal braces.
- ``input``: ``audio`` (default: the item's audio with the instruction as text),
  ``text`` (the instruction alone) or ``audio+text``.

A response with no text (a speech-only answer) is scored as unparsed. The answers' audio,
when the model gives one, is kept with ``--log_samples`` (``output_audio``).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import registry
from ..audio import Audio, AudioRef
from ..errors import ConfigError, DataError
from ..execute import Item, execute, respond_capability
from ..hashing import digest
from ..model import RespondRequest
from ..options import Opt, Spec
from ..readers.instruction import LETTERS, InstructionDataset, as_instruction
from .base import TaskContext, TaskOutcome, metric_entries

INPUTS = ("audio", "text", "audio+text")
PLACEHOLDERS = ("text", "choices", "letters")
TEXT_CHARS_PER_SECOND = 15.0  # orders text-only requests among audio ones (a cost only)


def _templates(value: Any) -> list[str]:
    vals = [value] if isinstance(value, str) else value
    if not (isinstance(vals, list) and vals and all(isinstance(v, str) and v for v in vals)):
        raise ValueError("")
    return list(vals)


GENERATION = Spec(
    {
        "templates": Opt(
            object,
            None,
            check=_templates,
            expect="a string or a non-empty list of non-empty strings",
            doc="instruction paraphrases",
        ),
        "input": Opt(str, "audio", choices=INPUTS),
    },
    noun="key",
    strict=True,
)


def check_templates(task: str, templates: list[str], input_kind: str) -> None:
    """Every template formats with the known placeholders and has ``{text}`` exactly when the
    input includes text; a ConfigError naming the task and the template otherwise."""
    needs_text = "text" in input_kind.split("+")
    for i, t in enumerate(templates):
        where = f"task {task!r}: generation.templates[{i}] ({t!r})"
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
        except ValueError as e:
            raise ConfigError(f"{where}: does not format ({e})") from None
        bad = [f for f in fields if f not in PLACEHOLDERS]
        if bad:
            raise ConfigError(
                f"{where}: unknown placeholder {{{bad[0]}}}; known: "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            )
        if needs_text and "text" not in fields:
            raise ConfigError(
                f"{where}: lacks the placeholder {{text}}, needed for input {input_kind!r}"
            )
        if not needs_text and "text" in fields:
            raise ConfigError(
                f"{where}: has {{text}}, but input {input_kind!r} gives the question as audio"
            )


def choose_template(seed: int, doc_id: str, n: int) -> int:
    """The index of an item's template: seeded by the run's seed and the item's id only."""
    rng = random.Random(int(digest(["respond-template", int(seed), doc_id])[:16], 16))
    return rng.randrange(n)


def instruction_text(template: str, text: str | None, choices: list[str] | None) -> str:
    """``template`` filled for one item (``{choices}`` empty for an item without choices)."""
    ch = choices or []
    letters = LETTERS[: len(ch)]
    said = ", ".join(letters[:-1]) + f" or {letters[-1]}" if len(letters) > 1 else letters
    return template.format(
        text=text or "",
        choices="\n".join(f"{ltr}. {c}" for ltr, c in zip(letters, ch, strict=False)),
        letters=said,
    )


def _load_scorer(ctx: TaskContext) -> Any:
    name = ctx.cfg.scoring.scorer
    scorer = registry.get("scorers", name)(dict(ctx.cfg.scoring.options))
    if getattr(scorer, "inputs", None) != "responses" or not hasattr(scorer, "score_responses"):
        raise ConfigError(
            f"task {ctx.name!r} (respond): scorer {name!r} does not score text responses to "
            f"instructions (its inputs: {getattr(scorer, 'inputs', 'not declared')!r}; "
            "expected 'responses', e.g. the 'instruction' scorer)"
        )
    return scorer


def run_respond(ctx: TaskContext) -> TaskOutcome:
    opts = GENERATION.parse(f"task {ctx.name!r}: generation", ctx.cfg.generation)
    if opts["templates"] is None:
        raise ConfigError(f"task {ctx.name!r}: generation.templates is missing (the instruction)")
    templates = _templates(opts["templates"])
    input_kind = opts["input"]
    check_templates(ctx.name, templates, input_kind)
    scorer = _load_scorer(ctx)
    ds: InstructionDataset = as_instruction(ctx.dataset)
    docs = ds.doc_ids()
    use_audio = "audio" in input_kind.split("+")
    use_text = "text" in input_kind.split("+")
    for d in docs:
        if use_audio and d not in ds.files:
            raise DataError(f"{ds.where.get(d, d)}: field 'audio' is missing; input {input_kind!r}")
        if use_text and ds.texts.get(d) is None:
            raise DataError(f"{ds.where.get(d, d)}: field 'text' is missing; input {input_kind!r}")
    rate = ctx.cfg.dataset.sample_rate
    chosen = {d: choose_template(ctx.seed, d, len(templates)) for d in docs}
    instr = {
        d: instruction_text(templates[chosen[d]], ds.texts.get(d), ds.choices.get(d)) for d in docs
    }

    def audio_ref(d: str) -> Any:
        f = ds.files[d]  # a path, or a reference that decodes itself (a dataset row's audio)
        return AudioRef(Path(f), expected_rate=rate) if isinstance(f, (str, Path)) else f

    def make(conform: Callable[[Audio], Audio], d: str) -> RespondRequest:
        audio = conform(audio_ref(d).load()) if use_audio else None
        return RespondRequest(text=instr[d], audio=audio, key=d)

    def item(d: str) -> Item:
        if use_audio:
            ref = audio_ref(d)
            cost = ref.seconds(ref.info())
        else:
            cost = len(instr[d]) / TEXT_CHARS_PER_SECOND
        return Item(d, cost, lambda c, d=d: make(c, d))

    cap = respond_capability(ctx.model, ctx.blobs)
    outs = execute(
        cap.job(ctx.model, ctx.model_key),
        [item(d) for d in docs],
        cache=ctx.cache,
        sizer=ctx.sizer,
        stats=ctx.stats,
        desc=ctx.name,
    )
    results = dict(zip(docs, outs, strict=True))
    responses = {d: results[d].text for d in docs}
    meta = {
        d: {
            "template": chosen[d],
            "instruction": instr[d],
            "response": responses[d],
            **({"subgroup": ds.subgroups[d]} if d in ds.subgroups else {}),
            **({"choices": ds.choices[d]} if d in ds.choices else {}),
            **ds.meta.get(d, {}),
        }
        for d in docs
    }
    scored = scorer.score_responses(responses, {d: ds.answers[d] for d in docs}, ds.subgroups, meta)
    entry: dict[str, Any] = {}
    hib: dict[str, bool] = {}
    for name, (_, report) in scored.items():
        e, h = metric_entries(report, name)
        entry.update(e)
        hib.update(h)
    scoring = {
        **scorer.describe(),
        "per_filter": {name: report.info for name, (_, report) in scored.items()},
        "generation": {"templates": templates, "input": input_kind, "seed": ctx.seed},
        "template_choice": "random.Random(sha256(['respond-template', seed, doc_id])) per item",
        "n_no_text_response": sum(responses[d] is None for d in docs),
    }
    rows: list[dict[str, Any]] = []
    kept: dict[str, Audio] = {}
    if ctx.log_samples:
        from ..scorers.base import sample_records

        rows = sample_records({name: samples for name, (samples, _) in scored.items()})
        for row in rows:
            a = results[row["doc_id"]].audio
            if a is not None:
                h = a.content_hash()
                kept[h] = a
                row["output_audio"] = f"audio/{h}.wav"
    return TaskOutcome(entry, hib, scoring, samples=rows, kept_audio=kept)
