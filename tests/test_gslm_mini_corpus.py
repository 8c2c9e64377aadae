"""gslm-mini's training corpus: the overlap check, the pinned corpus, and the shipped texts.

The check is exercised on sentences made here from the test suite's own strings (one per
kind of overlap) and on a built suite written here; the pinned corpus must be disjoint from
the suite as it is now (this test fails when an edit to the suite's code makes a training
sentence a test sentence); and the shipped checkpoint's ``training_text.txt`` and
``vocoder_text.txt`` must be exactly what the pinned corpus gives each voice, rebuilt here
from the corpus with the sentence-to-voice rule stated in ``train.py``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from reference_models.gslm_mini import corpus

CKPT = Path(__file__).resolve().parents[1] / "reference_models" / "gslm_mini" / "checkpoint"
SLOT = re.compile(r"\{[^{}]*\}")


def _module_strings() -> dict[str, list[str]]:
    return {m.name: list(corpus._literals(m)) for m in corpus._subset_sources()}


def _plain_sentence(min_words: int) -> str:
    """A test-suite literal without slots, of at least ``min_words`` words."""
    for lits in _module_strings().values():
        for x in lits:
            if not SLOT.search(x) and len(corpus.words(x)) >= min_words:
                return x
    raise AssertionError(f"no literal of {min_words}+ words in the subset modules")


def _filled_template() -> str:
    """A template of some subset module with every slot filled by a filler of that module."""
    for lits in _module_strings().values():
        fillers = [
            x
            for x in lits
            if not SLOT.search(x) and 1 <= len(corpus.words(x)) <= corpus.MAX_FILLER_WORDS
        ]
        for t in lits:
            if SLOT.search(t) and fillers and len(corpus.words(SLOT.sub("", t))) >= 2:
                return SLOT.sub(fillers[0], t)
    raise AssertionError("no template with fillers in the subset modules")


def test_overlap_check_finds_each_kind(tmp_path: Path) -> None:
    equal = _plain_sentence(3)
    inner = _plain_sentence(4)
    contains = f"Yesterday evening, {inner.rstrip('.?!')} and nobody answered."
    template = _filled_template()
    clean = "Quietly the violet lanterns counted seven sleepy harbours."
    built = "Eleven copper kettles whistled beneath the frozen orchard."
    found, report = corpus.overlap_check([equal, contains, template, clean, built])
    assert found["equal"] == [equal]
    assert found["contains"] == [contains]
    assert found["template"] == [template]
    assert report["overlapping"] == {"equal": 1, "contains": 1, "template": 1}
    assert report["disjoint"] == 2  # clean and built: nothing in the code produces them

    # Text of a built suite counts too: a CSV cell equal to a training sentence.
    d = tmp_path / "suite" / "lexical" / "dev"
    d.mkdir(parents=True)
    with open(d / "gold.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "text"], ["1", built.upper()]])  # case is normalised
    found, report = corpus.overlap_check([clean, built], [tmp_path / "suite"])
    assert found["equal"] == [built]
    assert report["disjoint"] == 1
    assert report["scanned"][str(tmp_path / "suite")] == "4 text fields"  # header and row cells


def test_overlap_check_is_word_bounded() -> None:
    """A 4-word test string inside a longer word is not an overlap (whole words only)."""
    inner = corpus.normalise(_plain_sentence(4)).split()
    # Glue a letter to the first word: the test string no longer occurs as whole words.
    sentence = f"Then x{' '.join(inner)} was said."
    found, _ = corpus.overlap_check([sentence])
    assert found["contains"] == [] and found["equal"] == []


@pytest.fixture(scope="module")
def pinned() -> list[str]:
    pytest.importorskip("markov_draftjs", reason="gslm-train extra (markov-draftjs) missing")
    sents, info = corpus.training_sentences(0)
    assert info["excluded_pinned"] == len(corpus.EXCLUDED)
    return sents


def test_pinned_corpus_is_disjoint_from_the_test_suite(pinned: list[str]) -> None:
    assert not set(corpus.EXCLUDED) & set(pinned)
    found, report = corpus.overlap_check(pinned)
    assert {k: v for k, v in found.items() if v} == {}, (
        "a training sentence of gslm-mini is now a built-in test sentence: add it to "
        "corpus.EXCLUDED and rebuild the checkpoint"
    )
    assert report["disjoint"] == len(pinned)


def test_shipped_texts_are_the_pinned_corpus(pinned: list[str]) -> None:
    """Sentence i of the corpus goes to voice i mod 3, each voice reading its share in order;
    the vocoder voice then reads on from where its LM share stopped."""
    from speechlm_eval.builtin.voices import all_voices

    names = list(all_voices())
    lines = [x.split("\t", 1) for x in (CKPT / "training_text.txt").read_text().splitlines()]
    read: dict[str, list[str]] = {}
    for voice, text in lines:
        read.setdefault(voice, []).append(text)
    assert sorted(read) == sorted(names)
    for j, name in enumerate(names):
        share = pinned[j :: len(names)]
        assert read[name] == share[: len(read[name])], name
    extra = [x.split("\t", 1) for x in (CKPT / "vocoder_text.txt").read_text().splitlines()]
    voices = {v for v, _ in extra}
    assert len(voices) == 1
    (voice,) = voices
    share = pinned[names.index(voice) :: len(names)]
    start = len(read[voice])
    assert [t for _, t in extra] == share[start : start + len(extra)]
