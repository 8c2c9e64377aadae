"""``include:`` templates in task YAML: merge semantics, one-line errors, and the shipped tasks
that moved their shared part into templates (tasks/_salmon.yaml, _abx.yaml, _resynth.yaml)
resolve to exactly the configs, hashes and recorded key order they had before."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from speechlm_eval import ConfigError
from speechlm_eval.cli import main
from speechlm_eval.config import (
    TaskConfig,
    check_template,
    is_template,
    load_config_file,
    read_with_includes,
)
from speechlm_eval.tasks import load_index

ROOT = Path(__file__).resolve().parents[1]
# The gslm-mini results made before the task templates (include:) existed: the shipped tasks
# must still resolve to the configs and hashes recorded there.
RESULTS = ROOT / "leaderboard/results/gslm-mini/results_2026-11-26T20-25-25.441513.json"

# --- the shipped tasks are unchanged ---------------------------------------------------------

# The three SALMon tasks the committed results do not hold (official data only), as their
# files read before the templates: the independent formulation they are compared with.
PRE_TEMPLATE_YAML = {
    "salmon_bg_alignment": """\
task: salmon_bg_alignment
version: 1
description: >
  SALMon bg_alignment: the positive (sample_<idx>_0) has background noise that matches the
  spoken content; the negative's noise does not.
  Accuracy of preferring the positive by log-likelihood.
capability: loglikelihood
dataset:
  reader: salmon
  subdirs: [salmon/bg_alignment, SALMon/bg_alignment, salmon_benchmark/bg_alignment]
  sample_rate: 16000
  official_only: true  # no honest synthetic substitute can be built offline
scoring:
  scorer: choice
  nll: mean  # SALMon's baselines use mean NLL (mean_nll: true)
""",
    "salmon_sentiment_alignment": """\
task: salmon_sentiment_alignment
version: 1
description: >
  SALMon sentiment_alignment: the positive (sample_<idx>_0) has a vocal sentiment that matches
  the spoken content; the negative's does not.
  Accuracy of preferring the positive by log-likelihood.
capability: loglikelihood
dataset:
  reader: salmon
  subdirs: [salmon/sentiment_alignment, SALMon/sentiment_alignment, salmon_benchmark/sentiment_alignment]
  sample_rate: 16000
  official_only: true  # no honest synthetic substitute can be built offline
scoring:
  scorer: choice
  nll: mean  # SALMon's baselines use mean NLL (mean_nll: true)
""",  # noqa: E501  (the files as they were, long lines included)
    "salmon_sentiment_consistency": """\
task: salmon_sentiment_consistency
version: 1
description: >
  SALMon sentiment_consistency: the positive (sample_<idx>_0) keeps acoustics consistent, the negative has
  emotion of the voice changes mid-utterance. Accuracy of preferring the positive by log-likelihood.
capability: loglikelihood
dataset:
  reader: salmon
  subdirs: [salmon/sentiment_consistency, SALMon/sentiment_consistency, salmon_benchmark/sentiment_consistency]
  sample_rate: 16000
  official_only: true  # no honest synthetic substitute can be built offline
scoring:
  scorer: choice
  nll: mean  # SALMon's baselines use mean NLL (mean_nll: true)
""",  # noqa: E501
}  # fmt: skip
# Their hashes as computed before the change: a cross-check that the texts above are the ones
# that were shipped (the comparison itself is against the parse of the texts).
PRE_TEMPLATE_HASH = {
    "salmon_bg_alignment": "8817bafbcfb1fd72f9bb12ad9e9eb9b67a70af4b25a4e2455d6d98d04c2a6647",
    "salmon_sentiment_alignment": (
        "b078d5450d7803c195efa224a5eb52c23bb460b2b9fb55602f30dc835c44085b"
    ),
    "salmon_sentiment_consistency": (
        "68e8a3e0694192fedb59745cc5c58969f766e713581324889cc2fbedd89d226d"
    ),
}


def _recorded(cfg: TaskConfig) -> str:
    # As results files write configs.<task>: indent 2, keys in insertion order, so an options
    # mapping whose keys came out of the merge in another order would show here.
    return json.dumps(cfg.as_dict(), indent=2, sort_keys=False)


def test_shipped_tasks_match_the_committed_results():
    """Every task in the committed gslm-mini results resolves to the hash and config (key order
    included) recorded there: results and regression baselines stay valid."""
    recorded = json.loads(RESULTS.read_text())
    idx = load_index()
    assert set(recorded["task_hashes"]) == set(recorded["configs"])
    assert set(recorded["task_hashes"]) <= set(idx.tasks)
    for name, want in recorded["task_hashes"].items():
        cfg = idx.tasks[name]
        if name in ROLE_MOVED:
            continue  # their config changed since (below); the include changed nothing else
        assert cfg.hash() == want, name
        assert cfg.as_dict() == recorded["configs"][name], name
        assert _recorded(cfg) == json.dumps(recorded["configs"][name], indent=2), name


# The resynthesis tasks' ASR judge moved from scoring.options (judge, judge_args) to a judge
# role (judges: {asr: ...}) after those results were made: the same judge with the same options,
# so the same scores, but another config and hash.
ROLE_MOVED = ("resynth_wer", "resynth_cer")


@pytest.mark.parametrize("name", ROLE_MOVED)
def test_resynthesis_tasks_bind_the_judge_they_named_before_roles(name):
    old = json.loads(RESULTS.read_text())["configs"][name]
    new = load_index().tasks[name].as_dict()
    options = dict(old["scoring"]["options"])
    judge, judge_args = options.pop("judge"), options.pop("judge_args")
    # the asr role is the judge the task named before roles; mos and speaker came later
    assert new["judges"]["asr"] == {"judge": judge, "options": judge_args}
    assert set(new["judges"]) == {"asr", "mos", "speaker"}
    assert new["scoring"]["options"] == options
    assert {k: v for k, v in new.items() if k not in ("judges", "scoring")} == {
        k: v for k, v in old.items() if k != "scoring"
    }


@pytest.mark.parametrize("name", sorted(PRE_TEMPLATE_YAML))
def test_shipped_tasks_without_results_match_their_pre_template_text(name, tmp_path):
    recorded = json.loads(RESULTS.read_text())["task_hashes"]
    assert name not in recorded  # else the test above covers it
    old_file = tmp_path / f"{name}.yaml"
    old_file.write_text(PRE_TEMPLATE_YAML[name])
    old = load_config_file(old_file)
    assert isinstance(old, TaskConfig) and old.hash() == PRE_TEMPLATE_HASH[name]
    new = load_index().tasks[name]
    assert new.source_file.endswith(f"{name}.yaml")
    assert new == TaskConfig(**{**old.__dict__, "source_file": new.source_file})
    assert new.hash() == old.hash()
    assert _recorded(new) == _recorded(old)


def test_shipped_templates_are_used_and_not_tasks():
    task_dir = ROOT / "tasks"
    templates = sorted(p.name for p in task_dir.glob("*.yaml") if is_template(p))
    assert templates == [
        "_abx.yaml",
        "_continuation.yaml",
        "_resynth.yaml",
        "_salmon.yaml",
        "_stsp.yaml",
    ]
    idx = load_index()
    assert len(idx.expand("salmon")) == 8 and idx.expand("abx") == ["abx_within", "abx_across"]
    texts = [Path(c.source_file).read_text() for c in idx.tasks.values()]
    for tpl in templates:
        assert any(f"include: {tpl}\n" in text for text in texts), tpl
    assert not any(name.startswith("_") for name in idx.tasks)


def test_templates_ship_as_package_data():
    """The wheel's task folder is pyproject's package-data globs: templates must match them
    (the wheel build itself is tests/test_packaging.py's)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = conf["package-data"]["speechlm_eval_tasks"]
    for tpl in (ROOT / "tasks").glob("_*.yaml"):
        assert any(tpl.match(pattern) for pattern in patterns), tpl.name


# --- merge semantics -------------------------------------------------------------------------


def _write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


TEMPLATE = """\
version: 1
capability: loglikelihood
dataset:
  reader: salmon
  subdirs: [a, b]
  sample_rate: 16000
  options: {x: 1, y: [1, 2], z: {deep: 1, keep: 2}}
scoring: {scorer: choice, nll: mean}
"""


def test_merge_file_wins_mappings_merge_lists_and_scalars_replace(tmp_path):
    _write(tmp_path, "_t.yaml", TEMPLATE)
    f = _write(
        tmp_path,
        "t.yaml",
        "include: _t.yaml\ntask: t\nversion: 3\n"
        "dataset:\n  subdirs: [c]\n  options: {y: [9], z: {deep: 5}, w: new}\n"
        "scoring: {nll: sum}\n",
    )
    data, origins = read_with_includes(f)
    assert data == {
        "task": "t",
        "version": 3,
        "dataset": {
            "subdirs": ["c"],  # a list replaces, it is not appended to
            "options": {"y": [9], "z": {"deep": 5, "keep": 2}, "w": "new", "x": 1},
            "reader": "salmon",
            "sample_rate": 16000,
        },
        "scoring": {"nll": "sum", "scorer": "choice"},
        "capability": "loglikelihood",
    }
    # The file's own keys first, then the inherited ones (the order results files record).
    assert list(data) == ["task", "version", "dataset", "scoring", "capability"]
    assert list(data["dataset"]["options"]) == ["y", "z", "w", "x"]
    tpl = str(tmp_path / "_t.yaml")
    assert origins[("capability",)] == tpl and origins[("dataset", "reader")] == tpl
    assert origins[("dataset", "options", "z", "keep")] == tpl
    assert ("version",) not in origins and ("dataset", "subdirs") not in origins
    assert ("dataset", "options", "z", "deep") not in origins
    cfg = load_config_file(f)
    assert cfg.version == 3 and cfg.scoring.nll == "sum" and cfg.dataset.subdirs == ("c",)
    assert cfg.source_file == str(f)


def test_merge_list_of_includes_and_nested_templates(tmp_path):
    _write(tmp_path, "_base.yaml", "capability: encode\ndataset: {reader: r0, subdirs: [s0]}\n")
    _write(tmp_path, "_mid.yaml", "include: _base.yaml\ndataset: {reader: r1}\n")
    _write(tmp_path, "_other.yaml", "capability: loglikelihood\nversion: 2\n")
    f = _write(tmp_path, "t.yaml", "include: [_mid.yaml, _other.yaml]\ntask: t\n")
    data, origins = read_with_includes(f)
    # later includes win over earlier ones; a template's own include sits below it
    assert data == {
        "task": "t",
        "capability": "loglikelihood",
        "version": 2,
        "dataset": {"reader": "r1", "subdirs": ["s0"]},
    }
    assert origins[("capability",)] == str(tmp_path / "_other.yaml")
    assert origins[("dataset", "reader")] == str(tmp_path / "_mid.yaml")
    assert origins[("dataset", "subdirs")] == str(tmp_path / "_base.yaml")
    # the include key itself never reaches the parsed mapping
    assert "include" not in data


def test_include_into_parent_folder_within_the_task_folder(tmp_path):
    root = tmp_path / "mytasks"
    _write(root, "_common.yaml", TEMPLATE)
    f = _write(root, "sub/t.yaml", "include: ../_common.yaml\ntask: t\n")
    assert load_config_file(f, root).task == "t"  # the index passes the folder it read
    with pytest.raises(ConfigError, match="leaves the task folder"):
        load_config_file(f)  # default bound: the file's own folder


def test_plain_file_without_include_is_read_as_before(tmp_path):
    text = "task: t\n" + TEMPLATE
    f = _write(tmp_path, "t.yaml", text)
    data, origins = read_with_includes(f)
    assert origins == {} and list(data) == ["task", "version", "capability", "dataset", "scoring"]


# --- errors: one line naming the file --------------------------------------------------------

GOOD_TASK = "include: _t.yaml\ntask: mytask\n"


def _case(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Build a task folder with one broken include; return it and what the error must say.

    The index checks a folder's templates before its tasks (``_`` sorts first), so a broken
    template is reported under its own name there; through :func:`load_config_file` the message
    starts with the task file and names the include (checked in the test)."""
    d = tmp_path / "inc"
    d.mkdir()
    if kind == "missing":
        _write(d, "t.yaml", "include: _nope.yaml\ntask: mytask\n")
        return d, r"t\.yaml: include '_nope\.yaml': file not found \(.*_nope\.yaml\)"
    if kind == "self_cycle":
        _write(d, "t.yaml", "include: t.yaml\ntask: mytask\n")
        return d, r"t\.yaml: include cycle: .*t\.yaml -> t\.yaml$"
    if kind == "cycle":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", "include: _u.yaml\n")
        _write(d, "_u.yaml", "include: _t.yaml\n")
        return d, r"include cycle: .*_t\.yaml -> _u\.yaml -> _t\.yaml$"
    if kind == "list_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", "- version: 1\n")
        return d, r"_t\.yaml: expected a YAML mapping at top level"
    if kind == "empty_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", "")
        return d, r"_t\.yaml: expected a YAML mapping at top level"
    if kind == "invalid_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", "version: [1\n")
        return d, r"_t\.yaml: invalid YAML at line 2"
    if kind == "python_tag_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", "version: !!python/object/apply:os.system ['echo PWNED']\n")
        return d, r"_t\.yaml: invalid YAML .*could not determine a constructor"
    if kind == "unknown_key_in_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", TEMPLATE.replace("  reader: salmon", "  reader: salmon\n  rate: 1"))
        return d, r"t\.yaml: dataset: unknown key\(s\) \['rate'\] \(from .*_t\.yaml\); allowed"
    if kind == "unknown_key_in_file":
        _write(d, "t.yaml", GOOD_TASK + "colour: red\n")
        _write(d, "_t.yaml", TEMPLATE)
        return d, r"t\.yaml: unknown key\(s\) \['colour'\]; allowed keys"
    if kind == "wrong_type_in_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", TEMPLATE.replace("version: 1", "version: one"))
        return d, r"t\.yaml: field 'version' must be an integer, got 'one' \(from .*_t\.yaml\)$"
    if kind == "bad_value_in_template":
        _write(d, "t.yaml", GOOD_TASK)
        _write(d, "_t.yaml", TEMPLATE.replace("nll: mean", "nll: median"))
        return d, r"t\.yaml: scoring: field 'nll' must be 'sum' or 'mean', got 'median' \(from .*_t"
    if kind == "wrong_type_in_file":
        _write(d, "t.yaml", GOOD_TASK + "version: one\n")
        _write(d, "_t.yaml", TEMPLATE)
        return d, r"t\.yaml: field 'version' must be an integer, got 'one'$"
    if kind == "escape_dotdot":
        _write(tmp_path, "_outside.yaml", TEMPLATE)
        _write(d, "t.yaml", "include: ../_outside.yaml\ntask: mytask\n")
        return d, r"t\.yaml: include '\.\./_outside\.yaml': leaves the task folder"
    if kind == "escape_symlink":
        _write(tmp_path, "_outside.yaml", TEMPLATE)
        os.symlink(tmp_path / "_outside.yaml", d / "_t.yaml")
        _write(d, "t.yaml", GOOD_TASK)
        # the link lies inside the folder, what it points to does not (checked on resolved paths)
        return d, r"include '_t\.yaml': leaves the task folder"
    if kind == "absolute":
        target = _write(d, "_t.yaml", TEMPLATE)
        _write(d, "t.yaml", f"include: {target}\ntask: mytask\n")
        return d, r"t\.yaml: include '.*_t\.yaml': must be a path relative to"
    if kind == "not_yaml":
        _write(d, "notes.txt", "version: 1\n")
        _write(d, "t.yaml", "include: notes.txt\ntask: mytask\n")
        return d, r"t\.yaml: include 'notes\.txt': must name a \.yaml file"
    if kind == "include_not_a_name":
        _write(d, "t.yaml", "include: 3\ntask: mytask\n")
        return d, r"t\.yaml: field 'include' must be a file name or a non-empty list .*got 3"
    if kind == "include_empty_list":
        _write(d, "t.yaml", "include: []\ntask: mytask\n")
        return d, r"t\.yaml: field 'include' must be .*got \[\]"
    if kind == "template_with_task_key":
        _write(d, "_t.yaml", "task: hidden\n" + TEMPLATE)
        return d, r"_t\.yaml: has a 'task:' key, but a file whose name starts with '_' is a templ"
    raise AssertionError(kind)


KINDS = [
    "missing", "self_cycle", "cycle", "list_template", "empty_template", "invalid_template",
    "python_tag_template", "unknown_key_in_template", "unknown_key_in_file",
    "wrong_type_in_template", "bad_value_in_template", "wrong_type_in_file", "escape_dotdot",
    "escape_symlink", "absolute", "not_yaml",
    "include_not_a_name", "include_empty_list", "template_with_task_key",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_include_errors_through_the_config_functions(kind, tmp_path):
    d, pattern = _case(tmp_path, kind)
    task_file = d / "t.yaml"
    with pytest.raises(ConfigError) as e:
        if task_file.exists():
            load_config_file(task_file, d)
        else:
            check_template(d / "_t.yaml", d)
    msg = str(e.value)
    assert "\n" not in msg
    assert re.search(pattern, msg), msg
    if task_file.exists():
        assert msg.startswith(f"{task_file}: "), msg
        if kind in ("list_template", "empty_template", "invalid_template"):
            assert msg.startswith(f"{task_file}: include '_t.yaml': {d / '_t.yaml'}: "), msg
    assert "PWNED" not in msg


@pytest.mark.parametrize("kind", KINDS)
def test_include_errors_through_the_cli(kind, tmp_path, capsys):
    d, pattern = _case(tmp_path, kind)
    assert main(["tasks", "--include_path", str(d)]) == 2
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("slm-eval: error: "), captured.err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in captured.err and "PWNED" not in captured.out + captured.err


# --- a user's folder with its own template ---------------------------------------------------


def test_user_include_path_with_its_own_template(tmp_path, capsys):
    d = tmp_path / "mytasks"
    _write(d, "_mine.yaml", TEMPLATE.replace("subdirs: [a, b]", "subdirs: [mine]"))
    _write(d, "mine_a.yaml", "include: _mine.yaml\ntask: mine_a\n")
    _write(d, "more/mine_b.yaml", "include: ../_mine.yaml\ntask: mine_b\nversion: 2\n")
    _write(d, "group_mine.yaml", "group: mine\nversion: 1\ntasks: [mine_a, mine_b]\n")
    idx = load_index([d])
    assert idx.expand("mine") == ["mine_a", "mine_b"]
    assert idx.tasks["mine_b"].version == 2 and idx.tasks["mine_a"].dataset.subdirs == ("mine",)
    assert "_mine" not in idx.tasks and "swuggy" in idx.tasks  # built-ins still there
    assert main(["tasks", "--include_path", str(d)]) == 0
    out = capsys.readouterr().out
    assert "mine_a" in out and "mine_b" in out and "group mine" in out
    assert "_mine" not in out
    # A template given as a file of its own is checked, not indexed.
    assert set(load_index([d / "_mine.yaml"]).tasks) == set(load_index().tasks)
