"""Interactive-period stimuli: speech that is not addressed to the system, then speech that is.

Survey §4.3 ("interactive period recognition": respond during the interactive period, stay
silent otherwise; MiniCPM-o's VAD gate, VITA's non-query detection). Each stimulus is one
user channel with two periods:

1. **not addressed** (a system should stay silent): ``others`` — two other voices talking
   to each other (a question and its answer from the conversation topics), at full level;
   ``background`` — the same kind of exchange 20 dB down under steady noise, as speech from
   another room or a TV; ``noise`` — noise alone. Then silence (``QUIET`` s), in which a
   system that took the other voices for a request would answer.
2. **addressed** (it should answer): one voice makes a request (a whole sentence of the
   full-duplex requests), then ``TAIL`` s of silence.

``interactive.jsonl`` gives, per stimulus, ``not_addressed`` = {kind, start, end} and
``addressed`` = {start, end, text}, in seconds, exact (the sentences are trimmed as in
:mod:`.dialogue`, the audio is zero elsewhere but for the noise of ``background``/``noise``).
"""

from __future__ import annotations

import json
import random

import numpy as np

from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE, Voice
from .dialogue import FD_TURNS, TOPICS, _sec, _Synth

OUT = "dialogue/interactive"
STIMULI = {"tiny": 3, "small": 30, "full": 150}
VOICES = {"tiny": 3, "small": 3, "full": 3}
KINDS = ("others", "background", "noise")  # in turn, so every size has each kind
LEAD = 0.5  # s of silence at the start
OTHERS_GAP = (0.2, 0.6)  # s between the question and the answer of the other two voices
BACKGROUND_DB = -20.0  # level of the background exchange relative to full level
NOISE_RMS = 0.005  # steady noise level (about -46 dBFS), low-passed white noise
NOISE_SECONDS = (2.5, 4.0)  # length of the noise-only period
QUIET = 2.5  # s of silence after the not-addressed period (a false response shows here)
TAIL = 3.0  # s of silence after the addressed request


def _noise(rng: random.Random, n: int) -> np.ndarray:
    """Low-passed (one-pole, 0.95) white noise at ``NOISE_RMS``, seeded."""
    from scipy.signal import lfilter

    g = np.random.default_rng(rng.getrandbits(64))
    x = lfilter([1.0], [1.0, -0.95], g.standard_normal(n))
    return (x / np.sqrt(np.mean(x**2)) * NOISE_RMS).astype(np.float32)


def _exchange(rng: random.Random) -> tuple[str, str]:
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    k = rng.randrange(len(topic["q"]))
    return topic["q"][k], topic["a"][k]


def _draw(rng: random.Random, kind: str, voices: list[Voice]) -> dict:
    """The texts and voices of one stimulus (drawn first, so prefetch can replay it)."""
    speaker = rng.randrange(len(voices))
    first, second = rng.choice(FD_TURNS)
    plan: dict = {"kind": kind, "request": f"{first} {second}", "speaker": speaker}
    if kind in ("others", "background"):
        q, a = _exchange(rng)
        others = [i for i in range(len(voices)) if i != speaker] or [speaker]
        plan.update(q=q, a=a, asker=others[0], answerer=others[-1])
        plan["gap"] = rng.uniform(*OTHERS_GAP)
    else:
        plan["noise_seconds"] = rng.uniform(*NOISE_SECONDS)
    return plan


def stimulus(rng: random.Random, kind: str, voices: list[Voice], synth: _Synth) -> tuple:
    """One stimulus: the user channel and its description."""
    p = _draw(rng, kind, voices)
    t = round(LEAD * SAMPLE_RATE)
    pieces: list[tuple[int, np.ndarray]] = []
    if kind == "noise":
        na = round(p["noise_seconds"] * SAMPLE_RATE)
        na_start, na_end = t, t + na
        pieces.append((t, _noise(rng, na)))
    else:
        gain = 1.0 if kind == "others" else 10 ** (BACKGROUND_DB / 20)
        q = synth(voices[p["asker"]], p["q"]) * gain
        a = synth(voices[p["answerer"]], p["a"]) * gain
        na_start = t
        pieces.append((t, q))
        t += len(q) + round(p["gap"] * SAMPLE_RATE)
        pieces.append((t, a))
        na_end = t + len(a)
    t = na_end + round(QUIET * SAMPLE_RATE)
    req = synth(voices[p["speaker"]], p["request"])
    ad_start, ad_end = t, t + len(req)
    pieces.append((t, req))
    total = ad_end + round(TAIL * SAMPLE_RATE)
    y = np.zeros(total, dtype=np.float32)
    if kind == "background":  # the noise runs under the whole not-addressed period
        y[na_start:na_end] += _noise(rng, na_end - na_start)
    for start, x in pieces:
        y[start : start + len(x)] += x
    desc = {
        "duration": _sec(total),
        "not_addressed": {"kind": kind, "start": _sec(na_start), "end": _sec(na_end)},
        "addressed": {"start": _sec(ad_start), "end": _sec(ad_end), "text": p["request"]},
        "turn_ends": [_sec(ad_end)],
        "voices": {
            "request": voices[p["speaker"]].info.name,
            **(
                {
                    "others": [voices[p["asker"]].info.name, voices[p["answerer"]].info.name],
                    "others_text": [p["q"], p["a"]],
                }
                if kind != "noise"
                else {}
            ),
        },
    }
    return y, desc


class Interactive(Subset):
    name = "interactive"
    version = 1
    outputs = (OUT,)
    description = (
        "speech not addressed to the system (other voices, background, noise), then a request"
    )

    def planned(self, size: str) -> int:
        return STIMULI[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        synth = _Synth()
        wanted: dict[tuple[str, str], None] = {}
        for i in range(1, STIMULI[ctx.size] + 1):  # replay the draws: prefetch the texts
            p = _draw(ctx.rng("interactive", i), KINDS[(i - 1) % 3], voices)
            wanted[(voices[p["speaker"]].info.name, p["request"])] = None
            if "q" in p:
                wanted[(voices[p["asker"]].info.name, p["q"])] = None
                wanted[(voices[p["answerer"]].info.name, p["a"])] = None
        ctx.prefetch(Utterance(v, "text", s) for v, s in wanted)
        rows = []
        for i in range(1, STIMULI[ctx.size] + 1):
            sid = f"ia-{i:04d}"
            rel, meta = f"{OUT}/{sid}.wav", f"_meta/{sid}.json"
            if ctx.has(meta) and ctx.has(rel):
                rows.append(json.loads(ctx.path(meta).read_text(encoding="utf-8")))
                ctx.tick()
                continue
            kind = KINDS[(i - 1) % 3]
            y, desc = stimulus(ctx.rng("interactive", i), kind, voices, synth)
            ctx.write_wav(rel, y)
            ctx.tick()
            row = {"id": sid, "file": f"{sid}.wav", **desc}
            ctx.write_text(meta, json.dumps(row))
            rows.append(row)
        ctx.write_text(f"{OUT}/interactive.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        counts = {k: sum(r["not_addressed"]["kind"] == k for r in rows) for k in KINDS}
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                n=len(rows),
                minutes=sum(r["duration"] for r in rows) / 60,
                voices=", ".join(v.info.name for v in voices),
                quiet=QUIET,
                tail=TAIL,
                bg=BACKGROUND_DB,
                **counts,
            ),
        )
        return SubsetResult(
            {"stimuli": len(rows), **{f"not_addressed_{k}": v for k, v in counts.items()}},
            [v.info.name for v in voices],
            {"minutes": round(sum(r["duration"] for r in rows) / 60, 3)},
        )


CARD = """\
# Built-in interactive-period stimuli, size {size}, seed {seed}

Layout: `ia-<n>.wav` (16 kHz mono, the user side) and `interactive.jsonl`: `id, file,
duration, not_addressed {{kind, start, end}}, addressed {{start, end, text}}, turn_ends,
voices`. Times in seconds from the start of the file, exact.

How it was made
- {n} stimuli ({minutes:.1f} minutes), voices {voices}. Kinds of the not-addressed period,
  in turn: `others` ({others}): two other voices exchange a question and its answer at
  full level; `background` ({background}): the same at {bg:g} dB under steady low-passed
  noise; `noise` ({noise}): the noise alone. Then {quiet} s of silence; then a third voice
  (or the same pool's other voice) makes a request addressed to the system, then {tail} s
  of silence.

What it can and cannot tell
- It measures whether a system answers speech that was not for it (false responses in the
  not-addressed period and the silence after it) and whether it still answers the request
  (response rate, latency after its end).
- The cue that the first period is not addressed is acoustic and conversational only (two
  voices talking to each other, low level, noise); there is no wake word, no visual cue
  and no room acoustics; synthetic voices.
"""
