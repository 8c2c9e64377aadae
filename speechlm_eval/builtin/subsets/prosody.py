"""Prosody continuation subset (pGSLM-style): two-sentence utterances with reference prosody.

Each utterance is a prompt sentence followed by a continuation sentence, spoken as one
text by one voice. ``prosody.jsonl`` gives, per file, the split point between the two
sentences (found in the audio and checked against the prompt sentence spoken alone),
the reference F0 contour at 100 frames per second from the YIN-style estimator below,
and the voiced and silent stretches that the contour implies.
"""

from __future__ import annotations

import json
import random

import numpy as np
import soundfile as sf

from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE

OUT = "prosody/dev"
# small: 18 prompts x 20 samples (prosody_pgslm), sized as the continuation subset (2 cores).
ITEMS = {"tiny": 4, "small": 18, "full": 400}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
FRAME_RATE = 100  # F0 frames per second
HOP = SAMPLE_RATE // FRAME_RATE
F0_MIN, F0_MAX = 60.0, 400.0
YIN_WINDOW = 400  # samples (25 ms) summed in the difference function
YIN_THRESHOLD = 0.15  # on the cumulative mean normalised difference
YIN_APERIODIC = 0.35  # frames whose best d' is above this are unvoiced
OCTAVE_SPAN = 25  # frames either side for the octave check
SILENCE_DB = -40.0  # frames this far below the utterance's loudest frame are silent
MIN_PAUSE = 0.05  # silent stretches shorter than this (stop closures) are not pauses
SPLIT_TOLERANCE = 0.25  # s between the pause found and where the prompt spoken alone ends
MAX_ATTEMPTS = 20  # texts tried per item before giving up

# Prompt sentences: (template, slots), every filler fits every other filler.
Frame = tuple[str, dict[str, tuple[str, ...]]]
# fmt: off
PROMPTS: tuple[Frame, ...] = (
    (
        "The {people} {did} {when}.",
        {
            "people": ("neighbors", "twins", "new tenants", "children next door", "students",
                       "farmers up the road"),
            "did": ("painted the old fence", "fixed the broken gate",
                    "cleaned out the whole garage", "moved the piano upstairs",
                    "sold their old boat", "planted a row of apple trees"),
            "when": ("last weekend", "yesterday afternoon", "before the holidays",
                     "in a single day", "over the summer"),
        },
    ),
    (
        "I saw a {animal} {doing} {where}.",
        {
            "animal": ("fox", "deer", "barn owl", "hedgehog", "heron", "squirrel"),
            "doing": ("crossing the road", "sleeping in the shade", "drinking from a puddle",
                      "hiding under a car"),
            "where": ("near the school", "behind the library", "by the old mill",
                      "at the edge of the woods", "in the middle of town"),
        },
    ),
    (
        "We waited for the {thing} {duration}.",
        {
            "thing": ("ferry", "night bus", "plumber", "doctor", "delivery van", "storm to pass",
                      "repair crew", "last train", "taxi", "rain to stop"),
            "duration": ("for almost an hour", "all afternoon", "since early morning",
                         "much longer than expected", "in the freezing cold", "until it got dark",
                         "with no news at all", "for what felt like ages"),
        },
    ),
    (
        "Somebody left a {obj} {where}.",
        {
            "obj": ("bunch of flowers", "handwritten note", "bag of apples", "pair of boots",
                    "basket of eggs", "stack of old magazines", "small parcel", "jar of honey",
                    "bicycle helmet", "folded umbrella"),
            "where": ("on our doorstep", "outside the gate", "at the front desk", "in the mailbox",
                      "by the garage door", "on the bench in the park",
                      "on the back seat of the bus", "in the church porch",
                      "next to the recycling bins"),
        },
    ),
    (
        "The {event} was {changed} {reason}.",
        {
            "event": ("concert", "market", "football match", "school trip", "picnic",
                      "street party"),
            "changed": ("moved indoors", "put off until next week", "called off at the last minute",
                        "moved to the morning"),
            "reason": ("because of the wind", "because of the heavy rain",
                       "after the storm warning", "for reasons nobody explained"),
        },
    ),
    (
        "My {rel} learned to {skill} {when}.",
        {
            "rel": ("aunt", "grandfather", "older brother", "best friend", "mother", "uncle"),
            "skill": ("swim", "ride a horse", "play the piano", "bake bread", "drive a truck",
                      "sail a small boat"),
            "when": ("last summer", "in only a few weeks", "at a very young age",
                     "during the long winter", "after retiring"),
        },
    ),
    (
        "There was {what} {where} {when}.",
        {
            "what": ("a long line", "a small crowd", "a strange smell", "loud music", "a lost dog",
                     "a broken bicycle"),
            "where": ("outside the bakery", "in the hallway", "near the bus stop",
                      "at the town hall", "in the parking lot"),
            "when": ("this morning", "all night", "again today", "on Sunday"),
        },
    ),
    (
        "The {vehicle} stopped {where} {when}.",
        {
            "vehicle": ("last train", "school bus", "elevator", "old tractor", "ferry", "taxi"),
            "where": ("in the middle of nowhere", "halfway up the hill", "right in front of us",
                      "between two stations", "without any warning"),
            "when": ("late in the evening", "just after midnight", "on the way home",
                     "for the second time"),
        },
    ),
)
# fmt: on

# Continuations by sentence type (the type sets the expected intonation).
# fmt: off
CONTINUATIONS: dict[str, tuple[str, ...]] = {
    "yes-no question": ("Did you hear about it?", "Can you believe that?",
                        "Were you there when it happened?", "Have you ever seen anything like it?",
                        "Do you think it will happen again?", "Would you have done the same thing?",
                        "Is that not a little strange?", "Did anybody tell you about it?"),
    "wh-question": ("What do you make of that?", "Who could have guessed it?",
                    "How did nobody notice in time?", "Why does this always happen to us?",
                    "Where were you all that time?", "What were we supposed to do?",
                    "How would you explain that to anyone?", "When will we ever learn?"),
    "exclamation": ("What a day that was!", "It was the strangest thing!",
                    "I could hardly believe my eyes!", "Everyone was talking about it!",
                    "That was quite a surprise!", "You should have seen their faces!",
                    "I will never forget it!", "We laughed about it for hours!"),
    "statement": ("Nobody seemed to mind very much.",
                  "We talked about it for the rest of the evening.",
                  "It took a long time to get back to normal.",
                  "I still think about it now and then.",
                  "My sister told me the whole story later.",
                  "Things were very different after that.", "The whole street came out to watch.",
                  "In the end it all worked out fine."),
    "list": ("We needed rope, tape, a ladder and a lot of patience.",
             "There were dogs, cats, chickens and even a goat.",
             "It was cold, wet, dark and very windy.",
             "They brought soup, bread, cheese and a big pot of tea.",
             "We saw boats, birds, clouds and a very late sunset.",
             "The room was dusty, cramped, noisy and far too warm.",
             "I lost my hat, my gloves, my scarf and my patience.",
             "We walked, talked, waited and walked some more."),
}
# fmt: on
TYPES = tuple(CONTINUATIONS)


def draw(
    template: str, slots: dict[str, tuple[str, ...]], kind: str, rng: random.Random, seen: set[str]
) -> tuple[str, str]:
    """A prompt sentence not used before (from one frame) and a continuation of ``kind``."""
    for _ in range(1000):
        prompt = template.format(**{k: rng.choice(v) for k, v in slots.items()})
        if prompt not in seen:
            return prompt, rng.choice(CONTINUATIONS[kind])
    raise RuntimeError(f"prosody: frame {template!r} has too few distinct sentences")


def yin_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz per 10 ms frame (0 = unvoiced), a YIN-style estimator (de Cheveigné &
    Kawahara 2002) written with numpy:

    - frame i is centred on sample i * HOP; the difference function
      d(tau) = sum_{j<W} (x[j] - x[j + tau])^2 over W = 25 ms is computed from FFT
      cross-correlations and running energies, for lags up to sr / F0_MIN;
    - it is normalised by its cumulative mean (d'(0) = 1); the first lag in
      [sr / F0_MAX, sr / F0_MIN] with d' < YIN_THRESHOLD, followed down to its local
      minimum, gives the period; without such a lag, the lag of the smallest d' if that
      is below YIN_APERIODIC, else the frame is unvoiced;
    - octave check: a lag under 0.6 times (over 1.7 times) the median lag of the voiced
      frames within 0.25 s is replaced by the smallest d' near twice (half) that lag;
    - the lag is refined by parabolic interpolation;
    - frames more than 40 dB below the loudest frame are unvoiced (silence gate), and
      voiced runs shorter than 3 frames are dropped. No smoothing otherwise.
    """
    x = np.asarray(x, dtype=np.float64)
    tau_min, tau_max = int(sr / F0_MAX), int(np.ceil(sr / F0_MIN))
    w, length = YIN_WINDOW, YIN_WINDOW + tau_max
    n_frames = len(x) // HOP + 1
    pad = np.pad(x, (length, length))
    starts = length + np.arange(n_frames) * HOP - length // 2
    seg = np.lib.stride_tricks.sliding_window_view(pad, length)[starts]
    nfft = 1 << int(np.ceil(np.log2(length + w)))
    a = seg[:, :w]
    r = np.fft.irfft(np.conj(np.fft.rfft(a, nfft)) * np.fft.rfft(seg, nfft), nfft)
    r = r[:, : tau_max + 1]
    cs = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(seg**2, axis=1)], axis=1)
    energy = cs[:, w : w + tau_max + 1] - cs[:, : tau_max + 1]  # sum_{j<W} x[j + tau]^2
    d = np.maximum(energy[:, :1] + energy - 2 * r, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    lags = np.arange(1, tau_max + 1)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] * lags / np.maximum(cum, 1e-12)
    rms = np.sqrt(energy[:, 0] / w)
    loud = rms > rms.max() * 10 ** (SILENCE_DB / 20) if rms.max() > 0 else np.zeros(n_frames, bool)
    lag = np.zeros(n_frames, dtype=int)
    band = dn[:, tau_min:tau_max]
    below = band < YIN_THRESHOLD
    for i in np.flatnonzero(loud & (band.min(axis=1) < YIN_APERIODIC)):
        if below[i].any():
            t = tau_min + int(np.argmax(below[i]))
            while t + 1 < tau_max and dn[i, t + 1] < dn[i, t]:
                t += 1
        else:
            t = tau_min + int(np.argmin(band[i]))
        lag[i] = t
    # Octave check: a lag about half (double) the median lag of the voiced frames within
    # +-OCTAVE_SPAN frames is replaced by the best lag near twice (half) its value.
    voiced_idx = np.flatnonzero(lag)
    for i in voiced_idx:
        near = voiced_idx[np.abs(voiced_idx - i) <= OCTAVE_SPAN]
        ratio = lag[i] / np.median(lag[near])
        if ratio < 0.6 or ratio > 1.7:
            target = 2 * lag[i] if ratio < 0.6 else lag[i] // 2
            lo, hi = max(target - 3, tau_min), min(target + 4, tau_max)
            if lo < hi:
                lag[i] = lo + int(np.argmin(dn[i, lo:hi]))
    f0 = np.zeros(n_frames)
    for i in np.flatnonzero(lag):
        t = lag[i]
        den = dn[i, t - 1] - 2 * dn[i, t] + dn[i, t + 1]
        shift = 0.5 * (dn[i, t - 1] - dn[i, t + 1]) / den if den > 0 else 0.0
        f0[i] = sr / (t + float(np.clip(shift, -1, 1)))
    voiced = f0 > 0
    for s, e in runs(voiced):
        if e - s < 3:
            f0[s:e] = 0.0
    return f0


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True stretches of a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def active_frames(x: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: louder than SILENCE_DB below the loudest frame."""
    n = len(x) // HOP
    rms = np.sqrt(np.mean(np.asarray(x[: n * HOP], np.float64).reshape(n, HOP) ** 2, axis=1))
    return rms > rms.max() * 10 ** (SILENCE_DB / 20)


def speech_span(x: np.ndarray) -> tuple[float, float]:
    """Start and end (s) of the audio between the first and last active frame."""
    act = np.flatnonzero(active_frames(x))
    return act[0] / FRAME_RATE, (act[-1] + 1) / FRAME_RATE


def pauses(x: np.ndarray) -> list[tuple[float, float]]:
    """Silent stretches of at least MIN_PAUSE between speech (not leading or trailing)."""
    act = active_frames(x)
    first, last = np.flatnonzero(act)[[0, -1]]
    out = []
    for s, e in runs(~act):
        if s > first and e <= last and (e - s) / FRAME_RATE >= MIN_PAUSE:
            out.append((s / FRAME_RATE, e / FRAME_RATE))
    return out


def f0_stats(f0: np.ndarray) -> dict[str, float | None]:
    v = f0[f0 > 0]
    if v.size == 0:
        return {
            "voiced_fraction": 0.0,
            "median_hz": None,
            "p10_hz": None,
            "p90_hz": None,
            "std_semitones": None,
        }
    st = 12 * np.log2(v)
    return {
        "voiced_fraction": round(float(v.size / f0.size), 3),
        "median_hz": round(float(np.median(v)), 1),
        "p10_hz": round(float(np.percentile(v, 10)), 1),
        "p90_hz": round(float(np.percentile(v, 90)), 1),
        "std_semitones": round(float(np.std(st)), 2),
    }


def _split(full: np.ndarray, prompt_alone: np.ndarray) -> tuple[float, float]:
    """The boundary between the two sentences: the pause whose start is nearest to where the
    prompt, spoken alone, ends. Returns (split time, deviation), both in seconds."""
    s_full, _ = speech_span(full)
    s_p, e_p = speech_span(prompt_alone)
    expected = s_full + (e_p - s_p)
    cands = pauses(full)
    if not cands:  # no pause at all: the caller tries another text
        return 0.0, float("inf")
    start, end = min(cands, key=lambda p: abs(p[0] - expected))
    return (start + end) / 2, start - expected


PREFETCH = 16  # items synthesised ahead in the worker processes


def _prefetch(ctx: BuildContext, voices: list, order: list[int], first: int, seen: set) -> None:
    """Have the workers synthesise items first..first+PREFETCH-1 as ``build`` will draw them.

    Replays the seeded draws of the first attempt; an item that needs a retry (rare)
    is synthesised on demand, identically. Only a speed-up.
    """
    seen = set(seen)
    utts = []
    for i in range(first, min(first + PREFETCH, ITEMS[ctx.size] + 1)):
        uid = f"prosody-{i:04d}"
        if ctx.has(f"{OUT}/{uid}.wav") and ctx.has(f"_meta/{uid}.json"):  # resumed
            saved = json.loads(ctx.path(f"_meta/{uid}.json").read_text(encoding="utf-8"))
            seen.add(saved["row"]["prompt_text"])
            continue
        template, slots = PROMPTS[order[(i - 1) % len(PROMPTS)]]
        prompt, cont = draw(template, slots, TYPES[(i - 1) % len(TYPES)], ctx.rng("text", i), seen)
        seen.add(prompt)
        name = voices[(i - 1) % len(voices)].info.name
        utts += [Utterance(name, "text", f"{prompt} {cont}"), Utterance(name, "text", prompt)]
    ctx.prefetch(utts)


class Prosody(Subset):
    name = "prosody"
    version = 1
    outputs = (OUT,)
    description = "two-sentence utterances with reference F0 for prompted continuation"

    def planned(self, size: str) -> int:
        return ITEMS[size]

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        order = ctx.rng("frames").sample(range(len(PROMPTS)), len(PROMPTS))
        rows, seen, retries = [], set(), 0
        for i in range(1, ITEMS[ctx.size] + 1):
            if (i - 1) % PREFETCH == 0:
                _prefetch(ctx, voices, order, i, seen)
            v = voices[(i - 1) % len(voices)]
            kind = TYPES[(i - 1) % len(TYPES)]  # voices and types in turn
            uid = f"prosody-{i:04d}"
            rel, meta = f"{OUT}/{uid}.wav", f"_meta/{uid}.json"
            if ctx.has(rel) and ctx.has(meta):
                saved = json.loads(ctx.path(meta).read_text(encoding="utf-8"))
                rows.append(saved["row"])
                seen.add(saved["row"]["prompt_text"])
                retries += saved["retries"]
                ctx.tick()
                continue
            rng = ctx.rng("text", i)
            for attempt in range(MAX_ATTEMPTS):
                template, slots = PROMPTS[order[(i - 1 + attempt) % len(PROMPTS)]]
                prompt, cont = draw(template, slots, kind, rng, seen)
                audio = v.text(f"{prompt} {cont}")
                split, deviation = _split(audio, v.text(prompt))
                if abs(deviation) <= SPLIT_TOLERANCE:
                    break
            else:
                raise RuntimeError(f"prosody: {uid}: no sentence boundary found in the audio")
            retries += attempt
            seen.add(prompt)
            ctx.write_wav(rel, audio)
            audio, _ = sf.read(str(ctx.path(rel)), dtype="float32")  # measure what was written
            f0 = yin_f0(audio)
            start, end = speech_span(audio)
            cut = round(split * FRAME_RATE)
            row = {
                "id": uid,
                "file": f"{uid}.wav",
                "voice": v.info.name,
                "gender": v.info.gender,
                "transcript": f"{prompt} {cont}",
                "prompt_text": prompt,
                "continuation_text": cont,
                "continuation_type": kind,
                "duration": round(len(audio) / SAMPLE_RATE, 4),
                "speech_start": round(start, 2),
                "speech_end": round(end, 2),
                "prompt_end": round(split, 2),
                "prompt_end_check_s": round(deviation, 3),
                "f0_frame_rate": FRAME_RATE,
                "f0_hz": [round(float(f), 1) for f in f0],
                "voiced_segments": [[s / FRAME_RATE, e / FRAME_RATE] for s, e in runs(f0 > 0)],
                "pauses": [[s, e] for s, e in pauses(audio)],
                "f0_stats": {"prompt": f0_stats(f0[:cut]), "continuation": f0_stats(f0[cut:])},
            }
            ctx.write_text(meta, json.dumps({"row": row, "retries": attempt}))
            rows.append(row)
            ctx.tick()
        ctx.write_text(f"{OUT}/prosody.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        per_voice = {v.info.name: sum(r["voice"] == v.info.name for r in rows) for v in voices}
        per_type = {k: sum(r["continuation_type"] == k for r in rows) for k in TYPES}
        medians = {}
        for v in voices:
            f = np.concatenate([np.asarray(r["f0_hz"]) for r in rows if r["voice"] == v.info.name])
            medians[v.info.name] = round(float(np.median(f[f > 0])), 1) if (f > 0).any() else None
        dev = max(abs(r["prompt_end_check_s"]) for r in rows)
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                items=len(rows),
                voices=",\n  ".join(
                    f"{v.info.name} ({v.info.gender}, {per_voice[v.info.name]} files, median F0 "
                    f"{medians[v.info.name]} Hz)"
                    for v in voices
                ),
                types=", ".join(f"{k} {n}" for k, n in per_type.items()),
                minutes=sum(r["duration"] for r in rows) / 60,
                tol=SPLIT_TOLERANCE,
                retries=retries,
                dev=dev,
                frames=len(PROMPTS),
                conts=sum(len(c) for c in CONTINUATIONS.values()),
            ),
        )
        return SubsetResult(
            {"utterances": len(rows), **{f"type {k}": n for k, n in per_type.items()}},
            [v.info.name for v in voices],
            {"median_f0_hz": medians, "max_split_deviation_s": dev, "split_retries": retries},
        )


CARD = """\
# Built-in prosody subset (pGSLM-style prompted continuation), size {size}, seed {seed}

Layout: `*.wav` (16 kHz, 16-bit, one voice each) and `prosody.jsonl`, one object per file:
`id, file, voice, gender, transcript, prompt_text, continuation_text, continuation_type,
duration, speech_start, speech_end, prompt_end, prompt_end_check_s, f0_frame_rate, f0_hz,
voiced_segments, pauses, f0_stats`. Times are in seconds from the start of the file.
The prompt is the audio up to `prompt_end`; the rest is the reference continuation.

How it was made
- {items} utterances ({minutes:.1f} minutes). Each is a prompt sentence (from {frames}
  hand-written templates of small everyday events) followed by a continuation sentence
  ({conts} hand-written ones) of one of five types, taken in turn so the types are
  balanced. The type sets the expected intonation (a yes-no question usually rises at
  the end, a list has continuation rises). Types:
  {types}.
- Voices, taken in turn; both sentences are synthesised together as one text, so the
  prosody across the boundary is the synthesiser's own:
  {voices}.
- `prompt_end`: the middle of the pause between the sentences. The pause is the silent
  stretch (frames 40 dB below the loudest, at least 50 ms) whose start is nearest to where
  speech ends when the prompt sentence is synthesised alone; the difference is
  `prompt_end_check_s` (largest here: {dev:.3f} s). Above {tol} s the text is replaced
  by another ({retries} replacements here).
- `f0_hz`: F0 in Hz at `f0_frame_rate` = 100 frames/s (frame i centred at i/100 s), 0 for
  unvoiced, measured on the written file by a YIN-style estimator (25 ms difference
  function, cumulative-mean normalisation, threshold 0.15 with a fallback to the best lag
  below 0.35, 60-400 Hz, an octave check against the median of the surrounding 0.5 s,
  parabolic refinement, 40 dB silence gate, voiced runs under 30 ms dropped; see `yin_f0`
  in `speechlm_eval/builtin/subsets/prosody.py`). `voiced_segments` are the voiced runs of
  that track, `pauses` the silent stretches of at least 50 ms inside the speech.
  `f0_stats` summarise the prompt and the continuation (voiced fraction, median, 10th and
  90th percentile in Hz, standard deviation of log F0 in semitones).
- No word or phone durations: the voices do not report alignments here, and estimating
  them (forced alignment) would make the reference depend on another model.

What it can and cannot tell
- It lets one check whether a model's continuation of a prompt keeps the speaker's pitch
  range and roughly the expected intonation and pausing, by comparing F0 and pause
  statistics of the generated continuation with those of the reference continuation
  (the kind of comparison pGSLM-style prosody evaluations make).
- It is not pGSLM's evaluation data (LibriSpeech read speech, Expresso's expressive
  styles): the voices are synthetic with narrow, stereotyped prosody (eSpeak especially),
  there are only 2-3 voices and no expressive styles, and the reference continuation is
  one rendering of many plausible ones. F0 comes from a simple estimator, not from a
  tuned tracker (pGSLM used YAAPT); expect occasional octave errors at voicing edges.
"""
