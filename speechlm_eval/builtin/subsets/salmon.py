"""SALMon-style acoustic consistency subset in the slp-rl/salmon layout.

Five of SALMon's eight parts, each ``salmon/<part>/sample_<idx>_<k>.wav`` with k = 0
the positive (one acoustic condition throughout) and k = 1 the negative (the
condition switches partway). Both candidates of a sample contain the same words;
everything except the manipulated property is shared sample for sample where the
construction allows it (see the card). All noise and room responses are generated
procedurally from the build seed; speech comes from the built-in voices.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE, TARGET_RMS, Voice

SR = SAMPLE_RATE
PARTS = (
    "speaker_consistency",
    "gender_consistency",
    "bg_domain_consistency",
    "bg_all_consistency",
    "rir_consistency",
)
NOT_BUILT = {
    "sentiment_consistency": "needs one speaker saying one sentence in several emotions; "
    "no offline voice here renders emotion",
    "sentiment_alignment": "needs emotional speech whose emotion matches or contradicts the "
    "words; same reason",
    "bg_alignment": "needs background sounds that semantically match the spoken content "
    "(e.g. 'the dog barked' over barking); procedural noise cannot do that honestly",
}
PER_PART = {"tiny": 3, "small": 60, "full": 300}

LEAD, PAUSE, TAIL = 0.3, 0.2, 0.3  # s: silence before, between and after the two halves
NOISE_MARGIN = 0.4  # s: noise-only lead-in and tail in the background parts
RIR_LEAD, RIR_TAIL = 0.2, 0.6  # s: room for the reverberation tail
XFADE = 0.05  # s: cross-fade at every switch
SNR_DB = (10.0, 15.0)  # speech-to-noise ratio, drawn per sample, equal in both candidates
RT60_SHORT = (0.2, 0.45)  # s; the long RT60 is drawn from [2 * short, 1.0]
RT60_MAX = 1.0
FLOOR_DB = -40.0  # silence threshold (short-time power relative to the peak)

# Neutral declarative sentences, each with one comma where it is split into two halves.
SENTENCES = (
    "After the rain stopped, the children went outside.",
    "When the bus arrived, we found two empty seats.",
    "Every morning at seven, the baker opens the shop.",
    "If the road is clear, we will arrive by noon.",
    "Behind the old library, there is a small garden.",
    "Before the meeting started, she read the report again.",
    "In the early spring, the river rises quickly.",
    "Once the paint was dry, they moved the table back.",
    "At the end of the street, a blue door stands open.",
    "While the water heated, he cut the vegetables.",
    "On the second floor, the windows face the park.",
    "As the sun went down, the air grew cooler.",
    "During the long winter, the lake freezes over.",
    "Near the train station, a new hotel was built.",
    "After a short break, the class continued reading.",
    "When the lights came on, the hall was almost full.",
    "Along the narrow path, small stones marked the way.",
    "Since the store was closed, we walked home instead.",
    "Under the wooden bridge, the stream runs slowly.",
    "By the time we left, the snow had stopped.",
    "In the small village, most houses have red roofs.",
    "Before the sun rose, the farmer fed the animals.",
    "At the top of the hill, the wind was strong.",
    "When the letter came, she put it on the desk.",
    "Across the quiet square, a clock struck nine.",
    "After dinner was over, they washed the dishes together.",
    "Inside the glass box, an old map was displayed.",
    "On most weekdays, the office opens at eight.",
    "As the train slowed down, the passengers stood up.",
    "Through the open window, we heard the birds.",
    "When the kettle whistled, he poured the tea.",
    "Beside the front gate, there is a tall tree.",
    "In the middle of the room, a lamp stood on the floor.",
    "After the guests had left, the house was quiet.",
    "From the kitchen window, you can see the field.",
    "Once a week, the neighbours meet for lunch.",
    "At the edge of the forest, a path turns left.",
    "While the printer was busy, she checked her notes.",
    "On the last day of summer, the pool was closed.",
    "Near the harbour wall, the boats rocked gently.",
)


# --------------------------------------------------------------------------- signal helpers


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR))


def _active(x: np.ndarray, floor_db: float = FLOOR_DB) -> tuple[int, int]:
    """First and one-past-last sample whose 10 ms power is within ``floor_db`` of the peak."""
    n = int(0.01 * SR)
    p = np.convolve(np.asarray(x, dtype=np.float64) ** 2, np.ones(n) / n, mode="same")
    idx = np.nonzero(p > p.max() * 10 ** (floor_db / 10))[0]
    return int(idx[0]), int(idx[-1]) + 1


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    return x / max(_rms(x), 1e-12)


def _loudness(x: np.ndarray) -> np.ndarray:
    """Scale to the voices' RMS; if the peaks would clip, scale down to a 0.99 peak."""
    return x * min(TARGET_RMS / max(_rms(x), 1e-12), 0.99 / max(float(np.max(np.abs(x))), 1e-12))


def _switch(a: np.ndarray, b: np.ndarray, at: int, equal_power: bool) -> np.ndarray:
    """``a`` before sample ``at``, ``b`` after, with an XFADE cross-fade centred on ``at``.

    Equal-power for independent signals (noises), equal-gain for correlated ones
    (the same speech in two rooms), so the level does not bump at the switch.
    """
    w = int(XFADE * SR)
    s = at - w // 2
    u = (np.arange(w) + 0.5) / w
    ga, gb = (np.cos(np.pi / 2 * u), np.sin(np.pi / 2 * u)) if equal_power else (1 - u, u)
    out = np.array(a, dtype=np.float64)
    out[s : s + w] = a[s : s + w] * ga + b[s : s + w] * gb
    out[s + w :] = b[s + w :]
    return out


def _sos(kind: str, freq: float | list[float], order: int = 2) -> np.ndarray:
    return signal.butter(order, freq, btype=kind, fs=SR, output="sos")


# --------------------------------------------------------------------------- noises
# Every generator: (rng, n samples) -> float64, zero mean, unit RMS over its whole length.
# Parameters are drawn once per instance, so one instance is one "recording".


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-exponent / 2)
    spec[f < 20] = 0  # no DC drift
    return _unit(np.fft.irfft(spec, n))


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    return _unit(rng.standard_normal(n))


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    return _colored(rng, n, 1.0)


def _brown(rng: np.random.Generator, n: int) -> np.ndarray:
    return _colored(rng, n, 2.0)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains / transformer hum: 50 or 60 Hz with decaying, odd-emphasised harmonics."""
    t = np.arange(n) / SR
    f0 = float(rng.choice([50.0, 60.0]))
    tilt = rng.uniform(0.3, 1.0)
    x = np.zeros(n)
    for k in range(1, 21):
        amp = k**-tilt * (1.5 if k % 2 else 1.0) * rng.uniform(0.5, 1.0)
        x += amp * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    return _unit(_unit(x) + 0.05 * _pink(rng, n))


def _engine(rng: np.random.Generator, n: int) -> np.ndarray:
    """Idling engine: low-passed noise amplitude-modulated at a drifting firing rate."""
    t = np.arange(n) / SR
    rate = rng.uniform(15, 45)
    drift = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(rate * drift) / SR
    pulses = (0.5 + 0.5 * np.cos(phase)) ** 4
    rumble = signal.sosfilt(_sos("lowpass", rng.uniform(300, 900)), rng.standard_normal(n))
    tone = sum(k**-1.0 * np.cos(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 7))
    return _unit(_unit(rumble * (0.3 + pulses)) + 0.5 * _unit(tone))


def _fan(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fan / ventilation: band-passed noise plus a blade-pass tone with harmonics."""
    t = np.arange(n) / SR
    fc = rng.uniform(300, 1500)
    band = signal.sosfilt(_sos("bandpass", [fc / 1.6, fc * 1.6]), rng.standard_normal(n))
    blade = rng.uniform(80, 250)
    tone = sum(0.5**k * np.sin(2 * np.pi * (k + 1) * blade * t) for k in range(3))
    return _unit(_unit(band) + 0.3 * _unit(tone))


def _rain(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rain: a high-passed hiss plus many short resonant droplet clicks."""
    hiss = signal.sosfilt(_sos("highpass", 800), _pink(rng, n))
    drops = np.zeros(n)
    count = int(rng.uniform(80, 300) * n / SR)
    kt = np.arange(int(0.02 * SR)) / SR
    for f in rng.uniform(1500, 5000, 3):  # three droplet sizes
        k = np.exp(-kt / rng.uniform(0.002, 0.005)) * np.sin(2 * np.pi * f * kt)
        imp = np.zeros(n)
        imp[rng.integers(0, n, count // 3)] = rng.lognormal(0, 0.7, count // 3)
        drops += signal.fftconvolve(imp, k)[:n]
    return _unit(0.6 * _unit(hiss) + _unit(drops))


def _wind(rng: np.random.Generator, n: int) -> np.ndarray:
    """Wind: low-passed noise with slow random gusts (0.2-1 s)."""
    lp = signal.sosfilt(_sos("lowpass", rng.uniform(200, 600)), rng.standard_normal(n))
    knots = rng.standard_normal(int(n / SR * 3) + 4)  # ~3 gust values per second
    env = np.exp(0.6 * np.interp(np.arange(n) / SR * 3, np.arange(knots.size), knots))
    env = signal.sosfiltfilt(_sos("lowpass", 2.0, 1), env)
    return _unit(lp * env)


def _birds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Birdsong-like chirps: short FM sweeps at 2.5-6 kHz over a faint background."""
    x = 0.1 * _pink(rng, n)
    rate = rng.uniform(3, 8)
    base = rng.uniform(2500, 5000)
    for start in rng.integers(0, n, int(rate * n / SR) + 1):
        d = int(rng.uniform(0.04, 0.15) * SR)
        f = np.linspace(base * rng.uniform(0.8, 1.2), base * rng.uniform(0.6, 1.5), d)
        chirp = np.hanning(d) * np.sin(2 * np.pi * np.cumsum(f) / SR) * rng.uniform(0.3, 1.0)
        end = min(n, start + d)
        x[start:end] += chirp[: end - start]
    return _unit(x)


def _note(f: float, d: int, partials: list[tuple[float, float]]) -> np.ndarray:
    t = np.arange(d) / SR
    return sum(a * np.sin(2 * np.pi * f * r * t) for r, a in partials)


def _chords(rng: np.random.Generator, n: int) -> np.ndarray:
    """A slow chord progression (I, IV, V, vi of a random key) on an organ-like timbre."""
    key = 48 + int(rng.integers(0, 12))
    dur = int(rng.uniform(0.4, 0.9) * SR)
    partials = [(h, 0.6 ** (h - 1)) for h in range(1, 5)]
    x = np.zeros(n)
    fade = int(0.02 * SR)
    env = np.ones(dur)
    env[:fade] = np.linspace(0, 1, fade)
    env[-fade:] = np.linspace(1, 0, fade)
    for start in range(0, n, dur):
        root, minor = [(0, False), (5, False), (7, False), (9, True)][int(rng.integers(0, 4))]
        for step in (0, 3 if minor else 4, 7, 12):
            f = 440 * 2 ** ((key + root + step - 69) / 12)
            seg = (_note(f, dur, partials) * env)[: n - start]
            x[start : start + seg.size] += seg
    return _unit(x)


def _bells(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bell-like pentatonic melody: inharmonic, exponentially decaying partials."""
    key = 72 + int(rng.integers(0, 12))
    step = int(rng.uniform(0.15, 0.35) * SR)
    tau = rng.uniform(0.2, 0.5)
    ring = int(1.0 * SR)
    t = np.arange(ring) / SR
    partials = [(1.0, 1.0), (2.0, 0.6), (2.76, 0.4), (5.4, 0.25), (8.93, 0.15)]
    x = np.zeros(n + ring)
    for start in range(0, n, step):
        f = 440 * 2 ** ((key + int(rng.choice([0, 2, 4, 7, 9, 12, 14, 16])) - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t * r / tau) for r, a in partials)
        x[start : start + ring] += tone
    return _unit(x[:n])


NOISES: dict[str, tuple[str, Callable[[np.random.Generator, int], np.ndarray]]] = {
    "white": ("stationary", _white),
    "pink": ("stationary", _pink),
    "brown": ("stationary", _brown),
    "hum": ("machine", _hum),
    "engine": ("machine", _engine),
    "fan": ("machine", _fan),
    "rain": ("nature", _rain),
    "wind": ("nature", _wind),
    "birds": ("nature", _birds),
    "chords": ("music", _chords),
    "bells": ("music", _bells),
}
DOMAINS = tuple(dict.fromkeys(d for d, _ in NOISES.values()))


# --------------------------------------------------------------------------- rooms


def _rir(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """Synthetic room impulse response, unit energy.

    A direct path at t = 0, 6-12 early reflections in the first 40 ms, and a diffuse
    tail of low-passed Gaussian noise whose energy decays by 60 dB in ``rt60`` seconds;
    reverberant energy is set so that direct / reverberant = ``drr_db``.
    """
    n = int(SR * 1.2 * rt60)
    t = np.arange(n) / SR
    decay = np.exp(-6.908 * t / rt60)  # amplitude: -60 dB at rt60
    early = np.zeros(n)
    k = int(rng.integers(6, 13))
    at = rng.uniform(0.002, 0.04, k)
    early[(at * SR).astype(int)] += rng.uniform(0.2, 0.7, k) * rng.choice([-1.0, 1.0], k)
    early *= decay
    tail = rng.standard_normal(n) * decay
    onset = int(0.005 * SR)
    tail[:onset] *= np.linspace(0, 1, onset)
    tail = signal.sosfilt(_sos("lowpass", rng.uniform(3000, 7000)), tail)
    rev = early + tail
    rev *= np.sqrt(1.0 / (10 ** (drr_db / 10) * float(np.sum(rev**2))))
    h = rev
    h[0] += 1.0
    return h / np.sqrt(float(np.sum(h**2)))


def _drr(rng: np.random.Generator, rt60: float) -> float:
    """Direct-to-reverberant ratio (dB): lower in more reverberant rooms, with some spread."""
    return float(rng.uniform(0.0, 4.0) - 10 * np.log10(rt60 / 0.3))


# --------------------------------------------------------------------------- speech


def _half_text(sentence: int, k: int) -> str:
    first, second = SENTENCES[sentence].split(", ", 1)
    return f"{first}," if k == 0 else second  # the comma keeps continuation prosody


class _Speech:
    """Sentence halves per voice, synthesised once per build (trimmed, at the common RMS)."""

    def __init__(self, voices: dict[str, Voice]) -> None:
        self.voices = voices
        self.cache: dict[tuple[str, int, int], np.ndarray] = {}

    def half(self, voice: str, sentence: int, k: int) -> np.ndarray:
        key = (voice, sentence, k)
        if key not in self.cache:
            x = np.asarray(self.voices[voice].text(_half_text(sentence, k)), dtype=np.float64)
            a, b = _active(x)
            x = x[max(0, a - int(0.01 * SR)) : b + int(0.01 * SR)]
            self.cache[key] = x * (TARGET_RMS / _rms(x))
        return self.cache[key]

    def sentence(self, voice: str, sentence: int) -> np.ndarray:
        return np.concatenate(
            [self.half(voice, sentence, 0), _silence(PAUSE), self.half(voice, sentence, 1)]
        )


# --------------------------------------------------------------------------- parts


def _sentence_for(ctx: BuildContext, i: int) -> int:
    """Sample i's sentence: the pool in a seeded order, reshuffled every cycle (shared by parts,
    so the synthesis cache serves all five)."""
    cycle, pos = divmod(i, len(SENTENCES))
    return ctx.rng("sentences", cycle).sample(range(len(SENTENCES)), len(SENTENCES))[pos]


def _voice_pairs(voices: dict[str, Voice], same_gender: bool) -> list[tuple[str, str]]:
    """Ordered (first, second) voice pairs; both orders, so neither voice is always the switch."""
    g = {name: v.info.gender for name, v in voices.items()}
    pairs = [(a, b) for a in g for b in g if a != b and (g[a] == g[b]) == same_gender]
    if not pairs:
        kind = "same" if same_gender else "different"
        raise RuntimeError(f"salmon: the voice pool has no two voices of {kind} gender")
    return pairs


def _speaker(ctx: BuildContext, part: str, i: int, speech: _Speech, render: bool) -> tuple:
    pairs = _voice_pairs(ctx.voices, part == "speaker_consistency")
    a, b = pairs[i % len(pairs)]
    s = _sentence_for(ctx, i)
    first = speech.half(a, s, 0)
    switch = LEAD + (first.size + _silence(PAUSE).size) / SR
    row = {
        "voice": a,
        "positive": a,
        "negative": f"{a} -> {b}",
        "switch_s": f"{switch:.4f}",
        "detail": "",
    }
    if not render:
        return s, row, (a, b), None, None
    head = [_silence(LEAD), first, _silence(PAUSE)]
    pos = np.concatenate([*head, speech.half(a, s, 1), _silence(TAIL)])
    neg = np.concatenate([*head, speech.half(b, s, 1), _silence(TAIL)])
    n = max(pos.size, neg.size)  # the shorter one gets more trailing silence
    return s, row, (a, b), np.pad(pos, (0, n - pos.size)), np.pad(neg, (0, n - neg.size))


def _background(ctx: BuildContext, part: str, i: int, speech: _Speech, render: bool) -> tuple:
    names = list(ctx.voices)
    voice = names[i % len(names)]
    s = _sentence_for(ctx, i)
    rng = ctx.rng(part, i, "noise")
    domain = rng.choice(DOMAINS)
    first = rng.choice([t for t, (d, _) in NOISES.items() if d == domain])
    if part == "bg_domain_consistency":
        other = [t for t, (d, _) in NOISES.items() if d != domain]
    else:
        other = [t for t in NOISES if t != first]
    second = rng.choice(other)
    snr = rng.uniform(*SNR_DB)
    x = np.concatenate([_silence(NOISE_MARGIN), speech.sentence(voice, s), _silence(NOISE_MARGIN)])
    at = x.size // 2
    row = {
        "voice": voice,
        "positive": f"{first} ({NOISES[first][0]})",
        "negative": f"{first} ({NOISES[first][0]}) -> {second} ({NOISES[second][0]})",
        "switch_s": f"{at / SR:.4f}",
        "detail": f"snr_db={snr:.2f}",
    }
    if not render:
        return s, row, (voice,), None, None
    n1 = NOISES[first][1](ctx.np_rng(part, i, "noise", 1), x.size)
    n2 = NOISES[second][1](ctx.np_rng(part, i, "noise", 2), x.size)
    gain = TARGET_RMS / 10 ** (snr / 20)  # speech halves are at TARGET_RMS
    pos = x + gain * n1
    neg = x + gain * _switch(n1, n2, at, equal_power=True)
    return s, row, (voice,), _loudness(pos), _loudness(neg)


def _room(ctx: BuildContext, part: str, i: int, speech: _Speech, render: bool) -> tuple:
    names = list(ctx.voices)
    voice = names[i % len(names)]
    s = _sentence_for(ctx, i)
    rng = ctx.rng(part, i, "room")
    short = rng.uniform(*RT60_SHORT)
    long = rng.uniform(2 * short, RT60_MAX)
    rt = (short, long) if rng.random() < 0.5 else (long, short)
    drr = [_drr(ctx.np_rng(part, i, "drr", k), rt[k]) for k in range(2)]
    x = np.concatenate([_silence(RIR_LEAD), speech.sentence(voice, s), _silence(RIR_TAIL)])
    at = x.size // 2
    desc = [f"rt60={rt[k]:.2f}s drr={drr[k]:.1f}dB" for k in range(2)]
    row = {
        "voice": voice,
        "positive": desc[0],
        "negative": f"{desc[0]} -> {desc[1]}",
        "switch_s": f"{at / SR:.4f}",
        "detail": f"rt60_ratio={max(rt) / min(rt):.2f}",
    }
    if not render:
        return s, row, (voice,), None, None
    y = [
        _unit(signal.fftconvolve(x, _rir(ctx.np_rng(part, i, "rir", k), rt[k], drr[k]))[: x.size])
        for k in range(2)
    ]
    return s, row, (voice,), _loudness(y[0]), _loudness(_switch(y[0], y[1], at, equal_power=False))


PART_BUILDERS = {
    "speaker_consistency": _speaker,
    "gender_consistency": _speaker,
    "bg_domain_consistency": _background,
    "bg_all_consistency": _background,
    "rir_consistency": _room,
}


class Salmon(Subset):
    name = "salmon"
    version = 1
    outputs = tuple(f"salmon/{p}" for p in PARTS)
    description = "SALMon-style acoustic consistency (speaker, gender, background, room)"

    def planned(self, size: str) -> int:
        return PER_PART[size] * len(PARTS) * 2

    def build(self, ctx: BuildContext) -> SubsetResult:
        n = PER_PART[ctx.size]
        speech = _Speech(ctx.voices)
        missing = {
            _sentence_for(ctx, i)
            for part in PARTS
            for i in range(n)
            if not all(ctx.has(f"salmon/{part}/sample_{i}_{k}.wav") for k in (0, 1))
        }
        ctx.prefetch(  # every half of those sentences in every voice (a few go unused)
            Utterance(v, "text", _half_text(s, k))
            for s in sorted(missing)
            for v in ctx.voices
            for k in (0, 1)
        )
        used: set[str] = set()
        for part in PARTS:
            out = f"salmon/{part}"
            rows = []
            for i in range(n):
                rels = [f"{out}/sample_{i}_{k}.wav" for k in (0, 1)]
                render = not all(ctx.has(r) for r in rels)
                s, row, vs, pos, neg = PART_BUILDERS[part](ctx, part, i, speech, render)
                if render:
                    if pos.size != neg.size:
                        raise AssertionError(f"{part} sample {i}: candidates differ in length")
                    ctx.write_wav(rels[0], pos)
                    ctx.write_wav(rels[1], neg)
                ctx.tick(2)
                used.update(vs)
                rows.append({"sample": i, "text": SENTENCES[s], **row})
            ctx.write_csv(f"{out}/meta.csv", rows)
            same, diff = _pair_lines(ctx.voices, True), _pair_lines(ctx.voices, False)
            ctx.write_text(
                f"{out}/README.md",
                CARD.format(
                    part=part,
                    size=ctx.size,
                    seed=ctx.seed,
                    samples=n,
                    files=2 * n,
                    how=HOW[part].format(
                        snr=f"{SNR_DB[0]:g}-{SNR_DB[1]:g}",
                        xfade=int(XFADE * 1000),
                        margin=NOISE_MARGIN,
                        short=f"{RT60_SHORT[0]:g}-{RT60_SHORT[1]:g}",
                        rt_max=RT60_MAX,
                        domains=_domain_list(),
                        same=same[0],
                        same_note=same[1],
                        diff=diff[0],
                        diff_note=diff[1],
                        voices=", ".join(ctx.voices),
                        n_sentences=len(SENTENCES),
                    ),
                    not_built="\n".join(f"  - {k}: {v}." for k, v in NOT_BUILT.items()),
                ),
            )
        voices = [v for v in ctx.voices if v in used]
        counts = {"samples_per_part": n, "parts": len(PARTS), "files": 2 * n * len(PARTS)}
        notes = {
            "not_built": sorted(NOT_BUILT),
            "snr_db": list(SNR_DB),
            "noise_domains": {d: [t for t, (dd, _) in NOISES.items() if dd == d] for d in DOMAINS},
        }
        return SubsetResult(counts, voices, notes)


def _domain_list() -> str:
    return "\n".join(
        f"  - {d}: {', '.join(t for t, (dd, _) in NOISES.items() if dd == d)}" for d in DOMAINS
    )


def _pair_lines(voices: dict[str, Voice], same_gender: bool) -> tuple[str, str]:
    """Card lines listing the voice pairs, and a caveat when a pair also switches engine."""
    lines, crossing = [], 0
    for a, b in _voice_pairs(voices, same_gender):
        ia, ib = voices[a].info, voices[b].info
        other = ia.engine != ib.engine
        crossing += other
        mark = " (different engines)" if other else ""
        lines.append(f"  - {a} ({ia.gender}, {ia.engine}) -> {b} ({ib.gender}, {ib.engine}){mark}")
    note = (
        "- Caveat: a switch between engines (neural vs formant) changes the synthesis as well\n"
        "  as the speaker, so it is much easier to hear than a switch between two natural\n"
        "  speakers; pairs within one engine change mainly pitch and formants."
        if crossing
        else "- All pairs are voices of one engine."
    )
    return "\n".join(lines), note


HOW = {
    "speaker_consistency": """\
- Each sample is one sentence from a pool of {n_sentences} neutral sentences, split at its
  comma; every half is synthesised separately (the first half keeps its comma, so it ends
  with continuation prosody), trimmed of silence and set to the same RMS. Layout:
  0.3 s silence, first half, 0.2 s pause, second half, 0.3 s silence.
- Positive: both halves by voice A. Negative: the same first half (identical samples), then
  the second half by voice B of the same gender. Ordered pairs (A -> B), used in turn:
{same}
{same_note}
- Voices speak at different rates, so the second halves differ in length; the shorter
  candidate is padded with trailing silence (both orders of every pair are used, so which
  candidate gets more silence is balanced over the part).""",
    "gender_consistency": """\
- Built exactly like speaker_consistency (same sentence pool, halves, pauses and padding),
  but voice B has the other gender. Ordered pairs (A -> B), used in turn:
{diff}
{diff_note}""",
    "bg_domain_consistency": """\
- Speech: a whole sentence (two halves with a 0.2 s pause) by one voice, voices in turn
  ({voices}), with {margin} s of noise-only lead-in and tail.
- Background noise, generated procedurally per sample from the seed, in four domains:
{domains}
  A noise is drawn by domain first (uniform), then type; all its parameters
  (filter cut-offs, rates, keys, ...) are drawn once per sample and it is normalised to unit
  RMS over the whole file.
- Speech-to-noise ratio drawn per sample in {snr} dB (speech RMS over the speech halves),
  identical in both candidates and both noises.
- Positive: one noise throughout. Negative: the same speech and the same noise (identical
  samples) up to the middle of the file, then a noise from a different domain, with a
  {xfade} ms equal-power cross-fade so the switch itself is no click. Both candidates are
  then set to the same RMS, so their shared first halves differ by a gain of at most a
  few percent (about 0.1 dB).""",
    "bg_all_consistency": """\
- Built exactly like bg_domain_consistency, except that the negative's second noise is any
  other noise type, possibly of the same domain (e.g. white -> pink, rain -> wind).
- SNR {snr} dB, {xfade} ms equal-power cross-fade at the middle of the file, {margin} s
  noise-only lead-in and tail. Noise domains and types:
{domains}""",
    "rir_consistency": """\
- Speech: a whole sentence by one voice, voices in turn ({voices}),
  0.2 s lead-in and 0.6 s of tail for the reverberation.
- Rooms: synthetic impulse responses: a direct path, 6-12 early reflections in the first
  40 ms, and a diffuse tail of low-passed (3-7 kHz) Gaussian noise decaying 60 dB in RT60;
  direct-to-reverberant ratio = U(0, 4) dB - 10 log10(RT60 / 0.3 s), so livelier rooms are
  also more reverberant. Each sample draws two rooms: a short RT60 in {short} s and a long
  one in [2 x short, {rt_max}] s (ratio >= 2); which one the positive uses is a coin flip.
- Speech is convolved with both rooms (scipy fftconvolve); each version is set to the same
  RMS. Positive: room 1 throughout. Negative: room 1 up to the middle of the file (identical
  samples), then room 2, with a {xfade} ms linear cross-fade (the two versions are
  correlated, so equal-gain keeps the level). The switch is instantaneous, as if the whole
  room changed; a real talker would need to move. Both candidates are then set to the same
  RMS, so their shared first halves differ by a gain (at most about 0.5 dB).""",
}

CARD = """\
# Built-in SALMon part {part}, size {size}, seed {seed}

Layout: slp-rl/salmon: `sample_<idx>_0.wav` (positive, consistent) and `sample_<idx>_1.wav`
(negative, the property switches partway), 16 kHz, 16-bit. `meta.csv` says, per sample,
the text, voice, what each candidate contains and where the negative switches
(`switch_s`, seconds); the reader ignores it.

How it was made
{how}
- {samples} samples, {files} files. Speech is synthetic (the built-in deterministic voices);
  noise and rooms are procedural, so everything is reproducible from the seed alone.

What it can and cannot tell
- Like SALMon, it asks whether a model assigns a higher likelihood to acoustically
  consistent audio than to audio whose acoustics change midway. Numbers are not
  comparable with published SALMon scores: SALMon uses natural recordings (real speakers,
  recorded noises, measured rooms), these are synthetic voices, procedural noise and
  simulated rooms, with fewer samples and cleaner switches.
- Synthetic voices are an out-of-domain condition for models trained on natural speech;
  this affects positive and negative alike.
- The built-in suite has five of SALMon's eight parts. Not built:
{not_built}
"""
