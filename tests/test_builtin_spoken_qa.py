"""The built-in ``spoken_qa`` subset: question banks, answers checked by an independent
reading of each question, balance, determinism, dataset card, and the instruction reader."""

from __future__ import annotations

import json
import operator
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import build_tiny

from speechlm_eval.builtin import build as build_mod
from speechlm_eval.builtin.subsets import spoken_qa as sqa
from speechlm_eval.builtin.voices import Espeak, Voice, VoiceInfo, all_voices
from speechlm_eval.readers.instruction import read_instruction

OPS = {"plus": operator.add, "minus": operator.sub, "times": operator.mul}
NUMBER = {w: i for i, w in enumerate(sqa.WORDS)}
MEMBER_OF = {m: cat for cat, (_, members) in sqa.CATEGORIES.items() for m in members}
PHRASE_OF = {phrase: cat for cat, (phrase, _) in sqa.CATEGORIES.items()}


class Beep(Voice):
    """A stand-in voice (a tone as long as the text) so that the small and full manifests can
    be built in a test without synthesising speech."""

    def __init__(self, name: str) -> None:
        self.info = VoiceInfo(name, "test", "male", "none", "tone")

    def text(self, text: str) -> np.ndarray:
        n = 160 * (len(text) + 1)
        return (0.1 * np.sin(np.arange(n) / 5.0)).astype(np.float32)


BEEPS = {f"beep{i}": Beep(f"beep{i}") for i in range(3)}


def build_beeps(out: Path, size: str, seed: int = 0) -> list[dict]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build_mod, "all_voices", lambda: BEEPS)
        build_mod.build(out, seed=seed, size=size, names=["spoken_qa"], progress=False, jobs=1)
    text = (out / sqa.OUT / sqa.MANIFEST).read_text()
    return [json.loads(x) for x in text.splitlines()]


def expected_answer(row: dict) -> str:
    """The answer read off the question itself (not from the builder's tables of answers)."""
    q = row["spoken"]
    if row["subgroup"] == "arithmetic":
        a, op, b = re.fullmatch(r"What is (\w+) (plus|minus|times) (\w+)\?", q).groups()
        return str(OPS[op](NUMBER[a], NUMBER[b]))
    if row["subgroup"] == "yes_no":
        member, phrase = re.fullmatch(r"Is (an? .+?) (an? .+)\?", q).groups()
        return "yes" if MEMBER_OF[member] == PHRASE_OF[phrase] else "no"
    phrase = re.fullmatch(r"Which of these is (an? .+?)\? .*", q).group(1)
    options = re.findall(r"Option ([ABC]), (.+?)\.", q)
    assert [c for _, c in options] == row["choices"]
    right = [ltr for ltr, c in options if MEMBER_OF[c] == PHRASE_OF[phrase]]
    assert len(right) == 1, q  # exactly one option is in the category: unambiguous
    return right[0]


# --- question banks (no audio) ------------------------------------------------------------------


def test_arithmetic_bank_is_complete_unique_and_right():
    bank = sqa.arithmetic_questions()
    assert len(bank) == 81 + 44 + 16 == len({q for q, _ in bank})
    for q, a in bank:
        assert expected_answer({"spoken": q, "subgroup": "arithmetic"}) == a
        assert int(a) >= 0


def test_categories_are_disjoint_and_phrased():
    members = [m for _, ms in sqa.CATEGORIES.values() for m in ms]
    assert len(members) == len(set(members))  # no member in two categories
    assert not any("orange" in m for m in members)
    yes, no = sqa.yes_no_questions()
    assert len(yes) == len(members) and len(no) == len(members) * (len(sqa.CATEGORIES) - 1)
    for q, a in yes + no:
        assert expected_answer({"spoken": q, "subgroup": "yes_no"}) == a


# --- built manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["small", "full"])
def test_sizes_balance_and_answers(tmp_path, size):
    rows = build_beeps(tmp_path, size)
    n = sqa.ITEMS[size]
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    assert len({r["spoken"] for r in rows}) == n  # no question twice
    kinds = Counter(r["subgroup"] for r in rows)
    assert kinds == {k: n // 3 for k in sqa.KINDS}
    letters = Counter(r["answer"] for r in rows if r["subgroup"] == "choice")
    assert set(letters) == set("ABC")  # A, B, C in turn: equally often, up to one
    assert max(letters.values()) - min(letters.values()) <= 1
    yn = Counter(r["answer"] for r in rows if r["subgroup"] == "yes_no")
    assert abs(yn["yes"] - yn["no"]) <= 1
    voices = Counter(r["voice"] for r in rows)
    assert set(voices) == set(BEEPS) and max(voices.values()) - min(voices.values()) <= 3
    for r in rows:
        assert r["answer"] == expected_answer(r), r
        assert (r["text"] == r["spoken"]) == (r["subgroup"] != "choice")
    ds = read_instruction(tmp_path / sqa.OUT, {"file": sqa.MANIFEST})
    assert ds.doc_ids() == [r["id"] for r in rows] and len(ds.files) == n
    assert ds.identity["subgroups"] == dict(sorted(kinds.items()))


def test_manifest_is_seeded(tmp_path):
    a = build_beeps(tmp_path / "a", "small", seed=0)
    b = build_beeps(tmp_path / "b", "small", seed=0)
    c = build_beeps(tmp_path / "c", "small", seed=1)
    assert a == b
    assert [r["spoken"] for r in a] != [r["spoken"] for r in c]


# --- with the real voices -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("spoken_qa_tiny")
    return out, build_tiny(out, ["spoken_qa"])


def test_tiny_build_card_and_reader(built):
    out, manifest = built
    entry = manifest["subsets"]["spoken_qa"]
    assert entry["size"] == "tiny" and entry["counts"] == {
        "items": 6,
        "arithmetic": 2,
        "yes_no": 2,
        "choice": 2,
    }
    folder = out / sqa.OUT
    card = (folder / "README.md").read_text()
    assert "size tiny, seed 0" in card and "2 of each kind" in card
    ds = read_instruction(folder, {"file": sqa.MANIFEST})
    assert all(p.is_file() and p.stat().st_size > 1000 for p in ds.files.values())
    rows = [json.loads(x) for x in (folder / sqa.MANIFEST).read_text().splitlines()]
    assert all(r["answer"] == expected_answer(r) for r in rows)


def test_tiny_build_is_deterministic(tmp_path, monkeypatch):
    """Two builds with the espeak voices (fast) into two folders are identical."""
    pool = {k: v for k, v in all_voices().items() if isinstance(v, Espeak)}
    monkeypatch.setattr(build_mod, "all_voices", lambda: pool)
    a = build_mod.build(tmp_path / "a", seed=0, size="tiny", names=["spoken_qa"], progress=False)
    b = build_mod.build(tmp_path / "b", seed=0, size="tiny", names=["spoken_qa"], progress=False)
    ea, eb = a["subsets"]["spoken_qa"], b["subsets"]["spoken_qa"]
    assert ea["content_sha256"] == eb["content_sha256"] and ea["files"] == eb["files"]
