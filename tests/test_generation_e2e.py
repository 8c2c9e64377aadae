"""Generation tasks end to end: gslm-mini on the built-in continuation and prosody subsets,
with the packaged judges (Whisper tiny.en, the character n-gram, pYAAPT).

Checks what only a real run shows: every metric present and finite, the samples file with
each continuation's audio, the determinism of sampling (a second run from a fresh cache gives
identical numbers), and resumption (a second run on the same cache calls nothing again).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import build_tiny

from speechlm_eval.runner import RunOptions, evaluate

pytest.importorskip("faster_whisper")
pytest.importorskip("piper")
pytest.importorskip("amfm_decompy")

TASK = """\
include: {template}
task: cont_small
version: 1
generation:
  num_samples: 2
  temperatures: [0.7, 1.0]
  max_prompts: 2
scoring:
  options:
    primary: "auc_ppx_vert,none"
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin")
    build_tiny(out, ["continuation", "prosody"])
    return out


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    template = Path(__file__).parent.parent / "tasks" / "_continuation.yaml"
    (d / "_continuation.yaml").write_text(template.read_text())
    (d / "cont_small.yaml").write_text(TASK.format(template="_continuation.yaml"))
    return d


def _run(root, tasks, tmp_path, cache, **kw):
    opts = RunOptions(
        tasks="cont_small,prosody_pgslm",
        data_dir=str(root),
        use_cache=str(cache),
        include_path=[str(tasks)],
        limit=2,
        **kw,
    )
    return evaluate("gslm-mini", {}, opts)


def test_gslm_mini_continuations_are_scored_resumed_and_reproduced(root, tasks, tmp_path):
    out = tmp_path / "out"
    res = _run(root, tasks, tmp_path, tmp_path / "c.sqlite", output_path=str(out), log_samples=True)
    r = res["results"]["cont_small"]
    for f in ("t=0.7", "t=1", "oracle"):
        for m in ("ppx_mean", "genppl", "self_bleu2_gslm", "auto_bleu2_gslm", "vert"):
            assert math.isfinite(r[f"{m},{f}"]), (m, f)
    sc = res["scoring"]["cont_small"]
    # 2 prompts x 2 samples: the area exists, or the recorded reason says why not (e.g. both
    # temperatures at the same VERT), and then no number stands in for it
    auc = sc["tradeoff"]["auc"]
    assert (auc["auc"] is None) is (auc["reason"] is not None)
    assert ("auc_ppx_vert,none" in r) is (auc["auc"] is not None)
    assert sc["prompts"]["prompts"] == 2 and sc["generation"]["num_samples"] == 2
    assert set(res["judges"]["cont_small"]) == {"asr", "text_lm"}
    p = res["results"]["prosody_pgslm"]
    assert math.isfinite(p["f0_std_audio,oracle"]) and "f0_min_mae_audio,t=0.7" in p
    assert res["scoring"]["prosody_pgslm"]["primary_metric"] == "f0_min_mae_audio,t=0.7"
    # samples: one row per continuation (2 prompts x 2 temperatures x 2), with its audio
    (samples,) = (out / "gslm-mini").glob("samples_cont_small_*.jsonl")
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert (samples.parent / row["continuation_audio"]).is_file()
    # resumed on the same cache: nothing generated, transcribed or scored again
    again = _run(root, tasks, tmp_path, tmp_path / "c.sqlite")
    assert again["results"] == res["results"]
    for t in ("cont_small", "prosody_pgslm"):
        assert again["runtime"]["cache"][t]["computed"] == 0, t
    # a fresh cache with the same seed samples the same continuations
    fresh = _run(root, tasks, tmp_path, tmp_path / "fresh.sqlite")
    assert fresh["results"] == res["results"]
