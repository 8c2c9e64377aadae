"""The ``prosody`` scorer (pGSLM audio-space metrics) on hand-made F0 tracks.

The metric functions are checked against independent formulations in
``test_prosody_metrics.py``; here the scorer's wiring is checked by hand: which tracks are the
prompt's, the reference's and the samples', the reference speaker's normalisation, the
per-temperature filters and the counted exclusions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.scorers.continuation import Prompt
from speechlm_eval.scorers.prosody import ProsodyScorer

E = math.e


def prompts():
    # two prompts by speaker "s" and one by an unknown speaker (its own speaker)
    return [
        Prompt("a", None, 5.0, "", "s", 2.0),  # type: ignore[arg-type]
        Prompt("b", None, 5.0, "", "s", 2.0),  # type: ignore[arg-type]
        Prompt("c", None, 5.0, "", None, 2.0),  # type: ignore[arg-type]
    ]


# F0 in Hz as powers of e, so log-F0 values are small integers; 0 = unvoiced.
PROMPT_F0 = {"a": [E**4, 0, E**4], "b": [E**6, E**6], "c": [E**3]}
TRUTH_F0 = {"a": [E**5, E**5], "b": [E**6, 0], "c": [E**3, E**5]}


def rows(t: float, tracks: dict[str, list[list[float]]]):
    return [
        {"doc_id": d, "temperature": t, "sample": j, "f0": np.array(f0)}
        for d, samples in tracks.items()
        for j, f0 in enumerate(samples)
    ]


def test_metrics_equal_hand_computed_values():
    # speaker "s": voiced log-F0 of a and b's prompts and references: 4, 4, 6, 6, 5, 5, 6 ->
    # mean 36/7; speaker of "c" (itself): 3, 3, 5 -> mean 11/3.
    ms, mc = 36 / 7, 11 / 3
    gen = {"a": [[E**5], [E**7, 0]], "b": [[E**6, E**4]], "c": [[E**4], [0.0]]}
    rep = ProsodyScorer({}).aggregate(
        prompts(), rows(0.7, gen), {k: np.array(v) for k, v in PROMPT_F0.items()},
        {k: np.array(v) for k, v in TRUTH_F0.items()},
    )  # fmt: skip
    m = rep.by_filter["t=0.7"].metrics
    # normalised means: prompts a 4-ms, b 6-ms, c 3-mc; references a 5-ms, b 6-ms, c 4-mc;
    # samples a: 5-ms, 7-ms; b: 5-ms; c: 4-mc, (none: unvoiced, excluded)
    # min-MAE: a min(|5-5|, |7-5|) = 0; b |5-6| = 1; c |4-4| = 0 -> mean 1/3
    assert m["f0_min_mae_audio"].value == pytest.approx(1 / 3)
    # correlation: pairs (prompt, sample) repeated per sample, the unvoiced one dropped
    x = [4 - ms, 4 - ms, 6 - ms, 3 - mc]
    y = [5 - ms, 7 - ms, 5 - ms, 4 - mc]
    assert m["f0_corr_audio"].value == pytest.approx(pearsonr(x, y)[0])
    assert m["f0_corr_audio"].n == 4
    # pooled std over voiced frames of all samples: 5-ms, 7-ms, 6-ms, 4-ms, 4-mc
    frames = [5 - ms, 7 - ms, 6 - ms, 4 - ms, 4 - mc]
    assert m["f0_std_audio"].value == pytest.approx(np.std(frames))
    ref = [5 - ms, 5 - ms, 6 - ms, 3 - mc, 5 - mc]
    assert rep.by_filter["oracle"].metrics["f0_std_audio"].value == pytest.approx(np.std(ref))
    ex = rep.info["excluded"]["t=0.7"]
    assert ex["unvoiced_continuations"] == 1 and ex["min_mae"]["excluded_samples"] == 1
    assert rep.info["speaker_log_f0_mean"] == {"c": round(mc, 6), "s": round(ms, 6)}
    assert "f0" not in rep.per_item[0] and rep.per_item[0]["voiced_frames"] == 1


def test_each_temperature_is_its_own_filter():
    gen = {"a": [[E**5]], "b": [[E**6]], "c": [[E**4]]}
    r = rows(0.5, gen) + rows(1.0, {"a": [[E**9]], "b": [[E**6]], "c": [[E**4]]})
    rep = ProsodyScorer({}).aggregate(
        prompts(), r, {k: np.array(v) for k, v in PROMPT_F0.items()},
        {k: np.array(v) for k, v in TRUTH_F0.items()},
    )  # fmt: skip
    # at 0.5 every sample equals its reference's mean: min-MAE 0; at 1.0 prompt a is 4 off
    assert rep.by_filter["t=0.5"].metrics["f0_min_mae_audio"].value == pytest.approx(0.0)
    assert rep.by_filter["t=1"].metrics["f0_min_mae_audio"].value == pytest.approx(4 / 3)


def test_a_speaker_without_any_voiced_reference_is_an_error():
    silent = {k: np.zeros(3) for k in PROMPT_F0}
    with pytest.raises(DataError, match="no voiced frame"):
        ProsodyScorer({}).aggregate(prompts(), rows(1.0, {"a": [[E**5]]}), silent, silent)


def test_unknown_option_is_an_error():
    with pytest.raises(ConfigError, match="primry"):
        ProsodyScorer({"primry": "x"})
