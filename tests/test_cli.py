"""The command line in subprocesses, with plugins registered through real entry points.

A throw-away distribution (``*.dist-info`` with ``entry_points.txt``) on PYTHONPATH
registers a fake model and a broken one, exactly as a third-party package would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import cli_data, run_args, slm
from helpers import tone, write_wav


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


def test_run_writes_results_groups_skip_missing_data(env, tmp_path):
    data = cli_data(tmp_path / "data")
    out = tmp_path / "out"
    p = slm(
        env, *run_args(data, out, tmp_path / "c.sqlite", "likelihood", "--log_samples"), check=0
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
    p = slm(env, *run_args(data, out, tmp_path / "c.sqlite", "sblimp"))
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
    data = cli_data(tmp_path / "data")
    extra, msg = _break(kind, data, tmp_path)
    out = tmp_path / "out"
    args = run_args(data, out, tmp_path / "c.sqlite")
    # later flags win in argparse, so extra overrides the defaults
    p = slm(env, *args, *extra)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("slm-eval: error:")]
    assert len(errors) == 1 and msg in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not list(out.rglob("results_*.json")) and not list(out.rglob("*.tmp"))
