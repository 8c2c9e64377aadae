"""The offline text LM: a character n-gram model (NLTK, Witten-Bell interpolation).

The ``text-lm`` judge's default (:mod:`.textlm`), shared with the cascade reference model
(``reference_models.cascade.ngram``, its former home, re-exports it).

Why characters: sWUGGY foils are non-words. An ASR transcript of a non-word is a spelling
no word-level vocabulary contains, and a closed-vocabulary word model would map every such
spelling to the same ``<UNK>`` (scoring all foils alike). A character model scores any
spelling from the letters it has seen, so "brick" vs "blick" is a real comparison of
English orthotactics; sentences are scored letter by letter the same way.

Why Witten-Bell: NLTK's ``KneserNeyInterpolated`` finds continuation counts by scanning
every context of the next order on each call (seconds per sentence at order 6 here), and
its unigram level divides by zero on unseen contexts; ``WittenBellInterpolated`` costs
one lookup per order and is the classic smoothing for character models (it was made for
text compression). Order 6 was chosen on a held-out split of the training text (see
MODEL_CARD.md), never on test data.

The model, its sentences and its symbols:

- text is normalised to lower-case ASCII letters, word-internal apostrophes and single
  spaces (:func:`normalise`; digits are spelled out with ``num2words``); every other
  character is a word boundary. These 28 symbols plus the end mark ``</s>`` are the
  whole alphabet, and every one of them occurs in the training text, so no input can
  fall outside the vocabulary.
- a sentence is ``<s>`` x (order - 1), its characters, ``</s>``; its log-probability is the
  sum over its characters and ``</s>`` (the "tokens" of the likelihood tasks).
- training counts, for every position after the padding and every order 1..N, the event
  (previous n-1 symbols, symbol); NLTK's own ``fit`` counts the same events when given
  them (:func:`sentence_events`). Feeding ~2 M events through ``fit`` takes tens of
  seconds, so :func:`count_codes` counts them with numpy and :meth:`CharNgram.__init__`
  stores the totals in NLTK's counter;
  ``tests/test_cascade_ngram.py`` checks both give identical counts and scores.

The shipped training text (``lm_data/train.txt``, packaged with ``reference_models.cascade``,
where it was first built) is rebuilt by ``python -m reference_models.cascade.ngram --rebuild``
(needs ``markov-draftjs==2.0.0``; the rebuild reads gslm-mini's corpus, so it stays with the
reference models).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from speechlm_eval.errors import ConfigError


def _package_dir(name: str) -> str:
    """The folder of the installed package ``name``, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the packaged n-gram training text needs the package {name!r}")
    return next(iter(spec.submodule_search_locations))


FORMAT = "cascade-char-ngram/1"
BOS, EOS = "<s>", "</s>"
# The packaged text stays where the cascade first shipped it (package data of the same wheel);
# located with find_spec, which imports nothing (a judge never imports reference-model code).
DATA_DIR = Path(_package_dir("reference_models")) / "cascade" / "lm_data"
TRAIN_TEXT = DATA_DIR / "train.txt"
MANIFEST = DATA_DIR / "ngram.json"
DEFAULT_ORDER = 6
ALPHABET = tuple("abcdefghijklmnopqrstuvwxyz' ")

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _spell_number(m: re.Match[str]) -> str:
    from num2words import num2words

    s = m.group(0)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", s):  # 1,000 -> 1000
        s = s.replace(",", "")
    try:
        value: float | int = float(s) if "." in s else int(s)
        return f" {num2words(value)} "
    except (ValueError, OverflowError):
        return " " + " ".join(num2words(int(d)) for d in s if d.isdigit()) + " "


def normalise(text: str) -> str:
    """Lower-case ASCII words with word-internal apostrophes, joined by single spaces.

    Accents are folded (NFKD), typographic apostrophes become ``'``, numbers are spelled
    out (``num2words``), anything else separates words: ``"Café's 2 dogs!"`` ->
    ``"cafe's two dogs"``.
    """
    t = unicodedata.normalize("NFKD", str(text)).replace("\u2019", "'").replace("\u2018", "'")
    t = t.encode("ascii", "ignore").decode("ascii")
    if any(c.isdigit() for c in t):
        t = _NUMBER.sub(_spell_number, t)
    return " ".join(_WORD.findall(t.lower().replace("-", " ")))


def symbols(text: str) -> list[str]:
    """The symbols a sentence is scored on: its normalised characters, then ``</s>``."""
    return [*normalise(text), EOS]


def sentence_events(chars: Sequence[str], order: int) -> Iterator[tuple[str, ...]]:
    """Every (context..., symbol) n-gram, n = 1..order, whose last symbol is a real one.

    ``chars`` is a sentence's symbols (characters and the final ``</s>``); the context is
    left-padded with ``<s>``. Exactly the events scoring needs: no n-gram predicts ``<s>``.
    """
    seq = [BOS] * (order - 1) + list(chars)
    for i in range(order - 1, len(seq)):
        for n in range(1, order + 1):
            yield tuple(seq[i - n + 1 : i + 1])


SYMBOLS: tuple[str, ...] = (BOS, *ALPHABET, EOS)  # code = index; base 32 packs an n-gram
_CODE = {c: i for i, c in enumerate(SYMBOLS)}
_BASE = 32


def count_codes(sentences: Iterable[str], order: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The counts of :func:`sentence_events` over normalised ``sentences``, per order n.

    Fast path (numpy): the padded sentences are concatenated into one array of symbol
    codes, each n-gram is packed into one integer (base 32) and ``np.unique`` counts them.
    A window ending at a real symbol never reaches into the previous sentence: every
    sentence starts with its own ``order - 1`` padding symbols. Returns, per n, the sorted
    packed n-grams and their counts.
    """
    if order * 5 > 62:
        raise ConfigError(f"n-gram order {order} is too large (at most 12)")
    seqs, valid = [], []
    for s in sentences:
        codes = [_CODE[BOS]] * (order - 1) + [_CODE[c] for c in normalise(s)] + [_CODE[EOS]]
        seqs.append(np.asarray(codes, dtype=np.int64))
        v = np.ones(len(codes), dtype=bool)
        v[: order - 1] = False
        valid.append(v)
    seq = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    ok = np.concatenate(valid) if valid else np.zeros(0, dtype=bool)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    packed = np.zeros_like(seq)
    for n in range(1, order + 1):
        # packed[i] = code of the n-gram ending at i (earlier symbols in higher digits)
        shifted = np.zeros_like(seq)
        shifted[n - 1 :] = seq[: seq.size - (n - 1)]
        packed = packed + shifted * (_BASE ** (n - 1))
        keys, counts = np.unique(packed[ok], return_counts=True)
        out[n] = (keys, counts)
    return out


def unpack(key: int, n: int) -> tuple[str, ...]:
    """The n-gram (tuple of symbols) packed in ``key`` by :func:`count_codes`."""
    out = []
    for _ in range(n):
        key, c = divmod(int(key), _BASE)
        out.append(SYMBOLS[c])
    return tuple(reversed(out))


def count_events(sentences: Iterable[str], order: int) -> dict[int, Counter[tuple[str, ...]]]:
    """:func:`count_codes` as ``Counter`` s of n-gram tuples (for inspection and tests)."""
    return {
        n: Counter({unpack(k, n): int(c) for k, c in zip(keys, counts, strict=True)})
        for n, (keys, counts) in count_codes(sentences, order).items()
    }


def _nltk_version() -> str:
    import nltk

    return str(nltk.__version__)


class CharNgram:
    """A character n-gram LM over :data:`ALPHABET` + ``</s>``, NLTK Witten-Bell interpolated.

    ``sentences``: training sentences (raw text; normalised here). ``fit="fast"`` counts
    with :func:`count_events`; ``fit="nltk"`` feeds the same events through NLTK's
    ``LanguageModel.fit`` (slow; the reference the tests compare against).
    """

    def __init__(self, sentences: Sequence[str], order: int = DEFAULT_ORDER, fit: str = "fast"):
        from nltk.lm import Vocabulary, WittenBellInterpolated

        if not isinstance(order, int) or order < 1:
            raise ConfigError(f"n-gram order must be a positive integer, got {order!r}")
        self.order = order
        sents = list(sentences)
        vocab_symbols = [BOS, EOS, *ALPHABET]
        self.lm = WittenBellInterpolated(order, vocabulary=Vocabulary(vocab_symbols, unk_cutoff=1))
        if fit == "nltk":
            self.lm.fit(
                (list(sentence_events(symbols(s), order)) for s in sents), vocabulary_text=None
            )
        elif fit == "fast":
            from nltk.probability import FreqDist

            codes = count_codes(sents, order)
            keys, counts = codes[1]
            for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
                self.lm.counts.unigrams[SYMBOLS[k]] = c
            for n in range(2, order + 1):
                cfd = self.lm.counts[n]
                keys, counts = codes[n]
                ctx_keys = keys // _BASE
                # keys are sorted, so each context's n-grams are one contiguous run
                starts = np.flatnonzero(np.r_[True, ctx_keys[1:] != ctx_keys[:-1]])
                ends = np.r_[starts[1:], keys.size]
                words = (keys % _BASE).tolist()
                clist = counts.tolist()
                for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                    ctx = unpack(int(ctx_keys[a]), n - 1)
                    cfd[ctx] = FreqDist({SYMBOLS[words[j]]: clist[j] for j in range(a, b)})
        else:
            raise ValueError(f"fit must be 'fast' or 'nltk', got {fit!r}")
        missing = [s for s in (*ALPHABET, EOS) if self.lm.counts.unigrams[s] == 0]
        if missing:
            raise ConfigError(
                f"n-gram training text lacks symbol(s) {missing!r}: every letter, the "
                "apostrophe, the space and the sentence end must occur at least once"
            )
        # What a next symbol can be (never <s>), in a fixed order: sampling is reproducible.
        self.outcomes: tuple[str, ...] = (*ALPHABET, EOS)

    def _context(self, history: Sequence[str]) -> tuple[str, ...]:
        k = self.order - 1
        if k == 0:
            return ()
        h = list(history)[-k:]
        return tuple([BOS] * (k - len(h)) + h)

    def prob(self, symbol: str, history: Sequence[str]) -> float:
        """P(symbol | the last order-1 symbols of ``history``, ``<s>``-padded)."""
        ctx = self._context(history)
        return float(self.lm.score(symbol, ctx if ctx else None))

    def logprob(self, text: str) -> tuple[float, int]:
        """Natural-log probability of a whole sentence (characters + ``</s>``) and its length."""
        seq = symbols(text)
        total = 0.0
        for i, s in enumerate(seq):
            p = self.prob(s, seq[:i])
            if p <= 0.0:  # cannot happen with a closed alphabet that all occurs in training
                raise ValueError(f"zero probability for {s!r} after {''.join(seq[:i])!r}")
            total += math.log(p)
        return total, len(seq)

    def distribution(self, history: Sequence[str]) -> np.ndarray:
        """Probabilities of :attr:`outcomes` after ``history`` (sums to 1 up to rounding)."""
        return np.array([self.prob(s, history) for s in self.outcomes], dtype=np.float64)

    @cached_property
    def counts_sha256(self) -> str:
        """SHA-256 of every stored count (n, n-gram, count), sorted: the fitted model's content."""
        rows = []
        for n in range(1, self.order + 1):
            if n == 1:
                rows += [(1, (w,), c) for w, c in self.lm.counts.unigrams.items() if c]
            else:
                rows += [
                    (n, (*ctx, w), c)
                    for ctx, fd in self.lm.counts[n].items()
                    for w, c in fd.items()
                    if c
                ]
        h = hashlib.sha256()
        for _n, ng, c in sorted(rows):
            h.update(("\x1f".join(ng) + f"\t{c}\n").encode())
        return h.hexdigest()


# --- the shipped training text -----------------------------------------------------------------


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest() -> dict[str, Any]:
    """``lm_data/ngram.json``: format, pinned SHA-256 of the text, source and overlap report."""
    try:
        return json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cascade n-gram: cannot read {MANIFEST} ({e})") from None


def read_training_text(path: Path | None = None) -> tuple[list[str], str]:
    """Sentences (one per line) of the training text and the file's SHA-256.

    The shipped file must match the SHA-256 pinned in ``ngram.json``; a user's file
    (``path``) is read as is.
    """
    p = path or TRAIN_TEXT
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"n-gram training text {p}: cannot read ({e.strerror})") from None
    digest = _sha256_bytes(data)
    if path is None:
        want = read_manifest().get("train_sha256")
        if digest != want:
            raise ConfigError(
                f"{p}: SHA-256 {digest} differs from {want} pinned in {MANIFEST}; "
                "rebuild with: python -m reference_models.cascade.ngram --rebuild"
            )
    try:
        lines = [ln.strip() for ln in data.decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        raise ConfigError(f"n-gram training text {p}: not UTF-8 text") from None
    sents = [ln for ln in lines if ln]
    if not sents:
        raise ConfigError(f"n-gram training text {p}: no sentences (expected one per line)")
    return sents, digest
