"""ABX: item files, frame selection, DTW, cells, exact vs fast path, reader, scorer, errors.

The cross-check against the reference implementation is in ``test_abx_reference.py``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm_eval.abx import exact, fast
from speechlm_eval.abx.cells import group_order, iter_cells
from speechlm_eval.abx.distances import dtw_batch, dtw_exact, frame_distances
from speechlm_eval.abx.features import (
    find_feature_files,
    frame_span,
    load_feature_file,
    normalize_with_singularity,
    prepare_features,
)
from speechlm_eval.abx.items import HEADER, ABXDataset, read_item_file
from speechlm_eval.abx.score import ABXOptions, score_features, score_items
from speechlm_eval.abx.synthetic import make_synthetic
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.readers.abx import read_abx_item
from speechlm_eval.scorers.abx import ABXScorer

torch.set_num_threads(1)


def write_items(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


# --- hand-computed ABX -----------------------------------------------------------------------

# One context, two speakers, phones a and b, one frame per item, 1-D features, euclidean
# distance without normalisation: d(u, v) = |u - v| exactly, and DTW of a 1x1 matrix is d.
#   speaker s1: a = {0, 30}, b = {60, 100};   speaker s2: a = {10, 80}, b = {50, 120}
# Within speaker, cell (s, A, B): X and A both from A's group (x != a), b from B's group.
#   s1, a vs b: x=0:  d(x,30)=30 < d(x,60)=60, < d(x,100)=100        -> 2 wins
#               x=30: d(x,0)=30 = d(x,60)=30 (tie, 1/2), < d(x,100)=70 -> 1.5
#               3.5 / 4 -> error 0.125
#   s1, b vs a: x=60: d(x,100)=40 < d(x,0)=60, > d(x,30)=30           -> 1
#               x=100: d(x,60)=40 < d(x,0)=100, < d(x,30)=70          -> 2      error 0.25
#   s2, a vs b: x=10: d(x,80)=70 > d(x,50)=40, < d(x,120)=110         -> 1
#               x=80: d(x,10)=70 > d(x,50)=30, > d(x,120)=40          -> 0      error 0.75
#   s2, b vs a: x=50: d(x,120)=70 > 40, > 30 -> 0; x=120: 70 < 110, > 40 -> 1  error 0.75
#   per phone pair (mean over speakers): (a,b) = (0.125+0.75)/2 = 0.4375, (b,a) = 0.5
#   within-speaker ABX error = (0.4375 + 0.5) / 2 = 0.46875
# Across speaker, cell (sA, A, B, sX): A, B from sA; X from sX with A's phone; 2*2*2 triples.
#   s1, a vs b, X = s2's a {10, 80}: x=10: d to a {10, 20} < d to b {50, 90}: 4 wins;
#                                    x=80: d to a {80, 50} > d to b {20, 20}: 0 -> error 0.5
#   s1, b vs a, X = s2's b {50, 120}: x=50: a {10, 50} vs b {50, 20}: 1 + 1 + 0.5 + 0 = 2.5
#                                     x=120: a {60, 20} vs b {120, 90}: 4   -> 6.5/8, error 0.1875
#   s2, a vs b, X = s1's a {0, 30}: x=0: a {10, 80} vs b {50, 120}: 1 + 1 + 0 + 1 = 3
#                                   x=30: a {20, 50} vs b {20, 90}: 0.5 + 1 + 0 + 1 = 2.5
#                                   -> 5.5/8, error 0.3125
#   s2, b vs a, X = s1's b {60, 100}: x=60: a {10, 60} vs b {50, 20}: 1 + 1 + 0 + 0 = 2
#                                     x=100: a {50, 20} vs b {90, 20}: 1 + 0 + 1 + 0.5 = 2.5
#                                     -> 4.5/8, error 0.4375
#   per phone pair: (a,b) = (0.5+0.3125)/2 = 0.40625, (b,a) = (0.1875+0.4375)/2 = 0.3125
#   across-speaker ABX error = (0.40625 + 0.3125) / 2 = 0.359375
HAND_VALUES = {"s1": [0.0, 30.0, 60.0, 100.0], "s2": [10.0, 80.0, 50.0, 120.0]}
HAND_PHONES = ["a", "a", "b", "b"]


def hand_case(tmp_path: Path):
    rows = []
    for spk in HAND_VALUES:
        for k, ph in enumerate(HAND_PHONES):
            # frame k of a 100 frames/s file:
            # [ceil(100 * on - 0.5), floor(100 * off - 0.5)) = [k, k + 1)
            rows.append(f"{spk} {0.0025 + 0.01 * k:.4f} {0.0175 + 0.01 * k:.4f} {ph} x y {spk}")
    items = read_item_file(write_items(tmp_path / "hand.item", rows))
    feats = {s: (np.array(v, dtype=np.float32)[:, None], 100.0) for s, v in HAND_VALUES.items()}
    return items, feats


@pytest.mark.parametrize("implementation", ["exact", "fast"])
def test_hand_computed_abx(tmp_path, implementation):
    items, feats = hand_case(tmp_path)
    prepared = prepare_features(items, feats, normalize=False)
    assert prepared.lengths.tolist() == [1] * 8
    base = {"distance": "euclidean", "normalize": False, "implementation": implementation}
    within = score_items(prepared, {**base, "speaker_mode": "within"})
    across = score_items(prepared, {**base, "speaker_mode": "across"})
    assert within.metrics["abx_within"].value == 0.46875
    assert across.metrics["abx_across"].value == 0.359375
    # One context: within context and any context coincide.
    assert within.metrics["abx_within_any_context"].value == 0.46875
    assert across.metrics["abx_across_any_context"].value == 0.359375
    assert within.metrics["abx_within"].higher_is_better is False
    pairs = {
        (r["phone_a"], r["phone_b"]): r["error"]
        for r in within.per_item
        if r["context_mode"] == "within"
    }
    assert pairs == {("a", "b"): 0.4375, ("b", "a"): 0.5}
    # stderr over the two phone pairs: sample std / sqrt(2)
    assert within.metrics["abx_within"].stderr == pytest.approx(
        np.std([0.4375, 0.5], ddof=1) / 2**0.5
    )
    assert within.metrics["abx_within"].n == 2


def test_dtw_by_hand():
    # cost = [[1, 6], [3, 2], [6, 6]]; trace-back from (2, 1): up (cost 2) beats diagonal (3)
    # and left (6); then the diagonal to (0, 0): 3 cells, 6 / 3 = 2.
    d = np.array([[1, 5], [2, 1], [3, 4]], dtype=np.float32)
    assert dtw_exact(d) == np.float32(2.0)
    # cost = [[1, 3, 6], [5, 2, 3]]; from (1, 2): left (2) beats diagonal (3) and up (6),
    # then the diagonal: 3 cells, 3 / 3 = 1.
    assert dtw_exact(np.array([[1, 2, 3], [4, 1, 1]], dtype=np.float32)) == np.float32(1.0)
    # Ties prefer the diagonal: [[1, 1], [1, 1]] -> cost 2 over 2 cells (a path through
    # (0, 1) or (1, 0) would have 3 cells and give 2 / 3).
    assert dtw_exact(np.ones((2, 2), dtype=np.float32)) == np.float32(1.0)
    assert dtw_exact(np.array([[1, 1, 1, 4]], dtype=np.float32)) == np.float32(7 / 4)
    assert dtw_exact(np.array([[2.0]], dtype=np.float32)) == np.float32(2.0)


def test_dtw_batch_equals_loops_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    for kind in ("real", "ties"):
        d = torch.rand(80, 7, 9, generator=gen)
        if kind == "ties":  # small integers: many equal costs, the trace-back tie rules matter
            d = torch.randint(0, 3, (80, 7, 9), generator=gen).float()
        n = torch.randint(1, 8, (80,), generator=gen)
        m = torch.randint(1, 10, (80,), generator=gen)
        got = dtw_batch(d, n, m)
        for b in range(80):
            assert float(got[b]) == float(dtw_exact(d[b, : n[b], : m[b]].numpy()))


def test_frame_distances_definitions():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    cos = frame_distances(x, y, "cosine")  # raw vectors: arccos of the raw inner product / pi
    assert cos[0, 0] == pytest.approx(0.5)  # orthogonal
    assert frame_distances(x[:1], x[:1], "angular")[0, 0] == 0.0  # identical: exactly 0
    eu = frame_distances(x, y, "euclidean")
    assert eu[1, 1] == pytest.approx(math.sqrt(2)) and eu[0, 0] == pytest.approx(math.sqrt(2))
    p = torch.tensor([[0.5, 0.5]])
    q = torch.tensor([[0.9, 0.1]])
    want = 0.5 * math.log(0.5000010 / 0.9000010) + 0.5 * math.log(0.5000010 / 0.1000010)
    assert float(frame_distances(p, q, "kl")[0, 0]) == pytest.approx(want, rel=1e-6)
    sym = float(frame_distances(p, q, "kl_symmetric")[0, 0])
    assert sym == pytest.approx(
        0.5 * (float(frame_distances(p, q, "kl")[0, 0]) + float(frame_distances(q, p, "kl")[0, 0])),
        rel=1e-6,
    )
    with pytest.raises(ValueError, match="unknown distance"):
        frame_distances(p, q, "manhattan")


def test_normalisation_puts_zero_frames_at_maximal_distance():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [-3.0, -4.0]])
    n = normalize_with_singularity(x)
    assert n.shape == (4, 3)
    assert n[0, :2].tolist() == pytest.approx([0.6, 0.8])
    d = frame_distances(n, n, "cosine")
    assert d[0, 1] == 1.0 and d[1, 2] == 0.0 and d[0, 3] == 1.0 and d[0, 0] == 0.0


def test_frame_span_rule():
    # [ceil(r * onset - 0.5), floor(r * offset - 0.5)), clipped to the file
    assert frame_span(0.0, 0.1, 50, 100) == (0, 4)  # ceil(-0.5) = 0, floor(5 - 0.5) = 4
    assert frame_span(0.12, 0.3, 50, 100) == (6, 14)  # ceil(5.5) = 6, floor(14.5) = 14
    assert frame_span(0.111, 0.3, 50, 100) == (6, 14)  # ceil(5.05) = 6
    # Same float arithmetic as the reference: 50 * 0.29 = 14.499999999999998, so 13.
    assert frame_span(0.11, 0.29, 50, 100) == (5, 13)
    assert frame_span(1.9, 2.5, 50, 100) == (95, 100)  # clipped at the last frame
    assert frame_span(0.12, 0.3, 50, 100, feature_offset=0.02) == (5, 13)


# --- cells: grouping and seeded sub-sampling ---------------------------------------------------


def test_cells_groups_and_caps():
    # 2 contexts x 2 speakers x 2 phones, 4 items per group.
    ctx, spk, ph = np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")
    ctx, spk, ph = (np.repeat(a.ravel(), 4) for a in (ctx, spk, ph))
    kw = {"max_size_group": None, "max_x_across": None, "seed": 1}
    within = list(iter_cells(ctx, ph, spk, speaker_mode="within", context_mode="within", **kw))
    assert len(within) == 2 * 2 * 2  # (context, speaker, ordered phone pair)
    for c in within:
        assert c.x == c.a and c.symmetric and len(c.a) == len(c.b) == 4
        assert set(spk[list(c.a + c.b)]) == {c.speaker} and set(ctx[list(c.a + c.b)]) == {c.context}
        assert set(ph[list(c.a)]) == {c.phone_a} and set(ph[list(c.b)]) == {c.phone_b}
    across = list(iter_cells(ctx, ph, spk, speaker_mode="across", context_mode="any", **kw))
    assert len(across) == 2 * 2 * 1  # (speaker, ordered phone pair, other speaker)
    for c in across:
        assert set(spk[list(c.x)]) == {c.speaker_x} != {c.speaker}
        assert set(ph[list(c.x)]) == {c.phone_a} and len(c.a) == 8  # contexts pooled

    def capped_cells(seed: int) -> list:
        return list(
            iter_cells(
                ctx,
                ph,
                spk,
                speaker_mode="across",
                context_mode="any",
                max_size_group=3,
                max_x_across=1,
                seed=seed,
            )
        )

    capped, again, other = capped_cells(1), capped_cells(1), capped_cells(2)
    assert all(len(c.a) == len(c.b) == len(c.x) == 3 for c in capped)
    assert capped == again and capped != other
    order = group_order(ctx, ph, spk, "any")
    assert (np.diff(spk[order] * 2 + ph[order]) >= 0).all()


# --- exact vs fast -----------------------------------------------------------------------------


def _synthetic(tmp_path: Path, **kw):
    syn = make_synthetic(
        tmp_path,
        n_files=16,
        items_per_file=5,
        n_speakers=3,
        n_phones=4,
        n_contexts=2,
        dim=6,
        frames_per_item=(1, 4),
        seed=3,
        **kw,
    )
    return syn, read_item_file(syn.item_path)


def _all_cells(prepared, opts: ABXOptions, impl: str, **fast_kw):
    out = []
    for s in ("within", "across"):
        for c in ("within", "any"):
            cells = iter_cells(
                prepared.context_id,
                prepared.phone_id,
                prepared.speaker_id,
                speaker_mode=s,
                context_mode=c,
                max_size_group=opts.max_size_group,
                max_x_across=opts.max_x_across,
                seed=opts.seed,
            )
            if impl == "exact":
                out.extend(exact.cell_errors(prepared, cells, opts.distance))
            else:
                order = group_order(prepared.context_id, prepared.phone_id, prepared.speaker_id, c)
                out.extend(fast.cell_errors(prepared, cells, opts.distance, order=order, **fast_kw))
    return out


@pytest.mark.parametrize(
    ("distance", "normalize", "units"),
    [
        ("cosine", True, False),
        ("euclidean", True, False),
        ("kl_symmetric", False, False),
        ("cosine", True, True),
    ],
)
def test_exact_and_fast_identical(tmp_path, distance, normalize, units):
    syn, items = _synthetic(tmp_path)
    feats = syn.features
    if distance == "kl_symmetric":  # posteriorgram-like: softmax over dims
        feats = {k: (np.exp(a) / np.exp(a).sum(1, keepdims=True), r) for k, (a, r) in feats.items()}
    if units:  # discrete units: one-hot rows, many identical frames, many exact ties
        feats = {k: ((a[:, :3] > 0) @ np.array([1, 2, 4]), r) for k, (a, r) in feats.items()}
    prepared = prepare_features(
        items, feats, normalize=normalize, nonnegative=distance.startswith("kl")
    )
    opts = ABXOptions(distance=distance, normalize=normalize, max_size_group=3, max_x_across=1)
    ex = _all_cells(prepared, opts, "exact")
    # Tiny budgets: many chunks, many DTW batches, product blocks split by the budget.
    fa = _all_cells(prepared, opts, "fast", max_pairs=40, max_batch_bytes=6000)
    fa_big = _all_cells(prepared, opts, "fast")
    assert [c for c, _ in ex] == [c for c, _ in fa] == [c for c, _ in fa_big]
    assert [e for _, e in ex] == [e for _, e in fa] == [e for _, e in fa_big]
    errors = np.array([e for _, e in ex])
    assert 0 < errors.mean() < 0.5 and len(set(errors.tolist())) > 5  # a non-trivial case
    if distance == "cosine" and not units:  # the option that selects the implementation
        for s in ("within", "across"):
            a = score_items(
                prepared, {**opts.__dict__, "speaker_mode": s, "implementation": "exact"}
            )
            b = score_items(prepared, {**opts.__dict__, "speaker_mode": s})
            assert a.metrics == b.metrics and a.per_item == b.per_item


def test_deterministic_and_seed_matters(tmp_path):
    syn, items = _synthetic(tmp_path)
    prepared = prepare_features(items, syn.features)
    opts = {"speaker_mode": "across", "max_size_group": 2, "max_x_across": 1}
    a = score_items(prepared, opts)
    b = score_items(prepared, opts)
    c = score_items(prepared, {**opts, "seed": 7})
    assert a.metrics == b.metrics
    assert a.metrics["abx_across"].value != c.metrics["abx_across"].value


# --- reader, scorer, submissions ---------------------------------------------------------------


def _wav(path: Path, seconds: float, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(seconds * 16000), dtype=np.float32), 16000, format=fmt)


def _layout(tmp_path: Path, syn, nested: bool) -> Path:
    """Audio files matching the synthetic features' durations (16 kHz)."""
    root = tmp_path / "ABX_data"
    root.mkdir(parents=True)
    (root / "dev-clean.item").write_text(syn.item_path.read_text())
    for i, (stem, dur) in enumerate(sorted(syn.durations.items())):
        if nested:  # LibriSpeech style: dev-clean/<speaker>/<chapter>/<stem>.flac
            _wav(root / "dev-clean" / f"{i % 3}" / "1" / f"{stem}.flac", dur, "FLAC")
        else:
            _wav(root / f"{stem}.wav", dur)
    return root


def test_reader_layouts_and_scorer(tmp_path):
    syn, _ = _synthetic(tmp_path / "syn")
    root = _layout(tmp_path, syn, nested=True)
    (root / "dev-other.item").write_text(HEADER + "\n")
    ds = read_abx_item(root, {"item": ["dev-clean.item", "dev.item"]})
    assert isinstance(ds, ABXDataset)
    assert set(ds.files) == set(syn.features) and ds.files[next(iter(ds.files))].suffix == ".flac"
    assert ds.identity["reader"] == "abx_item" and ds.identity["manifest"] == "dev-clean.item"
    assert ds.identity["n_items"] == syn.n_items and len(ds.identity["manifest_sha256"]) == 64
    assert ds.identity["audio_dir"] == "dev-clean"
    assert ds.durations[next(iter(syn.durations))] == pytest.approx(
        syn.durations[next(iter(syn.durations))], abs=1e-4
    )
    with pytest.raises(DataError, match="several item files"):
        read_abx_item(root, {})

    scorer = ABXScorer({"speaker_mode": "within", "max_size_group": 3})
    rep = scorer.score(ds, syn.features)
    assert list(rep.metrics) == [
        "abx_within",
        "abx_within_within_context",
        "abx_within_any_context",
    ]
    assert rep.metrics["abx_within"] is rep.metrics["abx_within_within_context"]
    assert all(not m.higher_is_better for m in rep.metrics.values())
    assert rep.info["n_items"] == syn.n_items and rep.info["n_items_skipped"] == 0
    # Same numbers from a ZeroSpeech-style submission folder, in each accepted format.
    sub = tmp_path / "submission" / "phonetic" / "dev-clean"
    sub.mkdir(parents=True)
    for i, (stem, (arr, _)) in enumerate(syn.features.items()):
        if i % 3 == 0:
            np.save(sub / f"{stem}.npy", arr)
        elif i % 3 == 1:
            torch.save(torch.from_numpy(arr), sub / f"{stem}.pt")
        else:
            np.savetxt(sub / f"{stem}.txt", arr, fmt="%.9g")
    rep2 = scorer.score_feature_dir(ds, tmp_path / "submission", 50.0)
    assert rep2.metrics == rep.metrics

    # --limit: the first files in item-file order, all their items.
    lim = ds.limited(5)
    assert lim.doc_ids() == ds.doc_ids()[:5] and set(lim.files) == set(lim.doc_ids())
    assert {it.file for it in lim.items} == set(lim.doc_ids())

    # Built-in layout: dev.item beside the wavs.
    flat = _layout(tmp_path / "b", syn, nested=False)
    (flat / "dev-clean.item").rename(flat / "dev.item")
    ds2 = read_abx_item(flat, {})
    assert ds2.identity["audio_dir"] == "." and set(ds2.files) == set(ds.files)
    assert ABXScorer({"max_size_group": 3}).score(ds2, syn.features).metrics == rep.metrics


def test_task_yaml_and_options():
    from speechlm_eval.tasks import load_index

    idx = load_index()
    assert idx.expand("abx") == ["abx_within", "abx_across"]
    for name, mode in (("abx_within", "within"), ("abx_across", "across")):
        cfg = idx.tasks[name]
        assert cfg.capability == "encode" and cfg.dataset.reader == "abx_item"
        assert cfg.scoring.scorer == "abx" and cfg.dataset.builtin == "abx"
        assert ABXScorer(cfg.scoring.options).options.speaker_mode == mode
    for bad, msg in (
        ({"distanse": "cosine"}, "unknown option"),
        ({"distance": "manhattan"}, "unknown distance"),
        ({"max_size_group": 1}, "max_size_group must be an integer >= 2"),
        ({"context_mode": "both"}, "context_mode must be one of"),
        ({"normalize": "yes"}, "normalize must be true or false"),
    ):
        with pytest.raises(ConfigError, match=msg):
            ABXOptions.parse(bad)
    assert ABXOptions.parse({"distance": "angular", "max_x_across": None}).distance == "cosine"


# --- bad inputs: one clear error each --------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "msg"),
    [
        (["f1 0.1 0.2 a x y s1", "f1 0.1 0.2 a x y"], r"line 3: expected 7 columns"),
        (["f1 0.1 abc a x y s1"], r"line 2: onset and offset must be numbers"),
        (["f1 0.3 0.2 a x y s1"], r"line 2: onset 0.3 must be before offset 0.2"),
        (["f1 0.2 0.2 a x y s1"], r"line 2: onset 0.2 must be before offset"),
        (["f1 -0.1 0.2 a x y s1"], r"line 2: onset -0.1 is negative"),
        (["f1 nan 0.2 a x y s1"], r"line 2: onset/offset must be finite"),
        ([], "no items after the header"),
    ],
)
def test_item_file_errors(tmp_path, rows, msg):
    p = write_items(tmp_path / "x.item", rows)
    with pytest.raises(DataError, match=msg) as e:
        read_item_file(p)
    assert str(p) in str(e.value)


def test_item_file_needs_header(tmp_path):
    p = tmp_path / "x.item"
    p.write_text("f1 0.1 0.2 a x y s1\n")
    with pytest.raises(DataError, match="line 1: expected the header line"):
        read_item_file(p)
    with pytest.raises(DataError, match="item file not found"):
        read_item_file(tmp_path / "missing.item")


def test_reader_errors(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    with pytest.raises(DataError, match=r"no \.item file"):
        read_abx_item(root, {})
    write_items(root / "dev.item", ["f1 0.1 0.2 a x y s1", "f2 0.1 0.2 a x y s1"])
    _wav(root / "f1.wav", 0.5)
    with pytest.raises(DataError, match=r"dev.item: line 3: file 'f2' not found under"):
        read_abx_item(root, {})
    _wav(root / "f2.wav", 0.05)  # 50 ms: the item starting at 0.1 s is past its end
    with pytest.raises(DataError, match=r"line 3: onset 0.1 s is beyond the end of file 'f2'"):
        read_abx_item(root, {})
    _wav(root / "f2.wav", 0.15)  # offset 0.2 s > 0.15 + 0.025 s
    with pytest.raises(DataError, match=r"line 3: offset 0.2 s is beyond the end of file 'f2'"):
        read_abx_item(root, {})
    _wav(root / "f2.wav", 0.18)  # within the 25 ms slack
    read_abx_item(root, {})
    _wav(root / "sub" / "f2.wav", 0.5)
    with pytest.raises(DataError, match="two audio files for 'f2'"):
        read_abx_item(root, {})
    with pytest.raises(DataError, match="unknown option"):
        read_abx_item(root, {"items": "dev.item"})


def test_feature_errors(tmp_path):
    items, feats = hand_case(tmp_path)
    good = dict(feats)

    def err(features, msg, **kw):
        with pytest.raises(DataError, match=msg):
            prepare_features(items, features, **kw)

    err({"s1": good["s1"]}, "no features for 1 file")
    nan = good["s1"][0].copy()
    nan[2, 0] = np.nan
    err(
        {**good, "s1": (nan, 100.0)},
        r"features of 's1': features contain NaN or inf \(first at frame 2",
    )
    inf = good["s2"][0].copy()
    inf[0, 0] = np.inf
    err({**good, "s2": (inf, 100.0)}, "NaN or inf")
    err({**good, "s1": (good["s1"][0], 0.0)}, "frame rate must be positive")
    err(
        {**good, "s2": (np.zeros((4, 2), np.float32), 100.0)},
        "2 feature dimensions, other files have 1",
    )
    err({**good, "s1": (np.zeros((2, 2, 2)), 100.0)}, "expected a 2-D array")
    # 4 frames at 100 frames/s are 0.04 s; audio of 0.5 s means about 50 frames: wrong rate.
    err(
        good,
        r"'s1'.*4 frames, but the audio lasts 0.500 s, i.e. about 50.0 frames",
        durations={"s1": 0.5, "s2": 0.04},
    )
    # Within the tolerance (default 3 frames): 0.069 s -> 6.9 frames expected, 4 found.
    prepare_features(items, good, durations={"s1": 0.069, "s2": 0.04})
    err(good, "tolerance", durations={"s1": 0.075, "s2": 0.04})
    # A 1-frame file: the items at frames 1-3 select nothing.
    short = {**good, "s1": (good["s1"][0][:1], 100.0)}
    err(short, r"item file line 3: .* selects no frame", empty_items="error")
    with pytest.warns(UserWarning, match="3 of 8 item"):
        p = prepare_features(items, short)
    assert len(p.items) == 5 and [it.line for it in p.skipped] == [3, 4, 5]
    rep = score_items(p, {"speaker_mode": "across"})
    assert rep.info["n_items_skipped"] == 3 and rep.info["skipped_lines"] == [3, 4, 5]


def test_kl_needs_probabilities(tmp_path):
    items, feats = hand_case(tmp_path)
    neg = {k: (a - 50.0, r) for k, (a, r) in feats.items()}
    with pytest.raises(DataError, match="non-negative features"):
        prepare_features(items, neg, normalize=False, nonnegative=True)


def test_feature_files(tmp_path):
    d = tmp_path / "feats"
    d.mkdir()
    np.save(d / "a.npy", np.ones((3, 2), np.float32))
    torch.save(torch.ones(3, 2), d / "b.pt")
    np.savetxt(d / "c.txt", np.ones((3, 1)))
    (d / "bad.npy").write_text("not numpy")
    torch.save({"x": torch.ones(2)}, d / "dict.pt")
    assert load_feature_file(d / "c.txt").shape == (3, 1)  # one column stays 2-D
    assert load_feature_file(d / "b.pt").shape == (3, 2)
    with pytest.raises(DataError, match="cannot read features"):
        load_feature_file(d / "bad.npy")
    with pytest.raises(DataError, match="expected a tensor"):
        load_feature_file(d / "dict.pt")
    assert set(find_feature_files(d, ["a", "b", "c"])) == {"a", "b", "c"}
    with pytest.raises(DataError, match=r"no features for 1 of 2 file\(s\).*'zz'"):
        find_feature_files(d, ["a", "zz"])
    (d / "sub").mkdir()
    np.save(d / "sub" / "a.npy", np.ones((3, 2)))
    with pytest.raises(DataError, match="two feature files for 'a'"):
        find_feature_files(d, ["a"])


def test_score_features_uses_durations(tmp_path):
    items, feats = hand_case(tmp_path)
    ds = ABXDataset(
        tmp_path,
        {"s1": tmp_path / "s1.wav", "s2": tmp_path / "s2.wav"},
        items,
        {"reader": "test"},
        tmp_path / "hand.item",
        {"s1": 0.04, "s2": 0.04},
    )
    opts = {"distance": "euclidean", "normalize": False}
    assert score_features(ds, feats, opts).metrics["abx_within"].value == 0.46875
    with pytest.raises(DataError, match="is the frame rate right"):
        score_features(ds, {k: (a, 200.0) for k, (a, _) in feats.items()}, opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_features(ds, feats, opts)  # no warning when nothing is skipped
