"""pGSLM prosody metrics (speechlm_eval.prosody_metrics): hand-computed cases and independent
formulations (brute-force loops, numpy.std, scipy/numpy correlations, interp1d)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.interpolate import interp1d

from speechlm_eval.judges.pitch import F0Track
from speechlm_eval.prosody_metrics import (
    audio_duration_correlation,
    audio_duration_min_mae,
    audio_duration_pooled_std,
    audio_f0_correlation,
    audio_f0_min_mae,
    audio_f0_pooled_std,
    audio_f0_utterance_mean,
    deduplicate_units,
    dequantise_f0_bins,
    duration_correlation,
    f0_bin_edges,
    f0_correlation,
    min_mae,
    normalise_log_f0,
    pooled_std,
    prosody_correlation,
    quantise_f0,
    segment_f0,
    speaker_log_f0_stats,
    stream_mean,
    utterance_mean_duration,
)

LN2 = math.log(2.0)


# --------------------------------------------------------------------------- representation


def test_deduplicate_units():
    codes, durs = deduplicate_units([5, 5, 3, 3, 3, 5, 1])
    assert codes.tolist() == [5, 3, 5, 1]
    assert durs.tolist() == [2, 3, 1, 1]
    codes, durs = deduplicate_units([])
    assert codes.size == 0 and durs.size == 0


def test_segment_f0_hand():
    # ratio = 200 / 50 = 4 F0 frames per unit frame; durations [2, 1, 0] -> 12 frames.
    # seg0 = frames 0..7 = [100, 0, 110, 120, 0, 0, 0, 0] -> voiced mean (100+110+120)/3 = 110
    # seg1 = frames 8..11 = [130, 0, 0, 140] -> 135; seg2 (EOS, duration 0) -> 0
    f0 = [100, 0, 110, 120, 0, 0, 0, 0, 130, 0, 0, 140]
    out = segment_f0(f0, 200.0, [2, 1, 0], 50.0)
    np.testing.assert_allclose(out, [110.0, 135.0, 0.0])


def test_segment_f0_unvoiced_segment_and_f0track():
    # seg0 [100,100,0,0] -> 100; seg1 all zero -> 0; seg2 [0,200,0,0] -> 200
    track = F0Track(hz=(100, 100, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0), frame_rate=200.0)
    out = segment_f0(track.hz, track.frame_rate, np.array([1, 1, 1]), 50.0)
    np.testing.assert_allclose(out, [100.0, 0.0, 200.0])


def test_segment_f0_pads_with_last_frame_and_truncates():
    # durations [1, 2] need 12 frames; the track has 10: padded with its last value (150) twice.
    # seg1 = frames 4..11 = [0, 0, 0, 0, 90, 150, 150, 150] -> (90 + 3*150)/4 = 135
    # (zero padding would give (90 + 150)/2 = 120)
    f0 = [0, 0, 0, 0, 0, 0, 0, 0, 90, 150]
    np.testing.assert_allclose(segment_f0(f0, 200.0, [1, 2], 50.0), [0.0, 135.0])
    # one frame too many: the extra (voiced) frame is dropped, seg0 stays unvoiced
    f0 = [0, 0, 0, 0, 80, 80, 80, 80, 80]
    np.testing.assert_allclose(segment_f0(f0, 200.0, [1, 1], 50.0), [0.0, 80.0])


def test_segment_f0_tolerance():
    # tolerance 5 unit frames * ratio 4 = 20 F0 frames around 12
    segment_f0(np.full(32, 100.0), 200.0, [1, 2], 50.0)
    with pytest.raises(ValueError, match="tolerance"):
        segment_f0(np.full(33, 100.0), 200.0, [1, 2], 50.0)
    with pytest.raises(ValueError, match="tolerance"):
        segment_f0(np.full(33, 100.0), 200.0, [1, 2], 50.0, tolerance_unit_frames=5.2)
    segment_f0(np.full(33, 100.0), 200.0, [1, 2], 50.0, tolerance_unit_frames=5.25)


def test_segment_f0_none_and_fractional_ratio():
    np.testing.assert_array_equal(segment_f0(None, 200.0, [3, 0, 2], 50.0), [0.0, 0.0, 0.0])
    # ratio 100/40 = 2.5: running offsets 2.5, 5, 7.5 -> frame bounds 0, 2, 5, 7
    # seg0 = [1, 2] -> 1.5; seg1 = [3, 4, 5] -> 4; seg2 = [6, 7] -> 6.5
    out = segment_f0([1, 2, 3, 4, 5, 6, 7], 100.0, [1, 1, 1], 40.0)
    np.testing.assert_allclose(out, [1.5, 4.0, 6.5])


def _segment_f0_loop(f0, ratio, durations):
    """pGSLM's rule written as a plain loop with Python floats."""
    target = int(ratio * sum(durations))
    f0 = list(f0)[:target] + [f0[-1]] * max(0, target - len(f0))
    out, offset = [], 0.0
    for d in durations:
        seg = [v for v in f0[int(offset) : int(offset + d * ratio)] if v != 0]
        out.append(sum(seg) / len(seg) if seg else 0.0)
        offset += d * ratio
    return out


@pytest.mark.parametrize("seed", range(5))
def test_segment_f0_matches_loop(seed):
    rng = np.random.default_rng(seed)
    durs = rng.integers(0, 6, size=30).tolist()
    n = 4 * sum(durs) + int(rng.integers(-8, 9))
    f0 = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(80, 300, n))
    np.testing.assert_allclose(segment_f0(f0, 200.0, durs, 50.0), _segment_f0_loop(f0, 4, durs))


def test_speaker_log_f0_stats():
    # voiced frames 100, 200, 400: logs ln200 - ln2, ln200, ln200 + ln2
    # mean ln200, std sqrt((ln2^2 + 0 + ln2^2) / 3) = ln2 * sqrt(2/3); None skipped
    mean, std = speaker_log_f0_stats([[100, 0, 200], None, [0, 400]])
    assert mean == pytest.approx(math.log(200))
    assert std == pytest.approx(LN2 * math.sqrt(2 / 3))
    with pytest.raises(ValueError, match="no voiced"):
        speaker_log_f0_stats([[0, 0], None])


def test_normalise_log_f0_hand():
    m = 4.0
    # voiced at 1 (100 Hz) and 4 (400 Hz): linear in Hz between -> 200, 300; edges stay 0
    out = normalise_log_f0([0, 100, 0, 0, 400, 0], m)
    expected = [0, math.log(100) - m, math.log(200) - m, math.log(300) - m, math.log(400) - m, 0]
    np.testing.assert_allclose(out, expected)
    # without interpolation the gaps stay 0 (not shifted by the mean)
    out = normalise_log_f0([0, 100, 0, 0, 400, 0], m, interpolate=False)
    np.testing.assert_allclose(out, [0, math.log(100) - m, 0, 0, math.log(400) - m, 0])
    # one voiced value: nothing to interpolate
    np.testing.assert_allclose(normalise_log_f0([0, 200, 0], m), [0, math.log(200) - m, 0])
    # std normalisation after the mean
    out = normalise_log_f0([100, 400], m, speaker_std=0.5)
    np.testing.assert_allclose(out, [(math.log(100) - m) / 0.5, (math.log(400) - m) / 0.5])
    np.testing.assert_array_equal(normalise_log_f0([0, 0, 0], m), [0, 0, 0])


@pytest.mark.parametrize("seed", range(3))
def test_normalise_log_f0_matches_interp1d(seed):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(40) < 0.5, 0.0, rng.uniform(80, 300, 40))
    t = np.arange(x.size)
    v = x != 0
    filled = interp1d(t[v], x[v], bounds_error=False, kind="linear", fill_value=0)(t)
    expected = np.where(filled != 0, np.log(np.where(filled != 0, filled, 1)) - 5.0, 0.0)
    np.testing.assert_allclose(normalise_log_f0(x, 5.0), expected)


def test_quantise_and_dequantise():
    edges = [-0.2, 0.0, 0.3]
    x = [-0.5, -0.2, -0.1, 0.0, 0.1, 0.3, 0.4]
    # bin = number of edges strictly below: -0.2 is not > -0.2, 0.0 not > 0.0, 0.3 not > 0.3
    assert quantise_f0(x, edges).tolist() == [0, 0, 1, 1, 2, 2, 3]
    # bin 0 -> -0.2, bin 1 -> (-0.2 + 0)/2, bin 2 -> (0 + 0.3)/2, bin 3 -> 0.3
    np.testing.assert_allclose(dequantise_f0_bins([0, 1, 2, 3], edges), [-0.2, -0.1, 0.15, 0.3])
    with pytest.raises(ValueError):
        dequantise_f0_bins([4], edges)
    with pytest.raises(ValueError):
        dequantise_f0_bins([-1], edges)


def test_quantise_matches_loop():
    rng = np.random.default_rng(0)
    edges = np.sort(rng.normal(size=31))
    x = np.concatenate([rng.normal(size=200), edges])  # edges themselves included
    loop = [sum(int(v > e) for e in edges) for v in x]
    assert quantise_f0(x, edges).tolist() == loop


def test_f0_bin_edges_hand():
    # values 0..99, 100 histogram bins of width 0.99: one value per bin, cumulative 1..100 %.
    # thresholds 25, 50, 75 % -> histogram bins 24, 49, 74 -> left edges 24*0.99, 49*0.99, 74*0.99
    edges = f0_bin_edges(np.arange(100.0), n_bins=4, hist_bins=100)
    np.testing.assert_allclose(edges, [23.76, 48.51, 73.26])


# --------------------------------------------------------------------------- stream space


def test_min_mae_hand():
    # prompt0 target [1,2,3]: sample errors |[1,2,5]-t| = 0+0+2 = 2, |[1,1,3]-t| = 0+1+0 = 1 -> 1
    # prompt1 target [0,0]: sample errors 1+1 = 2, 3+1 = 4 -> 2
    # (1 + 2) / (3 + 2 positions) = 0.6
    # (a mean of per-prompt min MAE would give (1/3 + 1)/2 = 0.667; a per-position oracle 0.4)
    samples = [np.array([[1, 2, 5], [1, 1, 3]]), np.array([[1, 1], [3, -1]])]
    target = [np.array([1, 2, 3]), np.array([0, 0])]
    assert min_mae(samples, target) == pytest.approx(0.6)
    # masking the third position of prompt0: errors 0 and 1 -> 0; total (0 + 2) / (2 + 2) = 0.5
    mask = [np.array([True, True, False]), np.array([True, True])]
    assert min_mae(samples, target, mask) == pytest.approx(0.5)


def _min_mae_loop(samples, target):
    total = count = 0
    for s, t in zip(samples, target, strict=True):
        best = None
        for row in s:
            e = sum(abs(a - b) for a, b in zip(row, t, strict=True))
            best = e if best is None else min(best, e)
        total += best
        count += len(t)
    return total / count


def test_min_mae_matches_loop_array_and_ragged():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(4, 20, 7))
    target = rng.normal(size=(4, 7))
    assert min_mae(samples, target) == pytest.approx(_min_mae_loop(samples, target))
    ragged = [rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 9)))) for _ in range(5)]
    tr = [rng.normal(size=b.shape[1]) for b in ragged]
    assert min_mae(ragged, tr) == pytest.approx(_min_mae_loop(ragged, tr))


def test_min_mae_one_sample_is_plain_mae():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(3, 1, 5)), rng.normal(size=(3, 5))
    assert min_mae(s, t) == pytest.approx(np.abs(s[:, 0] - t).mean())


def test_min_mae_rejects():
    with pytest.raises(ValueError, match="no continuation"):
        min_mae([np.zeros((2, 2))], [np.zeros(2)], [np.array([False, False])])
    with pytest.raises(ValueError, match="NaN"):
        min_mae([np.array([[np.nan, 1.0]])], [np.zeros(2)])
    with pytest.raises(ValueError):
        min_mae([np.zeros((2, 3))], [np.zeros(2)])


def test_pooled_std_equal_samples_is_numpy_std():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 20, 9))
    assert pooled_std(v) == pytest.approx(np.std(v, ddof=0))
    # constant values: 0 up to rounding, never NaN (sqrt of a rounding-negative E[x²]-E[x]²)
    const = pooled_std(np.full((2, 3, 4), 0.7))
    assert not math.isnan(const) and const == pytest.approx(0.0, abs=1e-12)


def test_pooled_std_ragged_hand():
    # prompt0: 2 samples x 1 position [[0],[2]]; prompt1: 1 sample x 2 positions [[4, 6]].
    # pGSLM sums per prompt / samples: E[x] = (2/2 + 10/1) / 3 = 11/3,
    # E[x^2] = ((0+4)/2 + (16+36)/1) / 3 = 18; var = 18 - 121/9 = 41/9 -> sqrt(41)/3
    # (a plain std of [0, 2, 4, 6] would be sqrt(5))
    assert pooled_std([[[0.0], [2.0]], [[4.0, 6.0]]]) == pytest.approx(math.sqrt(41) / 3)


def test_pooled_std_matches_pgslm_sums_and_mask():
    rng = np.random.default_rng(4)
    blocks = [rng.normal(size=(int(rng.integers(1, 5)), int(rng.integers(2, 8)))) for _ in range(6)]
    masks = [rng.random(b.shape[1]) < 0.7 for b in blocks]
    masks[0][:] = True
    n = sum(m.sum() for m in masks)
    s1 = sum((b * m).sum() / b.shape[0] for b, m in zip(blocks, masks, strict=True)) / n
    s2 = sum(((b * m) ** 2).sum() / b.shape[0] for b, m in zip(blocks, masks, strict=True)) / n
    assert pooled_std(blocks, masks) == pytest.approx(math.sqrt(s2 - s1**2))


def test_stream_mean():
    assert stream_mean([0.0, 0.2, 0.4], exclude_zeros=True) == pytest.approx(0.3)
    assert stream_mean([0.0, 0.2, 0.4]) == pytest.approx(0.2)
    assert stream_mean([0.0, 0.0], exclude_zeros=True) is None
    assert stream_mean([]) is None


def test_prosody_correlation_hand():
    # pairs (1,1) (1,2) (2,2) (2,3) (3,5); the None sample is dropped.
    # means x 1.8, y 2.6; Sxy = 4.6, Sxx = 2.8, Syy = 9.2 -> r = 4.6 / sqrt(25.76) = 0.90634
    r, n = prosody_correlation([1, 2, 3], [[1, 2], [2, 3], [5, None]])
    assert n == 5
    assert r == pytest.approx(4.6 / math.sqrt(25.76))
    assert r == pytest.approx(np.corrcoef([1, 1, 2, 2, 3], [1, 2, 2, 3, 5])[0, 1])
    # not the correlation of per-prompt averages (1.5, 2.5, 5 vs 1, 2, 3)
    assert abs(r - np.corrcoef([1, 2, 3], [1.5, 2.5, 5])[0, 1]) > 0.01


def test_prosody_correlation_repeated_pairs_pearsonr():
    rng = np.random.default_rng(5)
    p = rng.normal(size=8)
    c = rng.normal(size=(8, 20)) + p[:, None]
    r, n = prosody_correlation(p.tolist(), c.tolist())
    assert n == 160
    assert r == pytest.approx(stats.pearsonr(np.repeat(p, 20), c.ravel())[0])


def test_prosody_correlation_exclusions_and_degenerate():
    r, n = prosody_correlation([None, 1.0, 2.0, float("nan")], [[9, 9], [1], [3], [7]])
    assert n == 2 and r == pytest.approx(1.0)
    with pytest.raises(ValueError, match="1 pair"):
        prosody_correlation([1.0, None], [[2.0], [3.0]])
    r, n = prosody_correlation([1.0, 1.0], [[2.0], [3.0]])
    assert math.isnan(r) and n == 2


def test_f0_correlation_excludes_zeros():
    prompts = [[0.0, 0.2, 0.4], [0.1, 0.0, 0.1], [0.0, 0.0], [-0.1, -0.3]]
    conts = [
        [[0.5, 0.0], [0.1, 0.3]],  # means 0.5, 0.2
        [[0.0, 0.0], [0.2, 0.0]],  # first has no non-zero value: excluded; 0.2
        [[0.3], [0.4]],  # prompt has no non-zero value: prompt excluded
        [[-0.4, 0.0], [-0.2, -0.2]],  # -0.4, -0.2
    ]
    out = f0_correlation(prompts, conts)
    # prompt means with zeros excluded: 0.3, 0.1, -, -0.2
    x = [0.3, 0.3, 0.1, -0.2, -0.2]
    y = [0.5, 0.2, 0.2, -0.4, -0.2]
    assert out["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert out["n_pairs"] == 5
    assert out["n_prompts"] == 3
    assert out["excluded_prompts"] == 1
    assert out["excluded_samples"] == 1


def test_duration_correlation_keeps_zeros():
    # prompt means 2 (zeros count), 1, 4; continuation means 1, 3 | 0.5 | 4, 5
    out = duration_correlation([[0, 2, 4], [1, 1], [4]], [[[1, 1], [3]], [[0, 1]], [[4], [5, 5]]])
    x, y = [2, 2, 1, 4, 4], [1, 3, 0.5, 4, 5]
    assert out["r"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert out["n_pairs"] == 5 and out["excluded_prompts"] == 0


# --------------------------------------------------------------------------- audio space


def test_audio_f0_utterance_mean():
    # speaker mean ln100: voiced 100 -> 0, 400 -> ln4 = 2 ln2; mean ln2
    assert audio_f0_utterance_mean([0, 100, 0, 400], math.log(100)) == pytest.approx(LN2)
    assert audio_f0_utterance_mean([0, 0], 4.0) is None
    assert audio_f0_utterance_mean([], 4.0) is None
    with pytest.raises(ValueError):
        audio_f0_utterance_mean([-1.0, 100], 4.0)


def test_audio_f0_min_mae_hand():
    gen = [[0.1, 0.5, None], [None, None], [0.2], [-0.3, 0.9]]
    truth = [0.4, 0.0, None, 0.0]
    # prompt0 min(|0.1-0.4|, |0.5-0.4|) = 0.1; prompt1 no sample; prompt2 no truth;
    # prompt3 min(0.3, 0.9) = 0.3; mean (0.1 + 0.3) / 2 = 0.2
    out = audio_f0_min_mae(gen, truth)
    assert out["min_mae"] == pytest.approx(0.2)
    assert out["n_prompts"] == 2
    assert out["excluded_prompts"] == 2
    assert out["excluded_samples"] == 3
    assert audio_f0_min_mae([[None]], [0.1])["min_mae"] is None


def test_audio_f0_min_mae_matches_loop():
    rng = np.random.default_rng(6)
    gen, truth = rng.normal(size=(10, 5)), rng.normal(size=10)
    loop = sum(min(abs(g - t) for g in row) for row, t in zip(gen, truth, strict=True)) / 10
    assert audio_f0_min_mae(gen.tolist(), truth.tolist())["min_mae"] == pytest.approx(loop)
    # one sample per prompt: a plain mean absolute error
    one = audio_f0_min_mae(gen[:, :1].tolist(), truth.tolist())["min_mae"]
    assert one == pytest.approx(np.abs(gen[:, 0] - truth).mean())


def test_audio_f0_correlation():
    prompt = [0.1, None, -0.2, 0.3]
    gen = [[0.0, 0.2], [0.5, 0.5], [None, -0.1], [0.4, float("nan")]]
    out = audio_f0_correlation(prompt, gen)
    # pairs (0.1,0.0) (0.1,0.2) (-0.2,-0.1) (0.3,0.4)
    assert out["r"] == pytest.approx(np.corrcoef([0.1, 0.1, -0.2, 0.3], [0, 0.2, -0.1, 0.4])[0, 1])
    assert out["n_pairs"] == 4 and out["n_prompts"] == 3
    assert out["excluded_prompts"] == 1 and out["excluded_samples"] == 2
    assert audio_f0_correlation([0.1], [[0.2]])["r"] is None


def test_audio_f0_pooled_std():
    # speaker mean ln100: frames 0, ln2, ln4 -> ln2 * std([0,1,2]) = ln2 * sqrt(2/3)
    tracks = [[100, 0, 200], [0, 0], [400]]
    out = audio_f0_pooled_std(tracks, math.log(100))
    assert out["std"] == pytest.approx(LN2 * math.sqrt(2 / 3))
    assert (out["n_frames"], out["n_utterances"], out["excluded_utterances"]) == (3, 2, 1)
    # per-track means: third frame becomes ln400 - ln200 = ln2 -> ln2 * std([0,1,1])
    out = audio_f0_pooled_std(tracks, [math.log(100), 0.0, math.log(200)])
    assert out["std"] == pytest.approx(LN2 * np.std([0, 1, 1]))
    assert audio_f0_pooled_std([[0, 0]], 1.0)["std"] is None


def test_audio_f0_pooled_std_is_numpy_std():
    rng = np.random.default_rng(7)
    tracks = [np.where(rng.random(50) < 0.3, 0, rng.uniform(80, 300, 50)) for _ in range(4)]
    frames = np.concatenate([np.log(t[t != 0]) - 5.0 for t in tracks])
    assert audio_f0_pooled_std(tracks, 5.0)["std"] == pytest.approx(np.std(frames, ddof=0))


def test_audio_duration_family():
    assert utterance_mean_duration([5, 5, 3, 3, 3, 5, 1]) == pytest.approx(7 / 4)
    assert utterance_mean_duration([]) is None
    # runs [2, 1] and [1]: std of [2, 1, 1] = sqrt(2/9); the empty sequence is excluded
    out = audio_duration_pooled_std([[1, 1, 2], [], [3]])
    assert out["std"] == pytest.approx(math.sqrt(2 / 9))
    assert (out["n_segments"], out["n_utterances"], out["excluded_utterances"]) == (3, 2, 1)
    # |1.5 - 2| = 0.5 vs |3 - 2| = 1 -> 0.5
    assert audio_duration_min_mae([[1.5, 3.0]], [2.0])["min_mae"] == pytest.approx(0.5)
    out = audio_duration_correlation([1.0, 2.0], [[1.0, 2.0], [3.0]])
    assert out["r"] == pytest.approx(np.corrcoef([1, 1, 2], [1, 2, 3])[0, 1])
