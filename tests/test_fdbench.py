"""Full-Duplex-Bench metrics (speechlm_eval.fdbench) against the official scorer.

The official evaluation code (``v1_v1.5/evaluation/*.py`` of DanielLin94144/Full-Duplex-Bench
at ``COMMIT``) is read from a local git mirror (``FDB_REPO``, default the harness' mirror
path), imported from a temporary folder and run on hand-made files in the official layout
(``{ID}/output.json`` word timestamps, ``turn_taking.json``, ``interrupt.json``,
``icc_gt_distribution.json``). Stubbed, because they are not part of the metrics: the
OpenAI client (the interruption relevance rating), ``torchaudio.load`` (only the output's
length is used: a zero tensor of that length) and Silero VAD (replaced by the hand-made
segments, in the form ``get_speech_timestamps(return_seconds=True)`` returns them; our
functions take the same segments). The official scorers print their results: means are
read from the printed lines (``print`` of a float is exact), the backchannel ones (printed
to 4 decimals) from the arguments of the module's ``np.mean``.

Without the mirror those tests skip; ``test_pinned_official_values`` compares with the
values the official code printed at ``COMMIT`` (recorded below) and always runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval import fdbench as fdb
from speechlm_eval.errors import DataError

COMMIT = "d7336bda1385872b83b48a8d45d9c0003836a60d"
REPO = Path(os.environ.get("FDB_REPO", "/work/.mirror/DanielLin94144+Full-Duplex-Bench/repo"))
EVAL = "v1_v1.5/evaluation"

# ---------------------------------------------------------------- hand-made cases

W = [("w", 0.0, 0.1)]  # a placeholder word shape: (text, start, end)

PAUSE_CASES = {
    "1": [],  # silent -> 0
    "2": [("yeah", 3.0, 3.3), ("right", 3.4, 3.6)],  # short, 2 words -> 0
    "3": [("a", 1.0, 1.1), ("b", 1.2, 1.3), ("c", 1.4, 1.5), ("d", 1.6, 1.7)],  # 4 words -> 1
    "4": [("well", 2.0, 2.5), ("okay", 2.6, 3.0)],  # exactly 1.0 s: not < 1 -> 1
    "5": [("so", 5.0, 5.2), ("then", 5.3, None)],  # last end None: duration from its start
    "6": [("I", 0.5, 0.6), ("think", 0.7, 1.0), ("so", 1.1, 1.3)],  # 0.8 s, 3 words -> 0
}
TURN_CASES = {  # words, turn end (turn_taking.json[0].timestamp[0])
    "1": ([("sure", 4.1, 4.4), ("I", 4.5, 4.6), ("can", 4.6, 4.8), ("do", 4.8, 5.3)], 3.85),
    "2": ([("hello", 2.0, 2.6), ("there", 2.7, 3.4)], 2.5),  # early start: clipped to 0
    "3": ([("mm", 6.0, 6.2)], 5.0),  # TOR 0: no latency
    "4": ([], 1.0),
    "5": ([("the", 7.25, 7.4), ("answer", 7.5, 8.0), ("is", 8.1, 8.3), ("no", 8.4, 8.6)], 6.0),
}
INTERRUPT_CASES = {  # words (absolute timeline, cropped output), interruption end
    "1": ([("oh", 9.3, 9.5), ("sorry", 9.6, 10.1), ("go", 10.2, 10.4), ("on", 10.4, 10.9)], 9.0),
    "2": ([("okay", 12.0, 12.4)], 11.0),
    "3": ([("right", 7.8, 8.2), ("let", 8.3, 8.5), ("me", 8.5, 8.6), ("fix", 8.7, 9.4)], 8.0),
}
# Backchannel: VAD segments (seconds, 0.1 s resolution as Silero returns them), words,
# output length in samples at 16 kHz, ground-truth distribution length.
BC_CASES = {
    "0": ([], [], 16000 * 10, 40),  # no candidate: JSD 1
    "1": ([(1.2, 1.6)], [("yeah", 1.25, 1.55)], 16000 * 8, 37),
    "2": (
        [(0.5, 0.9), (3.1, 3.5), (6.0, 6.8)],
        [("mm", 0.55, 0.8), ("uh", 3.2, 3.4), ("I", 6.0, 6.2), ("see", 6.3, 6.5), ("it", 6.6, 6.8)],
        16000 * 12 + 3200,
        60,
    ),  # last candidate has 3 words < 1 s -> TOR 1
    "3": (
        [(0.4, 0.8), (2.0, 5.5), (7.0, 7.2)],
        [("ok", 0.5, 0.7), ("long", 2.1, 5.4)],
        16000 * 9,
        45,
    ),  # a > 3 s segment: TOR 1, scan stops (one candidate)
    "4": (
        [(1.0, 1.4), (2.0, 3.1)],
        [("uh", 1.1, None), ("huh", 1.2, 1.3), ("a", 2.0, 2.2), ("b", 2.9, 3.3)],
        16000 * 5,
        23,
    ),  # None end; a word crossing the segment end; 1.1 s segment -> TOR 1
    "5": ([(0.2, 0.6), (4.4, 4.7)], [("yes", 4.45, 4.65)], 16000 * 6, 31),  # last decides: 0
}
TIMING_CASES = {  # user, model VAD segments (samples at 16 kHz, as get_speech_ts gives them)
    "1": ([(8000, 40000), (48000, 80000), (100000, 120000)], [(84000, 110000), (118000, 150000)]),
    "2": ([(1600, 32000), (41000, 64000)], [(16000, 20000), (27000, 30000), (70000, 90000)]),
    "3": ([(0, 16000)], []),
}


def _gt(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    x = rng.random(n) ** 3
    x[rng.random(n) < 0.3] = 2e-13
    return list(x / x.sum())


GT = {k: _gt(case[3], int(k)) for k, case in BC_CASES.items()}


def _chunks(words: list) -> dict:
    return {
        "text": " ".join(w[0] for w in words),
        "chunks": [{"text": t, "timestamp": [s, e]} for t, s, e in words],
    }


# ---------------------------------------------------------------- our side


def ours() -> dict[str, float]:
    out: dict[str, float] = {}
    r = fdb.pause_handling(list(PAUSE_CASES.values()))
    out["pause_tor"] = r.tor
    r = fdb.smooth_turn_taking(list(TURN_CASES.values()))
    out["turn_tor"], out["turn_latency"] = r.tor, r.latency
    r = fdb.user_interruption(list(INTERRUPT_CASES.values()))
    out["interrupt_tor"], out["interrupt_latency"] = r.tor, r.latency
    bc = fdb.backchannel(
        [
            fdb.backchannel_sample(segs, words, n / 16000, GT[k])
            for k, (segs, words, n, _) in BC_CASES.items()
        ]
    )
    out.update(bc_tor=bc.tor, bc_freq=bc.frequency, bc_jsd=bc.jsd)
    for k, (user, model) in TIMING_CASES.items():
        t = fdb.timing(
            [(a / 16000, b / 16000) for a, b in user], [(a / 16000, b / 16000) for a, b in model]
        )
        out[f"timing_{k}"] = json.dumps({"stop": t.stop, "response": t.response})
    return out


# What the official code at COMMIT gave on the cases above (test_official_side_by_side
# checks that it still does): printed lines, and the backchannel np.mean arguments' means.
PINNED = {
    "pause_tor": 0.3333333333333333,
    "turn_tor": 0.6,
    "turn_latency": 0.49999999999999983,
    "interrupt_tor": 0.6666666666666666,
    "interrupt_latency": 0.15000000000000036,
    "bc_tor": 0.5,
    "bc_freq": 0.20255768063145116,
    "bc_jsd": 0.7568752387202823,
    "timing_1": '{"stop": [[6.25, 7.5]], "response": [[5.0, 5.25]]}',
    "timing_2": '{"stop": [[1.0, 1.875]], "response": [[4.0, 4.375]]}',
    "timing_3": '{"stop": [], "response": []}',
}


# ---------------------------------------------------------------- the official side


def _official_source(name: str) -> str:
    if not (REPO / "HEAD").exists() and not (REPO / ".git").exists():
        pytest.skip(f"no Full-Duplex-Bench git mirror at {REPO} (set FDB_REPO)")
    try:
        return _git("show", f"{COMMIT}:{EVAL}/{name}.py").decode()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot read {name}.py at {COMMIT[:7]} from {REPO}: {e}")


def _git(*args: str) -> bytes:
    """git on the mirror (a bare repository) or on a checkout."""
    where = ["--git-dir", str(REPO)] if (REPO / "HEAD").exists() else ["-C", str(REPO)]
    return subprocess.run(["git", *where, *args], check=True, capture_output=True).stdout


def _load(tmp: Path, name: str, monkeypatch) -> types.ModuleType:
    path = tmp / f"{name}.py"
    path.write_text(_official_source(name), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"fdb_official_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


def _run(fn, *args) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        fn(*args)
    return buf.getvalue()


def _value(printed: str, label: str) -> float:
    return float(re.search(rf"{re.escape(label)}\s+(\S+)", printed).group(1))


class _Client:
    """OpenAI stub: every request is answered with a parseable rating."""

    def __init__(self) -> None:
        self.chat = types.SimpleNamespace(completions=self)

    def create(self, **_: object) -> object:
        msg = types.SimpleNamespace(content="Analysis: fine.\nI would rate the AI's response as 4")
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=msg)])


def official(tmp: Path, monkeypatch) -> dict[str, float]:
    import torch

    out: dict[str, float] = {}
    code = tmp / "code"
    code.mkdir()
    # torchaudio (not installed here, and unrelated to the metrics): load() gives a zero
    # signal of the case's length; silero_vad: the case's segments.
    current: dict[str, object] = {}
    fake_ta = types.ModuleType("torchaudio")

    def ta_load(path: str):
        spk = Path(path).parent.name
        current["spk"] = spk
        return torch.zeros(1, BC_CASES[spk][2]), 16000

    fake_ta.load = ta_load
    fake_vad = types.ModuleType("silero_vad")
    fake_vad.load_silero_vad = lambda: None
    fake_vad.get_speech_timestamps = lambda wav, model, return_seconds: [
        {"start": a, "end": b} for a, b in BC_CASES[current["spk"]][0]
    ]

    class VoiceActivityDetector:  # get_timing's first branch (no torch.hub download)
        def __init__(self, sample_rate: int) -> None:
            pass

        def get_speech_ts(self, key: str):
            return [{"start": a, "end": b} for a, b in current["timing"][key]]

    fake_vad.VoiceActivityDetector = VoiceActivityDetector
    monkeypatch.setitem(sys.modules, "torchaudio", fake_ta)
    monkeypatch.setitem(sys.modules, "silero_vad", fake_vad)

    def write(root: Path, cases: dict, extra, words_at: int | None = 0) -> Path:
        for k, case in cases.items():
            d = root / k
            d.mkdir(parents=True)
            words = case if words_at is None else case[words_at]
            (d / "output.json").write_text(json.dumps(_chunks(words)))
            for name, obj in extra(case):
                (d / name).write_text(json.dumps(obj))
        return root

    m = _load(code, "eval_pause_handling", monkeypatch)
    p = _run(m.eval_pause_handling, str(write(tmp / "pause", PAUSE_CASES, lambda c: [], None)))
    out["pause_tor"] = _value(p, "Average take turn:")

    m = _load(code, "eval_smooth_turn_taking", monkeypatch)
    root = write(
        tmp / "turn",
        TURN_CASES,
        lambda c: [
            ("turn_taking.json", [{"text": "[TURN-TAKING]", "timestamp": [c[1], c[1] + 2]}])
        ],
    )
    p = _run(m.eval_smooth_turn_taking, str(root))
    out["turn_tor"] = _value(p, "Average take turn:")
    out["turn_latency"] = _value(p, "Average latency:")

    m = _load(code, "eval_user_interruption", monkeypatch)
    root = write(
        tmp / "interrupt",
        INTERRUPT_CASES,
        lambda c: [
            ("interrupt.json", [{"context": "c", "interrupt": "i", "timestamp": [c[1] - 2, c[1]]}])
        ],
    )
    p = _run(m.eval_user_interruption, str(root), _Client())
    out["interrupt_tor"] = _value(p, "Average take turn:")
    out["interrupt_latency"] = _value(p, "Average latency:")

    m = _load(code, "eval_backchannel", monkeypatch)
    means: list[list[float]] = []

    class NP(types.ModuleType):  # numpy, recording what the scorer averages
        def __getattr__(self, name: str):
            return getattr(np, name)

    rec = NP("numpy")
    rec.mean = lambda x: means.append(list(x)) or np.mean(x)
    monkeypatch.setattr(m, "np", rec)
    # output.wav must exist; the torchaudio stub does not read it.
    root = write(tmp / "bc", BC_CASES, lambda c: [("output.wav", "")], 1)
    monkeypatch.chdir(root)  # the scorer reads ./icc_gt_distribution.json
    (root / "icc_gt_distribution.json").write_text(json.dumps(GT))
    _run(m.eval_backchannel, str(root))
    jsd, tor, freq = means
    out.update(bc_tor=sum(tor) / len(tor), bc_freq=np.mean(freq), bc_jsd=np.mean(jsd))
    # Our aggregate is np.mean too: the official lists are in os.listdir order, ours in
    # case order; compare per-sample sets as well.
    out["_bc_jsd_samples"] = sorted(jsd)

    m = _load(code, "get_timing", monkeypatch)
    for k, (user, model) in TIMING_CASES.items():
        current["timing"] = {"u": user, "m": model}
        t = {
            "stop": m.overlaps(m.seg_sec("u", m.USER_MERGE_GAP), m.seg_sec("m", m.MODEL_MERGE_GAP)),
            "response": m.response_gaps(
                m.seg_sec("u", m.USER_MERGE_GAP), m.seg_sec("m", m.MODEL_MERGE_GAP)
            ),
        }
        out[f"timing_{k}"] = json.dumps(t)
    return out


def test_official_side_by_side(tmp_path, monkeypatch):
    theirs = official(tmp_path, monkeypatch)
    mine = ours()
    for k, v in mine.items():
        if isinstance(v, str):
            assert v == theirs[k], k
        else:
            assert v == pytest.approx(theirs[k], abs=1e-9), k
    mine_jsd = sorted(
        fdb.backchannel_sample(segs, words, n / 16000, GT[k]).jsd
        for k, (segs, words, n, _) in BC_CASES.items()
    )
    assert mine_jsd == pytest.approx(theirs["_bc_jsd_samples"], abs=1e-12)
    # The pinned values are what the official code printed (kept in step with it).
    for k, v in PINNED.items():
        assert theirs[k] == (v if isinstance(v, str) else pytest.approx(v, abs=1e-12)), k


def test_pinned_official_values():
    mine = ours()
    for k, v in PINNED.items():
        assert mine[k] == (v if isinstance(v, str) else pytest.approx(v, abs=1e-9)), k


# ---------------------------------------------------------------- hand-computed


def test_take_over_rule_by_hand():
    assert fdb.take_over([]) == 0
    assert fdb.take_over([("a", 0, 0.3), ("b", 0.4, 0.9)]) == 0  # 0.9 s, 2 words
    assert fdb.take_over([("a", 0, 0.3), ("b", 0.4, 1.0)]) == 1  # 1.0 s is not < 1
    assert fdb.take_over([("a", 0, 0.1)] * 4) == 1  # 4 words
    assert fdb.take_over([("a", 0, 0.3), ("b", 0.4, 0.9)], duration_threshold=0.5) == 1
    r = fdb.smooth_turn_taking([([("a", 2.0, 2.5), ("b", 2.6, 3.5)], 2.4), ([], 1.0)])
    assert (r.tor, r.n, r.n_latency, r.n_excluded) == (0.5, 2, 1, 1)
    assert r.latency == pytest.approx(0.0) and r.latencies == [0.0, None]  # 2.0 - 2.4 -> 0
    assert math.isnan(fdb.pause_handling([[]]).latency)
    assert fdb.shift_words([("a", 0.5, 1.0)], 9.0) == [("a", 9.5, 10.0)]
    with pytest.raises(DataError, match="word 0"):
        fdb.take_over([("a", "x", 1.0)])
    with pytest.raises(DataError, match="no samples"):
        fdb.pause_handling([])


def test_backchannel_by_hand():
    # One 0.4 s candidate over 1.0 s of output: bins of 0.2 s, int(1.0 / 0.2) + 1 = 6 bins;
    # [0.2, 0.6] fills bins int(0.2 / 0.2) = 1 to int(0.6 / 0.2) = 2 (0.6 / 0.2 is
    # 2.9999999999999996 in floats: the official int() binning, kept). Against a uniform
    # ground truth (the interpolation keeps it uniform):
    s = fdb.backchannel_sample([(0.2, 0.6)], [("yeah", 0.25, 0.5)], 1.0, [1 / 6] * 6)
    assert (s.tor, s.frequency, s.candidates) == (0, 1.0, [(0.2, 0.6)])
    p = np.array([0, 1, 1, 0, 0, 0]) + 1e-10
    p, q = p / p.sum(), np.full(6, 1 / 6)
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a * np.log(a / b)))  # noqa: E731
    assert s.jsd == pytest.approx(math.sqrt((kl(p, m) + kl(q, m)) / 2), abs=1e-9)
    s = fdb.backchannel_sample([], [], 2.0, [0.5, 0.5])
    assert (s.tor, s.frequency, s.jsd) == (0, 0.0, 1.0)
    s = fdb.backchannel_sample([(0.0, 3.5), (4.0, 4.2)], [], 5.0, [0.5, 0.5])
    assert s.tor == 1 and s.candidates == []  # the long segment stops the scan
    assert fdb.silero_seconds([(0.04, 1.26)], 1.2) == [(0.0, 1.2)]
    with pytest.raises(DataError, match="at least 2 bins"):
        fdb.backchannel_sample([], [], 1.0, [1.0])


def test_timing_by_hand():
    t = fdb.timing([(0.0, 2.0), (2.5, 4.0)], [(3.0, 5.0), (5.4, 6.0), (7.0, 8.0)])
    # user merged (0.5 s gap <= 0.6) to [0, 4]; model [3, 6] (0.4 <= 0.5) and [7, 8].
    assert t.stop == [[3.0, 4.0]] and t.stop_latencies == [1.0]
    assert t.response == [[4.0, 7.0]] and t.response_latencies == [3.0]
    assert fdb.merge_segments([(1, 2), (0, 0.5)], 0.5) == [(0.0, 2.0)]


def test_gt_distribution_checks():
    assert fdb.gt_distribution({"3": [0.5, 0.5]}, "3", "gt.json") == [0.5, 0.5]
    for bad, key in (([1], "3"), ({"3": [0.5, -1]}, "3"), ({"3": [0.5, 0.5]}, "4")):
        with pytest.raises(DataError, match="gt.json"):
            fdb.gt_distribution(bad, key, "gt.json")


def _words_of(path: Path) -> list:
    return [(c["text"], *c["timestamp"]) for c in json.loads(path.read_text())["chunks"]]


def test_official_examples_side_by_side(tmp_path, monkeypatch):
    """The repository's own example outputs (real ASR word timestamps), both scorers."""
    _official_source("eval_pause_handling")  # skips without the mirror
    tar = _git("archive", COMMIT, f"{EVAL}/example_data")
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=tar, check=True)
    ex = tmp_path / EVAL / "example_data"
    code = tmp_path / "code"
    code.mkdir()

    m = _load(code, "eval_pause_handling", monkeypatch)
    root = ex / "pause_handling_example"
    theirs = _value(_run(m.eval_pause_handling, str(root)), "Average take turn:")
    assert fdb.pause_handling([_words_of(root / "1" / "output.json")]).tor == theirs

    m = _load(code, "eval_smooth_turn_taking", monkeypatch)
    root = ex / "smooth_turn_taking_example"
    p = _run(m.eval_smooth_turn_taking, str(root))
    end = json.loads((root / "1" / "turn_taking.json").read_text())[0]["timestamp"][0]
    r = fdb.smooth_turn_taking([(_words_of(root / "1" / "output.json"), end)])
    assert r.tor == _value(p, "Average take turn:") == 1
    assert r.latency == pytest.approx(_value(p, "Average latency:"), abs=1e-9)

    m = _load(code, "eval_user_interruption", monkeypatch)
    root = ex / "user_interruption_example"
    p = _run(m.eval_user_interruption, str(root), _Client())
    end = json.loads((root / "1" / "interrupt.json").read_text())[0]["timestamp"][1]
    r = fdb.user_interruption([(_words_of(root / "1" / "output.json"), end)])
    assert r.tor == _value(p, "Average take turn:") == 1
    assert r.latency == pytest.approx(_value(p, "Average latency:"), abs=1e-9)
