"""Continuation subset (GSLM-style prompts) in the LibriSpeech ``dev-clean`` layout.

GSLM's continuation evaluation takes LibriSpeech utterances of at least 6 s and uses
their first 3 s as prompts. None of the other built-in subsets is that long, so here each
utterance is a little narrative of 2-4 related sentences (hand-written templates, no
names, no numbers, no contractions, American spelling) read as ONE text by one voice, and
kept only when every voice reads it in 6-12 s. Files, transcripts and ``SPEAKERS.TXT`` are
written by the ``asr`` subset's code (same speaker ids for the same voices; chapters
numbered from ``<speaker>51`` so utterance ids never collide with the ``asr`` subset's).
"""

from __future__ import annotations

import random
import re

import soundfile as sf

from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE
from .asr import CHAPTER_SIZE, Frame, _rel, fill, transcript, write_split

OUT = "continuation/dev-clean"
# small: 18 prompts, sized so that the generation tasks (10 samples x 3 temperatures per
# prompt, each transcribed) run in about 20 min for gslm-mini on 2 cores (README "Built-in").
TEXTS = {"tiny": 4, "small": 6, "full": 200}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
FIRST_CHAPTER = 51  # chapter ids <speaker>51, <speaker>52, ... (the asr subset's start at 01)
MIN_SECONDS, MAX_SECONDS = 6.0, 12.0  # every voice's reading of a text lies in this range
PROMPT_SECONDS = 3.0  # GSLM's prompt length (for the card; the files are whole utterances)
MAX_ATTEMPTS = 20  # texts tried per item before giving up

# (template, slots) as in asr.FRAMES: every filler of a slot fits every filler of the
# others, and the slots are shared by the sentences of a story, which keeps it coherent.
# fmt: off
STORIES: tuple[Frame, ...] = (
    (
        "{who} went to the store to buy {food}. The shelves were almost empty because of the "
        "{reason}. She found what she needed and hurried home before it got {worse}.",
        {
            "who": ("My grandmother", "Our neighbor", "My aunt", "The old woman", "My mother",
                    "The young nurse"),
            "food": ("bread", "milk", "rice", "flour", "coffee", "eggs", "butter", "apples"),
            "reason": ("coming storm", "heavy snow", "long holiday weekend", "flood warning",
                       "winter weather", "strike at the port"),
            "worse": ("dark", "any colder", "too late", "crowded", "any worse"),
        },
    ),
    (
        "The old man {found} a small {animal} in his garden {when}. It was cold and hungry. He "
        "gave it some {food} and a warm bed. By morning it was {state}.",
        {
            "found": ("found", "noticed", "discovered"),
            "animal": ("kitten", "puppy", "rabbit", "bird", "hedgehog", "duck"),
            "when": ("late in the evening", "after the storm", "on a rainy night",
                     "at the end of the day", "just before dark"),
            "food": ("warm milk", "bread", "water", "soft food", "leftover rice"),
            "state": ("playing by the door", "strong enough to walk", "gone without a trace",
                      "sleeping in his favorite chair", "waiting for breakfast"),
        },
    ),
    (
        "We planned a picnic at the {place} for {when}. When the day came, {problem}. So we "
        "{alt} and had fun anyway.",
        {
            "place": ("lake", "river", "old bridge", "edge of the forest", "top of the hill",
                      "little waterfall"),
            "when": ("the weekend", "the last day of summer", "a Sunday afternoon",
                     "the start of the holidays", "the day after school ended"),
            "problem": ("it rained from morning until night", "the wind was far too strong",
                        "the car would not start", "the road was closed for repairs",
                        "everybody had caught a cold"),
            "alt": ("ate on the living room floor", "stayed home and played board games",
                    "cooked a big meal in the kitchen", "went to the museum instead",
                    "set up a blanket on the back porch"),
        },
    ),
    (
        "Every morning my {rel} gets up before the sun and {routine}. By the time the rest of "
        "the family comes downstairs, the kitchen smells of {smell} and the table is ready.",
        {
            "rel": ("father", "grandfather", "uncle", "mother", "aunt", "grandmother"),
            "routine": ("makes a big pot of coffee", "feeds the chickens", "lights the stove",
                        "reads the paper by the window", "goes for a short walk",
                        "waters the garden"),
            "smell": ("fresh bread", "strong coffee", "warm pancakes", "fried eggs and toast",
                      "cinnamon rolls", "hot oatmeal"),
        },
    ),
    (
        "The {vehicle} was late again this morning. The {people} waited in the {weather} and "
        "kept looking down the road. When it finally arrived, {ending}.",
        {
            "vehicle": ("bus", "school bus", "shuttle", "morning bus", "old trolley"),
            "people": ("passengers", "children", "workers", "students", "tourists"),
            "weather": ("cold rain", "freezing wind", "hot sun", "falling snow", "thick fog"),
            "ending": ("it was so full that nobody could get on",
                       "everyone cheered and climbed aboard",
                       "the driver apologized to every passenger",
                       "there were only a few empty seats left",
                       "the heater inside was not working"),
        },
    ),
    (
        "We painted the {room} {color}. It took us {time}, and we got paint on {mess}. The walls "
        "looked much brighter. Now it is our favorite room.",
        {
            "room": ("kitchen", "spare bedroom", "living room", "hallway", "small office",
                     "dining room"),
            "color": ("light blue", "pale yellow", "soft green", "warm white", "bright orange",
                      "light gray"),
            "time": ("the whole weekend", "most of the week", "longer than we thought",
                     "several long evenings"),
            "mess": ("the floor", "our shoes", "the windows", "almost everything",
                     "the cat"),
        },
    ),
    (
        "A {animal} got into the {place} last night. It {damage}. In the morning we {fix}.",
        {
            "animal": ("raccoon", "fox", "stray dog", "wild goat", "hungry deer", "big skunk"),
            "place": ("garden", "garage", "old shed", "barn", "back yard"),
            "damage": ("knocked over the trash cans and made a terrible mess",
                       "tore open a large bag of dog food and scattered it everywhere",
                       "chewed through the garden hose and dug under the fence",
                       "ate most of the vegetables we had left out on the table"),
            "fix": ("cleaned everything up and fixed the broken latch",
                    "found its tracks in the mud and followed them to the woods",
                    "put up a taller fence and bought a stronger lock",
                    "laughed about it over breakfast and cleaned up together"),
        },
    ),
    (
        "When I was a child, my {rel} used to take me to the {place} every summer. We would "
        "{activity} for hours, and I still remember how {feeling} those long days felt.",
        {
            "rel": ("grandfather", "grandmother", "uncle", "aunt", "father", "mother"),
            "place": ("lake", "seaside", "mountains", "family farm", "old fishing pier", "river"),
            "activity": ("walk and talk", "read under the trees", "look for birds and berries",
                         "sit in the shade and tell stories", "swim and collect smooth stones",
                         "watch the clouds drift by"),
            "feeling": ("peaceful", "happy", "slow and warm", "quiet and safe", "simple",
                        "bright and endless"),
        },
    ),
    (
        "The {shop} on our street closed for good last {period}. The owner had been there for "
        "as long as anyone could remember. On the last day, the whole neighborhood came to "
        "{farewell}.",
        {
            "shop": ("bakery", "bookstore", "flower shop", "hardware store", "little cafe",
                     "shoe repair shop", "corner grocery"),
            "period": ("week", "month", "winter", "spring", "summer", "fall"),
            "farewell": ("say goodbye", "wish the owner well", "share stories and old memories",
                         "thank the owner for all those years", "buy something to remember it"),
        },
    ),
    (
        "It snowed all night, and by morning the {where} was white. The children ran out to "
        "{play}. Their parents {parents}. Then everyone came in for {treat}.",
        {
            "where": ("whole town", "street", "park", "school yard", "garden", "village"),
            "play": ("build a snowman", "throw snowballs", "slide down the hill",
                     "make angels in the snow", "build a snow fort"),
            "parents": ("cleared the path with shovels", "watched from the window",
                        "joined in the fun", "dug out the cars", "took pictures of them"),
            "treat": ("hot chocolate", "warm soup", "tea and cookies", "fresh muffins",
                      "apple pie"),
        },
    ),
    (
        "My {rel} has been learning to play the {inst} since {since}. At first it sounded "
        "{bad}, but she practiced every evening. Now she can play {good}.",
        {
            "rel": ("sister", "mother", "aunt", "grandmother", "cousin", "daughter"),
            "inst": ("piano", "violin", "guitar", "flute", "cello", "trumpet"),
            "since": ("last fall", "the start of the year", "last spring", "the winter",
                      "the summer"),
            "bad": ("quite painful", "loud and uneven", "slow and shaky", "terrible"),
            "good": ("several songs from memory", "a lovely tune for the whole family",
                     "at the school concert", "simple songs with no mistakes",
                     "along with the radio"),
        },
    ),
    (
        "My {rel} tried to fix the {thing} by himself {when}. He spent hours reading the "
        "instructions and looking for the right tools. In the end he {end}.",
        {
            "rel": ("brother", "father", "uncle", "grandfather", "cousin", "neighbor"),
            "thing": ("kitchen sink", "old washing machine", "leaking roof", "broken fence",
                      "lawn mower", "garage door"),
            "when": ("last weekend", "on Saturday", "this morning", "after dinner",
                     "during the holidays"),
            "end": ("had to call a repairman", "made it worse than before",
                    "got it working again", "gave up and ordered a new part",
                    "asked his friends for help"),
        },
    ),
    (
        "We got lost on the way to the {dest}. The map was old and the roads had changed. A "
        "kind {helper} showed us the way. We arrived {late}, but nobody minded.",
        {
            "dest": ("wedding", "concert", "beach house", "museum", "family reunion",
                     "birthday party"),
            "helper": ("farmer", "shop owner", "police officer", "old woman", "mail carrier",
                       "gas station worker"),
            "late": ("very late", "just after dark", "tired and hungry", "long after lunch",
                     "covered in dust"),
        },
    ),
    (
        "The {place} was so quiet that we could hear {sound}. We sat there without talking for "
        "a long time, and then we slowly walked back {back}.",
        {
            "place": ("forest", "empty beach", "old church", "valley", "meadow",
                      "garden behind the house"),
            "sound": ("the wind in the trees", "the waves on the sand", "birds far away",
                      "rain on the roof", "leaves falling", "our own breathing"),
            "back": ("to the car", "to the village", "along the path", "the way we came",
                     "to the cabin"),
        },
    ),
    (
        "Our {pet} disappeared {when}. We searched {search} and put up signs on every corner. "
        "{ending}",
        {
            "when": ("last week", "during the storm", "on a cold night", "after the party"),
            "search": ("the whole neighborhood", "every street in town", "the park and the woods",
                       "all the gardens nearby"),
            "pet": ("old cat", "little dog", "young cat", "gray rabbit", "small dog",
                    "orange cat"),
            "ending": ("A few days later it came home by itself, hungry but happy.",
                       "Then a neighbor called to say it was sleeping in her garage.",
                       "Late that evening we found it hiding under the porch.",
                       "The next morning it was waiting at the back door as if nothing had "
                       "happened.",
                       "At last a kind stranger brought it back in a cardboard box."),
        },
    ),
    (
        "The {team} practiced every afternoon for the big game. On the day of the match it was "
        "{weather}. They {result}, and then they {after}.",
        {
            "team": ("school team", "soccer team", "young players", "girls team", "boys team",
                     "village team"),
            "weather": ("raining hard", "very windy", "hot and humid", "cold and gray",
                        "bright and sunny"),
            "result": ("lost in the final minute", "won after a long struggle",
                       "played better than ever", "tied with the other team"),
            "after": ("went home tired and proud", "shared a big dinner together",
                      "sang songs on the bus home", "thanked their coach"),
        },
    ),
    (
        "The {worker} arrived at {place} before dawn. She unlocked the door and turned on the "
        "lights. Soon the first {visitors} came in. It was going to be a busy day.",
        {
            "worker": ("baker", "shop owner", "florist", "young cook", "bookseller"),
            "place": ("her little shop", "the market", "the old building", "work",
                      "the store on the corner"),
            "visitors": ("customers", "neighbors", "regular visitors", "early shoppers",
                         "tourists"),
        },
    ),
    (
        "{when} we planted a small vegetable garden behind the house. We watered it every "
        "evening and pulled the weeds on {days}. By the end of the summer we had more {veg} "
        "than we could eat.",
        {
            "when": ("Last spring", "Early this year", "In the spring", "This year"),
            "days": ("the weekends", "Sunday mornings", "cool mornings", "our days off"),
            "veg": ("tomatoes", "beans", "zucchini", "carrots", "cucumbers", "peppers",
                    "potatoes", "lettuce"),
        },
    ),
    (
        "The little boy {lost} his {toy} at the {place}. He cried all the way home and would "
        "not eat his dinner. The next day his {rel} went back and found it {where}.",
        {
            "lost": ("lost", "dropped", "left"),
            "toy": ("favorite toy car", "red ball", "stuffed bear", "wooden train", "blue kite",
                    "toy boat"),
            "place": ("park", "beach", "zoo", "playground", "fair", "swimming pool"),
            "rel": ("father", "mother", "sister", "grandfather", "older brother", "aunt"),
            "where": ("under a bench", "in the lost and found box", "near the gate",
                      "behind a trash can", "with a friendly guard"),
        },
    ),
    (
        "A strong wind {blew} through the {place} last night. It {damage}. This morning "
        "{people} {cleanup}.",
        {
            "blew": ("blew", "swept", "howled"),
            "place": ("town", "valley", "village", "neighborhood", "farm"),
            "damage": ("knocked down several old trees", "tore part of the roof off a barn",
                       "scattered leaves and branches everywhere",
                       "blew over fences and trash cans"),
            "people": ("the neighbors", "everyone on our street", "a group of volunteers",
                       "the whole family"),
            "cleanup": ("worked together to clean up", "began clearing the roads",
                        "picked up branches for hours", "helped each other repair the damage"),
        },
    ),
)
# fmt: on


def sentence_count(text: str) -> int:
    return len(re.findall(r"[.?!](?:\s|$)", text))


def choose(
    ctx: BuildContext, n: int, voices: list, rng: random.Random
) -> tuple[list[str], list[list[int]], int]:
    """``n`` distinct stories that every voice reads in MIN_SECONDS-MAX_SECONDS.

    Stories are drawn with frames taken in turn (shuffled order); all candidates of a round
    are measured together (exact sample counts, in the worker processes); a story out of
    bounds is replaced by one from the next frame. Deterministic: the draws depend only on
    the seed, never on the number of workers. Returns the texts, their lengths in samples
    (per text, per voice) and how many replacements were made.
    """
    order = rng.sample(range(len(STORIES)), len(STORIES))
    texts: list[str] = [""] * n
    lengths: list[list[int]] = [[] for _ in range(n)]
    attempts = [0] * n
    seen: set[str] = set()
    pending = list(range(n))
    lo, hi = round(MIN_SECONDS * SAMPLE_RATE), round(MAX_SECONDS * SAMPLE_RATE)
    while pending:
        cands = {}
        for i in pending:
            if attempts[i] >= MAX_ATTEMPTS:
                raise RuntimeError(f"continuation: no story of {MIN_SECONDS}-{MAX_SECONDS} s")
            template, slots = STORIES[order[(i + attempts[i]) % len(STORIES)]]
            for _ in range(1000):
                s = fill(template, slots, rng)
                if s is not None and s not in seen:
                    break
            else:
                raise RuntimeError(f"continuation: too few distinct stories from {template!r}")
            seen.add(s)  # a rejected story is not drawn again either
            cands[i] = s
        got = ctx.lengths(Utterance(v.info.name, "text", cands[i]) for i in pending for v in voices)
        later = []
        for k, i in enumerate(pending):
            ns = got[k * len(voices) : (k + 1) * len(voices)]
            if all(lo <= x <= hi for x in ns):
                texts[i], lengths[i] = cands[i], ns
            else:
                attempts[i] += 1
                later.append(i)
        pending = later
    return texts, lengths, sum(attempts)


class Continuation(Subset):
    name = "continuation"
    version = 1
    outputs = (OUT,)
    description = "6-12 s stories with transcripts for GSLM-style 3 s prompts (LibriSpeech layout)"

    def planned(self, size: str) -> int:
        return TEXTS[size] * VOICES[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        ctx.status("choosing stories")
        plan = ctx.memo(
            "plan",
            lambda: dict(
                zip(
                    ("texts", "lengths", "replaced"),
                    choose(ctx, TEXTS[ctx.size], voices, ctx.rng("stories")),
                    strict=True,
                )
            ),
        )
        texts = plan["texts"]
        ctx.status("synthesising")
        speakers, n_files, chapters = write_split(
            ctx, texts, voices, OUT, FIRST_CHAPTER, SPEAKERS_HEAD
        )
        # Measure what was written: every file is in bounds and as long as planned.
        seconds = []
        for pos, (spk, *_) in enumerate(speakers):
            for k in range(len(texts)):
                rel = _rel(spk, k, OUT, FIRST_CHAPTER)
                frames = sf.info(str(ctx.path(rel))).frames
                if frames != plan["lengths"][k][pos]:
                    raise AssertionError(
                        f"{rel}: {frames} samples, planned {plan['lengths'][k][pos]}"
                    )
                seconds.append(frames / SAMPLE_RATE)
        if not all(MIN_SECONDS <= s <= MAX_SECONDS for s in seconds):
            raise AssertionError(f"continuation: a file is outside {MIN_SECONDS}-{MAX_SECONDS} s")
        per_count = {c: sum(sentence_count(t) == c for t in texts) for c in (2, 3, 4)}
        words = [len(transcript(t).split()) for t in texts]
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                texts=len(texts),
                frames=len(STORIES),
                per_count=", ".join(f"{c} sentences: {n}" for c, n in per_count.items() if n),
                words=sum(words),
                wmin=min(words),
                wmax=max(words),
                lo=MIN_SECONDS,
                hi=MAX_SECONDS,
                replaced=plan["replaced"],
                voices=", ".join(f"{n} (speaker {s}, {x})" for s, x, _, n in speakers),
                files=n_files,
                minutes=sum(seconds) / 60,
                smin=min(seconds),
                smean=sum(seconds) / len(seconds),
                smax=max(seconds),
                chapter=CHAPTER_SIZE,
                prompt=PROMPT_SECONDS,
            ),
        )
        return SubsetResult(
            {"texts": len(texts), "utterances": n_files, "chapters": chapters},
            [v.info.name for v in voices],
            {
                "speakers": {str(s): n for s, _, _, n in speakers},
                "seconds": {
                    "min": round(min(seconds), 3),
                    "mean": round(sum(seconds) / len(seconds), 3),
                    "max": round(max(seconds), 3),
                },
                "sentences_per_text": {str(c): n for c, n in per_count.items()},
                "replaced_stories": plan["replaced"],
            },
        )


SPEAKERS_HEAD = """\
; Speakers of the built-in continuation subset: synthetic voices, not people (see README.md).
; Same columns as LibriSpeech's SPEAKERS.TXT; MINUTES is the audio in this subset.
;ID  |SEX| SUBSET           |MINUTES| NAME
"""

CARD = """\
# Built-in continuation subset (GSLM-style prompts), size {size}, seed {seed}

Layout: LibriSpeech `dev-clean`, as the built-in `asr` subset and read by the same
`librispeech` reader: `<speaker>/<chapter>/<speaker>-<chapter>-<utt>.wav` and
`<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` with lines `<utt-id> <TRANSCRIPT>`
(upper case, no punctuation except apostrophes). Differences from LibriSpeech: audio is
WAV (16 kHz, 16-bit), not FLAC; `SPEAKERS.TXT` is inside `dev-clean/`, not one level up;
there is no `CHAPTERS.TXT`, and "chapters" are just blocks of {chapter} utterances, numbered
from `<speaker>51` (speaker ids are those of the `asr` subset, so utterance ids differ).

What it is for
- GSLM's continuation evaluation takes LibriSpeech utterances of at least 6 s and uses
  their first {prompt:g} s as prompts; the rest of the transcript is the reference
  continuation (continuation-BLEU), and the generated audio is cut to the length of the
  original utterance. Here every utterance is {lo:g}-{hi:g} s long, so every file gives a
  3 s prompt with at least 3 s of reference speech after it. The cut at 3 s is not aligned
  to words (no alignments are shipped), as in GSLM.

How it was made
- {texts} distinct little stories of 2-4 sentences
  ({per_count}), {words} words in all ({wmin}-{wmax} a story),
  drawn in turn from {frames} hand-written templates of everyday narratives whose sentences
  share their slots (the same person, animal or place throughout), so a prompt has a
  natural continuation. No names, no numbers, no contractions, no hyphens and American
  spelling, so each text has one obvious written form.
- Each story is synthesised as ONE text by each voice (the sentence pauses are the
  synthesiser's own). A story is kept only when every voice reads it in {lo:g}-{hi:g} s
  (exact sample counts before writing, checked again on the written files); otherwise it
  is replaced by a story from the next template ({replaced} replacements here).
- Every story is read by every voice; speaker ids start at 9001 (see `SPEAKERS.TXT`):
  {voices}.
  Synthesis is deterministic (same seed, same bytes).
- {files} utterances, {minutes:.1f} minutes in all, {smin:.2f}-{smax:.2f} s each
  (mean {smean:.2f} s).

What it can and cannot tell
- It lets a generation pipeline run end to end on GSLM-shaped inputs: 3 s prompts cut
  from longer read utterances, continuations transcribed by an ASR judge and compared
  with the reference text (continuation-BLEU) or scored for fluency and diversity
  (perplexity, self-/auto-BLEU), and it catches gross regressions (a model that ignores
  the prompt, repeats itself or produces silence).
- It is synthetic TTS, not LibriSpeech: no audiobook prose, no real speakers, accents,
  recording conditions or disfluencies; 2-3 voices instead of 40; formant (eSpeak) voices
  that sound unlike anything a speech LM was trained on; and a small, templated
  vocabulary, so continuations are far more predictable than book text. Scores are not
  comparable with published GSLM numbers (which use 1000 LibriSpeech prompts).
"""
