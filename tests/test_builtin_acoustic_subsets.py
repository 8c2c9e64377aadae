"""Built-in SALMon-style and ABX subsets, checked by measuring the audio, not only the layout."""

from __future__ import annotations

import csv
from collections import defaultdict
from itertools import pairwise, product

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from speechlm_eval.builtin import build as B
from speechlm_eval.builtin.subsets.abx import ABX
from speechlm_eval.builtin.subsets.salmon import NOT_BUILT, PARTS, Salmon
from speechlm_eval.readers.pairs import read_salmon

SR = 16000
SUBSETS = {"salmon": Salmon, "abx": ABX}


def _build(out, monkeypatch):
    monkeypatch.setattr(B, "subsets", lambda: {n: c() for n, c in SUBSETS.items()})
    return B.build(out, seed=0, size="tiny", names=list(SUBSETS), progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("acoustic")
    with pytest.MonkeyPatch.context() as mp:
        _build(out, mp)
    return out


def _load(path):
    x, sr = sf.read(str(path), dtype="float64")
    assert sr == SR
    return x


def _samples(built, part):
    d = built / "salmon" / part
    with open(d / "meta.csv", newline="") as f:
        meta = {int(r["sample"]): r for r in csv.DictReader(f)}
    ds = read_salmon(d, {})
    for it in ds.items:
        pos, neg = (_load(ds.files[c]) for c in it.candidates)
        yield meta[int(it.doc_id)], pos, neg


# --------------------------------------------------------------------------- measurements


def _f0(x):
    """Median F0 (Hz) of voiced 40 ms frames: normalised autocorrelation peak in 60-400 Hz."""
    n, hop, lo, hi = 640, 160, SR // 400, SR // 60
    starts = range(0, x.size - n, hop)
    energy = np.array([np.mean(x[i : i + n] ** 2) for i in starts])
    f0 = []
    for e, i in zip(energy, starts, strict=True):
        if e < 0.1 * energy.max():
            continue
        fr = x[i : i + n] - x[i : i + n].mean()
        ac = np.correlate(fr, fr, "full")[n - 1 :] / (np.dot(fr, fr) + 1e-12)
        ac /= 1 - np.arange(n) / n  # unbiased
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5:
            f0.append(SR / lag)
    assert len(f0) >= 10
    return float(np.median(f0))


def _band_shape(x):
    """Octave-band log power (63 Hz - 8 kHz), level removed: the spectral shape of a segment."""
    f, p = signal.welch(x, SR, nperseg=512)
    edges = [63, 125, 250, 500, 1000, 2000, 4000, 8000]
    b = np.log10([p[(f >= a) & (f < c)].sum() + 1e-20 for a, c in pairwise(edges)])
    return b - b.mean()


def _decay_rate(x):
    """Fast energy decays (95th percentile of the 50 ms fall, dB/s): reverberation slows them."""
    n = int(0.01 * SR)
    e = 10 * np.log10(np.convolve(x**2, np.ones(n) / n, "same")[::80] + 1e-12)  # 5 ms hop
    fall = (e[:-10] - e[10:]) / 0.05
    return float(np.percentile(fall[e[:-10] > e.max() - 45], 95))


# --------------------------------------------------------------------------- SALMon


def test_salmon_layout_counts_and_card(built):
    e = B.read_manifest(built)["subsets"]["salmon"]
    assert e["counts"] == {"samples_per_part": 3, "parts": 5, "files": 30}
    assert e["files"] == 30 + 2 * 5  # + meta.csv and README.md per part
    assert Salmon().planned("tiny") == 30 and sorted(e["notes"]["not_built"]) == sorted(NOT_BUILT)
    for part in PARTS:
        d = built / "salmon" / part
        ds = read_salmon(d, {})  # ignores meta.csv / README.md
        assert [it.candidates for it in ds.items] == [
            (f"sample_{i}_0", f"sample_{i}_1") for i in range(3)
        ]
        card = (d / "README.md").read_text()
        assert card.startswith(f"# Built-in SALMon part {part}")
        assert all(k in card for k in NOT_BUILT)
        for row, pos, neg in _samples(built, part):
            assert pos.size == neg.size and pos.size > 2 * SR
            at = int(float(row["switch_s"]) * SR) - int(0.03 * SR)  # before the cross-fade
            # Identical up to the switch, different after. Background and room candidates are
            # each set to the common RMS, so there the shared part may differ by a small gain.
            if part in ("speaker_consistency", "gender_consistency"):
                assert np.array_equal(pos[:at], neg[:at])
            g = np.dot(pos[:at], neg[:at]) / np.dot(pos[:at], pos[:at])
            assert np.max(np.abs(neg[:at] - g * pos[:at])) < 0.002 and abs(g - 1) < 0.08
            after = at + int(0.06 * SR)
            assert np.std(neg[after:] - g * pos[after:]) > 0.1 * np.std(pos[after:])
            rms = [np.sqrt(np.mean(v**2)) for v in (pos, neg)]
            assert abs(rms[0] / rms[1] - 1) < 0.25


def test_gender_switch_changes_f0_and_positives_keep_it(built):
    for part in ("speaker_consistency", "gender_consistency"):
        pos_d, neg_d = [], []
        for row, pos, neg in _samples(built, part):
            at = int(float(row["switch_s"]) * SR)
            for x, out in ((pos, pos_d), (neg, neg_d)):
                a, b = _f0(x[:at]), _f0(x[at:])
                out.append(abs(a - b) / min(a, b))
        # Within one voice F0 drifts with intonation (up to ~30% for a few sentences at size
        # small), so the positive is bounded in bulk; every gender switch exceeds 30%.
        assert np.median(pos_d) < 0.1 and np.percentile(pos_d, 90) < 0.2, (part, pos_d)
        if part == "gender_consistency":
            assert min(neg_d) > 0.3, neg_d  # male <-> female


def test_background_switch_changes_noise_spectrum_in_negatives_only(built):
    w = int(0.3 * SR)  # noise-only lead-in / tail are 0.4 s
    for part in ("bg_domain_consistency", "bg_all_consistency"):
        dist = {0: [], 1: []}
        snr = []
        for _row, pos, neg in _samples(built, part):
            for k, x in enumerate((pos, neg)):
                dist[k].append(np.mean(np.abs(_band_shape(x[:w]) - _band_shape(x[-w:]))))
            noise = np.mean(np.r_[pos[:w], pos[-w:]] ** 2)
            snr.append(10 * np.log10(np.mean(pos[SR // 2 : -SR // 2] ** 2) / noise - 1))
        p, n = np.array(dist[0]), np.array(dist[1])
        # Music-like noises vary over time, so a positive can differ too: judge in bulk.
        assert np.mean(n > p) >= 0.66 and np.median(n) > 5 * np.median(p), (part, p, n)
        assert 8 < np.median(snr) < 17, snr  # designed: 10-15 dB


def test_room_switch_changes_decay_in_negatives_only(built):
    ratios = []
    for row, pos, neg in _samples(built, "rir_consistency"):
        at = int(float(row["switch_s"]) * SR)
        pad = int(0.025 * SR)
        # log ratio of the decay rates of the two halves, positive and negative
        r = [np.log(_decay_rate(x[: at - pad]) / _decay_rate(x[at + pad :])) for x in (pos, neg)]
        rt = [float(part.split()[0].split("=")[1][:-1]) for part in row["negative"].split("->")]
        assert max(rt) / min(rt) >= 2
        assert (r[1] > 0) == (rt[1] > rt[0]), (row, r)  # the longer RT60 decays more slowly
        ratios.append(np.abs(r))
    p, n = np.array(ratios).T
    assert np.mean(n > p) >= 0.66 and np.median(n) > 3 * np.median(p), (p, n)


# --------------------------------------------------------------------------- ABX


def _items(built):
    lines = (built / "abx" / "dev" / "dev.item").read_text().splitlines()
    assert lines[0] == "#file onset offset #phone prev-phone next-phone speaker"
    return [ln.split() for ln in lines[1:]]


def test_abx_item_file_is_consistent_with_the_audio(built):
    d = built / "abx" / "dev"
    items = _items(built)
    e = B.read_manifest(built)["subsets"]["abx"]
    n_wav = len(list(d.glob("*.wav")))
    assert len(items) == e["counts"]["files"] == ABX().planned(e["size"]) == n_wav
    assert len({it[0] for it in items}) == len(items)
    speakers, centrals, tokens = defaultdict(set), defaultdict(set), defaultdict(int)
    for f, on, off, ph, prev, nxt, spk in items:
        x = _load(d / f"{f}.wav")
        a, b = int(float(on) * SR), int(float(off) * SR)
        assert len(on.split(".")[1]) == 4 and len(off.split(".")[1]) == 4
        assert 0 < a < b <= x.size
        inside = np.mean(x[a:b] ** 2)
        assert np.mean(x[:a] ** 2) < 1e-3 * inside and np.mean(x[b:] ** 2) < 1e-3 * inside
        speakers[ph, prev, nxt].add(spk)
        centrals[prev, nxt, spk].add(ph)
        tokens[ph, prev, nxt, spk] += 1
    assert all(len(s) >= 2 for s in speakers.values())  # across-speaker ABX
    assert all(len(c) >= 2 for c in centrals.values())  # a B for every A
    assert all(n >= 2 for n in tokens.values())  # an X for every A (within speaker)
    kinds = {("V" if ph[0] in "AEIOU" else "C") for ph in (it[3] for it in items)}
    assert kinds == {"V", "C"}  # CVC (vowel central) and VCV (consonant central)


def _logspec(x):
    f, _, z = signal.stft(x, SR, nperseg=400, noverlap=240)
    edges = np.geomspace(100, 7000, 25)
    p = np.abs(z) ** 2
    return np.log(np.array([p[(f >= a) & (f < b)].sum(0) for a, b in pairwise(edges)]).T + 1e-10)


def _dtw(a, b):
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    cost = 1 - an @ bn.T
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0
    for i, j in product(range(1, len(a) + 1), range(1, len(b) + 1)):
        acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return acc[-1, -1] / (len(a) + len(b))


def test_abx_within_speaker_is_solvable_with_plain_spectra(built):
    """A crude ABX (log band spectra + DTW) on the item boundaries: labels match the audio."""
    d = built / "abx" / "dev"
    feats, groups = {}, defaultdict(list)
    for f, on, off, ph, prev, nxt, spk in _items(built):
        x = _load(d / f"{f}.wav")
        feats[f] = _logspec(x[int(float(on) * SR) : int(float(off) * SR)])
        groups[prev, nxt, spk].append((ph, f))
    errors = []
    for toks in groups.values():
        for (pa, a), (pb, b), (px, x) in product(toks, repeat=3):
            if pa == px and a != x and pb != pa:
                errors.append(_dtw(feats[a], feats[x]) >= _dtw(feats[b], feats[x]))
    assert len(errors) > 100 and np.mean(errors) < 0.1, np.mean(errors)


# --------------------------------------------------------------------------- determinism


def test_interrupted_rebuild_is_byte_identical(built, tmp_path, monkeypatch):
    """Stop both builds midway, resume them, and compare with the fixture's build."""
    real = B.BuildContext.write_wav
    calls = defaultdict(int)

    def dying(self, rel, audio):
        calls[self.subset] += 1
        if calls[self.subset] == 9:
            raise KeyboardInterrupt  # Ctrl-C mid-build: 8 files of each subset written
        return real(self, rel, audio)

    monkeypatch.setattr(B.BuildContext, "write_wav", dying)
    for name in SUBSETS:
        monkeypatch.setattr(B, "subsets", lambda n=name: {n: SUBSETS[n]()})
        with pytest.raises(KeyboardInterrupt):
            B.build(tmp_path, seed=0, size="tiny", names=[name], progress=False)
        assert not (tmp_path / SUBSETS[name]().outputs[0]).exists()
    _build(tmp_path, monkeypatch)
    a, b = B.read_manifest(built)["subsets"], B.read_manifest(tmp_path)["subsets"]
    for name in SUBSETS:
        assert calls[name] == 9 + a[name]["counts"]["files"] - 8  # finished files were reused
        assert a[name]["content_sha256"] == b[name]["content_sha256"]
        assert b[name]["files"] == a[name]["files"]
