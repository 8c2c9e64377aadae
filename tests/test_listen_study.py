"""``slm-eval listen create``: stimuli from results files, matching, controls, per-rater plans.

``make_runs`` writes results + samples + kept audio in the runner's layout (fast, used by the
other listen tests); one test builds a study from files the real runner wrote (gslm-mini on
the tiny built-in ``asr`` subset with --log_samples).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.listen.study import create_study, load_study, rater_plan

SR = 16000
ITEMS = ["84-121123-0000", "84-121123-0001", "84-121123-0002", "84-121123-0003"]


def _tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (0.2 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def make_runs(
    root: Path,
    systems: tuple[str, ...] = ("alpha", "beta"),
    seconds: float = 0.4,
    n_items: int = len(ITEMS),
) -> list[Path]:
    """Results files of ``systems`` on task resynth_wer with kept audio, plus the original audio
    in a LibriSpeech-like dataset root; returns the results paths."""
    data = root / "data" / "dev-clean"
    items = [f"84-121123-{i:04d}" for i in range(n_items)]
    for i, item in enumerate(items):
        spk, ch, _ = item.split("-")
        d = data / spk / ch
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{item}.wav", _tone(200 + 20 * i, seconds, i), SR, subtype="FLOAT")
    paths = []
    for k, name in enumerate(systems):
        run = root / "runs" / name
        (run / "audio").mkdir(parents=True, exist_ok=True)
        rows = []
        for i, item in enumerate(items):
            x = _tone(300 + 50 * k + 10 * i, seconds, 100 * k + i)
            h = f"{k:02d}{i:062d}"
            sf.write(run / "audio" / f"{h}.wav", x, SR, subtype="FLOAT")
            rows.append({"doc_id": item, "wer": 0.1 * k, "output_audio": f"audio/{h}.wav"})
        (run / "samples_resynth_wer_T1.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
        res = {
            "results": {"resynth_wer": {"alias": "resynth_wer", "wer,none": 0.1 * k}},
            "datasets": {"resynth_wer": {"root": str(data), "source": "builtin"}},
            "model_name": name,
            "config": {"model": name, "model_args": {}, "model_identity": {"name": name}},
        }
        p = run / "results_T1.json"
        p.write_text(json.dumps(res))
        paths.append(p)
    return paths


@pytest.mark.parametrize("test", ["mos", "cmos", "smos", "mushra", "ab"])
def test_every_test_type_builds_matched_stimuli_and_controls(tmp_path, test):
    res = make_runs(tmp_path)
    st = create_study(res, test, tmp_path / "study", seed=3)
    again = load_study(tmp_path / "study")
    assert again.study_id == st.study_id
    assert st.data["items"] == ITEMS
    kinds = [t["kind"] for t in st.trials]
    systems = {s["system"] for s in st.stimuli.values()}
    n_items, n_sys = len(ITEMS), 2
    if test == "mos":
        assert kinds.count("test") == n_items * n_sys
        assert sorted(kinds.count(k) for k in ("gold", "trap")) == [1, 1]
    elif test == "smos":
        assert all(t["reference"] for t in st.trials)
        assert kinds.count("test") == n_items * n_sys
    elif test == "cmos":
        # every system against the baseline (the original), the baseline first in canonical order
        tests = [t for t in st.trials if t["kind"] == "test"]
        assert len(tests) == n_items * n_sys
        for t in tests:
            assert st.stimuli[t["stimuli"][0]]["system"] == "reference"
            assert st.stimuli[t["stimuli"][1]]["system"] == t["system"]
            assert st.stimuli[t["stimuli"][0]]["item"] == st.stimuli[t["stimuli"][1]]["item"]
    elif test == "ab":
        assert kinds.count("test") == n_items  # one pair of systems per item
        assert kinds.count("gold") == 1
    else:
        assert len(st.trials) == n_items
        assert {"hidden_reference", "anchor35", "anchor70", "reference"} <= systems
        for t in st.trials:
            conds = {st.stimuli[s]["system"] for s in t["stimuli"]}
            assert conds == {"alpha", "beta", "hidden_reference", "anchor35", "anchor70"}
            # the hidden reference plays the same audio as the reference, under another id
            hid = next(s for s in t["stimuli"] if st.stimuli[s]["system"] == "hidden_reference")
            assert hid != t["reference"]
            assert st.stimuli[hid]["file"] == st.stimuli[t["reference"]]["file"]
    # every stimulus of a test trial comes from its item, and every file exists (16-bit PCM)
    for t in st.trials:
        if t["kind"] == "test":
            assert {st.stimuli[s]["item"] for s in t["stimuli"]} == {t["item"]}
    for s in st.stimuli.values():
        info = sf.info(str(st.root / s["file"]))
        assert info.subtype == "PCM_16" and info.samplerate == SR


def test_anchors_are_low_passed(tmp_path):
    st = create_study(make_runs(tmp_path, seconds=1.0), "mushra", tmp_path / "s")
    t = st.trials[0]

    def energy_above(sid: str, hz: float) -> float:
        x, sr = sf.read(str(st.root / st.stimuli[sid]["file"]))
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.size, 1 / sr)
        return float(spec[f > hz].sum() / spec.sum())

    by = {st.stimuli[s]["system"]: s for s in t["stimuli"]}
    # the reference is a tone plus white noise: noise energy above 4 kHz is there, not in anchor35
    assert energy_above(by["hidden_reference"], 4000) > 1e-4
    assert energy_above(by["anchor35"], 4000) < 0.05 * energy_above(by["hidden_reference"], 4000)


def test_plans_are_per_rater_deterministic_and_complete(tmp_path):
    st = create_study(make_runs(tmp_path), "ab", tmp_path / "s", seed=1)
    a1, a2, b = rater_plan(st.data, "ann"), rater_plan(st.data, "ann"), rater_plan(st.data, "bob")
    assert a1 == a2
    assert sorted(t["id"] for t in a1) == sorted(t["id"] for t in st.trials)
    assert sorted(t["id"] for t in b) == sorted(t["id"] for t in st.trials)
    # over many raters both positions of a pair occur (order randomised, not fixed)
    first = {rater_plan(st.data, f"r{i}")[0]["stimuli"][0] for i in range(40)}
    assert len(first) > 2


def test_items_subset_is_seeded(tmp_path):
    res = make_runs(tmp_path)
    a = create_study(res, "mos", tmp_path / "a", items=2, seed=5)
    b = create_study(res, "mos", tmp_path / "b", items=2, seed=5)
    assert a.data["items"] == b.data["items"] and len(a.data["items"]) == 2
    assert a.study_id == b.study_id


def test_bad_inputs_name_the_problem(tmp_path):
    res = make_runs(tmp_path)
    with pytest.raises(ConfigError, match="--test"):
        create_study(res, "abx", tmp_path / "x")
    with pytest.raises(ConfigError, match="at least two"):
        create_study(res[:1], "ab", tmp_path / "y")
    with pytest.raises(ConfigError, match="--baseline"):
        create_study(res, "cmos", tmp_path / "z", baseline="nobody")
    create_study(res, "mos", tmp_path / "w")
    with pytest.raises(ConfigError, match="already there"):
        create_study(res, "mos", tmp_path / "w")
    # the original audio is gone: SMOS needs it and says so
    for p in (tmp_path / "data").rglob("*.wav"):
        p.unlink()
    with pytest.raises(DataError, match="--reference_root"):
        create_study(res, "smos", tmp_path / "v")
    (res[1].parent / "samples_resynth_wer_T1.jsonl").unlink()
    with pytest.raises(DataError, match="log_samples"):
        create_study(res, "mos", tmp_path / "u")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """gslm-mini's resynthesis of 2 items of the tiny built-in suite, written by the runner
    (once per session: the browser test module uses it too)."""
    root = tmp_path_factory.getbasetemp() / "listen-real-run"
    done = list((root / "out").rglob("results_*.json"))
    if done:
        return done[0]
    env_cmd = [sys.executable, "-m", "speechlm_eval.cli"]
    subprocess.run(
        [*env_cmd, "data", "build", "--size", "tiny", "--subsets", "asr", "--out", str(root / "d")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *env_cmd,
            "run",
            "--model",
            "gslm-mini",
            "--tasks",
            "resynth_wer",
            "--data_dir",
            str(root / "d"),
            "--limit",
            "2",
            "--log_samples",
            "--no_cache",
            "--output_path",
            str(root / "out"),
        ],
        check=True,
        capture_output=True,
    )
    return next((root / "out").rglob("results_*.json"))


def test_study_from_files_the_runner_wrote(real_run, tmp_path):
    st = create_study([real_run], "mushra", tmp_path / "s")
    rows = [
        json.loads(x)
        for x in next(real_run.parent.glob("samples_resynth_wer_*.jsonl")).read_text().splitlines()
    ]
    assert st.data["task"] == "resynth_wer" and st.data["audio_field"] == "output_audio"
    assert st.data["items"] == sorted(r["doc_id"] for r in rows)
    # the reference came from the dataset root the results file records
    refs = [s for s in st.stimuli.values() if s["system"] == "reference"]
    assert len(refs) == 2 and all(Path(s["source"]).is_file() for s in refs)
    assert all(t["kind"] == "test" for t in st.trials)


def test_several_outputs_per_document_match_in_order(tmp_path):
    res = make_runs(tmp_path)
    for p in res:  # two continuations per document, no 'sample' index in the rows
        f = p.parent / "samples_resynth_wer_T1.jsonl"
        rows = [json.loads(x) for x in f.read_text().splitlines()]
        doubled = [r for row in rows for r in (row, dict(row))]
        f.write_text("".join(json.dumps(r) + "\n" for r in doubled))
    st = create_study(res, "mos", tmp_path / "s")
    assert st.data["items"] == sorted(ITEMS + [f"{i}#1" for i in ITEMS])
