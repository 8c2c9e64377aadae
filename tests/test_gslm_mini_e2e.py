"""gslm-mini end to end on the tiny built-in suite: every capability's task family, and the
same seed gives the same results file (minus clock fields) in two separate runs."""

from __future__ import annotations

import pytest
from helpers import build_tiny

from reference_models.gslm_mini.model import GSLMMini
from speechlm_eval.runner import RunOptions, evaluate

CLOCK = {"date", "start_time", "end_time", "total_evaluation_time_seconds", "runtime"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("gslm_tiny")
    build_tiny(out, ["lexical", "abx", "asr"])
    return out


def test_end_to_end_on_builtin_tiny_is_reproducible(tiny) -> None:
    opts = RunOptions(
        tasks="swuggy,abx_within,resynth_wer", data_dir=str(tiny), no_cache=True, seed=0
    )
    # Two model objects: nothing carried over in memory between the runs.
    first, second = (evaluate("gslm-mini", {}, opts, model=GSLMMini()) for _ in range(2))
    assert {k: v for k, v in first.items() if k not in CLOCK} == {
        k: v for k, v in second.items() if k not in CLOCK
    }
    r = first["results"]
    assert 0.0 <= r["swuggy"]["acc,nll_sum"] <= 1.0
    assert 0.0 <= r["abx_within"]["abx_within,none"] <= 0.5
    assert r["resynth_wer"]["wer,none"] > r["resynth_wer"]["wer_original,none"] >= 0.0
    assert first["datasets"]["swuggy"]["source"] == "builtin"
    assert first["judges"]["resynth_wer"]["asr"]["judge"] == "faster-whisper"
