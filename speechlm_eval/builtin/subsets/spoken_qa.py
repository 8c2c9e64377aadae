"""Spoken questions with one unambiguous closed answer (spoken QA / instruction following).

Three kinds, equally many, each a subgroup:

- ``arithmetic``: "What is three plus four?" (one-digit operands; plus, minus with a
  non-negative result, times up to five), answer the number in digits (``7``);
- ``yes_no``: "Is a horse an animal?", from disjoint hand-written category lists (no word
  is in two categories: "orange" is left out, being a fruit and a colour), half yes, half no;
- ``choice``: "Which of these is an animal? Option A, a table. Option B, a horse. Option C,
  a hammer." (one member of the category and two from two other categories, the right
  letter drawn evenly), answer the letter.

Everything is drawn from seeded generators; numbers are spoken as words so the TTS reads
them one way. Written as ``spoken_qa.jsonl`` (the ``instruction`` reader's manifest).
"""

from __future__ import annotations

import json

from ..context import BuildContext, Subset, SubsetResult, stem
from ..synth import Utterance

OUT = "spoken_qa/dev"
MANIFEST = "spoken_qa.jsonl"
ITEMS = {"tiny": 6, "small": 90, "full": 300}  # split evenly over the three kinds
VOICES = {"tiny": 2, "small": 3, "full": 3}
KINDS = ("arithmetic", "yes_no", "choice")
LETTERS = "ABC"

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Category -> (how a question names it, members with their article). Disjoint by design.
# fmt: off
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "animal": ("an animal", ("a horse", "a dog", "a cat", "a cow", "a rabbit", "a sheep",
                             "a goat", "a duck", "a lion", "a bear")),
    "fruit": ("a fruit", ("an apple", "a banana", "a pear", "a grape", "a cherry", "a peach",
                          "a lemon", "a plum", "a mango", "a strawberry")),
    "vehicle": ("a vehicle", ("a car", "a bus", "a bicycle", "a train", "a truck", "a boat",
                              "an airplane", "a motorcycle", "a tractor", "a helicopter")),
    "furniture": ("a piece of furniture", ("a table", "a chair", "a sofa", "a bed", "a desk",
                                           "a bookshelf", "a wardrobe", "a stool", "a cupboard",
                                           "a bench")),
    "tool": ("a tool", ("a hammer", "a saw", "a screwdriver", "a wrench", "a drill",
                        "a shovel", "a rake", "a chisel", "a pair of pliers", "a trowel")),
    "clothing": ("a piece of clothing", ("a shirt", "a sock", "a jacket", "a hat", "a scarf",
                                         "a glove", "a coat", "a skirt", "a sweater",
                                         "a pair of trousers")),
}
# fmt: on


def arithmetic_questions() -> list[tuple[str, str]]:
    """Every (question, answer) of the arithmetic kind, in a fixed order."""
    out = []
    for a in range(1, 10):
        for b in range(1, 10):
            out.append((f"What is {WORDS[a]} plus {WORDS[b]}?", str(a + b)))
    for a in range(2, 10):
        for b in range(1, a + 1):
            out.append((f"What is {WORDS[a]} minus {WORDS[b]}?", str(a - b)))
    for a in range(2, 6):
        for b in range(2, 6):
            out.append((f"What is {WORDS[a]} times {WORDS[b]}?", str(a * b)))
    return out


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def yes_no_questions() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(yes questions, no questions), each in a fixed order."""
    yes, no = [], []
    for cat, (phrase, members) in CATEGORIES.items():
        for m in members:
            yes.append((f"Is {m} {phrase}?", "yes"))
            for other, (ophrase, _) in CATEGORIES.items():
                if other != cat:
                    no.append((f"Is {m} {ophrase}?", "no"))
    return yes, no


def choice_question(ctx: BuildContext, i: int, k: int) -> tuple[str, str, list[str], str]:
    """(spoken text, question stem, choices, answer letter) of the i-th draw, the right
    choice at position ``k``."""
    rng = ctx.rng("choice", i)
    cats = sorted(CATEGORIES)
    target, *others = rng.sample(cats, 3)
    phrase, members = CATEGORIES[target]
    right = rng.choice(members)
    wrong = [rng.choice(CATEGORIES[c][1]) for c in others]
    choices = [*wrong[:k], right, *wrong[k:]]
    q = f"Which of these is {phrase}?"
    spoken = (
        q + " " + " ".join(f"Option {ltr}, {c}." for ltr, c in zip(LETTERS, choices, strict=True))
    )
    return spoken, q, choices, LETTERS[k]


class SpokenQA(Subset):
    name = "spoken_qa"
    version = 1
    outputs = (OUT,)
    description = "spoken questions with closed answers: arithmetic, yes/no facts, A/B/C choice"

    def planned(self, size: str) -> int:
        return ITEMS[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        per_kind = ITEMS[ctx.size] // len(KINDS)
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        items: list[dict] = []
        arith = ctx.rng("arithmetic").sample(arithmetic_questions(), per_kind)
        items += [{"kind": "arithmetic", "spoken": q, "text": q, "answer": a} for q, a in arith]
        yes, no = yes_no_questions()
        n_yes = per_kind // 2
        yn = ctx.rng("yes").sample(yes, n_yes) + ctx.rng("no").sample(no, per_kind - n_yes)
        items += [{"kind": "yes_no", "spoken": q, "text": q, "answer": a} for q, a in yn]
        seen: set[str] = set()
        i = 0
        n_choice = 0
        while n_choice < per_kind:
            # The right letter in turn over the questions kept: A, B, C equally often.
            spoken, q, choices, letter = choice_question(ctx, i, n_choice % len(LETTERS))
            i += 1
            if spoken in seen:
                continue
            seen.add(spoken)
            n_choice += 1
            items.append(
                {
                    "kind": "choice",
                    "spoken": spoken,
                    "text": q,
                    "choices": choices,
                    "answer": letter,
                }
            )
        # Voices in turn within each kind, then one shuffle so ids say nothing of the kind.
        for kind in KINDS:
            for k, it in enumerate(x for x in items if x["kind"] == kind):
                it["voice"] = voices[k % len(voices)]
        items = ctx.rng("order").sample(items, len(items))
        ctx.prefetch(
            Utterance(it["voice"].info.name, "text", it["spoken"])
            for it in items
            if not ctx.has(
                f"{OUT}/{stem(ctx.seed, 'spoken_qa', it['spoken'], it['voice'].info.name)}.wav"
            )
        )
        rows = []
        for n, it in enumerate(items, 1):
            v = it["voice"]
            name = stem(ctx.seed, "spoken_qa", it["spoken"], v.info.name)
            rel = f"{OUT}/{name}.wav"
            if not ctx.has(rel):
                ctx.write_wav(rel, v.text(it["spoken"]))
            ctx.tick()
            row = {
                "id": f"sqa-{n:04d}",
                "audio": f"{name}.wav",
                "text": it["text"],
                "answer": it["answer"],
                "subgroup": it["kind"],
                "voice": v.info.name,
                "spoken": it["spoken"],
            }
            if "choices" in it:
                row["choices"] = it["choices"]
            rows.append(row)
        ctx.write_text(f"{OUT}/{MANIFEST}", "".join(json.dumps(r) + "\n" for r in rows))
        counts = {k: sum(r["subgroup"] == k for r in rows) for k in KINDS}
        letters = {ltr: sum(r["answer"] == ltr for r in rows) for ltr in LETTERS}
        yn = {a: sum(r["answer"] == a for r in rows) for a in ("yes", "no")}
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                items=len(rows),
                per_kind=per_kind,
                voices=", ".join(v.info.name for v in voices),
                n_arith=len(arithmetic_questions()),
                cats=", ".join(CATEGORIES),
                per_cat=len(next(iter(CATEGORIES.values()))[1]),
                yes=yn["yes"],
                no=yn["no"],
                letters=", ".join(f"{k} {n}" for k, n in letters.items()),
            ),
        )
        return SubsetResult(
            {"items": len(rows), **counts},
            [v.info.name for v in voices],
            {"answers_yes_no": yn, "answers_choice": letters},
        )


CARD = """\
# Built-in spoken QA subset, size {size}, seed {seed}

Layout: `*.wav` (16 kHz, 16-bit, opaque names) and `spoken_qa.jsonl` (the `instruction`
reader's manifest), one object per question: `id, audio, text, answer, subgroup, voice,
spoken` and, for choice questions, `choices`. `spoken` is exactly what the voice says;
`text` is the question as text (for a choice question, its stem: the options are in
`choices`).

How it was made
- {items} questions, {per_kind} of each kind (`subgroup`), each spoken by one voice, voices
  in turn within a kind ({voices}); ids in a seeded shuffled order.
- `arithmetic`: drawn from the {n_arith} questions "What is <a> plus/minus/times <b>?" with
  one-digit operands (minus: b <= a; times: 2..5), numbers spoken as words; answer: the
  number in digits.
- `yes_no`: "Is <member> <category>?" over {per_cat} hand-written members of each of
  the disjoint categories {cats}; half yes (its own category), half no (another one):
  yes {yes}, no {no}.
- `choice`: "Which of these is <category>? Option A, <x>. Option B, <y>. Option C, <z>."
  with one member of the category and two of two other categories; the right letter
  takes A, B, C in turn ({letters}).

What it can and cannot tell
- Whether a model follows a spoken question and answers in a parseable closed form: a
  number, yes/no, or a letter. The answers are unambiguous by construction (disjoint
  categories; "orange", both a fruit and a colour, is left out).
- It is easy, templated and read by neutral TTS voices: it measures instruction following
  and parsing robustness on clean speech, not world knowledge or robustness to real
  recordings. Anchors such as VoiceBench and AIR-Bench pose harder questions.
"""
