"""Tests of gslm-mini's unit vocoder module on tiny random networks (no shipped weights).

Frame bookkeeping, WORLD analysis/synthesis, log-F0 interpolation, run lengths and the
duration table are checked against hand-computed cases and an independent formulation;
training is checked for determinism and for learning on a few seconds of synthetic data.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from reference_models.gslm_mini import vocoder as V
from speechlm_eval.errors import ConfigError

SR = 16000


def _tone(f0: float, seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone (10 harmonics, 1/k amplitudes) plus a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 11))
    rng = np.random.default_rng(seed)
    return (0.1 * x + 1e-3 * rng.standard_normal(t.size)).astype(np.float64)


def _tiny(n_units: int = 7, seed: int = 0) -> V.UnitVocoder:
    torch.manual_seed(seed)
    cfg = V.VocoderConfig(n_units=n_units, n_sp=12, channels=16, dilations=(1, 2))
    net = V.UnitToWorld(cfg)
    with torch.no_grad():  # a speech-like operating point: F0 around 120 Hz
        net.mean[cfg.n_sp + cfg.n_bap] = math.log(120.0)
        net.std[cfg.n_sp + cfg.n_bap] = 0.1
    return V.UnitVocoder(net, V.DurationTable(np.linspace(1.0, 3.0, n_units)))


# --- WORLD analysis / synthesis ----------------------------------------------------------------


def test_world_analysis_frame_count_and_f0() -> None:
    x = _tone(150.0, 1.0)
    n_units = x.size // V.UNIT_HOP  # 50
    p = V.world_analysis(x, n_sp=24)
    assert p.coded_sp.shape == (4 * n_units, 24)
    assert p.bap.shape == (4 * n_units, 1)
    assert p.f0.shape == (4 * n_units,)
    mid = p.f0[40:-40]  # away from the edges
    assert np.all(mid > 0)
    assert np.median(mid) == pytest.approx(150.0, rel=0.02)


def test_world_synthesis_length_and_pitch() -> None:
    p = V.world_analysis(_tone(200.0, 0.64), n_sp=24)
    y = V.world_synthesis(p)
    assert y.dtype == np.float32
    assert y.size == len(p.f0) * V.WORLD_HOP == 32 * V.UNIT_HOP
    # Independent pitch check on the output: the autocorrelation peak between 2.5 and 10 ms.
    seg = y[2000:8000].astype(np.float64)
    ac = np.correlate(seg, seg, "full")[seg.size - 1 :]
    lo, hi = SR // 400, SR // 100
    lag = lo + int(np.argmax(ac[lo:hi]))
    assert SR / lag == pytest.approx(200.0, rel=0.03)


def test_continuous_log_f0_hand_case() -> None:
    f0 = np.array([0.0, 100.0, 0.0, 0.0, 400.0, 0.0])
    lf0, vuv = V.continuous_log_f0(f0)
    a, b = math.log(100.0), math.log(400.0)
    expected = [a, a, a + (b - a) / 3, a + 2 * (b - a) / 3, b, b]
    np.testing.assert_allclose(lf0, expected, rtol=1e-12)
    np.testing.assert_array_equal(vuv, [0, 1, 0, 0, 1, 0])
    lf0, vuv = V.continuous_log_f0(np.zeros(4))
    np.testing.assert_allclose(lf0, math.log(100.0))
    assert not vuv.any()


# --- run lengths and durations -----------------------------------------------------------------


def test_run_lengths_against_groupby() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        u = rng.integers(0, 4, size=int(rng.integers(1, 40)))
        values, lengths = V.run_lengths(u)
        groups = [(k, len(list(g))) for k, g in itertools.groupby(u.tolist())]
        assert values.tolist() == [k for k, _ in groups]
        assert lengths.tolist() == [n for _, n in groups]
    v, n = V.run_lengths(np.array([5, 5, 1, 5]))
    assert v.tolist() == [5, 1, 5] and n.tolist() == [2, 1, 1]


def test_duration_table_fit_hand_case() -> None:
    # unit 0: runs of 2 and 4 -> 3.0; unit 1: runs of 1 and 2 -> 1.5; unit 2 unseen -> overall.
    seqs = [np.array([0, 0, 1, 0, 0, 0, 0]), np.array([1, 1])]
    table, info = V.DurationTable.fit(seqs, n_units=3)
    overall = (2 + 1 + 4 + 2) / 4
    np.testing.assert_allclose(table.mean_frames, [3.0, 1.5, overall])
    assert info == {"runs": 4, "mean_run_frames": overall, "units_unseen": 1}


def test_duration_rounding_hand_case() -> None:
    table = V.DurationTable(np.array([1.5, 2.5, 1.0, 1.2]))
    # cumulative means 1.5, 4.0, 5.0, 6.5 -> rounded half up 2, 4, 5, 7 -> counts 2, 2, 1, 2
    assert table.frames(np.array([0, 1, 2, 0])).tolist() == [2, 2, 1, 2]
    # cumulative 1.2, 2.2 -> rounded 1, 2 -> one frame each
    assert table.expand(np.array([3, 2])).tolist() == [3, 2]


def test_duration_rounding_matches_cumulative_rounding() -> None:
    """Error diffusion == rounding the cumulative sum of means (the closed form for means >= 1)."""
    rng = np.random.default_rng(0)
    table = V.DurationTable(rng.uniform(1.0, 6.0, size=50))
    for _ in range(20):
        units = rng.integers(0, 50, size=int(rng.integers(1, 200)))
        cum = np.floor(np.cumsum(table.mean_frames[units]) + 0.5)
        expected = np.diff(np.r_[0.0, cum]).astype(int)
        got = table.frames(units)
        np.testing.assert_array_equal(got, expected)
        assert got.min() >= 1
        assert abs(got.sum() - table.mean_frames[units].sum()) <= 0.5
        # step() is what the sampler's budget uses: the same counts one at a time
        carry, counts = 0.0, []
        for u in units:
            n, carry = table.step(int(u), carry)
            counts.append(n)
        assert counts == got.tolist()


def test_duration_table_rejects_bad_values() -> None:
    for bad in (np.array([0.5, 2.0]), np.array([np.nan]), np.zeros((2, 2)), np.array([])):
        with pytest.raises(ValueError):
            V.DurationTable(bad)


# --- the network and the vocoder ---------------------------------------------------------------


def test_network_shapes_and_receptive_field() -> None:
    voc = _tiny()
    net = voc.net
    units = torch.randint(0, 7, (3, 20))
    out = net(units)
    assert out.shape == (3, 80, net.cfg.n_out)
    # Non-causal with a finite receptive field: changing unit 10 changes outputs around
    # frame 10 (on both sides) and nothing far away. Receptive field: 2 * (1 + 2) frames
    # each side at the unit rate, plus the +-2 WORLD-frame smoothing.
    u2 = units.clone()
    u2[:, 10] = (u2[:, 10] + 1) % 7
    diff = (net(u2) - out).abs().amax(dim=(0, 2))
    changed = torch.nonzero(diff > 0).flatten()
    assert changed.min() < 40 and changed.max() >= 44
    assert changed.min() >= 4 * (10 - 6) - 2 and changed.max() <= 4 * (10 + 6) + 3 + 2


def test_vocoder_output_length_and_determinism() -> None:
    voc = _tiny()
    u = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 6, 6])
    y = voc(u)
    assert y.dtype == np.float32 and y.size == u.size * V.UNIT_HOP
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(voc(u), y)
    # One utterance never depends on another: a second call with other units in between
    voc(np.array([6, 5, 4]))
    np.testing.assert_array_equal(voc(u), y)


def test_vocoder_rejects_bad_units() -> None:
    voc = _tiny()
    for bad in (np.array([], dtype=np.int64), np.array([0, 7]), np.array([-1]), np.zeros((2, 2))):
        with pytest.raises(ValueError):
            voc(bad)


def test_save_load_round_trip(tmp_path) -> None:
    voc = _tiny()
    voc.save(tmp_path / "v", extra={"voice": "test"})
    again = V.UnitVocoder.load(tmp_path / "v")
    u = np.array([1, 2, 2, 3, 0])
    np.testing.assert_array_equal(again(u), voc(u))
    np.testing.assert_array_equal(again.durations.mean_frames, voc.durations.mean_frames)
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    assert cfg["format"] == V.FORMAT and cfg["voice"] == "test" and cfg["n_units"] == 7


def test_load_errors_name_the_problem(tmp_path) -> None:
    _tiny().save(tmp_path / "v")
    (tmp_path / "v" / "durations.json").unlink()
    with pytest.raises(ConfigError, match="durations.json is missing"):
        V.UnitVocoder.load(tmp_path / "v")
    _tiny().save(tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    cfg["format"] = "something/9"
    (tmp_path / "w" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="something/9"):
        V.UnitVocoder.load(tmp_path / "w")
    _tiny(n_units=5).save(tmp_path / "x")
    (tmp_path / "x" / "durations.json").write_text(json.dumps({"mean_frames": [1.0] * 7}))
    with pytest.raises(ConfigError, match="duration table has 7 units"):
        V.UnitVocoder.load(tmp_path / "x")


# --- training ----------------------------------------------------------------------------------


def _synthetic_pairs(
    n: int, cfg: V.VocoderConfig, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Units whose targets are a fixed function of the unit (learnable), random lengths."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(cfg.n_units, cfg.n_out)).astype(np.float32)
    table[:, -1] = rng.integers(0, 2, size=cfg.n_units)  # voicing is a 0/1 target
    pairs = []
    for _ in range(n):
        u = rng.integers(0, cfg.n_units, size=int(rng.integers(20, 60)))
        pairs.append((u, np.repeat(table[u], V.UPSAMPLE, axis=0)))
    return pairs


def test_fit_learns_and_is_deterministic() -> None:
    cfg = V.VocoderConfig(n_units=6, n_sp=4, channels=16, dilations=(1, 2), dropout=0.0)
    pairs = _synthetic_pairs(12, cfg, seed=0)
    tc = V.TrainConfig(steps=60, batch=4, segment=20, lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is several times faster on a busy CPU
    try:
        _fit_checks(pairs, cfg, tc)
    finally:
        torch.set_num_threads(threads)


def _fit_checks(pairs: list, cfg: V.VocoderConfig, tc: V.TrainConfig) -> None:
    with torch.random.fork_rng():
        net_a, info_a = V.fit(pairs, cfg, tc, seed=1, heldout=pairs[:2], log_every=0)
        net_b, _ = V.fit(pairs, cfg, tc, seed=1, log_every=0)
        untrained = V.UnitToWorld(cfg)
    for (k, a), (_, b) in zip(net_a.state_dict().items(), net_b.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    untrained.mean.copy_(net_a.mean)
    untrained.std.copy_(net_a.std)
    u, y = pairs[0]
    mask = np.ones((1, 4 * len(u)), dtype=np.float32)
    args = (torch.from_numpy(u[None]), torch.from_numpy(y[None]), mask)
    with torch.no_grad():
        before, _ = V._masked_loss(untrained.eval(), *args)
        after, _ = V._masked_loss(net_a.eval(), *args)
    assert float(after) < 0.5 * float(before)
    assert info_a["train_utterances"] == 12 and info_a["heldout"]["utterances"] == 2


def test_fit_rejects_mismatched_targets() -> None:
    cfg = V.VocoderConfig(n_units=6, n_sp=4, channels=16, dilations=(1,))
    u = np.zeros(10, dtype=np.int64)
    with pytest.raises(ValueError, match="do not match"):
        V.fit([(u, np.zeros((39, cfg.n_out), np.float32))], cfg, V.TrainConfig(steps=1), 0)
