"""The speaker-encoder judge ``speaker``: resemblyzer (real packaged GE2E weights), transformers
x-vector models and SpeechBrain ECAPA (tiny random models built and saved here).

Embeddings are checked against the packages called directly (independent paths), for voice
ordering on the built-in TTS voices, determinism, batch independence and caching.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from speechlm_eval.audio import Audio
from speechlm_eval.cache import ResultCache
from speechlm_eval.errors import ConfigError
from speechlm_eval.execute import ExecStats
from speechlm_eval.judges import judge_names, load_judge
from speechlm_eval.judges.speaker import SpeakerJudge, cosine

SR = 16000
# transformers' WavLM attention, called directly below, mixes mask types (a torch deprecation).
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
SENTENCES = (
    "The weather is fine today, and we will walk to the river.",
    "Please bring the old map and a warm coat for the long trip north.",
)


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, n).astype(np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# --- resemblyzer (the offline default) ----------------------------------------------------------


@pytest.fixture(scope="module")
def voices() -> dict[tuple[str, int], np.ndarray]:
    """Two sentences in each built-in voice (Piper joe, eSpeak f4 and m3), 16 kHz."""
    pytest.importorskip("piper")
    from speechlm_eval.builtin.voices import all_voices

    return {(n, i): v.text(s) for n, v in all_voices().items() for i, s in enumerate(SENTENCES)}


@pytest.fixture(scope="module")
def ge2e() -> SpeakerJudge:
    pytest.importorskip("resemblyzer")
    return SpeakerJudge()


def test_resemblyzer_same_voice_scores_above_other_voices(voices, ge2e):
    names = sorted({n for n, _ in voices})
    assert len(names) == 3
    same = ge2e.similarity(
        [Audio(voices[n, 0], SR) for n in names], [Audio(voices[n, 1], SR) for n in names]
    )
    for k, name in enumerate(names):
        cross = [
            c
            for other in names
            if other != name
            for c in ge2e.similarity(
                [Audio(voices[name, i], SR) for i in (0, 1)],
                [Audio(voices[other, j], SR) for j in (1, 0)],
            )
        ]
        assert same[k] > max(cross) + 0.1, (name, same[k], cross)
    assert all(0.7 < s <= 1.0 for s in same), same


def test_resemblyzer_equals_the_package_called_directly(voices, ge2e):
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder(device="cpu", verbose=False)
    x = voices["joe", 0]
    # 1 s of silence inside: preprocess_wav cuts it, the raw path keeps it
    x = np.concatenate([x[: x.size // 2], np.zeros(SR, np.float32), x[x.size // 2 :]])
    (got,) = ge2e.embed([Audio(x, SR)])
    want = encoder.embed_utterance(preprocess_wav(x))
    assert got.dtype == np.float32 and got.shape == (256,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    (raw,) = SpeakerJudge(preprocess="false").embed([Audio(x, SR)])
    np.testing.assert_allclose(raw, encoder.embed_utterance(x), rtol=0, atol=1e-6)
    assert np.abs(raw - got).max() > 1e-3  # the preprocessing option does something
    assert float(np.linalg.norm(got)) == pytest.approx(1.0, abs=1e-5)


def test_resemblyzer_caches_deduplicates_and_resamples(voices, ge2e, tmp_path):
    audios = [Audio(voices["joe", 0], SR), Audio(voices["espeak-en-us+f4", 0], SR)]
    cache, stats = ResultCache(tmp_path / "s.sqlite"), ExecStats()
    first = ge2e.embed([*audios, audios[0]], stats, cache)
    assert (stats.computed, stats.cache_hits) == (2, 0)  # the repeated audio is embedded once
    np.testing.assert_array_equal(first[0], first[2])
    stats = ExecStats()
    again = ge2e.embed(audios[::-1], stats, ResultCache(tmp_path / "s.sqlite"))
    assert (stats.computed, stats.cache_hits) == (0, 2)
    for a, b in zip(again, first[1::-1], strict=True):
        np.testing.assert_array_equal(a, b)  # float32 survives the JSON cache exactly
    # another rate is resampled explicitly and counted; the voice stays the same
    stats = ExecStats()
    (low,) = ge2e.embed([audios[0].resample(22050)], stats)
    assert stats.resampled == {"22050->16000": 1}
    assert cosine(low, first[0]) > 0.9


def test_resemblyzer_no_signal_gives_nan(ge2e):
    silent = Audio(np.zeros(SR, np.float32), SR)
    (emb,) = ge2e.embed([silent])
    assert emb.shape == (256,) and np.isnan(emb).all()
    assert np.isnan(ge2e.similarity([silent], [Audio(_noise(SR), SR)])[0])
    with pytest.raises(ValueError, match="pairs"):
        ge2e.similarity([silent], [])


def test_resemblyzer_identity_names_the_wheel_weights_and_preprocessing(ge2e):
    import resemblyzer

    ident = ge2e.identity()
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    assert ident["kind"] == "speaker" and ident["backend"] == "resemblyzer"
    assert ident["package"] == "resemblyzer" and ident["version"] == "0.1.4"
    assert ident["model"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert ident["input"]["sample_rate"] == 16000
    assert ident["preprocessing"]["function"] == "resemblyzer.preprocess_wav"
    raw = SpeakerJudge(preprocess="no").identity()
    assert raw["preprocessing"]["function"] is None and raw != ident
    assert SpeakerJudge(batch_size=2, device="cpu").identity() == ident  # not identity
    # other GE2E weights given as a file are hashed too
    assert (
        SpeakerJudge(model=str(weights)).identity()["model"]["sha256"] == ident["model"]["sha256"]
    )


# --- wavlm-sv (transformers x-vector, tiny random models) --------------------------------------


def _build_xvector(folder: Path, norm: str, dilation: tuple[int, ...]) -> Path:
    import torch
    import transformers as T

    torch.manual_seed(0)
    cfg = T.WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16, 32),
        tdnn_kernel=(5, 3, 1),
        tdnn_dilation=dilation,
        xvector_output_dim=8,
        feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
        num_buckets=32,
        max_bucket_distance=64,
        initializer_range=0.2,  # embeddings of order 1 (relative tolerances mean something)
    )
    T.WavLMForXVector(cfg).eval().save_pretrained(folder)
    T.Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SR,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=norm == "layer",
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def xvectors(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("xvector")
    return {
        "layer": _build_xvector(root / "layer", "layer", (1, 1, 1)),
        "group": _build_xvector(root / "group", "group", (1, 2, 1)),
        "dilated": _build_xvector(root / "dilated", "layer", (1, 2, 1)),
    }


def _direct_xvectors(folder: Path, xs: list[np.ndarray], padded: bool = False) -> list[np.ndarray]:
    """transformers called directly: feature extractor + model, each audio alone (or padded)."""
    import torch
    import transformers as T

    fe = T.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    model = T.WavLMForXVector.from_pretrained(folder, local_files_only=True).eval()
    groups = [xs] if padded else [[x] for x in xs]
    out = []
    for g in groups:
        inputs = fe(
            g, sampling_rate=SR, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        with torch.no_grad():
            out.extend(model(**inputs).embeddings.numpy())
    return out


SIZES = (16000, 9000, 4000)


@pytest.mark.parametrize("kind", ["layer", "group"])
def test_xvector_equals_transformers_called_directly(xvectors, kind):
    xs = [_noise(n, seed=i) for i, n in enumerate(SIZES)]
    judge = SpeakerJudge(backend="wavlm-sv", model=str(xvectors[kind]))
    got = judge.embed([Audio(x, SR) for x in xs])
    want = _direct_xvectors(xvectors[kind], xs)
    for g, w in zip(got, want, strict=True):
        assert g.shape == (8,) and g.dtype == np.float32
        assert _rel(g, w) < 1e-5
    # deterministic: the same judge again, and a fresh one
    again = SpeakerJudge(backend="wavlm-sv", model=str(xvectors[kind])).embed([Audio(xs[1], SR)])
    np.testing.assert_array_equal(again[0], judge.embed([Audio(xs[1], SR)])[0])
    assert _rel(again[0], got[1]) < 1e-5


def test_xvector_padded_batches_match_one_by_one(xvectors):
    xs = [_noise(n, seed=i) for i, n in enumerate(SIZES)]
    audios = [Audio(x, SR) for x in xs]
    batched = SpeakerJudge(backend="wavlm-sv", model=str(xvectors["layer"]))
    assert batched.identity()["embedding"]["batching"] == "padded with attention mask"
    together = batched.embed(audios)  # one padded batch of three lengths
    one_by_one = SpeakerJudge(backend="wavlm-sv", model=str(xvectors["layer"]), batch_size=1)
    singles = one_by_one.embed(audios)
    for t, s in zip(together, singles, strict=True):
        assert _rel(t, s) < 1e-5
    # group norm, or dilated TDNN layers (transformers' pooling lengths ignore dilation):
    # a naive padded batch changes the shorter utterances, so the judge runs them one by one
    for kind in ("group", "dilated"):
        judge = SpeakerJudge(backend="wavlm-sv", model=str(xvectors[kind]))
        assert judge.identity()["embedding"]["batching"] == "one utterance at a time"
        naive = _direct_xvectors(xvectors[kind], xs, padded=True)
        want = _direct_xvectors(xvectors[kind], xs)
        assert _rel(naive[2], want[2]) > 1e-3
        for g, w in zip(judge.embed(audios), want, strict=True):
            assert _rel(g, w) < 1e-5


def test_xvector_identity_hashes_the_folder(xvectors):
    from speechlm_eval.judges import path_sha256

    ident = SpeakerJudge(backend="wavlm-sv", model=str(xvectors["layer"])).identity()
    assert ident["package"] == "transformers" and ident["backend"] == "wavlm-sv"
    assert ident["model"]["sha256"] == path_sha256(xvectors["layer"])
    assert ident["model"]["class"] == "WavLMForXVector"
    assert "preprocess" not in str(ident["embedding"])
    other = SpeakerJudge(backend="wavlm-sv", model=str(xvectors["group"])).identity()
    assert other["model"]["sha256"] != ident["model"]["sha256"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "wavlm-sv"}, "needs option 'model'"),
        ({"backend": "wavlm-sv", "model": "/nonexistent/wavlm"}, "option 'model'.*config.json"),
        ({"backend": "ecapa", "model": "/nonexistent/ecapa"}, "option 'model'.*hyperparams.yaml"),
        ({"backend": "wavlm-sv", "model": "/tmp", "preprocess": "true"}, "option 'preprocess'"),
        ({"backend": "x-vector"}, "option 'backend'"),
        ({"model": "/nonexistent/ge2e.pt"}, "option 'model'"),
        ({"batch_size": "0"}, "option 'batch_size'"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError, match=message) as e:
        SpeakerJudge(**options)
    assert "\n" not in str(e.value)


def test_xvector_folder_without_weights_is_a_config_error(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text('{"model_type": "wavlm"}')
    with pytest.raises(ConfigError, match="option 'model'") as e:
        SpeakerJudge(backend="wavlm-sv", model=str(tmp_path))
    assert "\n" not in str(e.value)


# --- ecapa (SpeechBrain) -----------------------------------------------------------------------

_ECAPA = {
    "channels": [16, 16, 16, 16, 48],
    "kernel_sizes": [5, 3, 3, 3, 1],
    "dilations": [1, 2, 3, 4, 1],
    "attention_channels": 8,
    "lin_neurons": 12,
}
# As speechbrain/spkrec-ecapa-voxceleb's hyperparams.yaml, tiny, and pointing at the hub: the
# judge must redirect pretrained_path to the folder (a download would fail: HF_HUB_OFFLINE).
_HPARAMS = """\
n_mels: 20
sample_rate: 16000
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 8
    lin_neurons: 12
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def _speechbrain_importable() -> bool:
    if find_spec("speechbrain") is None:
        return False
    try:
        import speechbrain.inference.speaker  # noqa: F401
    except (ImportError, OSError):  # e.g. torchaudio's CUDA extension beside a CPU torch
        return False
    return True


@pytest.mark.skipif(not _speechbrain_importable(), reason="speechbrain not importable")
def test_ecapa_tiny_folder_equals_speechbrain_modules_called_directly(tmp_path):
    import torch
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    model = ECAPA_TDNN(20, **_ECAPA).eval()
    torch.save(model.state_dict(), tmp_path / "embedding_model.ckpt")
    (tmp_path / "hyperparams.yaml").write_text(_HPARAMS)
    judge = SpeakerJudge(backend="ecapa", model=str(tmp_path))
    xs = [_noise(n, seed=i) for i, n in enumerate((16000, 9000))]
    got = judge.embed([Audio(x, SR) for x in xs])
    for x, g in zip(xs, got, strict=True):
        with torch.no_grad():
            feats = Fbank(n_mels=20)(torch.from_numpy(x)[None])
            feats = feats - feats.mean(dim=1, keepdim=True)  # sentence mean norm, no std
            want = model(feats).reshape(-1).numpy()
        assert g.shape == (12,)
        assert _rel(g, want) < 1e-5
    ident = judge.identity()
    assert ident["package"] == "speechbrain" and ident["embedding"]["normalize"] is False
    assert ident["model"]["class"] == "ECAPA_TDNN"


class _Blocker(importlib.abc.MetaPathFinder):
    """Makes ``import speechbrain`` fail as it does on a CPU torch with a CUDA torchaudio."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def find_spec(self, name, path=None, target=None):
        if name == "speechbrain" or name.startswith("speechbrain."):
            raise self.error
        return None


def _ecapa_folder(tmp_path: Path) -> Path:
    (tmp_path / "hyperparams.yaml").write_text(_HPARAMS)
    return tmp_path


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OSError("Could not load this library: /v/site-packages/torchaudio/lib/_torchaudio.so"),
            r"torchaudio's compiled extension .*fix: rm .*torchaudio/lib/\*\.so",
        ),
        (ModuleNotFoundError("No module named 'speechbrain'"), "needs the package speechbrain"),
    ],
)
def test_ecapa_import_failures_say_how_to_fix_them(tmp_path, monkeypatch, error, message):
    for mod in [m for m in sys.modules if m == "speechbrain" or m.startswith("speechbrain.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(sys, "meta_path", [_Blocker(error), *sys.meta_path])
    with pytest.raises(ConfigError, match=message) as e:
        SpeakerJudge(backend="ecapa", model=str(_ecapa_folder(tmp_path)))
    assert "\n" not in str(e.value) and "judge 'speaker'" in str(e.value)


# --- registration --------------------------------------------------------------------------------


@pytest.mark.skipif("speaker" not in judge_names(), reason="entry point not installed yet")
def test_registered_as_speaker():
    judge = load_judge("speaker")
    assert isinstance(judge, SpeakerJudge) and judge.backend == "resemblyzer"
