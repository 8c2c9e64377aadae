"""Judges bound to roles: the task YAML names them, ``--judge`` rebinds them, the scorer gets the
loaded judge, and results record each role's judge (identity and code)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import slm
from helpers import tone, write_wav

from speechlm_eval import ConfigError, registry
from speechlm_eval.config import JudgeBinding, load_config_file, parse_judges
from speechlm_eval.judges import ASRJudge, Judge, clear_loaded
from speechlm_eval.judges.roles import (
    ROLE_KINDS,
    bindings_for,
    check_overrides,
    describe_judges,
    load_bound,
    parse_judge_flag,
    parse_judge_flags,
)
from speechlm_eval.tasks import load_index

# --- parsing ---------------------------------------------------------------------------------


def test_yaml_role_forms():
    assert parse_judges("t.yaml", {"asr": "faster-whisper"}) == {
        "asr": JudgeBinding("faster-whisper", {})
    }
    assert parse_judges(
        "t.yaml", {"asr": {"judge": "openai-whisper", "options": {"model": "/w/x.pt"}}}
    ) == {"asr": JudgeBinding("openai-whisper", {"model": "/w/x.pt"})}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("faster-whisper", "t.yaml: field 'judges' must be a mapping of roles to judges"),
        ({"a sr": "x"}, "t.yaml: judges: role 'a sr' must be a name such as asr or speaker"),
        ({"asr": 3}, "t.yaml: judges: asr: field 'asr' must be a judge name or a mapping"),
        ({"asr": {"name": "x"}}, "t.yaml: judges: asr: unknown key(s) ['name']"),
        ({"asr": {"judge": "x", "options": [1]}}, "t.yaml: judges: asr: field 'options' must"),
    ],
)
def test_yaml_role_errors(value, message):
    with pytest.raises(ConfigError) as e:
        parse_judges("t.yaml", value)
    assert str(e.value).startswith(message)


def test_judge_flag():
    assert parse_judge_flag("asr=openai-whisper,model=/w/large-v3.pt,beam_size=5") == (
        "asr",
        JudgeBinding("openai-whisper", {"model": "/w/large-v3.pt", "beam_size": "5"}),
    )
    assert parse_judge_flag("vad=silero-vad") == ("vad", JudgeBinding("silero-vad", {}))
    for bad in ("asr", "=x", "asr=", "asr=x,beam", "1asr=x"):
        with pytest.raises(ConfigError, match="--judge"):
            parse_judge_flag(bad)
    with pytest.raises(ConfigError, match="role 'asr' is bound twice"):
        parse_judge_flags(["asr=a", "asr=b"])


def test_bindings_overrides_and_missing_roles():
    idx = load_index()
    wer = idx.tasks["resynth_wer"]
    bound = {
        "asr": JudgeBinding("faster-whisper", {"beam_size": 5}),
        "mos": JudgeBinding("dnsmos", {}),
        "speaker": JudgeBinding("speaker", {}),
    }
    assert bindings_for(wer, ("asr",), {}) == bound
    over = {"asr": JudgeBinding("openai-whisper", {"model": "/w/x.pt"})}
    assert bindings_for(wer, ("asr",), over) == {**bound, **over}
    # a scorer needing a role the task does not bind: an error naming the task file
    with pytest.raises(ConfigError, match=r"resynth_wer.yaml: scorer 'wer' needs judge role"):
        bindings_for(wer, ("asr", "pitch"), {})
    # --judge for a role no selected task plays
    with pytest.raises(ConfigError, match=r"--judge pitch=\.\.\.: no selected task has"):
        check_overrides({"pitch": JudgeBinding("x")}, [wer, idx.tasks["swuggy"]])
    check_overrides(over, [wer])


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "llm=dnsmos",
            "judge role 'llm' needs a judge of kind 'llm', but 'dnsmos' is of kind 'mos'",
        ),
        (
            "mos=llm-judge",
            "role 'mos' needs a judge of kind 'mos', but 'llm-judge' is of kind 'llm'",
        ),
        (
            "asr=speaker",
            "role 'asr' needs a judge of kind 'asr', but 'speaker' is of kind 'speaker'",
        ),
        ("text_sentiment=pitch", "kind 'sentiment', but 'pitch' is of kind 'pitch'"),
    ],
)
def test_a_judge_of_the_wrong_kind_for_its_role_is_refused_before_loading(
    monkeypatch, flag, message
):
    loaded = []
    monkeypatch.setattr("speechlm_eval.judges.roles.load_judge", lambda *a, **k: loaded.append(a))
    role, binding = parse_judge_flag(flag)
    with pytest.raises(ConfigError) as e:
        load_bound({"asr": JudgeBinding("faster-whisper"), role: binding})
    assert str(e.value).startswith("judge role") and message in str(e.value)
    assert loaded == []  # nothing loaded, not even the other roles' judges


def test_role_kinds_are_the_judges_own_and_other_roles_are_not_checked(monkeypatch):
    # each role's kind is the kind of a shipped judge (read from the classes, not retyped)
    kinds = {getattr(registry.get("judges", n), "kind", "") for n in registry.names("judges")}
    assert set(ROLE_KINDS.values()) <= kinds
    clear_loaded()
    try:
        bound = load_bound(
            {
                "llm": JudgeBinding("llm-judge", {"base_url": "none"}),
                "my_role": JudgeBinding("llm-judge", {"base_url": "none"}),  # third-party role
            }
        )
        assert bound["llm"] is bound["my_role"] and bound["llm"].kind == "llm"
    finally:
        clear_loaded()


def test_judge_base_declares_availability():
    class Plain(ASRJudge):
        def identity(self):
            return {"judge": "plain"}

    assert (Judge.available, Judge.unavailable_reason) == (True, "")
    j = Plain()
    assert (j.available, j.unavailable_reason) == (True, "")


def test_task_without_the_role_its_scorer_needs_is_an_error_before_any_model_loads(tmp_path):
    from speechlm_eval.runner import RunOptions, evaluate

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "my_wer.yaml").write_text(
        "task: my_wer\nversion: 1\ncapability: resynthesize\n"
        "dataset: {reader: librispeech, subdirs: [x]}\nscoring: {scorer: wer}\n"
    )
    opts = RunOptions(tasks="my_wer", include_path=[str(folder)], no_cache=True)
    with pytest.raises(ConfigError, match="my_wer.yaml: scorer 'wer' needs judge role"):
        evaluate("no-such-model", {}, opts)  # fails on the task before looking up the model
    assert load_config_file(folder / "my_wer.yaml").judges == {}


def test_judges_command_lists_kind_rate_and_offline_default():
    text = describe_judges()
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert {"faster-whisper", "openai-whisper", "transformers-asr", "silero-vad"} <= set(lines)
    assert "vad" in lines["silero-vad"] and "silero_vad.jit" in lines["silero-vad"]
    assert "Whisper tiny.en" in lines["faster-whisper"]
    assert "never downloaded" in lines["openai-whisper"]


# --- end to end: a fake ASR judge bound with --judge ----------------------------------------------

PLUGIN = '''
import numpy as np
from speechlm_eval import Audio, SpeechLM
from speechlm_eval.judges import ASRJudge


class Echo(SpeechLM):
    capabilities = frozenset({"resynthesize"})
    sample_rate = 16000

    def resynthesize(self, requests):
        return [Audio(r.audio.samples.copy(), r.audio.sample_rate) for r in requests]


class CountASR(ASRJudge):
    """Transcript: 'word' repeated once per 0.1 s of audio (a deterministic stand-in)."""

    OPTIONS = {"batch_size": (int, 4), "word": (str, "word")}

    def __init__(self, name="count-asr", **options):
        super().__init__(name, **options)

    def identity(self):
        return {"judge": "count-asr", "word": self.options["word"]}

    def _transcribe_batch(self, samples):
        return [" ".join([self.options["word"]] * (s.size // 1600)) for s in samples]
'''


def test_cli_rebinds_the_asr_role_and_records_it(env, tmp_path):
    site = tmp_path / "roles-site"
    dist = site / "rolesplugin-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rolesplugin\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[speechlm_eval.models]\necho = rolesplugin:Echo\n"
        "[speechlm_eval.judges]\ncount-asr = rolesplugin:CountASR\n"
    )
    (site / "rolesplugin.py").write_text(PLUGIN)
    e = {**env, "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]])}
    # LibriSpeech layout: 0.3 s and 0.5 s utterances whose references are 3 and 5 words
    d = tmp_path / "data" / "LibriSpeech" / "dev-clean" / "1" / "2"
    for i, n in enumerate((3, 5)):
        write_wav(d / f"1-2-{i:04d}.wav", tone(i, seconds=n / 10))
    (d / "1-2.trans.txt").write_text("1-2-0000 WORD WORD WORD\n1-2-0001 WORD WORD WORD WORD WORD\n")
    out = tmp_path / "out"
    proc = slm(
        e, "run", "--model", "echo", "--tasks", "resynth_wer", "--data_dir", tmp_path / "data",
        "--output_path", out, "--use_cache", tmp_path / "c.sqlite",
        "--judge", "asr=count-asr,word=word",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = (out / "echo").glob("results_*.json")
    res = json.loads(Path(path).read_text())
    assert res["results"]["resynth_wer"]["wer,none"] == 0.0  # the bound judge was used
    rec = res["judges"]["resynth_wer"]["asr"]
    assert rec["judge"] == "count-asr" and rec["word"] == "word"
    assert rec["code"]["distribution"] == "rolesplugin"
    assert rec["code"]["distribution_version"] == "0.3"
    # another word: every word of every transcript is a substitution
    proc = slm(
        e, "run", "--model", "echo", "--tasks", "resynth_wer", "--data_dir", tmp_path / "data",
        "--output_path", tmp_path / "out2", "--use_cache", tmp_path / "c.sqlite",
        "--judge", "asr=count-asr,word=other",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "out2" / "echo").glob("results_*.json")
    assert json.loads(Path(path).read_text())["results"]["resynth_wer"]["wer,none"] == 1.0
    # a role no selected task plays is an error, before the model is loaded
    proc = slm(e, "run", "--model", "echo", "--tasks", "swuggy", "--judge", "asr=count-asr")
    assert proc.returncode == 2 and "--judge asr=...: no selected task has" in proc.stderr
    assert np.isfinite(res["results"]["resynth_wer"]["wer_original,none"])
