"""Turn-taking subsets: two-channel conversations (dGSLM-style) and full-duplex stimuli.

(a) ``dialogue/conversations``: conversations between two voices assembled from
synthesised sentences on a planned timeline of turns, pauses, gaps, overlaps and
backchannels. Each speaker has its own channel, written as two mono files of equal
length. ``conversations.jsonl`` gives the inter-pausal units (IPUs) per channel and the
pauses, gaps and overlaps they imply, all measured on the assembled audio.

(b) ``dialogue/fullduplex``: single-channel user audio for full-duplex systems: a user
turn with a planned mid-turn pause (the system should not take the turn), the turn end
(it should), and a barge-in by the user a little later (it should stop talking).
``fullduplex.jsonl`` gives the timings.

Each synthesised sentence is trimmed of leading and trailing silence (frames 40 dB below
its loudest), so the audio between IPUs is exactly zero and IPU boundaries are exact.
"""

from __future__ import annotations

import json
import random
from functools import partial
from itertools import pairwise, permutations

import numpy as np

from ... import turntaking
from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE, Voice

OUT_CONV = "dialogue/conversations"
OUT_FD = "dialogue/fullduplex"
CONVERSATIONS = {"tiny": 2, "small": 30, "full": 150}
STIMULI = {"tiny": 2, "small": 30, "full": 150}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
TRIM_DB = -40.0  # silence threshold for trimming, relative to the loudest 5 ms frame
TRIM_FRAME = 80  # samples (5 ms)
MIN_SILENCE = 0.2  # s; as in dGSLM, silences this long separate IPUs
SEPARATION = 0.4  # s; the least silence between two IPUs of one channel (unambiguous for a VAD)
LEAD, TAIL = 0.5, 1.0  # s of silence before the first and after the last IPU
TURNS = (4, 8)  # turns per conversation (inclusive range)
PAUSE = (0.4, 1.2)  # s, planned silence between the IPUs of one turn
GAP = (0.1, 0.9)  # s, planned silence between turns
OVERLAP = (0.2, 0.7)  # s, planned overlap at a turn change
P_OVERLAP = 0.3  # chance that a turn change overlaps instead of leaving a gap
P_BACKCHANNEL = 0.3  # chance of a backchannel during a turn with a long non-final IPU
FD_PAUSE = (0.8, 1.5)  # s, mid-turn pause in a full-duplex stimulus
FD_RESPONSE = (1.5, 3.0)  # s from the user's turn end to the barge-in
FD_TAIL = 3.0  # s of silence after the barge-in

# fmt: off
BACKCHANNELS = ("yeah", "right", "I see", "oh really", "sure", "uh huh")
# fmt: on

# Topic -> questions, their answers (same position), comments. Short sentences without
# commas, so the voices
# do not pause inside them (a pause of 200 ms or more would split an IPU; see _segments).
# fmt: off
TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "weekend": {
        "q": ("What are you doing this weekend?", "Do you want to come along on Saturday?",
              "Have you been to the new market yet?", "Are you still going to the lake?",
              "Did you finish painting the kitchen?", "Should we meet for lunch on Sunday?"),
        "a": ("I think we will stay at home and rest.", "I would love to if I am not working.",
              "Not yet but I would like to try it.", "Yes if the weather stays dry.",
              "Almost but the last wall is still white.", "That sounds good to me."),
        "c": ("The last few weeks have been very busy.", "The kids want to go swimming again.",
              "My sister might visit us too.", "I really need a quiet day.",
              "The garden needs some work as well.", "We have not been out in ages."),
    },
    "cooking": {
        "q": ("What are you making for dinner tonight?", "Do you have a good soup recipe?",
              "How long do you leave the bread in the oven?", "Did you try that new spice?",
              "Can you cook rice without a pot?", "Do you like cooking for a crowd?"),
        "a": ("Probably pasta with some vegetables.", "I make a simple one with lentils.",
              "About as long as it takes to smell good.", "I did and it was very hot.",
              "I have never tried that myself.", "Only when someone else does the dishes."),
        "c": ("I bought far too many tomatoes.", "The oven at our place is very old.",
              "My father taught me most of what I know.", "I always forget to buy onions.",
              "Fresh herbs make a big difference.", "We eat late on most evenings."),
    },
    "travel": {
        "q": ("Where are you going this summer?", "Did you take the train or the car?",
              "How was the weather on the coast?", "Would you go back there again?",
              "Did you find a nice place to stay?", "Was the flight very long?"),
        "a": ("We are thinking about the mountains.", "The train because it is more relaxing.",
              "Windy but mostly sunny.", "I would go back tomorrow.",
              "A small hotel near the harbor.", "Long enough to watch two movies."),
        "c": ("I love looking out of the window on trains.", "We walked almost every day.",
              "The food there was very good.", "Packing is always the worst part.",
              "We got lost on the first evening.", "I still have sand in my shoes."),
    },
    "weather": {
        "q": ("Did you get caught in the rain?", "Is it supposed to snow tonight?",
              "Was it this cold last year?", "Do you think the storm will reach us?",
              "Have you seen how dark it is outside?", "Should I take an umbrella?"),
        "a": ("Only for a minute on the way home.", "That is what the radio said.",
              "I do not remember it this cold.", "It might pass to the north.",
              "It looks like night already.", "I would take one just in case."),
        "c": ("The wind was very strong this morning.", "My coat is still wet.",
              "The roads were quite slippery.", "I like the sound of rain on the roof.",
              "The garden really needed the water.", "It changes every hour these days."),
    },
    "work": {
        "q": ("How is the new job going?", "Do you get along with your team?",
              "Are you still working from home?", "How long is your commute now?",
              "Did the meeting go well?", "Are you taking any time off soon?"),
        "a": ("Better than I expected so far.", "They are very friendly people.",
              "Only on Mondays and Fridays.", "Much shorter than it used to be.",
              "It went on for far too long.", "I hope to take a week in the autumn."),
        "c": ("There is a lot to learn at first.", "The office has a lovely view.",
              "I still get lost in the building.", "My manager is very patient.",
              "We have lunch together most days.", "The coffee there is terrible."),
    },
    "moving": {
        "q": ("When are you moving into the new flat?", "Do you need help with the boxes?",
              "Is the new place bigger than the old one?", "Have you met the neighbors yet?",
              "Did you find a van to rent?", "Are you sad to leave the old street?"),
        "a": ("At the end of next month.", "That would be really kind of you.",
              "A little bigger and much brighter.", "Only the woman who lives upstairs.",
              "My cousin is lending us his.", "A bit because we lived there so long."),
        "c": ("I had no idea we owned so many books.", "The kitchen needs a new floor.",
              "We still have to paint the bedroom.", "The stairs are very narrow.",
              "It is close to a nice park.", "Packing the dishes took a whole day."),
    },
    "film": {
        "q": ("Have you seen the film everyone is talking about?", "Did you like the ending?",
              "Do you prefer the cinema or watching at home?", "Who was your favorite character?",
              "Was it as scary as people say?", "Should I read the book first?"),
        "a": ("We saw it on Friday night.", "I did not see it coming at all.",
              "At home because the seats are better.", "The old sailor without a doubt.",
              "Only in one or two scenes.", "I think the book is even better."),
        "c": ("The music was really beautiful.", "It was a little too long for me.",
              "The theater was completely full.", "I want to watch it again.",
              "My brother fell asleep halfway through.", "The colors were amazing."),
    },
    "garden": {
        "q": ("What are you growing this year?", "Did the tomatoes survive the frost?",
              "How do you keep the birds off the berries?", "Do you water every evening?",
              "Where did you get those flowers?", "Is the apple tree giving fruit yet?"),
        "a": ("Mostly beans and a few potatoes.", "Most of them made it through.",
              "We put a net over the bushes.", "Only when it has been dry for days.",
              "From a small shop by the station.", "Just a handful so far."),
        "c": ("The soil here is full of stones.", "Snails ate all my lettuce.",
              "I spend every evening out there.", "The roses are doing very well.",
              "We planted a small hedge last autumn.", "My back hurts after all that digging."),
    },
    "repairs": {
        "q": ("Did you get the bike fixed?", "Is the washing machine working again?",
              "Who fixed the leak in the bathroom?", "Do you know a good mechanic?",
              "How much did the new tire cost?", "Can you lend me your ladder?"),
        "a": ("Yes the chain just needed oil.", "It works but it makes a strange noise.",
              "My neighbor came over and did it.", "There is a good one near the bridge.",
              "Less than I was afraid of.", "Of course it is in the shed."),
        "c": ("I had to watch a video to learn how.", "The part took weeks to arrive.",
              "Everything breaks at the same time.", "I almost gave up on it.",
              "The old one lasted for years.", "I need better tools."),
    },
    "party": {
        "q": ("Are you coming to the party on Friday?", "Should I bring something to eat?",
              "Who else is coming along?", "Do you know where the place is?",
              "What time does it start?", "Is it a surprise for her?"),
        "a": ("I will be there a bit late.", "Maybe some bread and cheese.",
              "Most of the people from the choir.", "It is the house with the red door.",
              "Early in the evening I think.", "Yes so please do not tell her."),
        "c": ("I have not seen some of them in years.", "There will be music in the garden.",
              "I still need to buy a present.", "The last one went on until midnight.",
              "Her brother is organizing everything.", "I hope the weather stays nice."),
    },
}
# fmt: on

# Full-duplex: (incomplete first part, completion). The pause comes after the first part,
# which is syntactically incomplete, so a listener knows the turn is not over.
# fmt: off
FD_TURNS = (
    ("I was hoping to book a table for", "a small group tomorrow evening."),
    ("Can you remind me to", "call the dentist after lunch?"),
    ("I need a recipe that uses", "leftover rice and some vegetables."),
    ("What is the best way to", "keep bread fresh for longer?"),
    ("Could you tell me how to", "get to the train station from here?"),
    ("I would like to know whether", "the museum is open on Monday."),
    ("My daughter wants to learn", "how to play the guitar."),
    ("We are planning a trip to", "the mountains later this summer."),
    ("I keep forgetting where I", "put my reading glasses."),
    ("Is it a good idea to", "water the garden in the evening?"),
    ("The thing I really want to know is", "how long the battery lasts."),
    ("Can you help me write", "a short note to my neighbor?"),
    ("I have been thinking about", "getting a dog for the kids."),
    ("What should I cook for", "dinner when friends come over?"),
    ("Please add milk and eggs to", "my shopping list."),
    ("I am looking for a gift for", "my brother who loves fishing."),
    ("How do I get rid of", "the ants in my kitchen?"),
    ("Tell me a little about", "the history of the old castle."),
    ("I would like to move", "my appointment to next week."),
    ("Do you know a good place to", "go walking near the coast?"),
    ("My car has been making", "a strange noise when I brake."),
    ("Can you explain why", "the sky turns red at sunset?"),
    ("I want to start", "running in the mornings again."),
    ("What is the difference between", "baking soda and baking powder?"),
    ("I am trying to decide whether to", "take the bus or the train."),
    ("Could you find me a", "quiet cafe where I can work?"),
    ("We need some ideas for", "a rainy afternoon with the children."),
    ("How early should I", "leave for the airport tomorrow?"),
    ("I would love to hear", "a short story about the sea."),
    ("Can you check if", "it will rain this weekend?"),
)
INTERRUPTIONS = ("Sorry wait I meant next week instead.", "Hold on that is not what I asked.",
                 "Actually can you make it shorter?", "Stop for a second I have another question.",
                 "Wait let me say that again.", "No sorry I was thinking of something else.",
                 "Hang on can you repeat the first part?",
                 "Actually never mind let me ask something else.",
                 "Sorry to cut in but that sounds wrong.", "Just a moment someone is at the door.",
                 "That is enough thank you.", "Wait what was the last thing you said?")
# fmt: on


def _frames_active(x: np.ndarray) -> np.ndarray:
    n = len(x) // TRIM_FRAME
    rms = np.sqrt(np.mean(np.asarray(x[: n * TRIM_FRAME], np.float64).reshape(n, -1) ** 2, 1))
    return rms > rms.max() * 10 ** (TRIM_DB / 20)


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence (5 ms frames 40 dB below the loudest frame)."""
    act = np.flatnonzero(_frames_active(x))
    return x[act[0] * TRIM_FRAME : (act[-1] + 1) * TRIM_FRAME]


def _segments(x: np.ndarray) -> list[tuple[int, int]]:
    """Speech runs (sample ranges) of trimmed audio: split where it is silent for at least
    MIN_SILENCE (then the sentence is really two IPUs); usually one run, the whole of x."""
    act = _frames_active(x)
    long = round(MIN_SILENCE * SAMPLE_RATE / TRIM_FRAME)
    cuts, i = [], 0
    while i < len(act):
        if not act[i]:
            j = i
            while j < len(act) and not act[j]:
                j += 1
            if j - i >= long:
                cuts.append((i * TRIM_FRAME, j * TRIM_FRAME))
            i = j
        else:
            i += 1
    bounds = [0] + [p for c in cuts for p in c] + [len(x)]
    return list(zip(bounds[::2], bounds[1::2], strict=True))


def _sec(n: int) -> float:
    return round(n / SAMPLE_RATE, 4)


# The one definition of pauses, gaps and overlaps lives in speechlm_eval.turntaking; here
# IPUs are in samples and the events' times in seconds rounded like _sec.
turn_taking_events = partial(turntaking.turn_taking_events, sample_rate=SAMPLE_RATE, ndigits=4)


def script(rng: random.Random) -> tuple[str, list[list[str]]]:
    """A topic and its turns (speakers alternate, A first); each turn is 1-3 sentences.

    A turn answers the previous question (with that question's answer) if there was one,
    may add a comment, and asks a question of its own unless it is the last turn. No
    sentence is used twice in a conversation.
    """
    topic = rng.choice(sorted(TOPICS))
    lines = TOPICS[topic]
    questions = rng.sample(range(len(lines["q"])), len(lines["q"]))
    comments = rng.sample(lines["c"], len(lines["c"]))
    n = rng.randint(*TURNS)
    turns: list[list[str]] = []
    pending = None  # index of the question the next turn answers
    for k in range(n):
        turn = []
        if pending is not None:
            turn.append(lines["a"][pending])
            pending = None
        if comments and (not turn or rng.random() < 0.4):
            turn.append(comments.pop())
        if k < n - 1 and questions and (len(turn) < 2 or rng.random() < 0.6):
            pending = questions.pop()
            turn.append(lines["q"][pending])
        if not turn:
            break
        turns.append(turn)
    return topic, turns


class _Synth:
    """Trimmed sentence audio per (voice, text), synthesised once."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, v: Voice, text: str) -> np.ndarray:
        key = (v.info.name, text)
        if key not in self.cache:
            self.cache[key] = trim(v.text(text))
        return self.cache[key]


def _prefetch(ctx: BuildContext, voices: list[Voice], pairs: list, synth: _Synth) -> None:
    """Have the worker processes synthesise the scripted sentences up front.

    The texts are replayed from the same seeded generators ``build`` uses (the scripts,
    and the first draws of the full-duplex stimuli). This is only a speed-up: a sentence
    not prefetched (backchannels, chosen later) is synthesised on demand, identically.
    """
    wanted: dict[tuple[str, str], None] = {}
    for i in range(1, CONVERSATIONS[ctx.size] + 1):
        if not ctx.has(f"_meta/conv-{i:04d}.json"):
            pair = pairs[(i - 1) % len(pairs)]
            _, turns = script(ctx.rng("conversation", i))
            for k, turn in enumerate(turns):
                wanted.update(dict.fromkeys((pair[k % 2].info.name, s) for s in turn))
    for i in range(1, STIMULI[ctx.size] + 1):
        if not ctx.has(f"_meta/fd-{i:04d}.json"):
            rng = ctx.rng("stimulus", i)
            first, second = rng.choice(FD_TURNS)
            barge = rng.choice(INTERRUPTIONS)
            name = voices[(i - 1) % len(voices)].info.name
            wanted.update(dict.fromkeys((name, s) for s in (first, second, barge)))
    ctx.prefetch(Utterance(v, "text", s) for v, s in wanted if (v, s) not in synth.cache)


def conversation(
    rng: random.Random, voices: tuple[Voice, Voice], synth: _Synth
) -> tuple[dict[str, np.ndarray], dict]:
    """Lay out one conversation; returns the channel audio and its description."""
    topic, turns = script(rng)
    spk = ("A", "B")
    placed: dict[str, list[tuple[int, np.ndarray, str, str]]] = {"A": [], "B": []}
    last_end = {"A": 0, "B": 0}  # end of each speaker's latest audio (samples)
    t = round(LEAD * SAMPLE_RATE)
    plan_turns, transitions = [], []
    for k, sentences in enumerate(turns):
        who, other = spk[k % 2], spk[(k + 1) % 2]
        v = voices[k % 2]
        audio = [synth(v, s) for s in sentences]
        if k > 0:
            prev_last = len(placed[other][-1][1])
            if rng.random() < P_OVERLAP and prev_last > round(1.0 * SAMPLE_RATE):
                o = min(rng.uniform(*OVERLAP), prev_last / SAMPLE_RATE - 0.3)
                start = t - round(o * SAMPLE_RATE)
                transitions.append({"after_turn": k - 1, "type": "overlap", "seconds": round(o, 3)})
            else:
                g = rng.uniform(*GAP)
                start = t + round(g * SAMPLE_RATE)
                transitions.append({"after_turn": k - 1, "type": "gap", "seconds": round(g, 3)})
            t = max(start, last_end[who] + round(SEPARATION * SAMPLE_RATE))
        turn_start = t
        for j, (s, x) in enumerate(zip(sentences, audio, strict=True)):
            if j > 0:
                t += round(rng.uniform(*PAUSE) * SAMPLE_RATE)
            placed[who].append((t, x, s, "turn"))
            # A backchannel from the listener inside a long, non-final sentence.
            if (
                j < len(sentences) - 1
                and len(x) > 1.5 * SAMPLE_RATE
                and rng.random() < P_BACKCHANNEL
            ):
                bc_text = rng.choice(BACKCHANNELS)
                bc = synth(voices[(k + 1) % 2], bc_text)
                lo = max(t + int(0.4 * len(x)), last_end[other] + round(SEPARATION * SAMPLE_RATE))
                hi = t + len(x) - len(bc) - round(0.1 * SAMPLE_RATE)
                if lo < hi:
                    b0 = rng.randint(lo, hi)
                    placed[other].append((b0, bc, bc_text, "backchannel"))
                    last_end[other] = b0 + len(bc)
            t += len(x)
        last_end[who] = t
        plan_turns.append(
            {"speaker": who, "start": _sec(turn_start), "end": _sec(t), "text": sentences}
        )
    total = max(last_end.values()) + round(TAIL * SAMPLE_RATE)
    channels, ipus, texts, kinds = {}, {}, {}, {}
    for ch in spk:
        y = np.zeros(total, dtype=np.float32)
        ipus[ch], texts[ch], kinds[ch] = [], [], []
        for start, x, s, kind in sorted(placed[ch], key=lambda p: p[0]):
            y[start : start + len(x)] += x
            for a, b in _segments(x):
                ipus[ch].append((start + a, start + b))
                texts[ch].append(s)
                kinds[ch].append(kind)
        channels[ch] = y
    events = turn_taking_events(ipus)
    minutes = total / SAMPLE_RATE / 60
    desc = {
        "topic": topic,
        "duration": _sec(total),
        "ipus": {ch: [[_sec(a), _sec(b)] for a, b in ipus[ch]] for ch in spk},
        "ipu_text": texts,
        "ipu_kind": kinds,
        "turns": plan_turns,
        "events": events,
        "plan": {"transitions": transitions},
        "stats": {
            "ipus": sum(len(v) for v in ipus.values()),
            "splits": sum(len(v) for v in ipus.values()) - sum(len(v) for v in placed.values()),
            **{k: len(v) for k, v in events.items()},
            **{
                f"{k}_seconds": round(sum(e["end"] - e["start"] for e in v), 3)
                for k, v in events.items()
            },
            "minutes": round(minutes, 3),
        },
    }
    return channels, desc


def stimulus(rng: random.Random, v: Voice, synth: _Synth) -> tuple[np.ndarray, dict]:
    """One full-duplex stimulus: turn part 1, pause, part 2, turn end, ..., barge-in."""
    first, second = rng.choice(FD_TURNS)
    barge = rng.choice(INTERRUPTIONS)
    parts = [
        (synth(v, first), first, "turn"),
        (synth(v, second), second, "turn"),
        (synth(v, barge), barge, "interruption"),
    ]
    pause = rng.uniform(*FD_PAUSE)
    response = rng.uniform(*FD_RESPONSE)
    t = round(LEAD * SAMPLE_RATE)
    starts = [t]
    t += len(parts[0][0]) + round(pause * SAMPLE_RATE)
    starts.append(t)
    t += len(parts[1][0]) + round(response * SAMPLE_RATE)
    starts.append(t)
    total = t + len(parts[2][0]) + round(FD_TAIL * SAMPLE_RATE)
    y = np.zeros(total, dtype=np.float32)
    ipus = []
    for start, (x, text, role) in zip(starts, parts, strict=True):
        y[start : start + len(x)] = x
        for a, b in _segments(x):
            ipus.append(
                {"start": _sec(start + a), "end": _sec(start + b), "text": text, "role": role}
            )
    first_end = starts[0] + len(parts[0][0])
    turn_end = starts[1] + len(parts[1][0])
    barge_end = starts[2] + len(parts[2][0])
    # Silences inside the user's turn (the planned one, plus any the voice made itself).
    holds = [
        {"start": a["end"], "end": b["start"], "planned": a["end"] == _sec(first_end)}
        for a, b in pairwise(ipus)
        if a["role"] == b["role"]
    ]
    desc = {
        "duration": _sec(total),
        "transcript": f"{first} {second} {barge}",
        "ipus": ipus,
        "pauses": holds,
        "turn_ends": [_sec(turn_end), _sec(barge_end)],
        "interruptions": [
            {
                "start": _sec(starts[2]),
                "end": _sec(barge_end),
                "text": barge,
                "seconds_after_turn_end": round((starts[2] - turn_end) / SAMPLE_RATE, 4),
            }
        ],
        "plan": {"pause": round(pause, 3), "response_window": round(response, 3)},
    }
    return y, desc


class Dialogue(Subset):
    name = "dialogue"
    version = 1
    outputs = (OUT_CONV, OUT_FD)
    description = "two-channel conversations with turn-taking timings; full-duplex stimuli"

    def planned(self, size: str) -> int:
        return 2 * CONVERSATIONS[size] + STIMULI[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        pairs = list(permutations(voices, 2))
        synth = _Synth()
        _prefetch(ctx, voices, pairs, synth)
        convs = []
        for i in range(1, CONVERSATIONS[ctx.size] + 1):
            cid = f"conv-{i:04d}"
            pair = pairs[(i - 1) % len(pairs)]
            files = {"A": f"{cid}_A.wav", "B": f"{cid}_B.wav"}
            meta = f"_meta/{cid}.json"
            if ctx.has(meta) and all(ctx.has(f"{OUT_CONV}/{f}") for f in files.values()):
                convs.append(json.loads(ctx.path(meta).read_text(encoding="utf-8")))
                ctx.tick(2)
                continue
            channels, desc = conversation(ctx.rng("conversation", i), pair, synth)
            for ch, f in files.items():
                ctx.write_wav(f"{OUT_CONV}/{f}", channels[ch])
                ctx.tick()
            row = {
                "id": cid,
                "files": files,
                "voices": {"A": pair[0].info.name, "B": pair[1].info.name},
                **desc,
            }
            ctx.write_text(meta, json.dumps(row))
            convs.append(row)
        ctx.write_text(
            f"{OUT_CONV}/conversations.jsonl", "".join(json.dumps(r) + "\n" for r in convs)
        )
        stims = []
        for i in range(1, STIMULI[ctx.size] + 1):
            sid = f"fd-{i:04d}"
            v = voices[(i - 1) % len(voices)]
            rel, meta = f"{OUT_FD}/{sid}.wav", f"_meta/{sid}.json"
            if ctx.has(meta) and ctx.has(rel):
                stims.append(json.loads(ctx.path(meta).read_text(encoding="utf-8")))
                ctx.tick()
                continue
            y, desc = stimulus(ctx.rng("stimulus", i), v, synth)
            ctx.write_wav(rel, y)
            ctx.tick()
            row = {"id": sid, "file": f"{sid}.wav", "voice": v.info.name, **desc}
            ctx.write_text(meta, json.dumps(row))
            stims.append(row)
        ctx.write_text(f"{OUT_FD}/fullduplex.jsonl", "".join(json.dumps(r) + "\n" for r in stims))

        tot = {k: sum(c["stats"][k] for c in convs) for k in convs[0]["stats"]}
        splits = tot["splits"]
        names = ", ".join(v.info.name for v in voices)
        ctx.write_text(
            f"{OUT_CONV}/README.md",
            CONV_CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                n=len(convs),
                voices=names,
                minutes=tot["minutes"],
                ipus=tot["ipus"],
                pauses=tot["pauses"],
                gaps=tot["gaps"],
                overlaps=tot["overlaps"],
                within=sum(o["kind"] == "within" for c in convs for o in c["events"]["overlaps"]),
                pause_s=tot["pauses_seconds"],
                gap_s=tot["gaps_seconds"],
                overlap_s=tot["overlaps_seconds"],
                topics=len(TOPICS),
                splits=splits,
                turns=f"{TURNS[0]}-{TURNS[1]}",
                pause="-".join(map(str, PAUSE)),
                gap="-".join(map(str, GAP)),
                overlap="-".join(map(str, OVERLAP)),
                p_overlap=P_OVERLAP,
                p_bc=P_BACKCHANNEL,
                sep=SEPARATION,
            ),
        )
        n_pauses = sum(len(s["pauses"]) for s in stims)
        ctx.write_text(
            f"{OUT_FD}/README.md",
            FD_CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                n=len(stims),
                voices=names,
                pauses=n_pauses,
                minutes=sum(s["duration"] for s in stims) / 60,
                fd_pause="-".join(map(str, FD_PAUSE)),
                fd_response="-".join(map(str, FD_RESPONSE)),
                turns=len(FD_TURNS),
                interruptions=len(INTERRUPTIONS),
                tail=FD_TAIL,
            ),
        )
        return SubsetResult(
            {
                "conversations": len(convs),
                "conversation_files": 2 * len(convs),
                "stimuli": len(stims),
                "ipus": tot["ipus"],
                "pauses": tot["pauses"],
                "gaps": tot["gaps"],
                "overlaps": tot["overlaps"],
            },
            [v.info.name for v in voices],
            {"conversation_minutes": tot["minutes"], "unplanned_ipu_splits": splits},
        )


CONV_CARD = """\
# Built-in two-channel conversations (dGSLM-style turn-taking), size {size}, seed {seed}

Layout: `<id>_A.wav` and `<id>_B.wav` (16 kHz, 16-bit mono, same length): one channel per
speaker; `conversations.jsonl`, one object per conversation: `id, files, voices, topic,
duration, ipus, ipu_text, ipu_kind, turns, events, plan, stats`. Times are seconds from
the start of the files (rounded to 0.1 ms). `ipus[ch]` lists [start, end] per IPU;
`events` has `pauses` (speaker, start, end), `gaps` (from, to, start, end) and `overlaps`
(start, end, kind = between / within).

How it was made
- {n} conversations, {minutes:.1f} minutes; voices (A, B) rotate over the ordered pairs of
  {voices}.
- Scripts come from {topics} hand-written topics (questions, their answers, comments;
  short sentences without commas): {turns} turns, speakers alternating; a turn answers
  the previous question, may add a comment and may ask a question.
- Planned timeline: silence of {pause} s between the sentences of a turn; at a turn
  change a gap of {gap} s or, with probability {p_overlap}, an overlap of {overlap} s (the
  next speaker starts before the previous one ends); with probability {p_bc} the
  listener says a backchannel ("yeah", "right", ...) inside a long non-final sentence.
  A channel is never silent for less than {sep} s between two of its IPUs (a turn or
  backchannel starts later if needed), so IPUs are unambiguous for a VAD.
- Each sentence is synthesised, trimmed of leading/trailing silence (5 ms frames 40 dB
  below its loudest) and placed; the channel is exactly zero elsewhere. IPUs are the
  placed sentences, split where a sentence itself is silent for at least 0.2 s (the
  dGSLM IPU threshold; {splits} such splits here). Pauses, gaps and overlaps are computed
  from the IPUs of both channels (dGSLM's definitions; see `turn_taking_events`).
- Totals: {ipus} IPUs; {pauses} pauses ({pause_s:.1f} s), {gaps} gaps ({gap_s:.1f} s),
  {overlaps} overlaps ({overlap_s:.1f} s, {within} of them within a turn).

What it can and cannot tell
- With exact ground truth, it checks a turn-taking pipeline end to end: VAD/IPU
  extraction on two channels, and the pause/gap/overlap statistics that dGSLM compares
  between generated and real dialogue; it can also prompt a two-channel model.
- It is not Fisher: no telephone channel, no crosstalk, read (synthetic) speech, scripted
  and only loosely coherent exchanges, and timings drawn from simple uniform ranges
  rather than the distributions of real conversation. Its turn-taking statistics are
  therefore not a reference for what natural dialogue looks like; compare models against
  each other, or a pipeline against the ground truth, not against Fisher's numbers.
  Fisher is stereo; here each channel is its own mono file.
"""

FD_CARD = """\
# Built-in full-duplex stimuli, size {size}, seed {seed}

Layout: `fd-<n>.wav` (16 kHz, 16-bit mono: the user side only) and `fullduplex.jsonl`,
one object per file: `id, file, voice, duration, transcript, ipus, pauses, turn_ends,
interruptions, plan`. Times are seconds from the start of the file.

How it was made
- {n} stimuli, {minutes:.1f} minutes; voices in turn: {voices}.
- Each stimulus: a user turn in two parts from {turns} hand-written requests, the first
  part syntactically incomplete ("Can you remind me to ..."), separated by a planned pause
  of {fd_pause} s; then silence; {fd_response} s after the turn end the user barges in
  with one of {interruptions} interruptions ("Wait let me say that again."), followed by
  {tail} s of silence. Sentences are trimmed as in the conversations, so times are exact.
- `pauses` ({pauses} in all): silences inside a user turn, where a good system should
  not take the turn (`planned` false marks a silence the voice made itself).
  `turn_ends`: where the user's turn (and the barge-in) ends and a response is due.
  `interruptions`: when the barge-in starts and ends; a system that is speaking then
  should stop soon after `start`.

What it can and cannot tell
- It measures pause handling (does the system take the floor during a mid-turn
  pause?), response latency after a turn end, and reaction to a barge-in, like the
  pause-handling, turn-taking and interruption tasks of full-duplex benchmarks
  (e.g. Full-Duplex-Bench).
- The cue that a pause is not a turn end is syntactic only: the first part is
  synthesised on its own, so the voice tends to close it with sentence-final
  intonation, unlike a speaker who hesitates. The barge-in time is fixed
  in the file, so whether it falls while the system is speaking depends on the system's
  own latency: score interruptions only where the system was talking at `start`. No
  backchannel or noise conditions, synthetic voices, no real users.
"""
