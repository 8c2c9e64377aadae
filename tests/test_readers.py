"""Readers on tiny official-layout fixtures, and their errors for malformed layouts."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import make_lexical, make_salmon, make_storycloze, tone, write_wav

from speechlm_eval import ConfigError, DataError
from speechlm_eval.data_sources import DataOptions
from speechlm_eval.dataset import locate
from speechlm_eval.readers.manifest import read_manifest
from speechlm_eval.readers.pairs import read_pair_folders, read_salmon, read_storycloze
from speechlm_eval.readers.zr2021 import read_lexical, read_syntactic


def _rewrite_gold(d, fn):
    with open(d / "gold.csv") as f:
        rows = list(csv.DictReader(f))
    rows, fields = fn(rows)
    with open(d / "gold.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_lexical_reader_pairs_by_id_and_voice(tmp_path):
    d = make_lexical(tmp_path, ids=3)
    ds = read_lexical(d, {})
    assert len(ds.items) == 6 and ds.doc_ids() == ["id0", "id1", "id2"]
    it = ds.items[0]
    assert it.candidates == ("w0_v1", "n0_v1") and it.meta["voice"] == "v1"
    assert it.meta["frequency"] == 0 and ds.items[2].meta["frequency"] == 3
    assert ds.identity["manifest"] == "gold.csv" and len(ds.identity["manifest_sha256"]) == 64
    assert ds.limited(2).doc_ids() == ["id0", "id1"] and len(ds.limited(2).files) == 8


def test_lexical_reader_rows_in_any_order(tmp_path):
    d = make_lexical(tmp_path, ids=2)
    _rewrite_gold(d, lambda r: (list(reversed(r)), list(r[0])))
    ds = read_lexical(d, {})
    assert {(i.candidates[0][0], i.candidates[1][0]) for i in ds.items} == {("w", "n")}


def test_lexical_errors(tmp_path):
    d = make_lexical(tmp_path, ids=2)
    _rewrite_gold(d, lambda r: (r[:-1], list(r[0])))  # drop last non-word
    with pytest.raises(DataError, match=r"id 'id1' voice 'v2' is unpaired: no non-word"):
        read_lexical(d, {})
    d2 = make_lexical(tmp_path / "b", ids=2)
    _rewrite_gold(
        d2,
        lambda r: (
            [{k: v for k, v in x.items() if k != "voice"} for x in r],
            [k for k in r[0] if k != "voice"],
        ),
    )
    with pytest.raises(DataError, match=r"gold.csv: missing column\(s\) \['voice'\]"):
        read_lexical(d2, {})
    d3 = make_lexical(tmp_path / "c", ids=2)
    (d3 / "w1_v2.wav").unlink()
    with pytest.raises(DataError, match=r"lists 'w1_v2' but .*w1_v2.wav does not exist"):
        read_lexical(d3, {})
    d4 = make_lexical(tmp_path / "d", ids=2)
    _rewrite_gold(d4, lambda r: ([*r, r[0]], list(r[0])))
    with pytest.raises(DataError, match="duplicated filename 'w0_v1'"):
        read_lexical(d4, {})
    d5 = make_lexical(tmp_path / "e", ids=2)
    _rewrite_gold(d5, lambda r: ([{**x, "correct": "yes"} for x in r], list(r[0])))
    with pytest.raises(DataError, match="column 'correct' must be 0 or 1"):
        read_lexical(d5, {})
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "gold.csv").write_text("")
    with pytest.raises(DataError, match="cannot parse CSV"):
        read_lexical(tmp_path / "f", {})


def _make_syntactic(tmp_path, rows):
    d = tmp_path / "syntactic" / "dev"
    for i, r in enumerate(rows):
        write_wav(d / f"{r['filename']}.wav", tone(500 + i))
    with open(d / "gold.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["filename", "id", "voice", "type", "subtype", "transcription", "correct"]
        )
        w.writeheader()
        w.writerows(rows)
    return d


def test_syntactic_pairs_kth_correct_with_kth_incorrect(tmp_path):
    rows = [
        {
            "filename": "a",
            "id": "1",
            "voice": "v",
            "type": "agr",
            "subtype": "s",
            "transcription": "",
            "correct": 1,
        },
        {
            "filename": "b",
            "id": "2",
            "voice": "v",
            "type": "isl",
            "subtype": "s",
            "transcription": "",
            "correct": 1,
        },
        {
            "filename": "c",
            "id": "1",
            "voice": "v",
            "type": "agr",
            "subtype": "s",
            "transcription": "",
            "correct": 0,
        },
        {
            "filename": "d",
            "id": "2",
            "voice": "v",
            "type": "isl",
            "subtype": "s",
            "transcription": "",
            "correct": 0,
        },
    ]
    ds = read_syntactic(_make_syntactic(tmp_path, rows), {})
    assert [i.candidates for i in ds.items] == [("a", "c"), ("b", "d")]
    assert [i.meta["type"] for i in ds.items] == ["agr", "isl"]
    with pytest.raises(DataError, match="unpaired rows: 2 correct vs 1 incorrect"):
        read_syntactic(_make_syntactic(tmp_path / "x", rows[:3]), {})


def test_storycloze_and_pair_folders(tmp_path):
    d = make_storycloze(tmp_path, n=3)
    ds = read_storycloze(d, {})
    assert [i.candidates for i in ds.items] == [
        (f"{i}_correct", f"{i}_incorrect") for i in range(3)
    ]
    # slamkit-style: unlabelled names, the lexicographically first is the positive
    p = tmp_path / "pairs"
    write_wav(p / "10_b.wav", tone(1))
    write_wav(p / "10_a.wav", tone(2))
    write_wav(p / "2_x.wav", tone(3))
    write_wav(p / "2_y.wav", tone(4))
    ds2 = read_pair_folders(p, {})
    assert [i.candidates for i in ds2.items] == [("2_x", "2_y"), ("10_a", "10_b")]
    write_wav(p / "3_only.wav", tone(5))
    with pytest.raises(DataError, match="index 3 has 1 file"):
        read_pair_folders(p, {})
    write_wav(p / "story.wav", tone(6))
    with pytest.raises(DataError, match="integer index"):
        read_pair_folders(p, {})


def test_salmon_reader(tmp_path):
    d = make_salmon(tmp_path, n=3, k=3)
    ds = read_salmon(d, {})
    assert ds.items[0].candidates == ("sample_0_0", "sample_0_1", "sample_0_2")
    assert ds.identity["reader"] == "salmon" and len(ds.identity["listing_sha256"]) == 64
    (d / "sample_1_0.wav").unlink()
    with pytest.raises(DataError, match=r"sample 1 has candidates k=\[1, 2\]"):
        read_salmon(d, {})
    write_wav(d / "other.wav", tone(1))
    with pytest.raises(DataError, match="other.wav: expected a SALMon file name"):
        read_salmon(d, {})


def test_manifest_reader(tmp_path):
    d = tmp_path / "m"
    for n in "abcd":
        write_wav(d / "audio" / f"{n}.wav", tone(ord(n)))
    rows = [
        {"id": "1", "correct": "audio/a.wav", "incorrect": "audio/b.wav", "type": "t1"},
        {"id": "2", "correct": "audio/c.wav", "incorrect": ["audio/d.wav", "audio/a.wav"]},
    ]
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = read_manifest(d, {})
    assert ds.items[0].candidates == ("audio/a", "audio/b") and ds.items[0].meta == {"type": "t1"}
    assert ds.items[1].candidates == ("audio/c", "audio/d", "audio/a")
    (d / "m.csv").write_text(
        "id,correct,incorrect,incorrect_2\n1,audio/a.wav,audio/b.wav,audio/c.wav\n"
    )
    assert read_manifest(d, {"file": "m.csv"}).items[0].candidates == (
        "audio/a",
        "audio/b",
        "audio/c",
    )
    (d / "esc.jsonl").write_text(
        json.dumps({"id": "1", "correct": "../../etc/passwd", "incorrect": "audio/b.wav"}) + "\n"
    )
    with pytest.raises(DataError, match="escapes the data folder"):
        read_manifest(d, {"file": "esc.jsonl"})
    (d / "dup.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[0]]))
    with pytest.raises(DataError, match="line 2: duplicated id '1'"):
        read_manifest(d, {"file": "dup.jsonl"})
    (d / "bad.jsonl").write_text('{"id": 1,\n')
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        read_manifest(d, {"file": "bad.jsonl"})
    (d / "nofoil.jsonl").write_text(json.dumps({"id": "1", "correct": "audio/a.wav"}) + "\n")
    with pytest.raises(DataError, match="missing field 'incorrect'"):
        read_manifest(d, {"file": "nofoil.jsonl"})


def test_locate_order_and_errors(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "lexical" / "dev").mkdir(parents=True)
    (b / "zr2021" / "lexical" / "dev").mkdir(parents=True)
    monkeypatch.setenv("SLM_EVAL_DATA", str(b))
    subs = ["zr2021/lexical/dev", "lexical/dev"]

    def roots(data_dir):
        return DataOptions.from_environment(data_dir).configured()

    assert locate("swuggy", subs, roots(a)) == a / "lexical" / "dev"  # --data_dir first
    assert locate("swuggy", subs, roots(None)) == b / "zr2021" / "lexical" / "dev"
    with pytest.raises(DataError, match=r"data folder not found; looked in: .*a/x \(--data_dir\)"):
        locate("swuggy", ["x"], roots(a))
    # a configured location that does not exist is an error of its own, not "not found"
    with pytest.raises(ConfigError, match=r"--data_dir: .*nowhere does not exist"):
        roots(tmp_path / "nowhere")
    monkeypatch.delenv("SLM_EVAL_DATA")
    with pytest.raises(DataError, match="no data location configured"):
        locate("swuggy", subs, roots(None))
