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
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import build_tiny

from reference_models.length_baseline import LengthBaseline
from speechlm_eval.builtin import build as build_mod
from speechlm_eval.builtin.balance import SLACK
from speechlm_eval.builtin.context import BuildContext
from speechlm_eval.builtin.subsets import storycloze as sc
from speechlm_eval.builtin.subsets import syntactic as syn
from speechlm_eval.builtin.voices import Espeak, all_voices
from speechlm_eval.readers.pairs import read_storycloze
from speechlm_eval.readers.zr2021 import read_syntactic
from speechlm_eval.runner import RunOptions, evaluate

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
def _first(ctx: BuildContext, n: int) -> list[syn.Pair]:
    """The first n candidates of every paradigm's seeded stream."""
    return [p for streams in syn.candidates(ctx).values() for s in streams for p in islice(s, n)]


@pytest.mark.parametrize("size", ["small", "full"])
def test_syntactic_candidates(size):
    pairs = _first(_ctx("syntactic", size), 40)
    assert {p.subtype for p in pairs} == {p.subtype for p in syn.PARADIGMS}
    assert {p.type for p in pairs} == set(syn.TYPES)
    for p in pairs:
        assert p.good != p.bad
        assert syn.diff_kind(p.good, p.bad) == p.diff, (p.good, p.bad)
        assert p.good[0].isupper() and p.good[-1] in ".?" and p.bad[-1] == p.good[-1]


def test_syntactic_candidates_are_seeded():
    a = _first(_ctx("syntactic", "small"), 5)
    assert a == _first(_ctx("syntactic", "small"), 5)
    assert a != _first(_ctx("syntactic", "small", seed=1), 5)


def test_syntactic_diff_kind():
    assert syn.diff_kind("The boy is tired.", "The boy are tired.") == "sub1"
    assert syn.diff_kind("Whose hat did he find?", "Whose did he find hat?") == "move"
    assert syn.diff_kind("A b c.", "A b c.") is None
    assert syn.diff_kind("A b c.", "A b c d.") is None
    assert syn.diff_kind("A b c d.", "A x y z.") is None


def _screened(seed: int, n: int) -> dict[str, list[list[syn.Screened]]]:
    """Random candidates with random lengths (3 voices), many one-sided, some over the cap."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[list[syn.Screened]]] = {}
    for t in syn.TYPES:
        k = 1 + len(t) % 3
        out[t] = []
        for j in range(k):
            bias = rng.choice([-1, 0, 1])  # paradigms where one member is mostly longer
            cands = []
            for i in range(n):
                good = rng.integers(30_000, 40_000, 3)
                step = rng.integers(-2500, 2500, 3) + bias * 2000
                bad = good + step
                pair = syn.Pair(t, f"{t}-{j}", "sub1", f"G {t} {j} {i}.", f"B {t} {j} {i}.")
                cands.append(syn.Screened(pair, [int(x) for x in good], [int(x) for x in bad]))
            out[t].append(cands)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_select_balances_and_is_maximal(seed):
    """Every prefix of the selection keeps the length rule within the slack, per type and
    overall; no pair is over the mismatch cap; and (checked by brute force) a type that
    came out short has no unused candidate that could still have been taken."""
    screened = _screened(seed, 12)
    quota = 6
    chosen = syn.select(screened, quota)
    total = 0.0
    for t in syn.TYPES:
        assert len(chosen[t]) <= quota
        group = 0.0
        for c in chosen[t]:
            assert c.mismatch <= syn.MAX_MISMATCH
            # the rule's score recomputed from the lengths, voice by voice
            score = np.mean([1.0 if g < b else 0.5 if g == b else 0.0
                             for g, b in zip(c.good, c.bad, strict=True)])  # fmt: skip
            assert c.score == pytest.approx(score)
            group += score - 0.5
            total += score - 0.5
            assert abs(group) <= SLACK + 1e-9 and abs(total) <= SLACK + 1e-9
        if len(chosen[t]) < quota:
            taken = {id(c) for c in chosen[t]}
            end = sum(c.score - 0.5 for c in chosen[t])
            tot_at_end = total  # later types were not chosen yet when this type stopped
            for cands in screened[t]:
                for c in cands:
                    if id(c) in taken or c.mismatch > syn.MAX_MISMATCH:
                        continue
                    d = c.score - 0.5
                    assert abs(end + d) > SLACK or abs(tot_at_end + d) > SLACK, c
    # the selection is a pure function of its input
    assert syn.select(screened, quota) == chosen


def test_select_hand_case():
    """Two voices, lengths chosen by hand, quota 4, slack 0.5, cap 15%.

    p0: a (100,100 vs 110,105): 10% off, good shorter in both voices: score 1
        b (100,100 vs 101,101): 1% off, score 1
    p1: d (100,100 vs 80,80): 25% off: never taken
        e (100,100 vs 95,99): 5.3% off, good longer in both: score 0
        f (100,100 vs 100,90): 11% off, a tie and a longer: score 0.25
    Turns: p0 takes a (sum +0.5); p1 skips d, takes e (0); p0 takes b (+0.5); p1 takes f
    (+0.25). Full after four.
    """

    def c(name, good, bad):
        return syn.Screened(syn.Pair("quantifiers", "q", "sub1", f"G {name}.", f"B {name}."),
                            list(good), list(bad))  # fmt: skip

    p0 = [c("a", (100, 100), (110, 105)), c("b", (100, 100), (101, 101))]
    p1 = [c("d", (100, 100), (80, 80)), c("e", (100, 100), (95, 99)), c("f", (100, 100), (100, 90))]
    screened = {t: [[]] for t in syn.TYPES}
    screened["quantifiers"] = [p0, p1]
    got = syn.select(screened, 4)["quantifiers"]
    assert [x.pair.good for x in got] == ["G a.", "G e.", "G b.", "G f."]
    assert [x.score for x in got] == [1.0, 0.0, 1.0, 0.25]
    assert [round(x.mismatch, 4) for x in got] == [0.1, round(5 / 95, 4), 0.01, round(10 / 90, 4)]
    # a repeated sentence is never taken twice, even from another paradigm
    screened["quantifiers"] = [[c("a", (100, 100), (101, 101))], [c("a", (100, 100), (99, 99))]]
    assert len(syn.select(screened, 2)["quantifiers"]) == 1


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


def test_syntactic_duration_balance(built, monkeypatch):
    """The length-only rule is at chance on the built pairs: recomputed from the files'
    sample counts, reported the same in the manifest, and scored the same by the
    length-baseline model through the runner (the official pairing and averaging)."""
    out, man = built
    d = out / syn.OUT
    rows = _gold(d)
    frames = {r["filename"]: sf.info(str(d / f"{r['filename']}.wav")).frames for r in rows}
    by_pair: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        by_pair.setdefault(r["id"], {}).setdefault(r["voice"], {})[r["correct"]] = frames[
            r["filename"]
        ]
    scores = []
    for voices in by_pair.values():
        per_voice = []
        for v in voices.values():
            g, b = v["1"], v["0"]
            assert abs(g - b) / min(g, b) <= syn.MAX_MISMATCH + 1e-12
            per_voice.append(1.0 if g < b else 0.5 if g == b else 0.0)
        scores.append(sum(per_voice) / len(per_voice))
    acc = sum(scores) / len(scores)
    n = len(scores)
    assert abs(acc - 0.5) <= SLACK / n + 1e-12, acc
    note = man["subsets"]["syntactic"]["notes"]["duration_balance"]
    assert note["all"]["length_rule_accuracy"] == pytest.approx(acc, abs=1e-4)
    assert note["all"]["pairs"] == n
    monkeypatch.setenv("SLM_EVAL_BUILTIN", str(out))
    monkeypatch.delenv("SLM_EVAL_DATA", raising=False)
    res = evaluate("length-baseline", {}, RunOptions(tasks="sblimp", no_cache=True),
                   model=LengthBaseline())  # fmt: skip
    r = res["results"]["sblimp"]
    assert r["acc,nll_sum"] == pytest.approx(acc) and r["acc,nll_mean"] == pytest.approx(acc)


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
    # the card's length-only figure, recomputed from the files
    for folder in sc.OUTS:
        sides = []
        for i in range(n):
            c, x = (len(_audio(out / folder / f"{i}_{k}.wav")) for k in ("correct", "incorrect"))
            sides.append(1.0 if c < x else 0.5 if c == x else 0.0)
        assert entry["notes"]["length_rule_accuracy"][folder] == pytest.approx(sum(sides) / n)
        assert f"{folder} {sum(sides) / n:.3f}" in (out / folder / "README.md").read_text()


def test_builds_are_deterministic_for_any_worker_count(tmp_path, monkeypatch):
    """Two builds into two folders, one in this process (jobs=1) and one with two worker
    processes, are identical. The espeak voices only, to keep this fast: the Piper voice
    across worker counts is tested with the lexical subset."""
    pool = {k: v for k, v in all_voices().items() if isinstance(v, Espeak)}
    assert len(pool) >= 2
    monkeypatch.setattr(build_mod, "all_voices", lambda: pool)
    a = build_mod.build(tmp_path / "a", seed=0, size="tiny", names=NAMES, progress=False, jobs=1)
    b = build_mod.build(tmp_path / "b", seed=0, size="tiny", names=NAMES, progress=False, jobs=2)
    for name in NAMES:
        ea, eb = a["subsets"][name], b["subsets"][name]
        assert (ea["build_jobs"], eb["build_jobs"]) == (1, 2)
        assert ea["voices"] == list(pool)[:2]
        assert ea["content_sha256"] == eb["content_sha256"], name
        assert ea["files"] == eb["files"]
