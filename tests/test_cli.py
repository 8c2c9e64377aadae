"""The command line in subprocesses, with plugins registered through real entry points.

A throw-away distribution (``*.dist-info`` with ``entry_points.txt``) on PYTHONPATH
registers a fake model and a broken one, exactly as a third-party package would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import make_lexical, make_salmon, make_storycloze, make_syntactic, tone, write_wav

from speechlm_eval.results import strip_volatile

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def env(tmp_path):
    site = tmp_path / "site"
    dist = site / "fakeplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[speechlm_eval.models]\nenergy = fakeplugin:Energy\nbroken = brokenplugin:Model\n"
    )
    (site / "fakeplugin.py").write_text("from helpers import EnergyLM as Energy\n")
    (site / "brokenplugin.py").write_text("import a_module_that_does_not_exist\n")
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("SLM_EVAL_DATA", None)
    return e


def slm(env, *args, check=None, **kw):
    p = subprocess.run(
        [sys.executable, "-m", "speechlm_eval.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


def test_models_lists_plugins_and_reports_broken_once(env):
    p = slm(env, "models", check=0)
    assert "energy" in p.stdout and "loglikelihood" in p.stdout
    assert "hf-unit-lm" in p.stdout
    assert "broken" in p.stdout and "NOT LOADABLE" in p.stdout
    assert p.stderr.count("plugin 'broken'") == 1
    assert "No module named 'a_module_that_does_not_exist'" in p.stderr


def test_tasks_lists_tasks_groups_and_data_locations(env, tmp_path):
    p = slm(env, "tasks", "--data_dir", tmp_path, check=0)
    assert "swuggy" in p.stdout and "zerospeech2021/lexical/dev" in p.stdout
    assert "group salmon" in p.stdout and "[official data only]" in p.stdout
    assert f"{tmp_path} (--data_dir)" in p.stdout


def _data(root: Path) -> Path:
    make_lexical(root, ids=6)
    make_syntactic(root, ids=4)
    make_storycloze(root, "sStoryCloze", n=6)
    make_storycloze(root, "tStoryCloze", n=6, seed=400)
    make_salmon(root, "gender_consistency", n=6, k=3)
    return root


TASKS = "zerospeech,storycloze,salmon_gender_consistency"
N_FILES = 24 + 16 + 12 + 12 + 18


def _run_args(data, out, cache, tasks=TASKS, *extra):
    return [
        "run",
        "--model",
        "energy",
        "--tasks",
        tasks,
        "--data_dir",
        data,
        "--output_path",
        out,
        "--use_cache",
        cache,
        *extra,
    ]


def test_run_writes_results_groups_skip_missing_data(env, tmp_path):
    data = _data(tmp_path / "data")
    out = tmp_path / "out"
    p = slm(
        env, *_run_args(data, out, tmp_path / "c.sqlite", "likelihood", "--log_samples"), check=0
    )
    assert "acc,nll_sum" in p.stdout
    res = json.loads(next((out / "energy").glob("results_*.json")).read_text())
    assert set(res["results"]) == {"swuggy", "sblimp", "ssc", "tsc", "salmon_gender_consistency"}
    assert res["results"]["sblimp"]["acc,nll_sum"] == 1.0
    # parts of the salmon group without data are skipped with the reason, never scored
    assert res["skipped"]["salmon_rir_consistency"].startswith("skipped (no data: ")
    assert "data folder not found" in p.stderr
    assert res["group_subtasks"]["zerospeech"] == ["swuggy", "sblimp"]
    samples = list((out / "energy").glob("samples_*.jsonl"))
    assert len(samples) == 5


def test_missing_data_for_named_task_is_an_error(env, tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    out = tmp_path / "out"
    p = slm(env, *_run_args(data, out, tmp_path / "c.sqlite", "sblimp"))
    assert p.returncode == 2
    assert "task 'sblimp': data folder not found" in p.stderr and "Traceback" not in p.stderr
    assert not list(out.rglob("results_*.json"))


def _break(kind: str, data: Path, tmp: Path) -> tuple[list[str], str]:
    """Damage a copy of the data in one way; return extra CLI args and the expected message."""
    lex = data / "zerospeech2021" / "lexical" / "dev"
    syn = data / "zerospeech2021" / "syntactic" / "dev"
    ssc = data / "sStoryCloze"
    if kind == "unknown_model":
        return ["--model", "nope"], "unknown model 'nope'; registered:"
    if kind == "unknown_task":
        return ["--tasks", "swugy"], "unknown task or group 'swugy'"
    if kind == "bad_model_args":
        return ["--model_args", "novalue"], "--model_args: expected key=value"
    if kind == "gold_missing_column":
        text = (lex / "gold.csv").read_text().replace("voice", "speaker", 1)
        (lex / "gold.csv").write_text(text)
        return [], "gold.csv: missing column(s) ['voice']"
    if kind == "gold_unpaired":
        lines = (syn / "gold.csv").read_text().splitlines()
        (syn / "gold.csv").write_text("\n".join(lines[:-1]) + "\n")
        return [], "unpaired rows: 8 correct vs 7 incorrect"
    if kind == "unreadable_wav":
        (ssc / "2_correct.wav").write_bytes(b"RIFF....WAVEjunk")
        return [], "2_correct.wav: cannot read audio file"
    if kind == "empty_wav":
        sf.write(str(ssc / "2_correct.wav"), np.zeros(0, np.float32), 16000)
        return [], "2_correct.wav: audio file is empty"
    if kind == "nan_wav":
        x = tone(1)
        x[100] = np.nan
        write_wav(ssc / "2_correct.wav", x)
        return [], "2_correct.wav: audio contains NaN"
    if kind == "stereo_wav":
        sf.write(str(ssc / "2_correct.wav"), np.zeros((800, 2), np.float32), 16000)
        return [], "2_correct.wav: expected mono audio, file has 2 channels"
    if kind == "wrong_rate_wav":
        write_wav(ssc / "2_correct.wav", tone(1, sr=8000), sr=8000)
        return [], "2_correct.wav: sample rate is 8000 Hz, the dataset declares 16000 Hz"
    if kind == "yaml_unknown_key":
        inc = tmp / "inc"
        inc.mkdir()
        (inc / "x.yaml").write_text(
            "task: mine\nversion: 1\ncapability: loglikelihood\nnll: sum\n"
            "dataset: {reader: salmon, subdirs: [x]}\nscoring: {scorer: choice}\n"
        )
        return ["--include_path", str(inc)], "x.yaml: unknown key(s) ['nll']"
    if kind == "yaml_wrong_type":
        inc = tmp / "inc"
        inc.mkdir()
        (inc / "x.yaml").write_text(
            "task: mine\nversion: one\ncapability: loglikelihood\n"
            "dataset: {reader: salmon, subdirs: [x]}\nscoring: {scorer: choice}\n"
        )
        return ["--include_path", str(inc)], "x.yaml: field 'version' must be an integer"
    if kind == "hf_unit_lm_missing_paths":
        return ["--model", "hf-unit-lm", "--model_args", f"encoder={tmp}/no,kmeans={tmp}/no.npy"], (
            "encoder"
        )
    raise AssertionError(kind)


BAD = [
    "unknown_model",
    "unknown_task",
    "bad_model_args",
    "gold_missing_column",
    "gold_unpaired",
    "unreadable_wav",
    "empty_wav",
    "nan_wav",
    "stereo_wav",
    "wrong_rate_wav",
    "yaml_unknown_key",
    "yaml_wrong_type",
    "hf_unit_lm_missing_paths",
]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_gives_one_clear_error_and_no_results(env, tmp_path, kind):
    data = _data(tmp_path / "data")
    extra, msg = _break(kind, data, tmp_path)
    out = tmp_path / "out"
    args = _run_args(data, out, tmp_path / "c.sqlite")
    # later flags win in argparse, so extra overrides the defaults
    p = slm(env, *args, *extra)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("slm-eval: error:")]
    assert len(errors) == 1 and msg in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not list(out.rglob("results_*.json")) and not list(out.rglob("*.tmp"))


def _committed(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def test_killed_run_resumes_without_recomputing(env, tmp_path):
    """SIGKILL a run at several points; each resume skips every committed request and the final
    results equal an uninterrupted run's (minus times and cache counters)."""
    data = _data(tmp_path / "data")
    ref = slm(env, *_run_args(data, tmp_path / "ref", tmp_path / "ref.sqlite"), check=0)
    assert ref.returncode == 0
    cache, out, log = tmp_path / "c.sqlite", tmp_path / "out", tmp_path / "calls.log"
    args = _run_args(
        data, out, cache, TASKS, "--batch_size", "2", "--model_args", f"calls_log={log},delay=0.05"
    )
    kills = 0
    for wait_calls in (3, 9, 17, 24):
        proc = subprocess.Popen(
            [sys.executable, "-m", "speechlm_eval.cli", *map(str, args)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            n = len(log.read_text().splitlines()) if log.exists() else 0
            if n >= wait_calls:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert not list(out.rglob("results_*.json"))  # no results file from a killed run
    before = _committed(cache)
    assert 0 < before < N_FILES
    final = slm(env, *args, check=0)
    assert final.returncode == 0
    res = json.loads(next((out / "energy").glob("results_*.json")).read_text())
    computed = sum(c["computed"] for c in res["runtime"]["cache"].values())
    assert computed == N_FILES - before  # finished requests were not recomputed
    assert _committed(cache) == N_FILES
    ref_res = json.loads(next((tmp_path / "ref" / "energy").glob("results_*.json")).read_text())
    a, b = strip_volatile(res), strip_volatile(ref_res)
    for r in (a, b):  # the two runs used different cache files and model args
        r["config"].pop("use_cache")
        r["config"].pop("model_args")
        r["config"].pop("batch_size")
    assert a == b
    assert kills == 4
    assert not list(out.rglob("*.tmp"))
