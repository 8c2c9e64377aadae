"""Stream-space prosody (pGSLM's metrics on a model's own streams): the ``ProsodyStreams``
contract, the ``prosody_streams`` scorer on hand-built streams (against the
``prosody_metrics`` functions and a brute-force loop of the definitions), the executor's
``continue_prosody`` / ``prosody_streams`` jobs (cached apart from ``continue``), the runner's
skip for models without the extra, the LibriSpeech-layout tasks, and gslm-mini's streams
(sample j of ``continue_prosody`` is sample j of ``continue_``).

Until pyproject.toml registers the scorer ``prosody_streams``, the tests register it in the
registry themselves, as its entry point would (and the CLI test through a throw-away
distribution).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import pearsonr

from speechlm_eval import prosody_metrics as pm
from speechlm_eval import registry
from speechlm_eval.audio import Audio
from speechlm_eval.cache import BlobStore, ResultCache
from speechlm_eval.config import parse_task
from speechlm_eval.errors import PluginError
from speechlm_eval.execute import (
    BatchSizer,
    ExecStats,
    Item,
    continue_capability,
    continue_prosody_capability,
    execute,
    method_key,
    prosody_streams_capability,
    request_key,
    run_requests,
)
from speechlm_eval.model import ContinueRequest, EncodeRequest, ProsodyStreams, SpeechLM
from speechlm_eval.pipelines import skip_reason
from speechlm_eval.scorers.continuation import Prompt
from speechlm_eval.scorers.prosody_streams import (
    ProsodyStreamScorer,
    StreamSample,
    speaker_log_f0_mean,
    split_reference,
)

ROOT = Path(__file__).resolve().parents[1]
E = math.e
SCORER = "speechlm_eval.scorers.prosody_streams:ProsodyStreamScorer"


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The scorer ``prosody_streams`` in the registry, as its entry point puts it."""
    eps = registry._entry_points("scorers")
    obj = SimpleNamespace(load=lambda: ProsodyStreamScorer, dist=None)
    monkeypatch.setitem(eps, "prosody_streams", obj)
    registry._load.cache_clear()
    yield
    registry._load.cache_clear()


def streams(durations, f0, units=None, rate=10.0, **kw) -> ProsodyStreams:
    units = list(range(len(durations))) if units is None else units
    return ProsodyStreams(units, durations, f0, rate, **kw)


# --- ProsodyStreams ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"units": [1, 2], "durations": [1], "f0": [0.0]}, "one entry per segment"),
        ({"durations": [1, 0], "f0": [0.0, 0.0]}, "durations must be >= 1"),
        ({"durations": [1, 2], "f0": [100.0, -1.0]}, r"f0 must be >= 0"),
        ({"durations": [1], "f0": [np.nan]}, "NaN or infinite"),
        ({"durations": [1], "f0": [np.inf]}, "NaN or infinite"),
        ({"durations": [1.5], "f0": [1.0]}, "durations: expected whole numbers"),
        ({"units": [0.5], "durations": [1], "f0": [1.0]}, "units: expected whole numbers"),
        ({"durations": [[1]], "f0": [[1.0]]}, "1-D"),
        ({"durations": ["a"], "f0": [1.0]}, "expected numbers"),
        ({"durations": [1], "f0": [1.0], "rate": 0.0}, "unit_frame_rate must be > 0"),
        ({"durations": [1], "f0": [1.0], "rate": float("nan")}, "unit_frame_rate must be > 0"),
        ({"durations": [1], "f0": [1.0], "rate": "50"}, "must be a number"),
        ({"durations": [1], "f0": [1.0], "f0_kind": "cents"}, "f0_kind must be one of"),
        ({"durations": [1], "f0": [1.0], "f0_kind": "bins"}, "needs f0_bin_edges"),
        ({"durations": [1], "f0": [1.0], "f0_bin_edges": (0.0,)}, "only with f0_kind='bins'"),
        (
            {"durations": [1], "f0": [3.0], "f0_kind": "bins", "f0_bin_edges": (0.0, 1.0)},
            r"bin indices must lie in 0..2",
        ),
        (
            {"durations": [1], "f0": [0.5], "f0_kind": "bins", "f0_bin_edges": (0.0, 1.0)},
            "whole numbers",
        ),
        (
            {"durations": [1], "f0": [0.0], "f0_kind": "bins", "f0_bin_edges": (1.0, 0.0)},
            "non-decreasing",
        ),
        ({"durations": [1], "f0": [1.0], "f0_source": 3}, "f0_source must be a str"),
    ],
)
def test_prosody_streams_validation(kw, match):
    kw = dict(kw)
    units = kw.pop("units", None)
    rate = kw.pop("rate", 10.0)
    with pytest.raises(ValueError, match=match):
        streams(kw.pop("durations"), kw.pop("f0"), units, rate, **kw)


def test_prosody_streams_normalises_types_and_compares_by_value():
    s = streams([2, 1], [0, 120], units=[7, 3], f0_source="x")
    assert s.units.dtype == np.int64 and s.durations.dtype == np.int64
    assert s.f0.dtype == np.float64 and s.unit_frame_rate == 10.0 and len(s) == 2
    assert s == streams([2.0, 1.0], [0.0, 120.0], units=[7, 3], f0_source="x")
    assert s != streams([2, 1], [0, 121], units=[7, 3], f0_source="x")
    assert len(streams([], [])) == 0  # nothing generated: valid, excluded by scorers
    q = streams([1, 1], [0, 2], f0_kind="bins", f0_bin_edges=[-0.5, 0.5])
    assert q.f0_bin_edges == (-0.5, 0.5)
    assert q.meta() == {
        "unit_frame_rate": 10.0,
        "f0_kind": "bins",
        "f0_bin_edges": [-0.5, 0.5],
        "f0_source": "",
    }


# --- the scorer on hand-built streams ---------------------------------------------------------


def test_split_reference_follows_pgslm_prefix_rule():
    # 10 Hz units, 0.5 s prompt = 5 frames: the prompt ends with the segment that reaches it
    assert split_reference(streams([2, 3, 1], [0, 0, 0]), 0.5) == 2  # cumsum 2, 5 (reaches)
    assert split_reference(streams([2, 4, 1], [0, 0, 0]), 0.5) == 2  # 2, 6 (crosses)
    assert split_reference(streams([6, 1], [0, 0]), 0.5) == 1
    assert split_reference(streams([1, 1], [0, 0]), 0.5) == 2  # never reaches: all prompt


def _prompt(doc, speaker, prompt_seconds=0.5):
    return Prompt(doc, None, 2.0, "", speaker, prompt_seconds)  # type: ignore[arg-type]


# Two prompts by speaker "s", one by an unknown speaker (its own). F0 in Hz as powers of e.
REFS = {
    # prompt = first 2 segments (2 + 3 frames), continuation 3 segments (one unvoiced inside)
    "a": streams([2, 3, 1, 2, 2], [E**4.5, E**4.5, E**5.5, 0, E**6.5]),
    # prompt = first segment (5 frames), continuation 2 segments
    "b": streams([5, 1, 1], [E**6.5, E**3.5, E**5.5]),
    # prompt = first 2 segments, continuation 2 segments
    "c": streams([4, 2, 1, 3], [E**2.0, E**3.0, E**4.0, E**3.5]),
}
PROMPTS = [_prompt("a", "s"), _prompt("b", "s"), _prompt("c", None)]
GEN = {  # per prompt, per sample: (durations, F0 in Hz)
    "a": [([1, 2, 3], [E**5.0, E**6.0, E**5.0]), ([2, 2], [E**6.0, 0.0])],
    "b": [([3, 1, 1, 2], [E**6.0, 0.0, E**4.0, E**5.0]), ([1], [0.0])],  # 2nd: unvoiced
    "c": [([2, 2], [E**3.0, E**4.5]), ([4, 1, 1], [E**2.5, E**2.0, E**3.0])],
}


def _samples(gen, t=0.7):
    return [
        StreamSample(d, t, j, streams(dur, f0))
        for d, ss in gen.items()
        for j, (dur, f0) in enumerate(ss)
    ]


def _span(f0):
    """Voiced segments of an F0 stream in Hz: the first to the last with F0 > 0 (the unvoiced
    ones between them are interpolated). Their normalised value may be exactly 0.0."""
    voiced = [i for i, v in enumerate(f0) if v > 0]
    return [bool(voiced) and voiced[0] <= i <= voiced[-1] for i in range(len(f0))]


def _voiced(values, f0, part=slice(None)):
    """The voiced values of ``values[part]`` (normalised log-F0 of the Hz stream ``f0``)."""
    return [v for v, on in list(zip(values, _span(f0), strict=True))[part] if on]


def _brute_force(refs, prompts, gen):
    """The definitions of the module docstring, written out with loops."""
    # speaker means: duration-weighted log-F0 of voiced reference segments
    spk = {p.doc_id: p.speaker or p.doc_id for p in prompts}
    mean = {}
    for s in set(spk.values()):
        num = den = 0.0
        for d, sd in spk.items():
            if sd == s:
                for dur, f in zip(refs[d].durations, refs[d].f0, strict=True):
                    if f > 0:
                        num += math.log(f) * dur
                        den += dur
        mean[s] = num / den

    def norm(f0, m):  # interpolate over segments (inside the voiced span), log, minus mean
        f0 = list(f0)
        voiced = [i for i, v in enumerate(f0) if v > 0]
        out = [0.0] * len(f0)
        for i in range(len(f0)):
            if voiced and voiced[0] <= i <= voiced[-1]:
                if f0[i] > 0:
                    v = f0[i]
                else:
                    lo = max(k for k in voiced if k < i)
                    hi = min(k for k in voiced if k > i)
                    v = f0[lo] + (f0[hi] - f0[lo]) * (i - lo) / (hi - lo)
                out[i] = math.log(v) - m
        return out

    cut = {d: split_reference(refs[d], 0.5) for d in refs}
    ref_f0 = {d: norm(refs[d].f0, mean[spk[d]]) for d in refs}
    res = {}
    for kind in ("f0", "dur"):
        total = count = 0.0
        for d, ss in gen.items():
            if kind == "f0":
                target = ref_f0[d][cut[d] :]
                cands = [norm(f, mean[spk[d]]) for _, f in ss if any(v > 0 for v in f)]
            else:
                target = [float(x) for x in refs[d].durations[cut[d] :]]
                cands = [[float(x) for x in dur] for dur, _ in ss]
            best = min(
                sum(abs(c[k] - target[k]) for k in range(min(len(c), len(target))))
                / min(len(c), len(target))
                for c in cands
            )
            total += best * len(target)
            count += len(target)
        res[f"{kind}_min_mae_stream"] = total / count
    xs, ys, f0_pool, dx, dy, dur_pool = [], [], [], [], [], []
    for d, ss in gen.items():
        # a voiced segment at the speaker mean is 0.0 and still counts (REFS "a" has one)
        head = _voiced(ref_f0[d], refs[d].f0, slice(None, cut[d]))
        dhead = list(refs[d].durations[: cut[d]])
        for dur, f in ss:
            vals = _voiced(norm(f, mean[spk[d]]), f)
            if vals:
                xs.append(sum(head) / len(head))
                ys.append(sum(vals) / len(vals))
                f0_pool += vals
            dx.append(sum(dhead) / len(dhead))
            dy.append(sum(dur) / len(dur))
            dur_pool += dur
    res["f0_corr_stream"] = pearsonr(xs, ys)[0]
    res["dur_corr_stream"] = pearsonr(dx, dy)[0]
    res["f0_std_stream"] = float(np.std(f0_pool))
    res["dur_std_stream"] = float(np.std(dur_pool))
    return res, mean, ref_f0, cut


def test_scorer_equals_brute_force_definitions():
    rep = ProsodyStreamScorer({}).score_streams(PROMPTS, _samples(GEN), REFS)
    want, mean, ref_f0, cut = _brute_force(REFS, PROMPTS, GEN)
    got = {k: m.value for k, m in rep.by_filter["t=0.7"].metrics.items()}
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
    assert rep.info["speaker_log_f0_mean"] == {
        "c": round(mean["c"], 6),
        "s": round(mean["s"], 6),
    }
    assert mean["s"] == pytest.approx((4.5 * 5 + 5.5 + 6.5 * 2 + 6.5 * 5 + 3.5 + 5.5) / 15)
    ex = rep.info["excluded"]["t=0.7"]
    assert ex["samples_without_f0"] == 1 and ex["f0_min_mae"]["excluded_samples"] == 1
    assert ex["f0_corr"] == {"excluded_prompts": 0, "excluded_samples": 1}
    assert ex["dur_min_mae"]["reference_segments"] == 3 + 2 + 2
    # oracle: the reference continuations themselves (pGSLM's --copy-target)
    o = rep.by_filter["oracle"].metrics
    conts = [_voiced(ref_f0[d], REFS[d].f0, slice(cut[d], None)) for d in REFS]
    assert o["f0_std_stream"].value == pytest.approx(np.std(np.concatenate(conts)))
    durs = np.concatenate([REFS[d].durations[cut[d] :] for d in REFS])
    assert o["dur_std_stream"].value == pytest.approx(np.std(durs))
    heads = [np.mean(_voiced(ref_f0[d], REFS[d].f0, slice(None, cut[d]))) for d in REFS]
    assert o["f0_corr_stream"].value == pytest.approx(
        pearsonr(heads, [np.mean(c) for c in conts])[0]
    )
    # rows: one per sample, the streams themselves stay out of the samples file
    assert len(rep.per_item) == 6 and not any(k.startswith("_") for k in rep.per_item[0])
    assert rep.per_item[3]["voiced_segments"] == 0 and rep.per_item[3]["f0_mean_norm"] is None


def test_scorer_with_reference_length_samples_is_pgslm_min_mae():
    # samples as long as the reference continuation (teacher-forced-like): exactly
    # prosody_metrics.min_mae (sum over segments, min over samples, / segments) and pooled_std
    rng = np.random.default_rng(0)
    gen: dict[str, list] = {}
    for d, ref in REFS.items():
        n = len(ref) - split_reference(ref, 0.5)
        gen[d] = [
            (list(rng.integers(1, 5, n)), list(np.exp(rng.uniform(3, 6, n)))) for _ in range(3)
        ]
    rep = ProsodyStreamScorer({}).score_streams(PROMPTS, _samples(gen), REFS)
    m = rep.by_filter["t=0.7"].metrics
    _, mean, ref_f0, cut = _brute_force(REFS, PROMPTS, gen)
    spk = {"a": "s", "b": "s", "c": "c"}
    blocks = [
        np.array([pm.normalise_log_f0(f, mean[spk[d]]) for _, f in ss]) for d, ss in gen.items()
    ]
    targets = [np.array(ref_f0[d][cut[d] :]) for d in gen]
    assert m["f0_min_mae_stream"].value == pytest.approx(pm.min_mae(blocks, targets))
    dblocks = [np.array([dur for dur, _ in ss], dtype=float) for ss in gen.values()]
    dtargets = [REFS[d].durations[cut[d] :].astype(float) for d in gen]
    assert m["dur_min_mae_stream"].value == pytest.approx(pm.min_mae(dblocks, dtargets))
    assert m["dur_std_stream"].value == pytest.approx(pm.pooled_std(dblocks))
    assert m["f0_std_stream"].value == pytest.approx(pm.pooled_std(blocks))  # all voiced
    corr = pm.duration_correlation(
        [REFS[d].durations[: cut[d]] for d in gen], [[np.array(x[0]) for x in gen[d]] for d in gen]
    )
    assert m["dur_corr_stream"].value == pytest.approx(corr["r"])
    assert m["dur_corr_stream"].n == corr["n_pairs"] == 9


def test_scorer_exclusions_are_counted_and_filters_kept_apart():
    refs = dict(REFS)
    refs["d"] = streams([5], [E**4])  # no continuation after the prompt
    refs["e"] = streams([5, 2], [0.0, 0.0])  # speaker "z" never voiced: no F0 to normalise by
    prompts = [*PROMPTS, _prompt("d", "y"), _prompt("e", "z")]
    gen = {**GEN, "d": [([2], [E**5])], "e": [([1, 1], [E**5, E**5])]}
    samples = _samples(gen) + _samples({"a": [([], [])]}, t=1.0)  # an empty sample at T=1
    rep = ProsodyStreamScorer({"primary": "f0_min_mae_stream,t=0.7"}).score_streams(
        prompts, samples, refs
    )
    assert set(rep.by_filter) == {"t=0.7", "t=1", "oracle"}
    ex = rep.info["excluded"]
    assert ex["prompts_without_reference_continuation"] == ["d"]
    assert ex["speakers_without_f0"] == ["z"]
    assert ex["prompts_without_voiced_reference_prompt"] == ["e"]
    assert ex["t=0.7"]["f0_min_mae"]["excluded_prompts"] == 1  # e: no reference F0
    assert ex["t=0.7"]["dur_min_mae"]["excluded_prompts"] == 0  # e's durations still count
    # the prompts a, b, c give the same F0 numbers as without d and e
    base = ProsodyStreamScorer({}).score_streams(PROMPTS, _samples(GEN), REFS)
    for k in ("f0_min_mae_stream", "f0_corr_stream", "f0_std_stream"):
        assert rep.by_filter["t=0.7"].metrics[k].value == pytest.approx(
            base.by_filter["t=0.7"].metrics[k].value
        )
    # T=1: one empty sample of one prompt: nothing to score, reasons recorded, never NaN
    assert rep.by_filter["t=1"].metrics == {}
    assert ex["t=1"]["empty_samples"] == 1
    assert "f0_corr_stream" in rep.info["undefined"]["t=1"]
    assert rep.info["primary"] == "f0_min_mae_stream,t=0.7"


def test_scorer_dequantises_bins_and_rejects_mixed_frame_rates():
    edges = (-0.4, 0.0, 0.4)  # bins 0..3 -> -0.4, -0.2, 0.2, 0.4
    refs = {
        "a": streams([5, 1, 1], [1, 2, 3], f0_kind="bins", f0_bin_edges=edges),
        "b": streams([5, 2], [0, 2], f0_kind="bins", f0_bin_edges=edges),
    }
    prompts = [_prompt("a", "s"), _prompt("b", "s")]
    gen = [
        StreamSample("a", 0.7, 0, streams([1, 1], [3, 0], f0_kind="bins", f0_bin_edges=edges)),
        StreamSample("b", 0.7, 0, streams([1], [1], f0_kind="bins", f0_bin_edges=edges)),
    ]
    rep = ProsodyStreamScorer({}).score_streams(prompts, gen, refs)
    m = rep.by_filter["t=0.7"].metrics
    # a: |0.4-0.2| + |-0.4-0.4| over 2 segments -> mean 0.5, weight 2; b: |-0.2-0.2| weight 1
    assert m["f0_min_mae_stream"].value == pytest.approx((0.5 * 2 + 0.4) / 3)
    assert m["f0_std_stream"].value == pytest.approx(np.std([0.4, -0.4, -0.2]))
    assert rep.info["f0_kind"] == ["bins"]
    with pytest.raises(PluginError, match="several unit frame rates"):
        bad = [StreamSample("a", 0.7, 0, streams([1], [100.0], rate=50.0))]
        ProsodyStreamScorer({}).score_streams(PROMPTS[:1], bad, {"a": REFS["a"]})


def test_scorer_counts_a_zero_valued_bin_as_voiced():
    # edges (-0.2, 0.2): bins 0, 1, 2 -> -0.2, 0.0, 0.2. Bin 1 is "at the speaker mean", a
    # voiced value (every segment of a quantised stream is voiced), never "unvoiced".
    edges = (-0.2, 0.2)

    def q(dur, bins):
        return streams(dur, bins, f0_kind="bins", f0_bin_edges=edges)

    refs = {  # 10 Hz, prompt 0.5 s = 5 frames
        "a": q([5, 1, 1, 1], [1, 0, 1, 2]),  # prompt [0.0], continuation [-0.2, 0.0, 0.2]
        "b": q([2, 3, 1, 1], [2, 1, 1, 1]),  # prompt [0.2, 0.0], continuation [0.0, 0.0]
        "c": q([5, 2], [0, 2]),  # prompt [-0.2], continuation [0.2]
    }
    prompts = [_prompt(d, "s") for d in refs]
    gen = {
        "a": [q([1, 1, 1], [1, 1, 1]), q([1, 1], [2, 0])],  # [0, 0, 0], [0.2, -0.2]
        "b": [q([1, 1], [0, 1]), q([2], [2])],  # [-0.2, 0.0], [0.2]
        "c": [q([1], [1]), q([1, 1], [2, 2])],  # [0.0], [0.2, 0.2]
    }
    samples = [StreamSample(d, 0.7, j, s) for d, ss in gen.items() for j, s in enumerate(ss)]
    rep = ProsodyStreamScorer({}).score_streams(prompts, samples, refs)
    m = rep.by_filter["t=0.7"].metrics
    # min-MAE: a: best of 0.4/3 (all-zero sample) and 0.6/2; b: 0.2/2 vs 0.2; c: 0.2 vs 0
    assert m["f0_min_mae_stream"].value == pytest.approx((0.4 / 3 * 3 + 0.1 * 2 + 0.0) / 6)
    values = [0, 0, 0, 0.2, -0.2, -0.2, 0, 0.2, 0, 0.2, 0.2]
    assert m["f0_std_stream"].value == pytest.approx(np.std(values))
    assert m["f0_std_stream"].n == 11
    x, y = [0, 0, 0.1, 0.1, -0.2, -0.2], [0, 0, -0.1, 0.2, 0, 0.2]
    assert m["f0_corr_stream"].value == pytest.approx(pearsonr(x, y)[0])
    assert m["f0_corr_stream"].n == 6
    o = rep.by_filter["oracle"].metrics
    assert o["f0_std_stream"].value == pytest.approx(np.std([-0.2, 0, 0.2, 0, 0, 0.2]))
    assert o["f0_corr_stream"].value == pytest.approx(pearsonr([0, 0.1, -0.2], [0, 0, 0.2])[0])
    ex = rep.info["excluded"]
    assert ex["t=0.7"]["samples_without_f0"] == 0
    assert ex["t=0.7"]["f0_min_mae"]["excluded_prompts"] == 0
    assert ex["t=0.7"]["f0_corr"] == {"excluded_prompts": 0, "excluded_samples": 0}
    assert ex["oracle"]["unvoiced_reference_continuations"] == 0
    assert ex["prompts_without_voiced_reference_prompt"] == []
    assert ex["speakers_without_f0"] == []  # a quantised stream needs no speaker mean
    row = rep.per_item[0]
    assert row["voiced_segments"] == 3 and row["f0_mean_norm"] == 0.0


def test_f0_correlation_with_explicit_voiced_masks():
    # without masks zeros are unvoiced; with masks a 0.0 counts where the mask says voiced
    prompts = [np.array([0.0, 1.0]), np.array([2.0, 0.0]), np.array([1.0, 1.0])]
    conts = [[np.array([0.0, 3.0])], [np.array([1.0])], [np.array([2.0])]]
    plain = pm.f0_correlation(prompts, conts)
    assert plain["r"] == pytest.approx(pearsonr([1, 2, 1], [3, 1, 2])[0])
    on = [np.ones(2, bool), np.array([True, False]), np.ones(2, bool)]
    con = [[np.ones(2, bool)], [np.ones(1, bool)], [np.ones(1, bool)]]
    got = pm.f0_correlation(prompts, conts, prompt_voiced=on, continuation_voiced=con)
    assert got["n_pairs"] == 3
    assert got["r"] == pytest.approx(pearsonr([0.5, 2, 1], [1.5, 1, 2])[0])
    assert got["r"] != pytest.approx(plain["r"])
    with pytest.raises(ValueError, match="both"):
        pm.f0_correlation(prompts, conts, prompt_voiced=on)
    with pytest.raises(ValueError, match="boolean voiced mask"):
        bad = [[1, 1], [1, 0], [1, 1]]  # not boolean
        pm.f0_correlation(prompts, conts, prompt_voiced=bad, continuation_voiced=con)
    span = pm.interpolated_span([0.0, 100.0, 0.0, 120.0, 0.0])
    assert span.tolist() == [False, True, True, True, False]
    assert pm.interpolated_span([0.0, 0.0]).tolist() == [False, False]


@pytest.mark.parametrize(
    "gen_kw, ref_kw, match",
    [
        (
            {"f0_kind": "bins", "f0_bin_edges": (-0.2, 0.2)},
            {},
            r"samples have F0 as bins \(2 edges -0.2..0.2, \w+\), references as hz$",
        ),
        (
            {"f0_kind": "bins", "f0_bin_edges": (-0.2, 0.2)},
            {"f0_kind": "bins", "f0_bin_edges": (-0.3, 0.3)},
            r"samples have F0 as bins \(2 edges -0.2..0.2, .*references as bins \(2 edges -0.3",
        ),
    ],
)
def test_scorer_rejects_samples_and_references_of_other_f0_kinds(gen_kw, ref_kw, match):
    refs = {"a": streams([5, 1], [1, 1], **ref_kw)}
    gen = [StreamSample("a", 0.7, 0, streams([1], [1], **gen_kw))]
    with pytest.raises(PluginError, match="prosody streams of model 'm': .*must share f0_kind"):
        ProsodyStreamScorer({}).score_streams(PROMPTS[:1], gen, refs, model="model 'm'")
    with pytest.raises(PluginError, match=match):
        ProsodyStreamScorer({}).score_streams(PROMPTS[:1], gen, refs, model="model 'm'")


def test_speaker_mean_weights_segments_by_duration():
    s = [streams([3, 1], [E**2, E**6]), streams([2, 9], [0.0, E**4])]
    assert speaker_log_f0_mean(s) == pytest.approx((2 * 3 + 6 + 4 * 9) / 13)
    assert speaker_log_f0_mean([streams([1], [0.0])]) is None


# --- executor and runner ----------------------------------------------------------------------


class StreamModel(SpeechLM):
    """Deterministic stand-in: sample j of a prompt of n samples has j + 1 segments."""

    capabilities = frozenset({"continue"})
    continue_extras = frozenset({"prosody_streams"})
    sample_rate = None

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def continue_(self, requests):
        self.calls.append("continue_")
        return [[Audio(np.zeros(160, np.float32), 16000, "x")] * r.num_samples for r in requests]

    def continue_prosody(self, requests):
        self.calls.append("continue_prosody")
        return [
            [
                ProsodyStreams(
                    np.arange(j + 1) + r.seed, np.full(j + 1, 2), np.full(j + 1, 120.0), 50
                )
                for j in range(r.num_samples)
            ]
            for r in requests
        ]

    def prosody_streams(self, audios):
        self.calls.append("prosody_streams")
        return [ProsodyStreams([1, 2], [3, 4], [0.0, 110.0], 50, f0_source="t") for _ in audios]


def _run(job, reqs, cache, stats=None):
    items = [Item(str(i), 1.0, lambda _c, r=r: r) for i, r in enumerate(reqs)]
    return execute(job, items, cache=cache, sizer=BatchSizer(8), stats=stats or ExecStats())


def test_continue_prosody_job_caches_streams_apart_from_continue(tmp_path):
    model = StreamModel()
    cache = ResultCache(tmp_path / "c.sqlite")
    blobs = BlobStore(tmp_path / "blobs")
    job = continue_prosody_capability(model, blobs).job(model, "mkey")
    req = ContinueRequest(prompt=Audio(np.ones(320, np.float32), 16000, "p"), num_samples=3, seed=4)
    (got,) = _run(job, [req], cache)
    assert [len(s) for s in got] == [1, 2, 3] and list(got[2].units) == [4, 5, 6]
    stats = ExecStats()
    (again,) = _run(job, [req], cache, stats)  # from the cache: blobs read back, equal
    assert again == got and stats.cache_hits == 1 and model.calls == ["continue_prosody"]
    cont = continue_capability(model, blobs).job(model, "mkey")
    assert request_key(job, req) != request_key(cont, req)
    # the analysis side: one streams per audio, under its own method name
    ana = prosody_streams_capability(model, blobs).job(model, "mkey")
    enc = EncodeRequest(audio=req.prompt, key="p")
    (ref,) = _run(ana, [enc], cache)
    assert ref == ProsodyStreams([1, 2], [3, 4], [0.0, 110.0], 50, f0_source="t")
    assert request_key(ana, enc) not in (request_key(job, req), request_key(cont, req))


def test_continue_prosody_job_checks_the_model(tmp_path):
    cache, blobs = ResultCache(None), BlobStore(None)
    req = ContinueRequest(prompt=Audio(np.ones(320, np.float32), 16000, "p"), num_samples=2)

    class Lacks(StreamModel):
        continue_extras = frozenset()

    with pytest.raises(PluginError, match="does not declare 'prosody_streams'"):
        _run(continue_prosody_capability(Lacks(), blobs).job(Lacks(), "k"), [req], cache)

    class Wrong(StreamModel):
        def continue_prosody(self, requests):
            return [[{"units": []}] * r.num_samples for r in requests]

    with pytest.raises(PluginError, match="sample 0 is dict; expected"):
        _run(continue_prosody_capability(Wrong(), blobs).job(Wrong(), "k"), [req], cache)

    class Short(StreamModel):
        def continue_prosody(self, requests):
            return [super().continue_prosody(requests)[0][:1]]

    with pytest.raises(PluginError, match="returned 1 results; expected a list of 2"):
        _run(continue_prosody_capability(Short(), blobs).job(Short(), "k"), [req], cache)


def _run_files(model, cap, files):
    return run_requests(
        model,
        "k",
        files,
        cap,
        expected_rate=None,
        cache=ResultCache(None),
        sizer=BatchSizer(8),
        desc="t",
        stats=ExecStats(),
    )


def test_malformed_streams_a_model_builds_are_plugin_errors(tmp_path):
    # ProsodyStreams' own ValueError, raised inside the model's method (the CLI would report
    # it as an internal bug), is the model's fault: a one-line PluginError naming the method
    # and the request
    from helpers import write_wav

    files = {  # two different audios: two requests in one batch
        s: write_wav(tmp_path / f"{s}.wav", np.full(1600, v, np.float32))
        for s, v in (("p", 0.1), ("q", 0.2))
    }
    blobs = BlobStore(tmp_path / "blobs")

    class Bad(StreamModel):
        def continue_prosody(self, requests):
            return [[ProsodyStreams([1], [0], [100.0], 50)] for _ in requests]  # 0 frames

        def prosody_streams(self, audios):
            return [ProsodyStreams([1], [1], [-5.0], 50) for _ in audios]  # F0 < 0

    model = Bad()
    with pytest.raises(PluginError) as e:
        _run_files(model, continue_prosody_capability(model, blobs), {"p": files["p"]})
    assert str(e.value) == (
        "continue_prosody (request 'p'): the model built a malformed ProsodyStreams "
        "(prosody streams: durations must be >= 1 unit frame, got 0)"
    )
    with pytest.raises(PluginError, match=r"^prosody_streams \(one of requests '[pq]', '[pq]'\): "):
        _run_files(model, prosody_streams_capability(model, blobs), files)
    with pytest.raises(PluginError, match=r"f0 must be >= 0"):
        _run_files(model, prosody_streams_capability(model, blobs), {"q": files["q"]})

    class Changed(StreamModel):  # valid when built, changed in place afterwards
        def prosody_streams(self, audios):
            out = super().prosody_streams(audios)
            for s in out:
                s.durations[0] = 0
            return out

    model = Changed()
    with pytest.raises(PluginError, match=r"^prosody_streams\('p'\): malformed ProsodyStreams"):
        _run_files(model, prosody_streams_capability(model, blobs), {"p": files["p"]})

    class Other(StreamModel):  # any other ValueError stays what it is (a bug, not streams)
        def prosody_streams(self, audios):
            raise ValueError("boom")

    model = Other()
    with pytest.raises(ValueError, match="boom"):
        _run_files(model, prosody_streams_capability(model, blobs), {"p": files["p"]})


class _WordsASR:
    name = "words-asr"

    def transcribe(self, audios, stats=None, cache=None, desc=None):
        return ["a b" for _ in audios]


def test_continue_and_stream_pipelines_send_the_same_requests(tmp_path):
    # prosody_pgslm and prosody_pgslm_stream describe the same samples because both
    # pipelines build their requests with one helper, continue_request
    import yaml
    from helpers import write_wav

    from speechlm_eval.pipelines import TaskContext
    from speechlm_eval.pipelines.continuation import (
        GENERATION,
        continue_request,
        run_continue,
        select_prompts,
    )
    from speechlm_eval.pipelines.prosody_streams import run_prosody_streams
    from speechlm_eval.readers.transcribed import read_librispeech

    chapter = tmp_path / "data" / "1" / "2"
    for i, sec in enumerate((6.5, 8.0)):
        write_wav(chapter / f"1-2-000{i}.wav", np.full(round(sec * 16000), 0.05, np.float32))
    (chapter / "1-2.trans.txt").write_text("1-2-0000 A B\n1-2-0001 C D\n")
    ds = read_librispeech(tmp_path / "data", {})

    class Both(StreamModel):
        sample_rate = 16000

        def __init__(self):
            super().__init__()
            self.seen: dict[str, list[ContinueRequest]] = {"continue_": [], "prosody": []}

        def continue_(self, requests):
            self.seen["continue_"] += requests
            return super().continue_(requests)

        def continue_prosody(self, requests):
            self.seen["prosody"] += requests
            return super().continue_prosody(requests)

    gen = {"num_samples": 2, "temperatures": [0.5, 1.0], "top_k": 7, "max_seconds": "reference"}

    def cfg(scorer, **extra):
        return _task(
            yaml.safe_dump(
                {
                    "task": f"t_{scorer}",
                    "version": 1,
                    "capability": "continue",
                    "dataset": {"reader": "librispeech", "subdirs": ["x"], "sample_rate": 16000},
                    "scoring": {"scorer": scorer},
                    "generation": {**gen, **extra},
                }
            )
        )

    def ctx(c, model, judges):
        return TaskContext(
            cfg=c,
            dataset=ds,
            model=model,
            model_key="m",
            cache=ResultCache(None),
            blobs=BlobStore(tmp_path / "blobs"),
            sizer=BatchSizer(4),
            stats=ExecStats(),
            seed=3,
            log_samples=False,
            judges=judges,
        )

    model = Both()
    audio_cfg = cfg("continuation", with_prompt=False)
    run_continue(ctx(audio_cfg, model, {"asr": _WordsASR()}))
    stream_ctx = ctx(cfg("prosody_streams"), model, {})
    run_prosody_streams(stream_ctx)
    a, b = ({r.key: r.fingerprint() for r in model.seen[k]} for k in ("continue_", "prosody"))
    assert len(a) == 2 * 2 and a == b
    opts = GENERATION.parse("t", stream_ctx.cfg.generation)
    prompts, _ = select_prompts(stream_ctx, opts)
    for r in model.seen["prosody"]:
        doc, _, t = r.key.rpartition("@")
        (p,) = [p for p in prompts if p.doc_id == doc]
        want = continue_request(p, r.prompt, opts, float(t), 3, r.key)
        assert want.fingerprint() == r.fingerprint() and want.key == r.key
        assert r.top_k == 7 and r.max_seconds == pytest.approx(p.seconds - p.prompt_seconds)


def _task(text: str):
    import yaml

    return parse_task(yaml.safe_load(text), "t.yaml")


def test_runner_skips_models_without_the_extra():
    cfg = _task((ROOT / "tasks" / "prosody_pgslm_stream.yaml").read_text())

    class Lacks(StreamModel):
        continue_extras = frozenset()

    assert skip_reason(cfg, StreamModel()) is None
    assert skip_reason(cfg, Lacks()) == "skipped (model lacks continue prosody_streams)"
    audio_cfg = _task((ROOT / "tasks" / "prosody_pgslm.yaml").read_text())
    assert skip_reason(audio_cfg, Lacks()) is None  # the audio-space task needs no extra


def test_librispeech_tasks_read_librispeech_layout_and_skip_without_data(tmp_path):
    from speechlm_eval.data_sources import DataOptions, read_task_data
    from speechlm_eval.errors import DataNotFoundError
    from speechlm_eval.tasks import load_index

    idx = load_index([])
    for name, scorer in (
        ("prosody_pgslm_librispeech", "prosody"),
        ("prosody_pgslm_stream_librispeech", "prosody_streams"),
        ("prosody_pgslm_stream", "prosody_streams"),
    ):
        cfg = idx.tasks[name]
        assert cfg.capability == "continue" and cfg.scoring.scorer == scorer
        g = cfg.generation
        assert g["num_samples"] == 20 and g["temperatures"] == [0.7]
    for name in ("prosody_pgslm_librispeech", "prosody_pgslm_stream_librispeech"):
        cfg = idx.tasks[name]
        assert cfg.dataset.reader == "librispeech" and cfg.dataset.official_only
        assert cfg.dataset.builtin is None
        assert cfg.generation["prompt_seconds"] == 3.0 and cfg.generation["min_seconds"] == 6.0
        with pytest.raises(DataNotFoundError, match="official data only"):
            read_task_data(cfg, DataOptions.from_environment(None, "auto"))
    # a LibriSpeech layout: speaker/chapter/ with its transcript file
    from helpers import write_wav

    chapter = tmp_path / "LibriSpeech" / "test-clean" / "61" / "70968"
    for i in range(2):
        write_wav(chapter / f"61-70968-000{i}.wav", np.zeros(16000 * 7, np.float32))
    (chapter / "61-70968.trans.txt").write_text("61-70968-0000 A B\n61-70968-0001 C D\n")
    ds = read_task_data(
        idx.tasks["prosody_pgslm_librispeech"], DataOptions.from_environment(str(tmp_path))
    )
    assert sorted(ds.doc_ids()) == ["61-70968-0000", "61-70968-0001"]
    assert set(ds.speakers.values()) == {"61"}
    # the stream-space generation options are the audio-space task's (same requests)
    audio, stream = idx.tasks["prosody_pgslm"], idx.tasks["prosody_pgslm_stream"]
    drop = {"with_prompt", "cut_to_reference", "baselines"}
    assert {k: v for k, v in audio.generation.items() if k not in drop} == stream.generation


# --- gslm-mini --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gslm():
    from reference_models.gslm_mini.model import GSLMMini

    return GSLMMini()


@cache
def _speech(text: str, voice: str = "joe") -> Audio:
    from speechlm_eval.builtin.voices import all_voices

    return Audio(all_voices()[voice].text(text), 16000, source=f"{voice}: {text}")


def _request(n=3, seed=7, t=0.8, seconds=1.5):
    a = _speech("The children walked home along the river.")
    return ContinueRequest(prompt=a, num_samples=n, temperature=t, max_seconds=seconds, seed=seed)


def test_gslm_mini_streams_are_the_continue_samples(gslm):
    from reference_models.gslm_mini.vocoder import UPSAMPLE, run_lengths, world_synthesis

    req = _request()
    (streams_,) = gslm.continue_prosody([req])
    (audio,) = gslm.continue_([req])
    drawn = gslm.sample_units(req)
    voc = gslm._vocoder
    prompt_frames = gslm.frame_units(req.prompt)
    assert gslm.continue_extras == frozenset({"prosody_streams"})
    assert len(streams_) == len(audio) == 3
    for s, a, units in zip(streams_, audio, drawn, strict=True):
        frames = np.repeat(s.units, s.durations)
        # the same units the LM drew, at the vocoder's durations, within the budget
        assert np.array_equal(frames, voc.durations.expand(units)[: int(1.5 * 50)])
        assert np.array_equal(run_lengths(frames)[0], s.units)
        assert a.samples.size == frames.size * 320  # the audio is these frames...
        params = voc.net.predict(np.concatenate([prompt_frames, frames]))
        wav = world_synthesis(params)[prompt_frames.size * 320 :]
        assert np.array_equal(wav, a.samples)  # ...vocoded, sample for sample
        f0 = params.f0[UPSAMPLE * prompt_frames.size :]  # and F0 is the vocoder's, per segment
        assert np.array_equal(s.f0, pm.segment_f0(f0, 200.0, s.durations, 50.0))
        assert s.unit_frame_rate == 50.0 and s.f0_kind == "hz" and "vocoder" in s.f0_source
    assert any(s != streams_[0] for s in streams_[1:])  # three different samples


def test_gslm_mini_streams_are_deterministic(gslm):
    req = _request()
    a = gslm.continue_prosody([req])[0]
    b = gslm.continue_prosody([_request(n=1, seconds=2.0), req])[1]  # other batch company
    assert a == b
    assert gslm.continue_prosody([_request(n=1)])[0][0] == a[0]  # sample 0 of 1 = of 3
    assert gslm.continue_prosody([_request(seed=8)])[0] != a  # another seed, other samples


def test_gslm_mini_analyses_speech_into_streams(gslm):
    from reference_models.gslm_mini.vocoder import run_lengths, world_f0

    a = _speech("Nothing was said about it.", "espeak-en-us+f4")
    (s,) = gslm.prosody_streams([a])
    units, durations = run_lengths(gslm.frame_units(a))
    assert np.array_equal(s.units, units) and np.array_equal(s.durations, durations)
    assert np.array_equal(s.f0, pm.segment_f0(world_f0(a.samples), 200.0, durations, 50.0))
    assert 150 < np.median(s.f0[s.f0 > 0]) < 260  # the female espeak voice
    assert "pyworld" in s.f0_source and s == gslm.prosody_streams([a])[0]
    with pytest.raises(Exception, match="16000 Hz"):
        gslm.prosody_streams([a.resample(8000)])


def test_gslm_mini_with_prompt_streams_cover_the_continuation_only(gslm):
    from reference_models.gslm_mini.model import GSLMMini

    other = GSLMMini(with_prompt="true")
    req = _request(n=1)
    assert other.continue_prosody([req]) == gslm.continue_prosody([req])


def test_gslm_mini_stream_cache_keys_follow_the_core_f0_code(gslm, monkeypatch):
    # gslm-mini's segment F0 is the core's prosody_metrics.segment_f0, outside the plugin
    # folder its code identity hashes: the module's SHA-256 keys its two stream methods, and
    # only them (identity() and so the other capabilities' cache keys do not move)
    import reference_models.gslm_mini.model as gm
    from speechlm_eval.hashing import sha256_file

    want = {"core_sources_sha256": {"speechlm_eval.prosody_metrics": sha256_file(pm.__file__)}}
    assert gslm.method_identity("continue_prosody") == want
    assert gslm.method_identity("prosody_streams") == want
    for other in ("continue", "loglikelihood", "encode", "resynthesize"):
        assert gslm.method_identity(other) == {}
    blobs = BlobStore(None)
    req = _request(n=1)
    enc = EncodeRequest(audio=req.prompt, key="p")

    def keys():
        return (
            request_key(continue_prosody_capability(gslm, blobs).job(gslm, "m"), req),
            request_key(prosody_streams_capability(gslm, blobs).job(gslm, "m"), enc),
            request_key(continue_capability(gslm, blobs).job(gslm, "m"), req),
        )

    identity = json.dumps(gslm.identity(), sort_keys=True)
    before = keys()
    real = gm.sha256_file

    def edited(path):  # prosody_metrics.py edited
        return "0" * 64 if Path(path).name == "prosody_metrics.py" else real(path)

    monkeypatch.setattr(gm, "sha256_file", edited)
    after = keys()
    assert after[0] != before[0] and after[1] != before[1]
    assert after[2] == before[2]  # continue's samples stay cached
    assert json.dumps(gslm.identity(), sort_keys=True) == identity


def test_method_key_is_the_model_key_unless_the_model_says_more():
    class Plain:  # a plugin need not subclass SpeechLM
        pass

    assert method_key(Plain(), "m", "continue_prosody") == "m"
    assert method_key(StreamModel(), "m", "continue_prosody") == "m"

    class Says(StreamModel):
        def method_identity(self, method):
            return {"x": 1} if method == "prosody_streams" else {}

    assert method_key(Says(), "m", "continue") == "m"
    assert method_key(Says(), "m", "prosody_streams") not in (
        "m",
        method_key(Says(), "n", "prosody_streams"),
    )

    class Wrong(StreamModel):
        def method_identity(self, method):
            return "x"

    with pytest.raises(PluginError, match="expected a dict"):
        method_key(Wrong(), "m", "prosody_streams")


# --- end to end through the CLI ---------------------------------------------------------------

SMALL = """\
include: _stream.yaml
task: prosody_stream_small
version: 1
generation:
  num_samples: 3
"""


def test_cli_run_gslm_mini_prosody_streams_on_the_tiny_suite(tmp_path):
    pytest.importorskip("piper")
    from helpers import build_tiny

    data = tmp_path / "data"
    build_tiny(data, ["prosody"])
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    import yaml

    template = yaml.safe_load((ROOT / "tasks" / "prosody_pgslm_stream.yaml").read_text())
    del template["task"], template["version"]  # a template is never a task itself
    (tasks / "_stream.yaml").write_text(yaml.safe_dump(template))
    (tasks / "prosody_stream_small.yaml").write_text(SMALL)
    site = tmp_path / "site"  # the scorer's entry point, as pyproject.toml would register it
    dist = site / "streamscorer-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: streamscorer\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[speechlm_eval.scorers]\nprosody_streams = {SCORER}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.pop("SLM_EVAL_DATA", None)

    def run(cache, *extra):
        args = ["run", "--model", "gslm-mini", "--tasks", "prosody_stream_small"]
        args += ["--include_path", tasks, "--data_dir", data, "--limit", 2, "--seed", 0]
        args += ["--output_path", tmp_path / "out", "--use_cache", cache, *extra]
        p = subprocess.run(
            [sys.executable, "-m", "speechlm_eval.cli", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        (path,) = [
            line.split("results: ")[1] for line in p.stdout.splitlines() if "results: " in line
        ]
        return json.loads(Path(path).read_text())

    res = run(tmp_path / "c.sqlite", "--log_samples")
    r = res["results"]["prosody_stream_small"]
    for m in ("f0_min_mae", "dur_min_mae", "f0_std", "dur_std"):
        assert math.isfinite(r[f"{m}_stream,t=0.7"]), m
    for m in ("f0_std", "dur_std"):
        assert math.isfinite(r[f"{m}_stream,oracle"]), m
    sc = res["scoring"]["prosody_stream_small"]
    assert sc["primary_metric"] == "f0_min_mae_stream,t=0.7" and sc["unit"] == "segment"
    assert sc["prompts"]["prompts"] == 2 and sc["generation"]["num_samples"] == 3
    assert "with_prompt" not in sc["generation"] and sc["unit_frame_rate"] == 50.0
    assert res["runtime"]["cache"]["prosody_stream_small"]["computed"] == 4  # 2 + 2 references
    (samples,) = (tmp_path / "out" / "gslm-mini").glob("samples_prosody_stream_small_*.jsonl")
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(rows) == 6 and all(row["segments"] > 0 for row in rows)
    again = run(tmp_path / "c.sqlite")  # resumed: nothing computed again, same numbers
    assert again["results"] == res["results"]
    assert again["runtime"]["cache"]["prosody_stream_small"]["computed"] == 0
