"""Trust rules (issue "Trust first"): a configured data location is never replaced by the
built-in suite, the cache never serves outputs of changed plugin code, tests are hermetic,
the device is a harness option, plugins that reject their arguments fail in one line, and a
run says what it measured.

Subprocess runs use a fake built-in suite (the official layouts written by ``helpers`` plus a
manifest), so no TTS is needed: what matters is which folder the harness reads.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest
from cli_helpers import cli_data, committed, slm

from speechlm_eval import ConfigError, SpeechLM
from speechlm_eval.builtin.build import MANIFEST
from speechlm_eval.results import atomic_write_text

SUBSETS = {"lexical": "swuggy", "syntactic": "sblimp", "storycloze": "ssc"}


def fake_builtin(root: Path, size: str = "tiny") -> Path:
    """Official layouts plus a built-in manifest: what ``slm-eval data build`` leaves."""
    cli_data(root)
    entry = {"version": 1, "size": size, "seed": 0, "content_sha256": "0" * 64, "voices": []}
    manifest = {
        "generator_version": 1,
        "subsets": {name: dict(entry) for name in (*SUBSETS, "salmon")},
    }
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root


@pytest.fixture
def builtin_env(env, tmp_path):
    """The CLI environment with a built (fake) suite where the harness looks by default."""
    built = fake_builtin(tmp_path / "builtin")
    return {**env, "SLM_EVAL_BUILTIN": str(built)}, built


def run(env, tmp_path, *args, tasks="swuggy", out="out"):
    return slm(
        env,
        "run",
        "--model",
        "energy",
        "--tasks",
        tasks,
        "--output_path",
        tmp_path / out,
        "--use_cache",
        tmp_path / "c.sqlite",
        *args,
    )


def results(tmp_path, out="out") -> dict:
    (path,) = (tmp_path / out / "energy").glob("results_*.json")
    return json.loads(path.read_text())


# --- 1. a configured data location is never silently replaced -----------------------------


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing_dir", "--data_dir: {p} does not exist; expected the folder that holds the data"),
        ("file_dir", "--data_dir: {p} is not a folder; expected the folder that holds the data"),
        ("file_env", "$SLM_EVAL_DATA entry: {p} is not a folder; expected the folder that holds"),
        ("missing_env", "$SLM_EVAL_DATA entry: {p} does not exist; expected the folder that"),
    ],
)
def test_bad_data_location_is_an_error_not_the_builtin_suite(builtin_env, tmp_path, how, message):
    env, _ = builtin_env
    p = tmp_path / "nonexistent" if how.startswith("missing") else tmp_path / "README.md"
    if not how.startswith("missing"):
        p.write_text("not a folder")
    if how.endswith("env"):
        env = {**env, "SLM_EVAL_DATA": str(p)}
        proc = run(env, tmp_path)
    else:
        proc = run(env, tmp_path, "--data_dir", p)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip().startswith(f"slm-eval: error: {message.format(p=p)}")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_task_missing_under_configured_location_is_an_error_listing_where(builtin_env, tmp_path):
    env, _ = builtin_env
    empty = tmp_path / "official"
    empty.mkdir()
    proc = run(env, tmp_path, "--data_dir", empty)
    assert proc.returncode == 2
    msg = proc.stderr.strip()
    assert msg.startswith("slm-eval: error: task 'swuggy': data folder not found; looked in: ")
    assert f"{empty}/zerospeech2021/lexical/dev (--data_dir)" in msg
    assert "--data_source builtin" in msg  # says how to ask for the built-in version
    assert "\n" not in msg and not (tmp_path / "out").exists()


def test_group_run_skips_tasks_missing_under_configured_location(builtin_env, tmp_path):
    """The configured data has no sSC: the task is skipped, not read from the built-in suite."""
    env, _ = builtin_env
    data = tmp_path / "official"
    cli_data(data)
    for sub in ("sStoryCloze", "tStoryCloze"):
        for f in (data / sub).iterdir():
            f.unlink()
        (data / sub).rmdir()
    proc = run(env, tmp_path, "--data_dir", data, tasks="zerospeech,storycloze")
    assert proc.returncode == 0, proc.stderr
    res = results(tmp_path)
    assert set(res["results"]) == {"swuggy", "sblimp"}
    assert res["skipped"]["ssc"].startswith("skipped (no data: task 'ssc': data folder not found")
    for task in ("swuggy", "sblimp"):
        assert res["datasets"][task]["source"] == "official"
        assert res["datasets"][task]["root"].startswith(str(data.resolve()))
    assert res["config"]["data"] == {
        "data_dir": str(data),
        "SLM_EVAL_DATA": [],
        "data_source": "auto",
        "used": "configured",
        "builtin_root": None,
    }
    assert f"swuggy  (6 docs; data: official: {data.resolve()}" in proc.stdout


def test_builtin_suite_when_nothing_is_configured_and_recorded(builtin_env, tmp_path):
    env, built = builtin_env
    proc = run(env, tmp_path, tasks="swuggy,sblimp")
    assert proc.returncode == 0, proc.stderr
    res = results(tmp_path)
    assert res["datasets"]["swuggy"]["source"] == "builtin"
    assert res["datasets"]["swuggy"]["builtin"]["size"] == "tiny"
    assert res["config"]["data"]["used"] == "builtin"
    assert res["config"]["data"]["builtin_root"] == str(built)
    assert f"data: built-in tiny ({built.resolve()})" in proc.stdout


def test_data_source_builtin_ignores_env_and_official_requires_a_location(builtin_env, tmp_path):
    env, _ = builtin_env
    other = tmp_path / "official"
    cli_data(other)
    proc = run({**env, "SLM_EVAL_DATA": str(other)}, tmp_path, "--data_source", "builtin")
    assert proc.returncode == 0, proc.stderr
    res = results(tmp_path)
    assert res["datasets"]["swuggy"]["source"] == "builtin"
    assert res["config"]["data"]["SLM_EVAL_DATA"] == [str(other)]  # recorded, not used
    assert res["config"]["data"]["data_source"] == "builtin"

    proc = run(env, tmp_path, "--data_source", "builtin", "--data_dir", other, out="o2")
    assert proc.returncode == 2 and "--data_source builtin reads the built-in suite" in proc.stderr
    proc = run(env, tmp_path, "--data_source", "official", out="o3")
    assert proc.returncode == 2
    assert "--data_source official: no data location configured" in proc.stderr


def test_tasks_and_score_commands_check_the_location_too(env, tmp_path):
    for cmd in (
        ["tasks", "--data_dir", tmp_path / "nope"],
        [
            "score",
            "--task",
            "swuggy",
            "--scores",
            tmp_path / "s.txt",
            "--data_dir",
            tmp_path / "nope",
        ],
    ):
        proc = slm(env, *cmd)
        assert proc.returncode == 2
        assert f"--data_dir: {tmp_path / 'nope'} does not exist" in proc.stderr


# --- 2. the cache never serves outputs of changed plugin code -----------------------------

PLUGIN = """
import numpy as np
from speechlm_eval import LoglikelihoodResult, SpeechLM

SCALE = {scale}


class Model(SpeechLM):
    capabilities = frozenset({{"loglikelihood"}})
    sample_rate = 16000

    def identity(self):  # no code in it: the harness must add the code identity itself
        return {{"class": "Model"}}

    def loglikelihood(self, requests):
        return [
            LoglikelihoodResult(-SCALE * float(np.mean(r.audio.samples ** 2)) - len(r.key), 1)
            for r in requests
        ]
"""


def third_party(site: Path, scale: float, version: str = "1.0") -> None:
    """A plugin distribution 'thirdparty' registering model 'tp' (module edited in place)."""
    dist = site / "thirdparty-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: thirdparty\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text("[speechlm_eval.models]\ntp = thirdparty.plugin:Model\n")
    pkg = site / "thirdparty"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(PLUGIN.format(scale=scale))


def test_changed_plugin_source_gets_no_stale_cache_hit(env, tmp_path):
    site = tmp_path / "tp-site"
    third_party(site, scale=1000.0)
    e = {**env, "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]])}
    data = cli_data(tmp_path / "data")
    cache = tmp_path / "c.sqlite"

    def go(out: str) -> dict:
        proc = slm(
            e, "run", "--model", "tp", "--tasks", "swuggy", "--data_dir", data,
            "--output_path", tmp_path / out, "--use_cache", cache, "--log_samples",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (path,) = (tmp_path / out / "tp").glob("results_*.json")
        return json.loads(path.read_text())

    first = go("a")
    assert first["runtime"]["cache"]["swuggy"]["computed"] == 24
    assert go("b")["runtime"]["cache"]["swuggy"]["hits"] == 24  # unchanged code: all cached
    n_cached = committed(cache)

    third_party(site, scale=-1000.0)  # the scoring code changes; the version does not
    changed = go("c")
    assert changed["runtime"]["cache"]["swuggy"] == {**changed["runtime"]["cache"]["swuggy"],
                                                     "hits": 0, "computed": 24}  # fmt: skip
    assert changed["results"]["swuggy"] != first["results"]["swuggy"]
    assert committed(cache) == n_cached + 24
    code = changed["config"]["model_code"]
    assert code["distribution"] == "thirdparty" and code["distribution_version"] == "1.0"
    assert code["sources_sha256"] != first["config"]["model_code"]["sources_sha256"]

    third_party(site, scale=-1000.0, version="1.1")  # same source, new release: new identity
    bumped = go("d")
    assert bumped["runtime"]["cache"]["swuggy"]["hits"] == 0
    assert bumped["results"]["swuggy"] == changed["results"]["swuggy"]


def _class_from(path: Path, modname: str, source: str) -> type:
    """Class ``M`` of a module written at ``path/<modname>.py`` and imported from there."""
    import importlib.util

    path.mkdir(parents=True, exist_ok=True)
    (path / f"{modname}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(modname, path / f"{modname}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod  # code_identity finds a class's file through sys.modules
    spec.loader.exec_module(mod)
    return mod.M


def test_code_identity_follows_source_bytes_not_location(tmp_path):
    from speechlm_eval.provenance import code_identity

    src = "from speechlm_eval import SpeechLM\nclass M(SpeechLM):\n    X = {x}\n"
    # the same module name and bytes in two folders, then one changed byte
    ia = code_identity(_class_from(tmp_path / "a", "cid_mod", src.format(x=1)))
    ib = code_identity(_class_from(tmp_path / "b", "cid_mod", src.format(x=1)))
    ic = code_identity(_class_from(tmp_path / "c", "cid_mod", src.format(x=2)))
    assert ia["source_files"] == ib["source_files"] == 1  # a top-level module: its own file
    assert ia["sources_sha256"] == ib["sources_sha256"] != ic["sources_sha256"]
    assert ia["distribution"] is None
    del sys.modules["cid_mod"]


def test_judge_key_includes_code(tmp_path):
    from speechlm_eval.judges import judge_key, judge_record
    from speechlm_eval.provenance import code_identity

    src = (
        "from speechlm_eval.judges import ASRJudge\n"
        "class M(ASRJudge):\n"
        "    OPTIONS = {{}}\n"
        "    def identity(self):\n"
        "        return {{'judge': 'm'}}\n"
        "    V = {v}\n"
    )
    j1 = _class_from(tmp_path / "j1", "judge_mod_1", src.format(v=1))(name="m")
    j2 = _class_from(tmp_path / "j2", "judge_mod_2", src.format(v=2))(name="m")
    assert j1.identity() == j2.identity()
    assert judge_key(j1) != judge_key(j2)
    assert judge_record(j1)["code"]["sources_sha256"] == code_identity(type(j1))["sources_sha256"]


# --- 3. hermetic tests ----------------------------------------------------------------------


def test_tests_see_no_user_location(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    assert "SLM_EVAL_DATA" not in os.environ
    for var in ("SLM_EVAL_BUILTIN", "XDG_CACHE_HOME", "HF_HOME"):
        assert os.environ[var].startswith(base), var
    assert platformdirs.user_cache_dir("speechlm-eval").startswith(base)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --- 4. the device is a harness option; plugins reject arguments in one line ---------------


def test_device_is_not_a_model_argument(tmp_path):
    from speechlm_eval.execute import model_key
    from speechlm_eval.runner import load_model

    plain = load_model("length-baseline", {})
    on_cpu = load_model("length-baseline", {}, device="cpu")
    assert on_cpu.device == "cpu" and plain.device is None
    assert model_key("length-baseline", plain) == model_key("length-baseline", on_cpu)
    assert "device" not in json.dumps(on_cpu.identity())


def test_cli_device_run_records_device_outside_identity(builtin_env, tmp_path):
    env, _ = builtin_env
    proc = slm(
        env, "run", "--model", "length-baseline", "--tasks", "swuggy", "--device", "cpu",
        "--output_path", tmp_path / "out", "--no_cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "out" / "length-baseline").glob("results_*.json")
    cfg = json.loads(path.read_text())["config"]
    assert cfg["device"] == "cpu" and cfg["model_args"] == {}
    assert "device" not in json.dumps(cfg["model_identity"])


@pytest.mark.parametrize("name", ["length-baseline", "gslm-mini", "cascade", "hf-unit-lm"])
def test_every_shipped_model_takes_the_device_outside_its_identity(name):
    from speechlm_eval import registry
    from speechlm_eval.execute import model_key
    from speechlm_eval.runner import _takes_keyword, load_model

    assert _takes_keyword(registry.get("models", name), "device")
    if name == "hf-unit-lm":  # needs weights on disk: tests/test_hf_unit_lm.py builds them
        return
    plain, on_cpu = load_model(name, {}), load_model(name, {}, device="cpu")
    assert on_cpu.device == "cpu"
    assert model_key(name, plain) == model_key(name, on_cpu)


class NoDevice(SpeechLM):
    capabilities = frozenset({"loglikelihood"})

    def __init__(self, path: str = "") -> None:
        super().__init__(path=path)


class Rejects(SpeechLM):
    capabilities = frozenset({"loglikelihood"})

    def __init__(self, mode: str = "a", **kw: str) -> None:
        if mode == "value":
            raise ValueError("mode must be a or b")
        if mode == "config":
            raise ConfigError("model argument 'mode': expected a or b, got 'config'")
        super().__init__(mode=mode, **kw)


def _register(env, tmp_path, name: str, target: str) -> dict:
    site = tmp_path / f"site-{name}"
    dist = site / f"{name}-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[speechlm_eval.models]\n{name} = {target}\n")
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]])}


@pytest.mark.parametrize(
    ("target", "args", "message"),
    [
        (
            "test_trust:NoDevice",
            ["--device", "cpu"],
            "--device: model 'plug' takes no device argument (its __init__ has no 'device' "
            "parameter nor **kwargs); run it without --device",
        ),
        (
            "test_trust:Rejects",
            ["--model_args", "mode=value"],
            "model 'plug': invalid --model_args (mode must be a or b)",
        ),
        (
            "test_trust:Rejects",
            ["--model_args", "mode=config"],
            "model 'plug': model argument 'mode': expected a or b, got 'config'",
        ),
    ],
)
def test_plugin_argument_errors_are_one_line(env, tmp_path, target, args, message):
    e = _register(env, tmp_path, "plug", target)
    data = cli_data(tmp_path / "data")
    proc = slm(e, "run", "--model", "plug", "--tasks", "swuggy", "--data_dir", data, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"slm-eval: error: {message}"


# --- 5. a run that says what it measured ----------------------------------------------------


def test_summary_header_marker_path_and_smoke_note(builtin_env, tmp_path):
    env, _ = builtin_env
    proc = run(env, tmp_path, tasks="swuggy,ssc")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("speechlm-eval 0.1.0 | model energy | seed 0 | 2 task(s) scored")
    assert "* = the task's headline metric (scoring.<task>.primary_metric); ± = stderr" in lines
    assert any(line.rstrip().endswith("*") and "acc,nll_" in line for line in lines)
    (path,) = (tmp_path / "out" / "energy").glob("results_*.json")
    assert lines[-1] == f"results: {path}"
    note = [line for line in lines if line.startswith("note: smoke-test sized")]
    assert note == [
        "note: smoke-test sized (2 task(s) ran on the tiny built-in suite): these scores are "
        "not comparable with other runs or published numbers"
    ]


def test_summary_smoke_note_for_limit_and_not_for_full_official_data(env, tmp_path):
    data = cli_data(tmp_path / "data")
    proc = run(env, tmp_path, "--data_dir", data)
    assert proc.returncode == 0 and "smoke-test" not in proc.stdout
    proc = run(env, tmp_path, "--data_dir", data, "--limit", "2", out="o2")
    assert "note: smoke-test sized (--limit 2.0 kept only part of each task)" in proc.stdout
    assert "swuggy  (2 of 6 docs; data: official:" in proc.stdout


def test_warnings_print_once(env, tmp_path):
    """A skipped task's reason is a warning when it happens; the summary names the task and
    the kind of reason without repeating the warning."""
    data = cli_data(tmp_path / "data")
    proc = run(env, tmp_path, "--data_dir", data, tasks="salmon")
    assert proc.returncode == 0, proc.stderr
    warnings = [w.split("warning: ", 1)[1] for w in proc.stderr.splitlines() if "warning: " in w]
    assert len(warnings) == 7 == len(set(warnings))  # 7 SALMon parts have no data here
    for w in warnings:
        assert w not in proc.stdout
    assert "salmon_rir_consistency       skipped (no data)" in proc.stdout


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        ref = tmp_path / "plain.json"
        ref.write_text("{}")  # what open() gives under the same umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "r.json").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(ref.stat().st_mode)
