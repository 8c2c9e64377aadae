"""Task/group YAML parsing is strict, and the built-in task files are valid."""

from __future__ import annotations

import pytest

from speechlm_eval import ConfigError
from speechlm_eval.config import load_config_file
from speechlm_eval.tasks import load_index

GOOD = """\
task: t1
version: 2
capability: loglikelihood
dataset: {reader: salmon, subdirs: [x], sample_rate: 16000}
scoring: {scorer: choice, nll: sum}
"""


def _write(tmp_path, text, name="t.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_task(tmp_path):
    cfg = load_config_file(_write(tmp_path, GOOD))
    assert cfg.task == "t1" and cfg.version == 2 and cfg.scoring.nll == "sum"
    assert cfg.dataset.subdirs == ("x",)
    assert len(cfg.hash()) == 64
    changed = load_config_file(_write(tmp_path, GOOD.replace("nll: sum", "nll: mean"), "u.yaml"))
    assert changed.hash() != cfg.hash()


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        (GOOD + "colour: red\n", r"unknown key\(s\) \['colour'\]"),
        (GOOD.replace("version: 2", "version: two"), "field 'version' must be an integer"),
        (GOOD.replace("version: 2", "version: true"), "field 'version' must be an integer"),
        (GOOD.replace("nll: sum", "nll: median"), "field 'nll' must be 'sum' or 'mean'"),
        (GOOD.replace("capability: loglikelihood", "capability: dance"), "field 'capability'"),
        (
            GOOD.replace("sample_rate: 16000", "sample_rate: fast"),
            "sample_rate' must be an integer",
        ),
        (GOOD.replace("reader: salmon, ", "reader: salmon, rreader: x, "), r"dataset: unknown key"),
        (
            GOOD.replace("scoring: {scorer: choice, nll: sum}\n", ""),
            r"missing required key\(s\) \['scoring'\]",
        ),
        ("task: [unclosed\n", "invalid YAML"),
        ("- a list\n", "expected a YAML mapping"),
        ("name: x\n", "expected a 'task:' or a 'group:' key"),
        ("group: g\nversion: 1\ntasks: []\n", "non-empty list of strings"),
    ],
)
def test_bad_task_files(tmp_path, text, msg):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=msg) as e:
        load_config_file(p)
    assert str(p) in str(e.value)


def test_builtin_index_and_expansion(tmp_path):
    idx = load_index()
    assert {"swuggy", "sblimp", "ssc", "tsc", "salmon_speaker_consistency"} <= set(idx.tasks)
    assert idx.expand("zerospeech") == ["swuggy", "sblimp"]
    assert idx.expand("likelihood")[:4] == ["swuggy", "sblimp", "ssc", "tsc"]
    assert len(idx.expand("salmon")) == 8
    assert idx.expand("all") == sorted(idx.tasks)
    assert idx.expand("ssc,ssc,tsc") == ["ssc", "tsc"]
    with pytest.raises(ConfigError, match="unknown task or group 'swugy'"):
        idx.expand("swugy")
    for cfg in idx.tasks.values():
        assert cfg.version >= 1 and cfg.description


def test_include_path_duplicates_and_cycles(tmp_path):
    _write(tmp_path, GOOD.replace("task: t1", "task: swuggy"))
    with pytest.raises(ConfigError, match="name 'swuggy' is already defined"):
        load_index([tmp_path])
    d = tmp_path / "g"
    d.mkdir()
    _write(d, "group: g1\nversion: 1\ntasks: [g2]\n", "g1.yaml")
    _write(d, "group: g2\nversion: 1\ntasks: [g1]\n", "g2.yaml")
    with pytest.raises(ConfigError, match="includes itself"):
        load_index([d]).expand("g1")
    _write(d, "group: g3\nversion: 1\ntasks: [nope]\n", "g3.yaml")
    with pytest.raises(ConfigError, match="lists unknown task 'nope'"):
        load_index([d])
