"""Built-in syntactic (sBLIMP-style) and StoryCloze-style subsets: texts, layout, determinism.

The audio tests build both subsets at size ``tiny`` (once with the real voice pool, twice
more with the fast espeak voices for determinism); the template tests need no audio and
check the ``small`` and ``full`` texts.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import build_tiny

from speechlm_eval.builtin.context import BuildContext
from speechlm_eval.builtin.subsets import storycloze as sc
from speechlm_eval.builtin.subsets import syntactic as syn
from speechlm_eval.builtin.voices import Espeak, all_voices
from speechlm_eval.readers.pairs import read_storycloze
from speechlm_eval.readers.zr2021 import read_syntactic

NAMES = ["syntactic", "storycloze"]


def _build(out: Path, voices: dict | None = None) -> dict:
    return build_tiny(out, NAMES, voices)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("builtin_a")
    return out, _build(out)


def _ctx(subset: str, size: str, seed: int = 0) -> BuildContext:
    return BuildContext(Path("/nonexistent"), seed, size, {}, subset)


# ---------------------------------------------------------------- templates (no audio)
@pytest.mark.parametrize("size", ["small", "full"])
def test_syntactic_text_pairs(size):
    pairs = syn.text_pairs(_ctx("syntactic", size))
    per_type = Counter(p.type for p in pairs)
    assert per_type == dict.fromkeys(syn.TYPES, syn.PER_TYPE[size])
    sentences = [s.lower() for p in pairs for s in (p.good, p.bad)]
    assert len(set(sentences)) == len(sentences), "a sentence occurs twice"
    for p in pairs:
        assert p.good != p.bad
        assert syn.diff_kind(p.good, p.bad) == p.diff, (p.good, p.bad)
        assert p.good[0].isupper() and p.good[-1] in ".?" and p.bad[-1] == p.good[-1]
    # every paradigm is used, spread evenly over a type's paradigms
    per_sub = Counter(p.subtype for p in pairs)
    assert set(per_sub) == {p.subtype for p in syn.PARADIGMS}
    for t in syn.TYPES:
        counts = [per_sub[p.subtype] for p in syn.PARADIGMS if p.type == t]
        assert max(counts) - min(counts) <= 1, (t, counts)


def test_syntactic_text_pairs_are_seeded():
    a = syn.text_pairs(_ctx("syntactic", "small"))
    assert a == syn.text_pairs(_ctx("syntactic", "small"))
    assert a != syn.text_pairs(_ctx("syntactic", "small", seed=1))


def test_syntactic_diff_kind():
    assert syn.diff_kind("The boy is tired.", "The boy are tired.") == "sub1"
    assert syn.diff_kind("Whose hat did he find?", "Whose did he find hat?") == "move"
    assert syn.diff_kind("A b c.", "A b c.") is None
    assert syn.diff_kind("A b c.", "A b c d.") is None
    assert syn.diff_kind("A b c d.", "A x y z.") is None


@pytest.mark.parametrize("size", ["small", "full"])
def test_storycloze_stories(size):
    stories = sc.make_stories(_ctx("storycloze", size))
    assert len(stories) == sc.STORIES[size]
    assert [s.index for s in stories] == list(range(len(stories)))
    keys = [s.key for s in stories]
    assert len(set(keys)) == len(keys), "two stories differ only in names"
    texts = [" ".join(s.context) for s in stories]
    assert len(set(texts)) == len(texts)
    topics = Counter(s.topic for s in stories)
    assert max(topics.values()) - min(topics.values()) <= 1  # balanced over topics
    for s in stories:
        assert len(s.context) == 4 and all(c.endswith(".") for c in s.context)
        assert len({s.positive, s.ssc_negative, s.tsc_negative}) == 3
        assert "{" not in " ".join([*s.context, s.positive, s.ssc_negative, s.tsc_negative])
        assert abs(len(s.positive.split()) - len(s.ssc_negative.split())) <= 3
        assert abs(len(s.positive.split()) - len(s.tsc_negative.split())) <= 3
        assert sc.unrelated(s.topic, s.tsc_topic)
        topic = next(t for t in sc.TOPICS if t.key == s.topic)
        other = topic.down if s.branch == "up" else topic.up
        # the sSC negative is an ending of the same topic's other branch
        pattern = [re.escape(e).replace(r"\{", "{").replace(r"\}", "}") for e in other[1]]
        pattern = [re.sub(r"\{[A-Za-z_]+\}", r".+", p) for p in pattern]
        assert any(re.fullmatch(p, s.ssc_negative) for p in pattern), s.ssc_negative


def test_topic_endings_pair_up():
    for t in sc.TOPICS:
        assert len(t.up[1]) == len(t.down[1]) and len(t.up[0]) == len(t.down[0])
        for a, b in zip(t.up[1], t.down[1], strict=True):
            assert abs(len(a.split()) - len(b.split())) <= 3, (a, b)
    assert sc.capacity() >= sc.STORIES["full"]


# ---------------------------------------------------------------- built audio (tiny)
def _gold(d: Path) -> list[dict]:
    with open(d / "gold.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_syntactic_build(built):
    out, man = built
    d = out / syn.OUT
    ds = read_syntactic(d, {})
    n_pairs = syn.PER_TYPE["tiny"] * len(syn.TYPES)
    n_voices = syn.VOICES["tiny"]
    assert len(ds.items) == n_pairs * n_voices
    assert len(list(d.glob("*.wav"))) == 2 * n_pairs * n_voices == syn.Syntactic().planned("tiny")
    entry = man["subsets"]["syntactic"]
    assert entry["counts"] == {"pairs": n_pairs, "files": 2 * n_pairs * n_voices}
    assert len(entry["voices"]) >= 2
    rows = {r["filename"]: r for r in _gold(d)}
    assert all(re.fullmatch(r"[0-9a-f]{12}", f) for f in rows)  # opaque stems
    kinds = {p.subtype: p.diff for p in syn.PARADIGMS}
    voices = set()
    for item in ds.items:
        g, b = (rows[c] for c in item.candidates)
        assert (g["correct"], b["correct"]) == ("1", "0")
        assert g["id"] == b["id"] and g["voice"] == b["voice"]
        assert g["type"] == b["type"] == item.meta["type"]
        assert g["subtype"] == b["subtype"]
        assert g["transcription"] != b["transcription"]
        assert syn.diff_kind(g["transcription"], b["transcription"]) == kinds[g["subtype"]]
        voices.add(g["voice"])
    assert len(voices) == n_voices >= 2
    for v in voices:
        said = [r["transcription"] for r in rows.values() if r["voice"] == v]
        assert len(said) == len(set(said)) == 2 * n_pairs
    assert set(Counter(r["type"] for r in rows.values())) == set(syn.TYPES)
    for f in list(rows)[:4]:
        info = sf.info(str(d / f"{f}.wav"))
        assert info.samplerate == 16000 and info.duration > 0.5
    card = (d / "README.md").read_text()
    assert "size tiny, seed 0" in card and all(t in card for t in syn.TYPES)


def _audio(p: Path) -> np.ndarray:
    x, sr = sf.read(str(p), dtype="int16")
    assert sr == 16000
    return x


def test_storycloze_build(built):
    out, man = built
    n = sc.STORIES["tiny"]
    entry = man["subsets"]["storycloze"]
    assert entry["counts"] == {"stories": n, "files": 4 * n}
    assert len(entry["voices"]) >= 2
    lines = {}
    for folder in sc.OUTS:
        d = out / folder
        ds = read_storycloze(d, {})
        assert [i.candidates for i in ds.items] == [
            (f"{i}_correct", f"{i}_incorrect") for i in range(n)
        ]
        lines[folder] = [json.loads(x) for x in (d / "stories.jsonl").read_text().splitlines()]
        assert [r["id"] for r in lines[folder]] == list(range(n))
        assert (d / "README.md").is_file()
    assert sum(len(list((out / f).glob("*.wav"))) for f in sc.OUTS) == sc.StoryCloze().planned(
        "tiny"
    )
    s_rows, t_rows = lines["sStoryCloze"], lines["tStoryCloze"]
    assert len({r["voice"] for r in s_rows}) >= 2
    for s, t in zip(s_rows, t_rows, strict=True):
        i = s["id"]
        assert s["context"] == t["context"] and s["positive"] == t["positive"]
        assert s["voice"] == t["voice"]
        assert len({s["positive"], s["negative"], t["negative"]}) == 3
        assert t["negative_topic"] != t["topic"]
        # sSC and tSC share the positive recording
        pos = (out / "sStoryCloze" / f"{i}_correct.wav").read_bytes()
        assert pos == (out / "tStoryCloze" / f"{i}_correct.wav").read_bytes()
        good = _audio(out / "sStoryCloze" / f"{i}_correct.wav")
        for folder in sc.OUTS:
            bad = _audio(out / folder / f"{i}_incorrect.wav")
            m = min(len(good), len(bad))
            diff = np.flatnonzero(good[:m] != bad[:m])
            first = int(diff[0]) if diff.size else m
            # identical context (4 of 5 sentences), different ending
            assert first > 0.5 * m
            assert not np.array_equal(good, bad)


def test_builds_are_deterministic(tmp_path):
    """Two builds into two folders are identical. The espeak voices only, to keep this fast:
    the Piper voice's own determinism is tested with the lexical subset."""
    pool = {k: v for k, v in all_voices().items() if isinstance(v, Espeak)}
    assert len(pool) >= 2
    a = _build(tmp_path / "a", pool)
    b = _build(tmp_path / "b", pool)
    for name in NAMES:
        ea, eb = a["subsets"][name], b["subsets"][name]
        assert ea["voices"] == list(pool)[:2]
        assert ea["content_sha256"] == eb["content_sha256"], name
        assert ea["files"] == eb["files"]
