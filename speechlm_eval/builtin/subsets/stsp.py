"""Sentiment prompts (STSP-style): spoken sentences labelled positive, negative or neutral.

Sentences come from hand-written templates per label about the same everyday events
(so the event does not give the label away). A label is kept only when VADER's compound
score on the text agrees with it; the number of dropped candidates is recorded.
"""

from __future__ import annotations

import json
import random

from ..context import BuildContext, Subset, SubsetResult, stem
from ..synth import Utterance

OUT = "stsp/dev"
ITEMS = {"tiny": 6, "small": 150, "full": 600}  # split evenly over the three labels
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
LABELS = ("positive", "negative", "neutral")
VADER_POSITIVE, VADER_NEGATIVE, VADER_NEUTRAL = 0.3, -0.3, 0.1

# Everyday events shared by all labels (VADER scores each of them 0 on its own).
# fmt: off
EVENTS = ("the concert", "the movie", "the class this morning", "the museum visit",
          "the train ride", "the drive home", "our vacation", "the football match",
          "the dinner at the new restaurant", "the wedding", "the meeting", "the school trip",
          "the boat trip", "the job interview", "the family reunion", "the cooking class",
          "the camping trip", "the bus tour", "the picnic by the lake", "the flight", "the lecture",
          "the tennis lesson", "the guided walk", "the book club", "the ferry crossing", "the hike",
          "the barbecue", "the piano recital", "the city tour", "the visit to the zoo")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "positive": ("I really loved {e}, it was wonderful.",
                 "{E} was absolutely fantastic and everyone was happy.",
                 "{E} was great fun from start to finish.",
                 "I am so glad we went, {e} was a real delight.",
                 "Honestly, {e} was the best part of my week.", "{E} made me smile all day.",
                 "We enjoyed {e} so much, it was perfect.",
                 "{E} was a lovely surprise and I am very grateful.",
                 "Everyone agreed that {e} was brilliant.",
                 "I feel so lucky that I got to be part of {e}."),
    "negative": ("I really hated {e}, it was awful.",
                 "{E} was a complete disaster and everyone was upset.",
                 "{E} was terrible from start to finish.",
                 "I am so angry, {e} was a total waste of money.",
                 "Sadly, {e} was the worst part of my week.",
                 "{E} left me feeling sad and miserable.",
                 "We were so disappointed with {e}, it was horrible.",
                 "{E} was a nasty shock and I am still upset.",
                 "Everyone agreed that {e} was dreadful and boring.",
                 "I feel so stupid that I wasted my time on {e}."),
    "neutral": ("{E} was on Tuesday afternoon.", "We talked about {e} on the way home.",
                "{E} was moved to the other building.", "My brother asked me what time {e} ended.",
                "I wrote down the details of {e} in my notebook.",
                "{E} took place during the second week of the month.",
                "Most people arrived at {e} by bus.",
                "The schedule for {e} is on the kitchen wall.", "We went to {e} right after work.",
                "{E} was in the same place as last year."),
}
# fmt: on


def agrees(label: str, compound: float) -> bool:
    """Does VADER's compound score on the text agree with the label?"""
    if label == "positive":
        return compound > VADER_POSITIVE
    if label == "negative":
        return compound < VADER_NEGATIVE
    return abs(compound) < VADER_NEUTRAL


def candidates(label: str, rng: random.Random) -> list[str]:
    """Every sentence of a label, in a seeded order that takes the templates in turn."""
    per_template = []
    for t in TEMPLATES[label]:
        sents = [t.format(e=e, E=e[0].upper() + e[1:]) for e in EVENTS]
        per_template.append(rng.sample(sents, len(sents)))
    order = rng.sample(range(len(per_template)), len(per_template))
    return [per_template[j][i] for i in range(len(EVENTS)) for j in order]


def vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise RuntimeError(
            "stsp: the label check needs vaderSentiment (pip install vaderSentiment)"
        ) from None
    return SentimentIntensityAnalyzer()


class STSP(Subset):
    name = "stsp"
    version = 1
    outputs = (OUT,)
    description = "sentences with positive / negative / neutral sentiment (STSP-style prompts)"

    def planned(self, size: str) -> int:
        return ITEMS[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        analyzer = vader()
        per_label = ITEMS[ctx.size] // len(LABELS)
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        chosen: list[tuple[str, str, float]] = []
        dropped: dict[str, int] = {}
        for label in LABELS:
            kept, drop = [], 0
            for s in candidates(label, ctx.rng("candidates", label)):
                if len(kept) == per_label:
                    break
                c = analyzer.polarity_scores(s)["compound"]
                if agrees(label, c):
                    kept.append((s, label, c))
                else:
                    drop += 1
            if len(kept) < per_label:
                raise RuntimeError(f"stsp: only {len(kept)} {label} sentences agree with VADER")
            chosen += kept
            dropped[label] = drop
        # Voices in turn within each label (labels balanced over voices), then one shuffle so
        # ids and file order say nothing about the label.
        items = []
        for label in LABELS:
            rows = [x for x in chosen if x[1] == label]
            items += [(s, lab, c, voices[k % len(voices)]) for k, (s, lab, c) in enumerate(rows)]
        items = ctx.rng("order").sample(items, len(items))
        rows = []
        ctx.prefetch(  # the missing files' sentences, made in the worker processes
            Utterance(v.info.name, "text", s)
            for s, _, _, v in items
            if not ctx.has(f"{OUT}/{stem(ctx.seed, 'stsp', s, v.info.name)}.wav")
        )
        for i, (s, label, c, v) in enumerate(items, 1):
            name = stem(ctx.seed, "stsp", s, v.info.name)
            rel = f"{OUT}/{name}.wav"
            if not ctx.has(rel):
                ctx.write_wav(rel, v.text(s))
            ctx.tick()
            rows.append(
                {
                    "id": f"stsp-{i:04d}",
                    "file": f"{name}.wav",
                    "voice": v.info.name,
                    "text": s,
                    "label": label,
                    "vader_compound": round(c, 4),
                }
            )
        ctx.write_text(f"{OUT}/stsp.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
        table = "\n".join(
            f"| {v.info.name} | "
            + " | ".join(
                str(sum(r["label"] == lab and r["voice"] == v.info.name for r in rows))
                for lab in LABELS
            )
            + " |"
            for v in voices
        )
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                items=len(rows),
                per_label=per_label,
                templates=len(TEMPLATES["positive"]),
                events=len(EVENTS),
                table=table,
                checked=len(chosen) + sum(dropped.values()),
                dropped=", ".join(f"{lab} {n}" for lab, n in dropped.items()),
                pos=VADER_POSITIVE,
                neg=VADER_NEGATIVE,
                neu=VADER_NEUTRAL,
            ),
        )
        return SubsetResult(
            {"items": len(rows), **counts},
            [v.info.name for v in voices],
            {"vader_dropped": dropped, "vader_checked": len(chosen) + sum(dropped.values())},
        )


CARD = """\
# Built-in sentiment subset (STSP-style prompts), size {size}, seed {seed}

Layout: `*.wav` (16 kHz, 16-bit, opaque names) and `stsp.jsonl`, one object per file:
`id, file, voice, text, label, vader_compound`; label is positive, negative or neutral.

How it was made
- {items} sentences, {per_label} per label. Each label has {templates} hand-written templates,
  filled with the same {events} everyday events (a concert, a train ride, a job
  interview, ...), so the event says nothing about the label; the templates are taken in
  turn.
- Each candidate was scored with VADER (vaderSentiment) and kept only if VADER agrees:
  compound > {pos} for positive, < {neg} for negative, |compound| < {neu} for neutral.
  {checked} candidates were scored to get these; dropped: {dropped}. (While the
  templates were written, VADER was consulted: three events it scores as positive on
  their own, e.g. "party", and three templates it scored against their label were
  replaced. The build-time check is what guarantees agreement.)
- Each sentence is spoken by one voice, voices taken in turn within each label:

| voice | positive | negative | neutral |
|---|---|---|---|
{table}

What it can and cannot tell
- As prompts for STSP-style evaluation (does a model's continuation keep the prompt's
  sentiment?), with the sentiment carried by the words only. A sentiment classifier on
  the transcribed continuation, compared with `label`, gives the preservation rate.
- The voices speak every sentence in the same neutral manner: unlike STSP's speech
  prompts (Expresso / EmoV recordings in happy, sad, ... styles), nothing in the
  prosody signals the sentiment, so it cannot test whether a model picks sentiment up
  from how something is said. Sentences are short and templated; VADER agreement is a
  check of the wording, not a human annotation.
"""
