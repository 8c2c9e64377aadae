"""sWUGGY-style lexical subset in the ZeroSpeech 2021 ``lexical/dev`` layout.

Real words from CMUdict, drawn evenly from the five ZR2021 frequency bands (word
counts per 10 million words from wordfreq); for each, Wuggy-style non-words with
the same number of phones (see ``lexicon.py``). Words and non-words are both spoken
from phonemes by the same voice, so the only systematic difference is lexicality.

Duration balance: matching phone counts does not match durations (non-words made of
frequent segments came out longer, so "prefer the shorter file" beat chance). Each
word gets up to ``CANDIDATES`` non-words; their exact durations in every voice are
computed before synthesis, and the kept non-word is the closest in duration among
those that keep the length-only rule at chance within the band and overall
(``balance.py``). A word with no such non-word within ``MAX_MISMATCH`` is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..balance import Balance, balance_row, mismatch, pair_score, summary
from ..context import BuildContext, Subset, SubsetResult, stem
from ..lexicon import FREQ_SCALE, Lexicon, candidate_words, load_lexicon
from ..synth import Utterance

OUT = "zerospeech2021/lexical/dev"
BANDS = (("oov", 0, 1), ("1-5", 1, 5), ("6-20", 5, 20), ("21-100", 20, 100), (">100", 100, None))
PER_BAND = {"tiny": 2, "small": 40, "full": 400}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
CANDIDATES = 4  # non-words generated per word (distinct seeds)
MAX_MISMATCH = 0.15  # |dur(word) - dur(non-word)| / shorter, in every voice


def _band(count: int) -> str:
    for label, lo, hi in BANDS:
        if count >= lo and (hi is None or count < hi):
            return label
    raise AssertionError(count)


def _nonwords(lex: Lexicon, ctx: BuildContext, word: str) -> list[list[str]]:
    phones = lex.prons[word][0]
    out: list[list[str]] = []
    for k in range(CANDIDATES):
        non = lex.nonword(phones, ctx.rng("nonword", word, k))
        if non is not None and non not in out:
            out.append(non)
    return out


@dataclass
class _Word:
    """A screened word: its candidate non-words and every length (samples) per voice."""

    word: str
    band: str
    count: int
    phones: list[str]
    word_samples: list[int]
    options: list[tuple[list[str], list[int]]]  # (non-word, its lengths per voice)


def select(screened: dict[str, list[_Word]], quota: int) -> list[dict[str, Any]]:
    """Pick ``quota`` words per band, in the seeded order (a pure function of its input).

    A word is taken with its closest non-word among those within ``MAX_MISMATCH`` that keep
    the length-only rule within the balance slack, in its band and overall; a word with no
    such non-word is skipped.
    """
    bal = Balance()
    pairs: list[dict[str, Any]] = []
    for label, *_ in BANDS:
        taken = 0
        for w in screened[label]:
            if taken == quota:
                break
            opts = [(mismatch(w.word_samples, ln), pair_score(w.word_samples, ln), non, ln)
                    for non, ln in w.options]  # fmt: skip
            ok = [o for o in opts if o[0] <= MAX_MISMATCH and bal.fits(label, o[1])]
            if not ok:
                continue
            mm, score, non, ln = min(ok, key=lambda o: o[0])  # the first of the closest
            bal.add(label, score)
            taken += 1
            pairs.append({
                "word": w.word, "band": label, "count": w.count, "phones": w.phones,
                "nonword": non, "word_samples": w.word_samples, "nonword_samples": ln,
                "length_rule": score, "mismatch": mm,
            })  # fmt: skip
    return pairs


def plan(ctx: BuildContext, voices: list[str]) -> list[dict[str, Any]]:
    """The pairs (no audio): word, band, chosen non-word and both durations per voice.

    Words are screened in rounds, all bands at once (the lengths are computed in the
    worker processes), and the selection is run again on everything screened so far
    until every band is full.
    """
    from wordfreq import get_frequency_dict

    lex = load_lexicon()
    freq = get_frequency_dict("en")
    pool: dict[str, list[str]] = {b[0]: [] for b in BANDS}
    for w in candidate_words(lex, (w for w in freq if w in lex.prons)):
        pool[_band(round(freq[w] * FREQ_SCALE))].append(w)
    quota = PER_BAND[ctx.size]
    order = {b: ctx.rng("words", b).sample(pool[b], len(pool[b])) for b in pool}
    screened: dict[str, list[_Word]] = {b: [] for b in pool}
    missing = dict.fromkeys(pool, quota)
    while True:
        batch = []
        for label, n in missing.items():  # about 1.25x what is missing
            start = len(screened[label])
            if start >= len(order[label]):
                raise RuntimeError(f"lexical: not enough usable words in band {label}")
            for word in order[label][start : start + (5 * n) // 4 + 1]:
                batch.append((label, word, lex.prons[word][0], _nonwords(lex, ctx, word)))
        ctx.status(f"balancing durations: screening {len(batch)} words")
        utts = [Utterance.of(v, "phones", ph) for *_, phones, nons in batch
                for ph in (phones, *nons) for v in voices]  # fmt: skip
        lengths = iter(ctx.lengths(utts))
        for label, word, phones, nons in batch:
            lw = [next(lengths) for _ in voices]
            options = [(non, [next(lengths) for _ in voices]) for non in nons]
            count = round(freq[word] * FREQ_SCALE)
            screened[label].append(_Word(word, label, count, phones, lw, options))
        pairs = select(screened, quota)
        got = {b: sum(p["band"] == b for p in pairs) for b in pool}
        missing = {b: quota - got[b] for b in pool if got[b] < quota}
        if not missing:
            return pairs


class Lexical(Subset):
    name = "lexical"
    version = 2  # 2: duration-balanced non-words, Piper on one thread
    outputs = (OUT,)
    description = "sWUGGY-style spoken words vs matched non-words (ZR2021 lexical layout)"

    def planned(self, size: str) -> int:
        return PER_BAND[size] * len(BANDS) * VOICES[size] * 2

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices)[: VOICES[ctx.size]]
        pairs = ctx.memo("lexical-plan", lambda: plan(ctx, voices))
        rows, todo = [], []
        for pair_id, p in enumerate(pairs, 1):
            for k, v in enumerate(voices):
                for correct, ph, n in ((1, p["phones"], p["word_samples"][k]),
                                       (0, p["nonword"], p["nonword_samples"][k])):  # fmt: skip
                    name = stem(ctx.seed, "lexical", pair_id, v, correct)
                    rel = f"{OUT}/{name}.wav"
                    if ctx.has(rel):
                        ctx.tick()
                    else:
                        todo.append((rel, n, Utterance.of(v, "phones", ph)))
                    rows.append({
                        "filename": name, "id": pair_id, "voice": v,
                        "frequency": p["count"] if correct else "",
                        "word": p["word"] if correct else "",
                        "phones": " ".join(ph), "length": len(ph), "correct": correct,
                    })  # fmt: skip
        ctx.write_planned(todo)
        ctx.write_csv(f"{OUT}/gold.csv", rows)
        balance = {
            label: summary([p["length_rule"] for p in pairs if p["band"] == label],
                           [p["mismatch"] for p in pairs if p["band"] == label])
            for label, *_ in BANDS
        }  # fmt: skip
        balance["all"] = summary([p["length_rule"] for p in pairs], [p["mismatch"] for p in pairs])
        table = "\n".join(balance_row(k, b) for k, b in balance.items())
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                pairs=len(pairs),
                per_band=PER_BAND[ctx.size],
                voices=", ".join(voices),
                files=len(rows),
                seed=ctx.seed,
                size=ctx.size,
                candidates=CANDIDATES,
                max_mismatch=round(100 * MAX_MISMATCH),
                table=table,
            ),
        )
        return SubsetResult(
            {"pairs": len(pairs), "files": len(rows)}, voices, {"duration_balance": balance}
        )


CARD = """\
# Built-in lexical subset (sWUGGY-style), size {size}, seed {seed}

Layout: ZeroSpeech 2021 `lexical/dev`: `*.wav` (16 kHz, 16-bit) and `gold.csv` with
`filename,id,voice,frequency,word,phones,length,correct` (correct = 1 for the word).

How it was made
- {pairs} real words, {per_band} from each ZR2021 frequency band (oov, 1-5, 6-20, 21-100,
  >100). "frequency" is wordfreq's estimate as a count per 10 million words, so the bands
  mean the same thing as counts in ZR2021 do only roughly (ZR2021 counted LibriSpeech
  training transcripts). "oov" words are attested English words (in CMUdict and wordfreq)
  that round to 0 per 10 million.
- Pronunciations from CMUdict. Each word gets up to {candidates} non-words made the Wuggy
  way: syllables (maximal onset), then about a third of the onset/nucleus/coda segments
  replaced by segments attested in that position (weighted by their frequency), keeping
  the phone count and vowel stress; kept only if it is not the pronunciation of any
  CMUdict word and every phone bigram occurs in CMUdict.
- Duration balance (from the audio durations alone; no model was consulted): the exact
  duration of the word and of each candidate non-word in every voice is computed first.
  A candidate qualifies if the two durations differ by at most {max_mismatch}% in every
  voice and taking it keeps the rule "prefer the shorter file" at chance: the running sum
  of (rule score - 0.5) within the frequency band and over the whole set stays within
  0.5 (the rule's score on a pair is the mean over voices of 1 / 0.5 / 0 for a shorter /
  equally long / longer word). The closest qualifying candidate is kept; a word without
  one is skipped and the next word of the band drawn. Matching phone counts alone left
  the durations unbalanced: on the previous (unbalanced) small build the length rule
  scored 0.464 +- 0.024, from 0.371 to 0.550 across bands. What it scores on this
  build, and the remaining mismatch (|word - non-word| / shorter, per voice, median and
  max over pairs):

| band | pairs | length-rule accuracy | median mismatch | max mismatch |
| --- | --- | --- | --- | --- |
{table}

- Voices: {voices}. Both members of a pair are spoken from phonemes by the same voice, so
  only lexicality differs systematically. File names are opaque hashes.
- {files} files in all.

What it can and cannot tell
- It measures whether a model assigns higher likelihood to words than to matched
  non-words, like sWUGGY. Numbers are not comparable with published sWUGGY scores: other
  words, other voices (synthetic, 2-3 instead of 4), fewer pairs, and phonotactic checks
  on bigrams only (Wuggy also matches transition frequencies).
- Synthetic voices read phonemes without prosodic context; a model trained on natural
  speech meets a domain shift, the same for words and non-words.
- The balance is on duration. A model's own length measure (e.g. de-duplicated units)
  need not follow duration: on the previous build the rule "fewer units" of one unit LM
  scored 0.558 while the duration rule scored 0.464, so unit rate, not duration, carried
  that cue. Run the `length-baseline` model next to any model to see what duration alone
  scores, and check a model's token counts on words vs non-words. Selecting non-words by
  duration also selects their segments a little (words whose non-words could not be
  matched are left out).
"""
