"""Readers for transcribed speech (LibriSpeech layout, manifest) and the resynthesis task YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from helpers import build_tiny, tone, write_wav

from speechlm_eval import registry
from speechlm_eval.errors import DataError
from speechlm_eval.readers.transcribed import read_librispeech, read_transcribed_manifest
from speechlm_eval.scorers.wer import WERScorer
from speechlm_eval.tasks import load_index

SR = 16000


def make_librispeech(root: Path, layout: dict[tuple[str, str], list[tuple[str, str]]]) -> Path:
    """``{(speaker, chapter): [(utt_suffix, text), ...]}`` -> LibriSpeech split folder (FLAC)."""
    seed = 0
    for (spk, chap), rows in layout.items():
        d = root / spk / chap
        d.mkdir(parents=True)
        lines = []
        for suffix, text in rows:
            utt = f"{spk}-{chap}-{suffix}"
            seed += 1
            sf.write(str(d / f"{utt}.flac"), tone(seed), SR)
            lines.append(f"{utt} {text}")
        (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


LAYOUT = {
    ("84", "121123"): [("0001", "GO DO YOU HEAR"), ("0000", "BUT IN LESS THAN FIVE MINUTES")],
    ("174", "50561"): [("0000", "FORGOTTEN TOO THE NAME OF GILLIAN")],
}


def test_librispeech_layout(tmp_path):
    root = make_librispeech(tmp_path / "dev-clean", LAYOUT)
    (root / "SPEAKERS.TXT").write_text("; not audio\n")
    ds = read_librispeech(root, {})
    assert ds.doc_ids() == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    assert ds.texts["84-121123-0000"] == "BUT IN LESS THAN FIVE MINUTES"
    assert ds.speakers == {
        "174-50561-0000": "174",
        "84-121123-0000": "84",
        "84-121123-0001": "84",
    }
    assert ds.files["84-121123-0001"] == root / "84" / "121123" / "84-121123-0001.flac"
    ident = ds.identity
    assert ident["reader"] == "librispeech" and ident["n_items"] == 3 and ident["n_speakers"] == 2
    lim = ds.limited(2)
    assert lim.doc_ids() == ds.doc_ids()[:2] and set(lim.files) == set(lim.texts)
    assert ds.limited(None) is ds
    # The transcripts' content is part of the identity; names and sizes too.
    before = dict(ident)
    tf = root / "174" / "50561" / "174-50561.trans.txt"
    tf.write_text(tf.read_text().replace("GILLIAN", "GILLIAM"))
    after = read_librispeech(root, {}).identity
    assert after["transcripts_sha256"] != before["transcripts_sha256"]


def test_librispeech_reads_the_builtin_asr_subset(tmp_path):
    build_tiny(tmp_path / "b", ["asr"])
    root = tmp_path / "b" / "librispeech" / "dev-clean"
    ds = read_librispeech(root, {})
    assert len(ds.doc_ids()) == 8 and len(set(ds.speakers.values())) == 2
    assert all(p.suffix == ".wav" and p.is_file() for p in ds.files.values())
    assert all(t == t.upper() and t for t in ds.texts.values())


def _edit(root: Path, spk: str, chap: str, fn) -> Path:
    tf = root / spk / chap / f"{spk}-{chap}.trans.txt"
    tf.write_text(fn(tf.read_text()))
    return tf


def test_librispeech_errors(tmp_path):
    def fresh(name: str) -> Path:
        return make_librispeech(tmp_path / name, LAYOUT)

    root = fresh("missing_audio")
    (root / "84" / "121123" / "84-121123-0001.flac").unlink()
    with pytest.raises(
        DataError, match=r"84-121123.trans.txt: line 1: no audio file 84-121123-0001"
    ):
        read_librispeech(root, {})

    root = fresh("orphan")
    write_wav(root / "84" / "121123" / "84-121123-0009.wav", tone(99))
    with pytest.raises(DataError, match=r"84-121123-0009.wav: audio file has no transcript line"):
        read_librispeech(root, {})

    root = fresh("dup")
    tf = _edit(root, "84", "121123", lambda t: t + "84-121123-0000 AGAIN\n")
    with pytest.raises(
        DataError, match=rf"{tf}: line 3: duplicated utterance id .*first at .*line 2"
    ):
        read_librispeech(root, {})

    root = fresh("empty")
    _edit(root, "84", "121123", lambda t: t.replace("GO DO YOU HEAR", "  "))
    with pytest.raises(DataError, match=r"line 1: empty transcript for utterance '84-121123-0001'"):
        read_librispeech(root, {})

    root = fresh("both_formats")
    write_wav(root / "84" / "121123" / "84-121123-0000.wav", tone(5))
    with pytest.raises(
        DataError, match=r"0000.wav: audio file has no transcript line .*already used"
    ):
        read_librispeech(root, {})

    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no transcript files"):
        read_librispeech(tmp_path / "nothing", {})


def _manifest(root: Path, rows: list[dict], name: str = "transcripts.jsonl") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        write_wav(root / "wav" / f"a{i}.wav", tone(i))
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_transcribed_manifest(tmp_path):
    rows = [
        {"id": "x1", "audio": "wav/a0.wav", "text": "hello  there", "speaker": "s1", "lang": "en"},
        {"id": "x0", "audio": "wav/a1.wav", "text": "good morning"},
    ]
    root = _manifest(tmp_path / "m", rows)
    ds = read_transcribed_manifest(root, {})
    assert ds.doc_ids() == ["x1", "x0"]  # manifest order
    assert ds.texts == {"x1": "hello there", "x0": "good morning"}
    assert ds.speakers == {"x1": "s1", "x0": None}
    assert ds.meta == {"x1": {"lang": "en"}}
    assert ds.identity["reader"] == "transcribed_manifest" and ds.identity["n_items"] == 2
    assert ds.limited(1).texts == {"x1": "hello there"}
    # CSV with the same columns.
    (root / "t.csv").write_text("id,audio,text\nc1,wav/a2.wav,a b c\n")
    assert read_transcribed_manifest(root, {"file": "t.csv"}).texts == {"c1": "a b c"}


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"id": "a", "audio": "wav/a0.wav"}], r"line 1: missing field 'text'"),
        ([{"id": "a", "audio": "wav/a0.wav", "text": " "}], r"line 1: empty transcript"),
        (
            [
                {"id": "a", "audio": "wav/a0.wav", "text": "x"},
                {"id": "a", "audio": "wav/a1.wav", "text": "y"},
            ],
            r"line 2: duplicated id 'a' \(first at .*line 1\)",
        ),
        (
            [
                {"id": "a", "audio": "wav/a0.wav", "text": "x"},
                {"id": "b", "audio": "wav/a0.wav", "text": "y"},
            ],
            r"line 2: audio file 'wav/a0.wav' is already listed by .*line 1",
        ),
        ([{"id": "a", "audio": "../a0.wav", "text": "x"}], r"escapes the data folder"),
        (
            [{"id": "a", "audio": "wav/zz.wav", "text": "x"}],
            r"line 1: audio file .*zz.wav does not exist",
        ),
    ],
)
def test_transcribed_manifest_errors(tmp_path, rows, match):
    root = _manifest(tmp_path / "m", rows)
    with pytest.raises(DataError, match=match):
        read_transcribed_manifest(root, {})


def test_resynthesis_tasks_are_registered_and_valid():
    idx = load_index()
    for name, metric in (("resynth_wer", "wer"), ("resynth_cer", "cer")):
        cfg = idx.tasks[name]
        assert cfg.capability == "resynthesize" and cfg.dataset.builtin == "asr"
        assert registry.get("readers", cfg.dataset.reader) is read_librispeech
        scorer = registry.get("scorers", cfg.scoring.scorer)(dict(cfg.scoring.options))
        assert isinstance(scorer, WERScorer)
        assert scorer.describe()["primary_metric"] == f"{metric},none"
        assert cfg.judges["asr"].judge == "faster-whisper"  # the role the wer scorer needs
        assert "librispeech/dev-clean" in cfg.dataset.subdirs  # where the built-in subset is
    assert registry.get("readers", "transcribed_manifest") is read_transcribed_manifest
