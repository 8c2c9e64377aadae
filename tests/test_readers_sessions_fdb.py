"""Readers ``fdbench`` (Full-Duplex-Bench v1 / v1.5 layouts) and ``stereo_conversations``
(Fisher-style two-channel corpus): hand-made layouts, the official example folders when the
Full-Duplex-Bench mirror is present, and one clear DataError per broken file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import tone, write_wav

from speechlm_eval.audio import AudioRef
from speechlm_eval.errors import DataError
from speechlm_eval.readers.dialogue import read_stereo_conversations
from speechlm_eval.readers.fdbench import read_fdbench

SR = 16000
COMMIT = "d7336bda1385872b83b48a8d45d9c0003836a60d"
REPO = Path(os.environ.get("FDB_REPO", "/work/.mirror/DanielLin94144+Full-Duplex-Bench/repo"))


def _sample(root: Path, doc: str, files: dict[str, object], wavs=("input.wav",)) -> Path:
    d = root / doc
    d.mkdir(parents=True)
    for w in wavs:
        write_wav(d / w, tone(int(doc) if doc.isdigit() else 0, 1.0))
    for name, obj in files.items():
        (d / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return d


def test_v1_pause_turn_interrupt_backchannel(tmp_path):
    root = tmp_path / "candor_pause_handling"
    for doc in ("10", "2", "1"):
        _sample(root, doc, {"pause.json": [{"text": "[PAUSE]", "timestamp": [3.32, 4.0]}]})
    (root / "README.md").write_text("x")
    ds = read_fdbench(root, {})
    assert ds.doc_ids() == ["1", "2", "10"]  # numeric order
    assert {i.kind for i in ds.items} == {"pause_handling"}
    assert ds.items[0].meta == {
        "id": "1",
        "subset": "candor_pause_handling",
        "version": "v1",
        "pauses": [[3.32, 4.0]],
    }
    assert ds.files["2"] == root / "2" / "input.wav"
    assert ds.identity["subset"] == "candor_pause_handling" and ds.identity["n_items"] == 3

    root = tmp_path / "candor_turn_taking"
    _sample(
        root,
        "1",
        {
            "turn_taking.json": [{"text": "[TURN-TAKING]", "timestamp": [2.01, 2.4]}],
            "transcription.json": "[]",
        },
    )
    (item,) = read_fdbench(root, {}).items
    assert item.kind == "turn_taking" and item.meta["turn_end"] == 2.01
    assert item.meta["transcription"].endswith("transcription.json")

    root = tmp_path / "synthetic_user_interruption"
    ann = [{"context": "Could you", "interrupt": "Wait", "timestamp": [10.5, 13.1]}]
    _sample(root, "1", {"interrupt.json": ann}, ("input.wav", "context.wav", "interrupt.wav"))
    (item,) = read_fdbench(root, {}).items
    assert item.kind == "user_interruption"
    assert item.meta["interrupt"] == [10.5, 13.1] and item.meta["interrupt_end"] == 13.1
    assert item.meta["interrupt_text"] == "Wait" and Path(item.meta["context_audio"]).is_file()

    root = tmp_path / "bc"
    _sample(root, "0", {})
    _sample(root, "1", {})
    (root / "gt.json").write_text(json.dumps({"0": [0.5, 0.5], "1": [0.2, 0.8]}))
    ds = read_fdbench(root, {"subset": "icc_backchannel", "gt_distribution": "gt.json"})
    assert [i.meta["gt_distribution"] for i in ds.items] == [[0.5, 0.5], [0.2, 0.8]]
    assert ds.identity["gt_distribution_sha256"]
    assert read_fdbench(root, {"subset": "icc_backchannel"}).items[0].kind == "backchannel"


def test_v15_layout(tmp_path):
    root = tmp_path / "talking_to_other"
    md = {"context_text": "What", "current_turn_text": "Oh", "timestamps": [7.275, 11.467]}
    _sample(root, "1", {"metadata.json": md}, ("input.wav", "clean_input.wav"))
    (item,) = read_fdbench(root, {}).items
    assert item.kind == "overlap_talking_to_other" and item.meta["version"] == "v1.5"
    assert item.meta["overlap"] == [7.275, 11.467] and item.meta["current_turn_text"] == "Oh"
    assert Path(item.meta["clean_input"]).name == "clean_input.wav"
    ui = tmp_path / "user_interruption"
    _sample(ui, "1", {"metadata.json": md}, ("input.wav", "clean_input.wav"))
    assert read_fdbench(ui, {}).items[0].kind == "overlap_user_interruption"


@pytest.mark.parametrize(
    "subset, files, wavs, match",
    [
        ("candor_pause_handling", {}, ("input.wav",), r"1/pause\.json: required file"),
        (
            "candor_pause_handling",
            {"pause.json": "{"},
            ("input.wav",),
            r"pause\.json: not valid JSON",
        ),
        (
            "candor_pause_handling",
            {"pause.json": []},
            ("input.wav",),
            r"pause\.json: expected a non-empty list",
        ),
        (
            "candor_turn_taking",
            {"turn_taking.json": [{"timestamp": [3, 2]}]},
            ("input.wav",),
            r"turn_taking\.json: entry 0 'timestamp': expected \[start, end\]",
        ),
        (
            "candor_pause_handling",
            {"pause.json": [{"timestamp": [1, 2]}]},
            (),
            r"1/input\.wav: required audio",
        ),
        (
            "synthetic_user_interruption",
            {"interrupt.json": [{"context": "a", "interrupt": "b", "timestamp": [1, 2]}]},
            ("input.wav",),
            r"1/context\.wav: required audio",
        ),
        (
            "background_speech",
            {"metadata.json": {"timestamps": [1]}},
            ("input.wav", "clean_input.wav"),
            r"metadata\.json: 'timestamps'",
        ),
        (
            "background_speech",
            {"metadata.json": {"timestamps": [1, 2]}},
            ("input.wav",),
            r"clean_input\.wav: required audio",
        ),
    ],
)
def test_broken_samples_name_the_file(tmp_path, subset, files, wavs, match):
    root = tmp_path / subset
    _sample(root, "1", files, wavs)
    with pytest.raises(DataError, match=match):
        read_fdbench(root, {})


def test_bad_folders_and_options(tmp_path):
    with pytest.raises(DataError, match="cannot tell the Full-Duplex-Bench subset"):
        _sample(tmp_path / "mystery", "1", {})
        read_fdbench(tmp_path / "mystery", {})
    (tmp_path / "icc_backchannel").mkdir()
    with pytest.raises(DataError, match="no sample folders"):
        read_fdbench(tmp_path / "icc_backchannel", {})
    _sample(tmp_path / "icc_backchannel", "3", {})
    (tmp_path / "icc_backchannel" / "gt.json").write_text(json.dumps({"1": [0.5, 0.5]}))
    with pytest.raises(DataError, match="gt.json: no ground-truth distribution for sample '3'"):
        read_fdbench(tmp_path / "icc_backchannel", {"gt_distribution": "gt.json"})
    with pytest.raises(DataError, match="subset"):
        read_fdbench(tmp_path / "icc_backchannel", {"subset": "nope"})
    with pytest.raises(DataError, match="v1.5 subset"):
        read_fdbench(tmp_path / "mystery", {"subset": "user_interruption", "version": "v1"})


def test_official_example_folders(tmp_path):
    """The repository's own example samples (pause handling, turn-taking) read as v1."""
    if not (REPO / "HEAD").exists():
        pytest.skip(f"no Full-Duplex-Bench git mirror at {REPO} (set FDB_REPO)")
    for example, subset in (
        ("pause_handling_example", "candor_pause_handling"),
        ("smooth_turn_taking_example", "candor_turn_taking"),
    ):
        src = f"v1_v1.5/evaluation/example_data/{example}"
        tar = subprocess.run(
            ["git", "--git-dir", str(REPO), "archive", COMMIT, src],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=tar, check=True)
        root = tmp_path / subset
        (tmp_path / src).rename(root)
        ds = read_fdbench(root, {})
        (item,) = ds.items
        audio = AudioRef(ds.files["1"]).load()
        # The example inputs are mono (pause: 48 kHz, turn-taking: 16 kHz); the annotations
        # lie inside the audio.
        assert item.doc_id == "1" and audio.sample_rate in (16000, 48000)
        spans = item.meta.get("pauses") or item.meta["turn_taking"]
        assert max(t for span in spans for t in span) < audio.duration
        if subset == "candor_turn_taking":
            assert item.meta["turn_end"] == pytest.approx(2.01)
        else:
            assert item.meta["pauses"] == [pytest.approx([3.32, 4.0])]


# ---------------------------------------------------------------- stereo conversations


def _stereo(path: Path, seconds: float = 3.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * SR)
    x = np.zeros((n, 2), np.float32)
    x[: n // 3, 0] = 0.1
    x[n // 2 :, 1] = 0.2
    sf.write(path, x, SR, subtype="PCM_16")


def test_stereo_conversations_with_fisher_and_json_segments(tmp_path):
    _stereo(tmp_path / "000" / "fe_03_00001.wav")
    _stereo(tmp_path / "000" / "fe_03_00002.wav")
    _stereo(tmp_path / "001" / "fe_03_00003.wav")
    (tmp_path / "000" / "fe_03_00001.txt").write_text(
        "# fe_03_00001.sph\n# Transcribed at the LDC\n\n0.36 0.9 A: hello\n1.5 2.9 B: hi there\n"
        "1.0 1.2 A: yeah\n"
    )
    (tmp_path / "000" / "fe_03_00002.json").write_text(json.dumps({"A": [[0, 1]], "B": [[1.5, 3]]}))
    ds = read_stereo_conversations(tmp_path, {"user": "B"})
    assert ds.doc_ids() == ["000/fe_03_00001", "000/fe_03_00002", "001/fe_03_00003"]
    first = ds.items[0]
    assert first.kind == "conversation"
    assert first.meta["ipus"] == {"user": [[1.5, 2.9]], "other": [[0.36, 0.9], [1.0, 1.2]]}
    assert ds.items[1].meta["ipus"]["user"] == [[1.5, 3.0]]
    assert "ipus" not in ds.items[2].meta and ds.identity["n_with_segments"] == 2
    user = ds.files["000/fe_03_00001"]
    assert isinstance(user, AudioRef) and user.channel == 1 and first.reference.channel == 0
    a, b = user.load(), first.reference.load()
    assert a.duration == 3.0 and np.abs(b.samples[:100]).max() == pytest.approx(0.1, abs=1e-4)
    assert np.abs(a.samples[:100]).max() == 0


def test_stereo_conversations_errors(tmp_path):
    with pytest.raises(DataError, match="no audio file matches"):
        read_stereo_conversations(tmp_path, {})
    write_wav(tmp_path / "mono.wav", tone(0, 1.0))
    with pytest.raises(DataError, match=r"mono\.wav: expected a two-channel"):
        read_stereo_conversations(tmp_path, {})
    (tmp_path / "mono.wav").unlink()
    _stereo(tmp_path / "c.wav")
    (tmp_path / "c.txt").write_text("0.3 x A: hello\n")
    with pytest.raises(DataError, match=r"c\.txt: line 1: start and end must be numbers"):
        read_stereo_conversations(tmp_path, {})
    (tmp_path / "c.txt").write_text("0.3 0.5 C: hello\n")
    with pytest.raises(DataError, match=r"c\.txt: line 1: expected 'start end A: text'"):
        read_stereo_conversations(tmp_path, {})
    (tmp_path / "c.txt").write_text("0.3 9.5 A: hello\n")
    with pytest.raises(DataError, match=r"c\.wav: its segments end at 9.5 s"):
        read_stereo_conversations(tmp_path, {})
    (tmp_path / "c.txt").unlink()
    (tmp_path / "c.json").write_text(json.dumps({"A": [[0, 1]]}))
    with pytest.raises(DataError, match=r"c\.json: expected"):
        read_stereo_conversations(tmp_path, {})
    with pytest.raises(DataError, match="segments folder"):
        read_stereo_conversations(tmp_path, {"segments_dir": "nope"})
    with pytest.raises(DataError, match="user"):
        read_stereo_conversations(tmp_path, {"user": "C"})
