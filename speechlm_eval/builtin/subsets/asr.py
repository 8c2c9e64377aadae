"""ASR subset in the LibriSpeech ``dev-clean`` layout (WAV instead of FLAC).

Plain everyday sentences, generated from hand-written templates (no names, no numbers,
no contractions, American spelling, so a transcript has one obvious spelling), each read
by every voice of the pool. Voices stand in for LibriSpeech speakers; ``SPEAKERS.TXT``
maps the numeric speaker ids to voices.
"""

from __future__ import annotations

import random
import re

import soundfile as sf

from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance

OUT = "librispeech/dev-clean"
SENTENCES = {"tiny": 4, "small": 100, "full": 500}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
CHAPTER_SIZE = 50  # utterances per "chapter" folder
SPEAKER_BASE = 9000  # speaker id = SPEAKER_BASE + 1 + position of the voice in the pool

# (template, slots). Slots are filled independently, so every filler of a slot fits every
# filler of the others; "{a}" and "{b}" of the same list are never the same word.
Frame = tuple[str, dict[str, tuple[str, ...]]]
# fmt: off
_FOODS = ("bread", "milk", "eggs", "apples", "rice", "cheese", "butter", "onions", "tomatoes",
          "coffee", "orange juice", "flour", "honey", "potatoes", "carrots", "yogurt")
FRAMES: tuple[Frame, ...] = (
    (
        "{who} {verb} the {thing} {where}.",
        {
            "who": ("My brother", "Our neighbor", "The little girl", "Her uncle", "My grandmother",
                    "The new student", "His wife", "The old man", "A tired nurse", "My roommate"),
            "verb": ("left", "found", "dropped", "forgot", "noticed"),
            "thing": ("umbrella", "car keys", "winter coat", "shopping bag", "reading glasses",
                      "wooden box", "blue notebook", "paper map", "warm blanket", "garden gloves"),
            "where": ("on the kitchen table", "by the front door", "under the bed",
                      "in the back seat", "next to the sink", "on the top shelf", "behind the sofa",
                      "near the window", "at the bottom of the stairs", "in the hallway"),
        },
    ),
    (
        "{when} we like to {activity}.",
        {
            "when": ("On quiet Sunday mornings", "After a long day at work",
                     "In the middle of summer", "When the weather is nice", "Early in the morning",
                     "On cold winter evenings", "During the holidays", "Before dinner"),
            "activity": ("walk along the river", "read in the garden", "bake fresh bread",
                         "visit the farmers market", "sit on the porch with our coffee",
                         "play cards at the kitchen table", "ride our bikes through the park",
                         "watch the birds from the window", "cook a big pot of soup",
                         "call our old friends"),
        },
    ),
    (
        "Could you please {request} before {event}?",
        {
            "request": ("close the kitchen window", "turn off the oven", "water the plants",
                        "take out the trash", "lock the back door", "feed the cat",
                        "wash the dirty cups", "bring the chairs inside", "check the mail",
                        "hang up the wet towels"),
            "event": ("you leave the house", "the guests arrive", "we go to bed", "it gets dark",
                      "the rain starts", "lunch is ready", "the shops close",
                      "your father gets home"),
        },
    ),
    (
        "The {place} was {state} {time}.",
        {
            "place": ("train station", "little bakery on the corner", "public library", "city park",
                      "grocery store", "beach", "post office", "waiting room", "museum",
                      "swimming pool"),
            "state": ("very crowded", "almost empty", "strangely quiet", "full of children",
                      "warm and bright", "cold and dark", "busy and noisy"),
            "time": ("this afternoon", "on the first day of spring", "when we arrived",
                     "after the storm", "late last night", "all morning",
                     "during the long weekend"),
        },
    ),
    (
        "She {verb} a {adj} {item} for her {relative}.",
        {
            "verb": ("bought", "made", "found", "wrapped", "ordered", "picked out"),
            "adj": ("small", "lovely", "simple", "bright", "pretty", "little", "beautiful"),
            "item": ("present", "cake", "sweater", "birthday card", "plant", "coffee mug", "scarf",
                     "picture frame"),
            "relative": ("mother", "grandfather", "sister", "best friend", "teacher", "neighbor",
                         "little brother", "aunt"),
        },
    ),
    (
        "When the {event}, the {people} {reaction}.",
        {
            "event": ("lights went out", "bell rang", "music stopped", "door opened",
                      "train finally arrived", "rain began", "teacher walked in", "movie ended"),
            "people": ("children", "guests", "students", "passengers", "workers", "crowd"),
            "reaction": ("started to laugh", "looked around", "stood up quickly",
                         "became very quiet", "hurried outside", "began to clap", "turned to look"),
        },
    ),
    (
        "{ask} {a} and {b} {when}.",
        {
            "ask": ("We need to buy", "Remember to pick up", "Please do not forget the",
                    "I still have to get"),
            "a": _FOODS,
            "b": _FOODS,
            "when": ("on the way home", "before the store closes", "for the weekend",
                     "for dinner tonight"),
        },
    ),
    (
        "The {animal} {action} {place}.",
        {
            "animal": ("old cat", "small dog", "brown horse", "white rabbit", "young goat",
                       "black cat", "big dog", "tired puppy"),
            "action": ("slept", "waited", "rested", "played", "sat quietly", "hid"),
            "place": ("in the warm sun", "under the kitchen table", "near the garden gate",
                      "by the open window", "behind the barn", "in the tall grass",
                      "on the soft rug"),
        },
    ),
    (
        "{opinion} the {claim}.",
        {
            "opinion": ("I think", "It seems that", "My mother says", "I am fairly sure",
                        "Someone told me", "I heard that"),
            "claim": ("new bridge will open before winter", "old library needs a new roof",
                      "morning bus is often late", "soup needs a little more salt",
                      "garden looks better than ever", "meeting will run late again",
                      "coffee shop closes early today", "weather will change by the evening",
                      "train leaves from the other platform", "kitchen light has stopped working",
                      "cake needs a few more minutes", "road is closed because of the snow"),
        },
    ),
    (
        "He {travel} to {dest} {how}.",
        {
            "travel": ("walked", "drove", "went", "hurried", "rode his bike"),
            "dest": ("the bank", "the hospital", "the old church", "the top of the hill",
                     "the farm", "the market", "his office", "the station"),
            "how": ("every single day", "in the pouring rain", "without saying a word",
                    "as fast as he could", "after breakfast", "with his young son",
                    "early this morning"),
        },
    ),
    (
        "There is a {adj} {obj} {where}.",
        {
            "adj": ("small", "large", "broken", "new", "strange", "heavy", "dusty"),
            "obj": ("mirror", "clock", "painting", "basket", "lamp", "chair", "box", "plant"),
            "where": ("in the corner of the room", "next to the front door", "on the kitchen wall",
                      "at the end of the hall", "beside the bed", "outside the window"),
        },
    ),
    (
        "The {person} asked us to {request}.",
        {
            "person": ("teacher", "doctor", "manager", "driver", "waiter", "nurse", "librarian",
                       "coach"),
            "request": ("wait outside", "speak more quietly", "come back tomorrow",
                        "fill out a short form", "sit near the front", "bring our own water",
                        "turn off our phones", "close the door behind us"),
        },
    ),
    (
        "My {rel} {habit} {freq}.",
        {
            "rel": ("father", "sister", "uncle", "best friend", "grandmother", "roommate", "cousin",
                    "neighbor"),
            "habit": ("drinks tea", "goes for a run", "listens to the radio", "writes letters",
                      "works in the garden", "reads the news", "cleans the windows",
                      "takes a short nap"),
            "freq": ("every afternoon", "after lunch", "on the weekends", "before going to sleep",
                     "twice a week", "whenever it is sunny", "in the early morning"),
        },
    ),
    (
        "The {dish} tasted {taste}{tail}.",
        {
            "dish": ("soup", "bread", "chicken", "salad", "apple pie", "fish", "rice", "tea"),
            "taste": ("a little too salty", "sweet and fresh", "better than last time",
                      "slightly burnt", "rich and creamy", "rather plain"),
            "tail": ("", " but nobody complained", " so we asked for more", " after a while"),
        },
    ),
    (
        "It started to {weather} just as we {moment}.",
        {
            "weather": ("rain", "snow", "get windy", "get dark", "thunder", "pour"),
            "moment": ("left the house", "reached the car", "sat down to eat", "finished the game",
                       "opened the tent", "arrived at the beach", "crossed the bridge"),
        },
    ),
    (
        "Please put the {things} back in the {container} {when}.",
        {
            "things": ("plates", "books", "toys", "tools", "scissors", "towels", "spoons",
                       "blankets"),
            "container": ("cupboard", "drawer", "box", "closet", "basket", "cabinet"),
            "when": ("when you are done", "after dinner", "before you go out", "right away"),
        },
    ),
    (
        "Our {vehicle} broke down {where} so we {fix}.",
        {
            "vehicle": ("car", "old van", "truck", "tractor"),
            "where": ("on the way to the lake", "in the middle of the night",
                      "outside a small town", "on a busy road", "at the top of a hill",
                      "far from the city"),
            "fix": ("walked the rest of the way", "called for help", "waited for hours",
                    "asked a farmer for help", "took the next bus", "slept in the car"),
        },
    ),
    (
        "{prefix} why the {puzzle}.",
        {
            "prefix": ("Nobody knew", "We wondered", "She could not understand",
                       "No one could explain"),
            "puzzle": ("dog was barking all night", "baby woke up so early", "phone kept ringing",
                       "kettle stopped working", "alarm went off at midnight",
                       "radio turned itself on", "old clock had stopped", "door was left open",
                       "lights were still on", "garden gate was broken"),
        },
    ),
)
# fmt: on


def fill(template: str, slots: dict[str, tuple[str, ...]], rng: random.Random) -> str | None:
    """One sentence from a frame, or None when two slots of the same list drew the same word."""
    values = {k: rng.choice(v) for k, v in slots.items()}
    if "a" in values and values["a"] == values.get("b"):
        return None
    return template.format(**values)


def sentences(n: int, rng: random.Random, frames: tuple[Frame, ...] = FRAMES) -> list[str]:
    """``n`` distinct sentences, frames taken in turn (shuffled order) so all frames are used."""
    order = rng.sample(range(len(frames)), len(frames))
    out: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        template, slots = frames[order[i % len(frames)]]
        for _ in range(1000):
            s = fill(template, slots, rng)
            if s is not None and s not in seen:
                break
        else:
            raise RuntimeError(f"asr: frame {template!r} has too few distinct sentences")
        seen.add(s)
        out.append(s)
    return out


def transcript(sentence: str) -> str:
    """LibriSpeech transcript style: upper case, no punctuation except apostrophes."""
    return " ".join(re.sub(r"[^A-Za-z' ]+", " ", sentence).upper().split())


def speaker_id(position: int) -> int:
    return SPEAKER_BASE + 1 + position


def chapter_id(spk: int, k: int, first: int = 1) -> int:
    """The chapter of the k-th text of speaker ``spk``: blocks of CHAPTER_SIZE, numbered
    ``spk * 100 + first``, ``+ first + 1``, ..."""
    return spk * 100 + k // CHAPTER_SIZE + first


def _rel(spk: int, k: int, out: str = OUT, first: int = 1) -> str:
    """The file of the k-th sentence read by speaker ``spk`` (chapters of CHAPTER_SIZE)."""
    chap = chapter_id(spk, k, first)
    return f"{out}/{spk}/{chap}/{spk}-{chap}-{k % CHAPTER_SIZE:04d}.wav"


Speaker = tuple[int, str, float, str]  # (speaker id, sex, minutes of audio, voice name)


def write_split(
    ctx: BuildContext,
    texts: list[str],
    voices: list,
    out: str = OUT,
    first: int = 1,
    head: str = "",
) -> tuple[list[Speaker], int, int]:
    """Every text read by every voice, in the LibriSpeech layout under ``out``.

    Writes the WAV files, one ``.trans.txt`` per chapter (chapters numbered from
    ``spk * 100 + first``) and ``SPEAKERS.TXT`` (``head``, then one row per voice).
    Returns the speakers, the number of utterances and the number of chapters.
    """
    speakers: list[Speaker] = []
    n_files = 0
    chapters = 0
    for pos, v in enumerate(voices):
        spk = speaker_id(pos)
        seconds = 0.0
        ctx.prefetch(  # this voice's missing texts, made in the worker processes
            Utterance(v.info.name, "text", s)
            for k, s in enumerate(texts)
            if not ctx.has(_rel(spk, k, out, first))
        )
        for block in range(0, len(texts), CHAPTER_SIZE):
            chap = chapter_id(spk, block, first)
            chapters += 1
            lines = []
            for j, s in enumerate(texts[block : block + CHAPTER_SIZE]):
                utt = f"{spk}-{chap}-{j:04d}"
                rel = _rel(spk, block + j, out, first)
                if not ctx.has(rel):
                    ctx.write_wav(rel, v.text(s))
                ctx.tick()
                seconds += sf.info(str(ctx.path(rel))).duration
                lines.append(f"{utt} {transcript(s)}")
                n_files += 1
            ctx.write_text(f"{out}/{spk}/{chap}/{spk}-{chap}.trans.txt", "\n".join(lines) + "\n")
        sex = "F" if v.info.gender == "female" else "M"
        speakers.append((spk, sex, seconds / 60, v.info.name))
    table = [
        f"{spk:<5}| {sex} | dev-clean        | {minutes:5.2f} | {name}"
        for spk, sex, minutes, name in speakers
    ]
    ctx.write_text(f"{out}/SPEAKERS.TXT", head + "\n".join(table) + "\n")
    return speakers, n_files, chapters


class ASR(Subset):
    name = "asr"
    version = 1
    outputs = (OUT,)
    description = "read everyday sentences with transcripts (LibriSpeech dev-clean layout)"

    def planned(self, size: str) -> int:
        return SENTENCES[size] * VOICES[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        sents = sentences(SENTENCES[ctx.size], ctx.rng("sentences"))
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        speakers, n_files, chapters = write_split(ctx, sents, voices, head=SPEAKERS_HEAD)
        words = sum(len(transcript(s).split()) for s in sents)
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                sentences=len(sents),
                frames=len(FRAMES),
                words=words,
                voices=", ".join(f"{n} (speaker {s}, {x})" for s, x, _, n in speakers),
                files=n_files,
                minutes=sum(m for _, _, m, _ in speakers),
                chapter=CHAPTER_SIZE,
            ),
        )
        return SubsetResult(
            {"sentences": len(sents), "utterances": n_files, "chapters": chapters},
            [v.info.name for v in voices],
            {"speakers": {str(s): n for s, _, _, n in speakers}},
        )


SPEAKERS_HEAD = """\
; Speakers of the built-in ASR subset: synthetic voices, not people (see README.md).
; Same columns as LibriSpeech's SPEAKERS.TXT; MINUTES is the audio in this subset.
;ID  |SEX| SUBSET           |MINUTES| NAME
"""

CARD = """\
# Built-in ASR subset (LibriSpeech dev-clean layout), size {size}, seed {seed}

Layout: LibriSpeech `dev-clean`: `<speaker>/<chapter>/<speaker>-<chapter>-<utt>.wav` and
`<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` with lines `<utt-id> <TRANSCRIPT>`
(upper case, no punctuation except apostrophes). Differences from LibriSpeech: audio is
WAV (16 kHz, 16-bit), not FLAC; `SPEAKERS.TXT` is inside `dev-clean/`, not one level up;
there is no `CHAPTERS.TXT`, and "chapters" are just blocks of {chapter} utterances.

How it was made
- {sentences} distinct sentences ({words} words), drawn in turn from {frames} hand-written
  templates of everyday English (household, food, weather, errands, travel). No names, no
  numbers, no contractions, no hyphens and American spelling, so each sentence has one
  obvious written form and no text normaliser beyond lower-casing is needed.
- Every sentence is read by every voice; speaker ids start at 9001 (see `SPEAKERS.TXT`):
  {voices}. Synthesis is deterministic (same seed, same bytes).
- {files} utterances, {minutes:.1f} minutes in all.

What it can and cannot tell
- It checks that an ASR front end (or a speech LM's transcription ability) works end to
  end and catches gross regressions: clean, read, synthetic speech should give a low word
  error rate. Reference point: Whisper tiny.en (CTranslate2, int8, greedy) had a corpus WER
  of 12% on the small build, 3% on the neural voice and 13-22% on the eSpeak voices
  (after lower-casing and removing punctuation).
- It is not LibriSpeech: no audiobook prose, no real speakers, accents, recording
  conditions or disfluencies, 2-3 voices instead of 40, and a small, templated
  vocabulary (templates repeat, so sentences are more predictable than book text). WERs
  are not comparable with published dev-clean numbers; expect them to be lower for the
  neural voice and higher for the formant (eSpeak) voices.
"""
