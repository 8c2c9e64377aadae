"""MOS judges that load user-supplied weights: ``nisqa`` (NISQA checkpoints; torchmetrics' port or
the official NISQA code) and ``utmos22`` (UTMOS22 strong learner via utmos-pytorch).

No real weights can be fetched here: each test builds a tiny randomly initialised network of the
real architecture with the library itself, saves it in the real checkpoint format, loads it
through the judge, and compares the judge's scores with the library's own prediction path called
directly (torchmetrics' public NISQA function, the official NISQA dataset + ``predict_dim`` /
``predict_mos``, utmos-pytorch's ``UTMOSScoreTorch``). Packages that are not installed skip
their tests with the reason.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import pytest

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.execute import ExecStats

SR = 16000
pytestmark = [
    # utmos-pytorch builds wav2vec 2.0's positional convolution with the old weight_norm.
    pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Empty filters detected in mel frequency basis"),
    # the too-short clip below: librosa warns before NISQA finds no whole segment in it
    pytest.mark.filterwarnings("ignore:n_fft=.*is too large for input signal"),
]


def _clip(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A voiced-like signal (harmonics with a slow vibrato) plus a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140.0 + 20.0 * np.sin(2 * np.pi * 1.5 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(0.2 / k * np.sin(k * phase) for k in range(1, 6))
    x = x + np.random.default_rng(seed).normal(0.0, 0.02, t.size)
    return x.astype(np.float32)


def _close(a: float, b: float, rel: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel * 1e-2)


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


# --- NISQA --------------------------------------------------------------------------------------


def nisqa_args(**over):
    """A complete NISQA args dict (the official mel front end; a tiny network)."""
    args = {
        "model": "NISQA_DIM",
        "ms_sr": None,
        "ms_fmax": 20000,
        "ms_n_fft": 4096,
        "ms_hop_length": 0.01,
        "ms_win_length": 0.02,
        "ms_n_mels": 48,
        "ms_seg_length": 15,
        "ms_seg_hop_length": 4,
        "ms_max_segments": 1300,
        "ms_channel": None,
        "cnn_model": "adapt",
        "cnn_c_out_1": 4,
        "cnn_c_out_2": 4,
        "cnn_c_out_3": 6,
        "cnn_kernel_size": (3, 3),
        "cnn_dropout": 0.2,
        "cnn_fc_out_h": None,
        "cnn_pool_1": [24, 7],
        "cnn_pool_2": [12, 5],
        "cnn_pool_3": [6, 3],
        "td": "self_att",
        "td_sa_d_model": 8,
        "td_sa_nhead": 2,
        "td_sa_pos_enc": False,
        "td_sa_num_layers": 2,
        "td_sa_h": 16,
        "td_sa_dropout": 0.1,
        "td_lstm_h": None,
        "td_lstm_num_layers": None,
        "td_lstm_dropout": None,
        "td_lstm_bidirectional": None,
        "td_2": "skip",
        "td_2_sa_d_model": None,
        "td_2_sa_nhead": None,
        "td_2_sa_pos_enc": None,
        "td_2_sa_num_layers": None,
        "td_2_sa_h": None,
        "td_2_sa_dropout": None,
        "td_2_lstm_h": None,
        "td_2_lstm_num_layers": None,
        "td_2_lstm_dropout": None,
        "td_2_lstm_bidirectional": None,
        "pool": "att",
        "pool_att_h": 8,
        "pool_att_dropout": 0.1,
    }
    args.update(over)
    return args


def _randomise(net, seed: int) -> None:
    """Every parameter nudged at random (the five output heads of NISQA_DIM start as copies of
    one module: without this they would agree, and a swapped output order would go unseen) and
    random BatchNorm statistics (so that eval-mode normalisation is not the identity)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def save_nisqa(path, net, args):
    """The official checkpoint layout (NISQA_model._saveResults), without optimizer state."""
    import torch

    torch.save(
        {
            "runname": "tiny",
            "epoch": 1,
            "args": args,
            "model_state_dict": net.state_dict(),
            "model_name": args["model"],
        },
        path,
    )
    return path


@pytest.fixture
def tm_nisqa():
    """torchmetrics' NISQA module (with librosa and requests, which it needs)."""
    tm = pytest.importorskip("torchmetrics.functional.audio.nisqa")
    if tm.librosa is None:
        pytest.skip("torchmetrics' NISQA needs librosa and requests")
    return tm


@pytest.fixture
def nisqa_dim(tm_nisqa, tmp_path):
    """A tiny random NISQA_DIM network (torchmetrics' class), saved as nisqa.tar."""
    import torch

    args = nisqa_args()
    torch.manual_seed(0)
    net = tm_nisqa._NISQADIM(args)
    _randomise(net, 1)
    return save_nisqa(tmp_path / "nisqa.tar", net, args)


def _nisqa(**options):
    from speechlm_eval.judges.mos_nisqa import NISQAJudge

    return NISQAJudge(**options)


def test_nisqa_dim_equals_torchmetrics_public_function(nisqa_dim, tm_nisqa, monkeypatch, tmp_path):
    import torch

    clips = [_clip(1.3, 0), _clip(2.1, 1)]
    judge = _nisqa(model=str(nisqa_dim))
    cache, stats = ResultCache(tmp_path / "n.sqlite"), ExecStats()
    got = judge.predict([Audio(c, SR) for c in clips], stats, cache)
    # torchmetrics' public function reads ~/.torchmetrics/NISQA/nisqa.tar: point it at ours
    monkeypatch.setattr(tm_nisqa, "NISQA_DIR", str(nisqa_dim.parent))
    tm_nisqa._load_nisqa_model.cache_clear()
    try:
        for c, scores in zip(clips, got, strict=True):
            assert list(scores) == ["nisqa", "nisqa_noi", "nisqa_dis", "nisqa_col", "nisqa_loud"]
            ref = tm_nisqa.non_intrusive_speech_quality_assessment(torch.from_numpy(c), SR)
            for k, v in zip(scores, ref.tolist(), strict=True):
                assert _close(scores[k], v), (k, scores[k], v)
    finally:
        tm_nisqa._load_nisqa_model.cache_clear()
    assert got[0] != got[1]
    assert (stats.computed, stats.cache_hits) == (2, 0)
    stats = ExecStats()  # a second run over the same cache computes nothing
    again = judge.predict([Audio(clips[1], SR)], stats, ResultCache(tmp_path / "n.sqlite"))
    assert again == [got[1]] and (stats.computed, stats.cache_hits) == (0, 1)


def test_nisqa_batches_equal_one_by_one_and_are_deterministic(nisqa_dim):
    judge = _nisqa(model=str(nisqa_dim), batch_size=4)
    clips = [(_clip(s, i), SR) for i, s in enumerate((0.6, 3.2, 1.1, 2.0))]
    together = judge.score_batch(clips)
    for clip, scores in zip(clips, together, strict=True):
        (alone,) = judge.score_batch([clip])
        assert all(_close(scores[k], alone[k]) for k in scores), (scores, alone)
    assert judge.score_batch(clips) == together  # deterministic
    # a larger padding length (max_segments) never changes a score
    wide = _nisqa(model=str(nisqa_dim), max_segments=5000).score_batch(clips)
    assert all(_close(a[k], b[k]) for a, b in zip(wide, together, strict=True) for k in a)


def test_nisqa_short_long_and_native_rates(nisqa_dim):
    judge = _nisqa(model=str(nisqa_dim))
    assert judge.sample_rate is None  # official checkpoints: each clip at its own rate
    tiny, ok = _clip(0.1, 0), _clip(1.0, 1)
    short, fine = judge.predict([Audio(tiny, SR), Audio(ok, SR)])
    assert all(math.isnan(v) for v in short.values())
    assert not any(math.isnan(v) for v in fine.values())
    # other rates are analysed as they are (no resampling), unless sample_rate is given
    stats = ExecStats()
    judge.predict([Audio(_clip(1.0, 1, 24000), 24000)], stats)
    assert stats.resampled == {}
    stats = ExecStats()
    at48 = _nisqa(model=str(nisqa_dim), sample_rate=48000)
    at48.predict([Audio(ok, SR)], stats)
    assert stats.resampled == {"16000->48000": 1}
    # longer than max_segments: refused (as the official code does), with the way out
    with pytest.raises(DataError, match="max_segments=") as e:
        _nisqa(model=str(nisqa_dim), max_segments=20).predict([Audio(ok, SR)])
    _one_line(e)


def test_nisqa_identity(nisqa_dim):
    judge = _nisqa(model=str(nisqa_dim))
    ident = judge.identity()
    assert ident["kind"] == "mos" and ident["package"] == "torchmetrics"
    assert ident["model"]["sha256"] == hashlib.sha256(nisqa_dim.read_bytes()).hexdigest()
    assert ident["model"]["architecture"] == "NISQA_DIM"
    assert ident["model"]["outputs"] == [
        "nisqa",
        "nisqa_noi",
        "nisqa_dis",
        "nisqa_col",
        "nisqa_loud",
    ]
    assert "CC BY-NC-SA 4.0" in ident["license"]["weights"]
    assert ident["features"]["ms_n_mels"] == 48 and ident["features"]["ms_sr"] is None
    assert ident["input"]["sample_rate"] == "each audio's own (not resampled)"
    # device, batch size and the padding limit never change a score
    same = _nisqa(model=str(nisqa_dim), batch_size=1, max_segments=2000, device="cpu")
    assert same.identity() == ident
    assert _nisqa(model=str(nisqa_dim), sample_rate=48000).identity() != ident


def test_nisqa_checkpoint_rate_wins_and_conflicts_are_errors(tm_nisqa, tmp_path):
    import torch

    args = nisqa_args(ms_sr=48000)
    torch.manual_seed(0)
    path = save_nisqa(tmp_path / "sr.tar", tm_nisqa._NISQADIM(args), args)
    assert _nisqa(model=str(path)).sample_rate == 48000
    with pytest.raises(ConfigError, match="ms_sr=48000") as e:
        _nisqa(model=str(path), sample_rate=16000)
    _one_line(e)


def test_nisqa_wrong_files_are_one_line_errors(tm_nisqa, tmp_path):
    import torch

    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a torch file at all\n" * 10)
    with pytest.raises(ConfigError, match=f"{junk} is not a NISQA checkpoint") as e:
        _nisqa(model=str(junk))
    _one_line(e)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match=f"{other} is not a NISQA checkpoint") as e:
        _nisqa(model=str(other))
    _one_line(e)
    # args that do not match the weights
    args = nisqa_args()
    wrong = tmp_path / "wrong.tar"
    torch.manual_seed(0)
    state = tm_nisqa._NISQADIM(args).state_dict()
    torch.save({"args": nisqa_args(td_sa_d_model=16), "model_state_dict": state}, wrong)
    with pytest.raises(ConfigError, match=f"weights in {wrong} do not fit") as e:
        _nisqa(model=str(wrong))
    _one_line(e)
    with pytest.raises(ConfigError, match="option 'backend'"):
        _nisqa(model=str(wrong), backend="onnx")
    with pytest.raises(ConfigError, match="device=cpu only") as e:
        _nisqa(model=str(wrong), device="cuda")
    _one_line(e)


def test_nisqa_torchmetrics_refuses_architectures_it_lacks(tm_nisqa, tmp_path):
    import torch

    path = tmp_path / "lstm.tar"
    torch.save({"args": nisqa_args(model="NISQA", td="lstm"), "model_state_dict": {}}, path)
    with pytest.raises(ConfigError, match="use backend=nisqa") as e:
        _nisqa(model=str(path))
    assert "'td': 'lstm'" in _one_line(e)


# The official code (PyPI nisqa, installed with --no-deps): its own dataset and predict functions
# are the reference, on wav files written here.


@pytest.fixture
def nisqa_lib(tm_nisqa):
    return pytest.importorskip("nisqa.NISQA_lib", reason="nisqa (pip install --no-deps nisqa)")


def _official_net(nl, args, seed):
    import inspect

    import torch

    torch.manual_seed(seed)
    cls = getattr(nl, args["model"])
    params = inspect.signature(cls).parameters
    net = cls(**{k: v for k, v in args.items() if k in params})
    _randomise(net, seed + 1)
    return net


def _official_predict(nl, net, args, clips, tmp_path):
    """NISQA_model.predict's path: SpeechQualityDataset on wav files, then predict_dim/_mos."""
    import pandas as pd
    import soundfile as sf

    names = []
    for i, (x, rate) in enumerate(clips):
        names.append(f"c{i}.wav")
        sf.write(tmp_path / names[-1], x, rate, subtype="FLOAT")  # read back bit-exact
    dim = args["model"] == "NISQA_DIM"
    ds = nl.SpeechQualityDataset(
        pd.DataFrame({"deg": names}),
        data_dir=str(tmp_path),
        filename_column="deg",
        mos_column="predict_only",
        seg_length=args["ms_seg_length"],
        max_length=args["ms_max_segments"],
        seg_hop_length=args["ms_seg_hop_length"],
        ms_n_fft=args["ms_n_fft"],
        ms_hop_length=args["ms_hop_length"],
        ms_win_length=args["ms_win_length"],
        ms_n_mels=args["ms_n_mels"],
        ms_sr=args["ms_sr"],
        ms_fmax=args["ms_fmax"],
        dim=dim,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predict = nl.predict_dim if dim else nl.predict_mos
        y_hat, _ = predict(net, ds, 2, "cpu")
    return np.asarray(y_hat)


BACKENDS = ("nisqa", "torchmetrics")
OFFICIAL = {
    "dim": nisqa_args(),
    # NISQA-TTS-like: one output, LSTM time dependency, attention pooling
    "tts-lstm": nisqa_args(
        model="NISQA",
        td="lstm",
        td_lstm_h=6,
        td_lstm_num_layers=1,
        td_lstm_dropout=0.0,
        td_lstm_bidirectional=True,
    ),
    # one output, the v2.0 network (nisqa_mos_only.tar's kind)
    "mos-only": nisqa_args(model="NISQA"),
}


# torchmetrics' port has no LSTM (its refusal: test_nisqa_torchmetrics_refuses_...)
@pytest.mark.parametrize(
    ("kind", "backend"),
    [(k, b) for k in sorted(OFFICIAL) for b in BACKENDS if b == "nisqa" or k != "tts-lstm"],
)
def test_nisqa_equals_the_official_code(nisqa_lib, kind, backend, tmp_path):
    args = OFFICIAL[kind]
    net = _official_net(nisqa_lib, args, 3)
    path = save_nisqa(tmp_path / f"{kind}.tar", net, args)
    clips = [(_clip(1.7, 5), SR), (_clip(0.9, 6, 24000), 24000)]
    ref = _official_predict(nisqa_lib, net, args, clips, tmp_path)
    judge = _nisqa(model=str(path), backend=backend)
    got = judge.predict([Audio(x, r) for x, r in clips])
    keys = (
        ["nisqa", "nisqa_noi", "nisqa_dis", "nisqa_col", "nisqa_loud"]
        if kind == "dim"
        else ["nisqa"]
    )
    for scores, row in zip(got, ref, strict=True):
        assert list(scores) == keys
        assert all(_close(scores[k], float(v)) for k, v in zip(keys, row, strict=True)), (
            scores,
            row,
        )
    assert judge.identity()["package"] == ("nisqa" if backend == "nisqa" else "torchmetrics")
    # padded batches (packed LSTM / masked attention and pooling) equal one clip at a time
    alone = [judge.score_batch([c])[0] for c in clips]
    assert all(_close(a[k], b[k]) for a, b in zip(alone, got, strict=True) for k in a)


# --- UTMOS22 ------------------------------------------------------------------------------------


@pytest.fixture
def tiny_utmos(monkeypatch):
    """utmos-pytorch with a tiny wav2vec 2.0 (1 layer, 16 conv channels; the 768-d output the
    rest of UTMOSModel is built for), for the judge and the reference alike."""
    utmos_torch = pytest.importorskip("utmos_pytorch.utmos_torch")
    full = utmos_torch.Wav2Vec2Config

    def tiny():
        return full(
            conv_feature_layers="[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2",
            encoder_layers=1,
            encoder_ffn_embed_dim=32,
            encoder_attention_heads=2,
            conv_pos=16,
            conv_pos_groups=16,
        )

    monkeypatch.setattr(utmos_torch, "Wav2Vec2Config", tiny)
    return utmos_torch


@pytest.fixture
def utmos_file(tiny_utmos, tmp_path):
    """utmos_state_dict.pt of a random tiny network, plus the pre-training remnant ``mask_emb``
    that the original Lightning state_dict carries."""
    import torch

    torch.manual_seed(0)
    sd = tiny_utmos.UTMOSModel().state_dict()
    sd["feature_extractors.0.ssl_model.mask_emb"] = torch.rand(768)
    path = tmp_path / "utmos_state_dict.pt"
    torch.save(sd, path)
    return path


def _utmos(**options):
    from speechlm_eval.judges.mos_utmos import UTMOS22Judge

    return UTMOS22Judge(**options)


def test_utmos22_equals_utmos_pytorch(tiny_utmos, utmos_file, tmp_path):
    import torch

    clips = [_clip(1.0, 0), _clip(1.6, 1)]
    judge = _utmos(model=str(utmos_file))
    cache, stats = ResultCache(tmp_path / "u.sqlite"), ExecStats()
    got = judge.predict([Audio(c, SR) for c in clips], stats, cache)
    ref = tiny_utmos.UTMOSScoreTorch(ckpt_path=str(utmos_file), device="cpu")
    for c, scores in zip(clips, got, strict=True):
        assert list(scores) == ["utmos22"]
        assert _close(scores["utmos22"], float(ref.score(torch.from_numpy(c))[0]))
    assert got[0] != got[1]
    assert (stats.computed, stats.cache_hits) == (2, 0)
    stats = ExecStats()
    again = judge.predict([Audio(clips[0], SR)], stats, ResultCache(tmp_path / "u.sqlite"))
    assert again == [got[0]] and (stats.computed, stats.cache_hits) == (0, 1)
    # a Lightning-style file (the same weights under "state_dict") scores the same
    wrapped = tmp_path / "epoch=3-step=7459.ckpt"
    torch.save({"state_dict": torch.load(utmos_file, weights_only=True), "epoch": 3}, wrapped)
    assert _utmos(model=str(wrapped)).predict([Audio(clips[0], SR)]) == [got[0]]


def test_utmos22_batch_independent_deterministic_and_short(tiny_utmos, utmos_file):
    judge = _utmos(model=str(utmos_file), batch_size=3)
    audios = [Audio(_clip(s, i), SR) for i, s in enumerate((0.5, 1.4, 0.9))]
    together = judge.predict(audios)
    assert [judge.predict([a])[0] for a in audios] == together
    assert judge.predict(audios) == together
    (short,) = judge.predict([Audio(np.full(399, 0.1, np.float32), SR)])
    assert math.isnan(short["utmos22"]) and judge.min_samples == 400
    stats = ExecStats()
    judge.predict([Audio(_clip(1.0, 0, 24000), 24000)], stats)
    assert stats.resampled == {"24000->16000": 1}


def test_utmos22_identity(tiny_utmos, utmos_file):
    judge = _utmos(model=str(utmos_file))
    ident = judge.identity()
    assert ident["kind"] == "mos" and ident["package"] == "utmos-pytorch"
    assert ident["model"]["sha256"] == hashlib.sha256(utmos_file.read_bytes()).hexdigest()
    assert ident["model"]["ignored_keys"] == ["feature_extractors.0.ssl_model.mask_emb"]
    assert ident["conditioning"] == {"domain": 0, "judge_id": 288}
    assert "UTMOS22" in ident["license"]["weights"] and "MIT" in ident["license"]["code"]
    assert _utmos(model=str(utmos_file), batch_size=1).identity() == ident


def test_utmos22_wrong_files_are_one_line_errors(tiny_utmos, utmos_file, tmp_path):
    import torch

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ConfigError, match=f"{junk} is not a weights file") as e:
        _utmos(model=str(junk))
    _one_line(e)
    # a NISQA checkpoint: a dict, but not this network's state_dict
    nisqa = tmp_path / "nisqa.tar"
    torch.save({"args": {"model": "NISQA"}, "model_state_dict": {}}, nisqa)
    with pytest.raises(ConfigError, match=f"{nisqa} holds no state_dict") as e:
        _utmos(model=str(nisqa))
    _one_line(e)
    partial = tmp_path / "partial.pt"
    sd = torch.load(utmos_file, weights_only=True)
    torch.save({k: v for k, v in sd.items() if "output_layers" not in k}, partial)
    with pytest.raises(ConfigError, match=f"{partial} is not the UTMOS22.*parameters missing"):
        _utmos(model=str(partial))
    tarepan = tmp_path / "utmos22_strong_step7459_v1.pt"
    torch.save({"wav2vec2.mask_emb": torch.zeros(768), "judge_emb": torch.zeros(1, 128)}, tarepan)
    with pytest.raises(ConfigError, match="tarepan/SpeechMOS") as e:
        _utmos(model=str(tarepan))
    _one_line(e)
    shapes = tmp_path / "shapes.pt"
    sd["output_layers.1.net.0.bias"] = torch.zeros(7)
    torch.save(sd, shapes)
    with pytest.raises(ConfigError, match=f"tensors in {shapes} do not fit") as e:
        _utmos(model=str(shapes))
    _one_line(e)


@pytest.mark.parametrize("make", ["nisqa", "utmos22"])
def test_missing_weights_are_one_line_errors_naming_the_path(make, tmp_path):
    """Checked before any package is imported: these run without torchmetrics / utmos-pytorch."""
    judge = {"nisqa": _nisqa, "utmos22": _utmos}[make]
    with pytest.raises(ConfigError, match="needs option 'model'.*nothing is downloaded") as e:
        judge()
    _one_line(e)
    gone = tmp_path / "nope" / "weights.tar"
    with pytest.raises(ConfigError, match=f"option 'model': {gone} is not a file") as e:
        judge(model=str(gone))
    _one_line(e)
    with pytest.raises(ConfigError, match=f"{tmp_path} is not a file"):
        judge(model=str(tmp_path))  # a folder


def test_missing_packages_say_what_to_install(monkeypatch, tmp_path):
    """Without the packages, each judge names the pip command (one line)."""
    import builtins

    real_import = builtins.__import__
    blocked = ("utmos_pytorch", "torchmetrics", "nisqa")

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in blocked:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="pip install utmos-pytorch==0.1.0") as e:
        _utmos(model=str(weights))
    _one_line(e)
    with pytest.raises(ConfigError, match="pip install 'torchmetrics>=1.9,<1.10'") as e:
        _nisqa(model=str(weights))
    _one_line(e)
    with pytest.raises(ConfigError, match="pip install --no-deps nisqa==2.0.post2") as e:
        _nisqa(model=str(weights), backend="nisqa")
    _one_line(e)
