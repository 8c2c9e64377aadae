"""sWUGGY-style lexical subset in the ZeroSpeech 2021 ``lexical/dev`` layout.

Real words from CMUdict, drawn evenly from the five ZR2021 frequency bands (word
counts per 10 million words from wordfreq); for each, a Wuggy-style non-word with
the same number of phones (see ``lexicon.py``). Words and non-words are both spoken
from phonemes by the same voice, so the only systematic difference is lexicality.
"""

from __future__ import annotations

import csv
import io

from ..context import BuildContext, Subset, SubsetResult, stem
from ..lexicon import FREQ_SCALE, candidate_words, load_lexicon

OUT = "zerospeech2021/lexical/dev"
BANDS = (("oov", 0, 1), ("1-5", 1, 5), ("6-20", 5, 20), ("21-100", 20, 100), (">100", 100, None))
PER_BAND = {"tiny": 2, "small": 40, "full": 400}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)


def _band(count: int) -> str:
    for label, lo, hi in BANDS:
        if count >= lo and (hi is None or count < hi):
            return label
    raise AssertionError(count)


class Lexical(Subset):
    name = "lexical"
    version = 1
    outputs = (OUT,)
    description = "sWUGGY-style spoken words vs matched non-words (ZR2021 lexical layout)"

    def planned(self, size: str) -> int:
        return PER_BAND[size] * len(BANDS) * VOICES[size] * 2

    def build(self, ctx: BuildContext) -> SubsetResult:
        from wordfreq import get_frequency_dict

        lex = load_lexicon()
        freq = get_frequency_dict("en")
        pool: dict[str, list[str]] = {b[0]: [] for b in BANDS}
        for w in candidate_words(lex, (w for w in freq if w in lex.prons)):
            pool[_band(round(freq[w] * FREQ_SCALE))].append(w)
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        rows = []
        pair_id = 0
        for label, *_ in BANDS:
            rng = ctx.rng("words", label)
            candidates = rng.sample(pool[label], len(pool[label]))
            taken = 0
            for word in candidates:
                if taken == PER_BAND[ctx.size]:
                    break
                phones = lex.prons[word][0]
                non = lex.nonword(phones, ctx.rng("nonword", word))
                if non is None:
                    continue
                taken += 1
                pair_id += 1
                count = round(freq[word] * FREQ_SCALE)
                for v in voices:
                    for correct, ph in ((1, phones), (0, non)):
                        name = stem(ctx.seed, "lexical", pair_id, v.info.name, correct)
                        rel = f"{OUT}/{name}.wav"
                        if not ctx.has(rel):
                            ctx.write_wav(rel, v.phones(ph))
                        ctx.tick()
                        rows.append(
                            {
                                "filename": name,
                                "id": pair_id,
                                "voice": v.info.name,
                                "frequency": count if correct else "",
                                "word": word if correct else "",
                                "phones": " ".join(ph),
                                "length": len(ph),
                                "correct": correct,
                            }
                        )
            if taken < PER_BAND[ctx.size]:
                raise RuntimeError(f"lexical: only {taken} usable words in band {label}")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        ctx.write_text(f"{OUT}/gold.csv", buf.getvalue())
        n_pairs = pair_id
        ctx.write_text(
            f"{OUT}/README.md",
            CARD.format(
                pairs=n_pairs,
                per_band=PER_BAND[ctx.size],
                voices=", ".join(v.info.name for v in voices),
                files=len(rows),
                seed=ctx.seed,
                size=ctx.size,
            ),
        )
        return SubsetResult({"pairs": n_pairs, "files": len(rows)}, [v.info.name for v in voices])


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
- Pronunciations from CMUdict. Each word gets a non-word made the Wuggy way: syllables
  (maximal onset), then about a third of the onset/nucleus/coda segments replaced by
  segments attested in that position (weighted by their frequency), keeping the phone
  count and vowel stress; kept only if it is not the pronunciation of any CMUdict word and
  every phone bigram occurs in CMUdict.
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
"""
