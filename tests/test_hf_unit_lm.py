"""Tests of the HuBERT-unit LM plugin on tiny, randomly initialised local models.

Nothing is downloaded: a tiny HuBERT, K-means centroids and a tiny GPT-2 are built and
saved under pytest's tmp_path. The expected numbers come from an independent
brute-force pipeline (full encoder forward, numpy nearest centroid, unbatched LM).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from reference_models.hf_unit_lm import HFUnitLM, dedup_units  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError, DataError  # noqa: E402
from speechlm_eval.model import EncodeRequest, LoglikelihoodRequest  # noqa: E402

K = 20
HIDDEN = 32
VOCAB = 22  # offset 2 + K units
LENGTHS = (1600, 2500, 4000)  # samples at 16 kHz; frame rate is 1600 Hz (stride 5 * 2)


def _hubert_config() -> transformers.HubertConfig:
    return transformers.HubertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(32, 32),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )


def _save_gpt2(path: Path, seed: int, vocab_size: int = VOCAB, n_positions: int = 1024) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=vocab_size,
        n_positions=n_positions,
        bos_token_id=1,  # slamkit's <S>; GPT-2's default 50256 is outside this tiny vocabulary
        eos_token_id=1,
    )
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    return path


def _audio(n: int, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    # A chirp plus noise: varies over time, so the units are not all the same.
    x = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(n)
    return Audio(x.astype(np.float32), 16000, f"utt{seed}")


def _hidden_states(encoder_dir: Path, wav: np.ndarray, layer: int) -> np.ndarray:
    model = transformers.HubertModel.from_pretrained(encoder_dir, local_files_only=True).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(wav.astype(np.float32))[None], output_hidden_states=True)
    return out.hidden_states[layer][0].numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny encoder, centroids and LMs on disk (built once for the module)."""
    root = tmp_path_factory.mktemp("hf_unit_lm")
    torch.manual_seed(0)
    encoder_dir = root / "hubert"
    transformers.HubertModel(_hubert_config()).eval().save_pretrained(encoder_dir)

    # Centroids = real encoder frames (+ noise), so utterances use many different units.
    feats = np.concatenate(
        [_hidden_states(encoder_dir, _audio(n, 100 + n).samples, 2) for n in (3000, 5000)]
    )
    rng = np.random.default_rng(0)
    centroids = feats[rng.choice(len(feats), K, replace=False)]
    centroids = (centroids + 0.01 * rng.standard_normal(centroids.shape)).astype(np.float32)
    np.save(root / "km.npy", centroids)
    np.save(root / "km16.npy", centroids[:, :16])  # wrong dimension

    # Same encoder plus a normalising preprocessor config.
    normed_dir = root / "hubert_normed"
    shutil.copytree(encoder_dir, normed_dir)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True
    ).save_pretrained(normed_dir)

    return {
        "root": root,
        "encoder": encoder_dir,
        "encoder_normed": normed_dir,
        "kmeans": root / "km.npy",
        "kmeans16": root / "km16.npy",
        "lm": _save_gpt2(root / "gpt2", seed=1),
        "lm_small_vocab": _save_gpt2(root / "gpt2_v21", seed=2, vocab_size=21),
        "lm_short": _save_gpt2(root / "gpt2_ctx8", seed=3, n_positions=8),
    }


def _args(files: dict[str, Path], **overrides: str) -> dict[str, str]:
    """Model args as the CLI delivers them: all strings."""
    args = {key: str(files[key]) for key in ("encoder", "kmeans", "lm")}
    args.update(overrides)
    return args


@pytest.fixture(scope="module")
def model(files: dict[str, Path]) -> HFUnitLM:
    return HFUnitLM(**_args(files))


# --- 1. agreement with a brute-force computation -----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "encoder_key", "layer"),
    [
        ({}, "encoder", 2),  # defaults: last layer, bos=eos=1, dedup, no padding
        (
            {"layer": "1", "pad_audio": "40", "dedup": "false", "bos": "none", "eos": "none"},
            "encoder",
            1,
        ),
        ({"layer": "0", "eos": "none"}, "encoder_normed", 0),  # preprocessor normalisation
    ],
)
def test_logprob_matches_brute_force(
    files: dict[str, Path], overrides: dict[str, str], encoder_key: str, layer: int
) -> None:
    plugin = HFUnitLM(**_args(files, encoder=str(files[encoder_key]), **overrides))
    audio = _audio(4000, seed=1)

    # Units by hand: pad, normalise, full (untruncated) encoder, numpy nearest centroid.
    wav = audio.samples.astype(np.float64)
    pad = int(overrides.get("pad_audio", 0))
    wav = np.pad(wav, (pad, pad))
    if encoder_key == "encoder_normed":
        wav = (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)
    feats = _hidden_states(files[encoder_key], wav, layer).astype(np.float64)
    centroids = np.load(files["kmeans"]).astype(np.float64)
    units = ((feats[:, None, :] - centroids[None, :, :]) ** 2).sum(-1).argmin(1)
    if overrides.get("dedup", "true") == "true":
        units = np.array([u for i, u in enumerate(units) if i == 0 or u != units[i - 1]])
    assert len(set(units.tolist())) > 3, "test data should exercise several units"

    tokens = [int(u) + 2 for u in units]
    if overrides.get("bos", "1") != "none":
        tokens = [1, *tokens]
    if overrides.get("eos", "1") != "none":
        tokens = [*tokens, 1]
    lm = transformers.GPT2LMHeadModel.from_pretrained(files["lm"], local_files_only=True).eval()
    with torch.no_grad():
        logits = lm(torch.tensor([tokens])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    expected = sum(float(logp[i - 1, tokens[i]]) for i in range(1, len(tokens)))

    np.testing.assert_array_equal(plugin.units(audio), units)
    (result,) = plugin.loglikelihood([LoglikelihoodRequest(audio=audio, key="a")])
    assert result.num_tokens == len(tokens) - 1
    if not overrides:
        assert result.num_tokens == len(units) + 1  # every unit and the EOS are scored
    np.testing.assert_allclose(result.logprob, expected, rtol=1e-5)
    assert result.logprob < 0


# --- 2. batching invariance ------------------------------------------------------------------


def test_batch_equals_single_calls(model: HFUnitLM) -> None:
    reqs = [
        LoglikelihoodRequest(audio=_audio(n, seed=i), key=str(i)) for i, n in enumerate(LENGTHS)
    ]
    batched = model.loglikelihood(reqs)
    singles = [model.loglikelihood([r])[0] for r in reqs]
    assert len({r.num_tokens for r in batched}) == 3  # lengths differ, so padding is exercised
    for b, s in zip(batched, singles, strict=True):
        assert b.num_tokens == s.num_tokens
        np.testing.assert_allclose(b.logprob, s.logprob, rtol=0, atol=1e-4)
    # Order is preserved (a reversed batch gives reversed results).
    reversed_results = model.loglikelihood(reqs[::-1])
    np.testing.assert_allclose(
        [r.logprob for r in reversed_results][::-1], [r.logprob for r in batched], atol=1e-4
    )
    assert model.loglikelihood([]) == []


# --- 3. dedup --------------------------------------------------------------------------------


def test_dedup_helper() -> None:
    np.testing.assert_array_equal(
        dedup_units(np.array([3, 3, 3, 1, 1, 2, 3, 3, 0], dtype=np.int64)), [3, 1, 2, 3, 0]
    )
    np.testing.assert_array_equal(dedup_units(np.array([7])), [7])
    np.testing.assert_array_equal(dedup_units(np.array([5, 4, 5])), [5, 4, 5])
    assert dedup_units(np.array([], dtype=np.int64)).size == 0
    with pytest.raises(ValueError):
        dedup_units(np.zeros((2, 2), dtype=np.int64))


def test_dedup_false_gives_more_tokens(files: dict[str, Path], model: HFUnitLM) -> None:
    raw_model = HFUnitLM(**_args(files, dedup="false"))
    audio = _audio(4000, seed=5)
    deduped, raw = model.units(audio), raw_model.units(audio)
    assert deduped.dtype == np.int64 and raw.dtype == np.int64
    assert len(raw) == 399  # one unit per encoder frame
    assert len(deduped) < len(raw)
    assert np.all(deduped[1:] != deduped[:-1])
    np.testing.assert_array_equal(dedup_units(raw), deduped)
    req = [LoglikelihoodRequest(audio=audio)]
    assert raw_model.loglikelihood(req)[0].num_tokens == len(raw) + 1
    assert model.loglikelihood(req)[0].num_tokens == len(deduped) + 1


# --- 4. argument errors and pickled K-means ---------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"lm": "/nonexistent/lm"}, "'lm'"),
        ({"encoder": "/nonexistent/hubert"}, "'encoder'"),
        ({"kmeans": "/nonexistent/km.npy"}, "'kmeans'"),
        ({"kmeans": "KM16"}, "'kmeans'"),  # dimension 16 vs hidden size 32
        ({"lm": "LM_SMALL_VOCAB"}, "vocab"),  # 2 + 20 units > 21 tokens
        ({"offset": "3"}, "'offset'"),  # 3 + 20 units > 22 tokens
        ({"layer": "3"}, "'layer'"),  # the encoder has 2 layers
        ({"layer": "last"}, "'layer'"),
        ({"dedup": "maybe"}, "'dedup'"),
        ({"bos": "5"}, "'bos'"),  # collides with unit 3
        ({"dtype": "int8"}, "'dtype'"),
        ({"lyer": "1"}, "lyer"),  # typo: unknown argument
    ],
)
def test_bad_args(files: dict[str, Path], overrides: dict[str, str], needle: str) -> None:
    subst = {"KM16": str(files["kmeans16"]), "LM_SMALL_VOCAB": str(files["lm_small_vocab"])}
    args = _args(files, **{k: subst.get(v, v) for k, v in overrides.items()})
    with pytest.raises(ConfigError, match=needle):
        HFUnitLM(**args)


def test_missing_required_arg(files: dict[str, Path]) -> None:
    args = _args(files)
    del args["lm"]
    with pytest.raises(ConfigError, match="'lm'"):
        HFUnitLM(**args)


def test_kmeans_dim_mismatch_message(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"'kmeans'.*dimension 16.*hidden size 32"):
        HFUnitLM(**_args(files, kmeans=str(files["kmeans16"])))


def test_pickled_kmeans(files: dict[str, Path], tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(0)
    km = cluster.KMeans(n_clusters=K, n_init=1, random_state=0).fit(
        rng.standard_normal((400, HIDDEN))
    )
    joblib.dump(km, tmp_path / "km.bin")
    np.save(tmp_path / "km_from_pickle.npy", km.cluster_centers_)

    with pytest.raises(ConfigError, match=r"(?s)'kmeans'.*allow_pickle=true.*np\.save"):
        HFUnitLM(**_args(files, kmeans=str(tmp_path / "km.bin"), dedup="false"))

    from_pickle = HFUnitLM(
        **_args(files, kmeans=str(tmp_path / "km.bin"), allow_pickle="true", dedup="false")
    )
    from_npy = HFUnitLM(**_args(files, kmeans=str(tmp_path / "km_from_pickle.npy"), dedup="false"))
    audio = _audio(4000, seed=7)
    units = from_pickle.units(audio)
    np.testing.assert_array_equal(units, from_npy.units(audio))
    # ... and they are what sklearn itself predicts for the same features.
    feats = from_npy.encode([EncodeRequest(audio=audio)])[0].features
    np.testing.assert_array_equal(units, km.predict(feats.astype(np.float64)))


# --- 5. identity and string arguments ---------------------------------------------------------


def test_identity_stable_and_tracks_weights(files: dict[str, Path], tmp_path: Path) -> None:
    lm_dir = tmp_path / "lm"
    shutil.copytree(files["lm"], lm_dir)
    args = _args(
        files, lm=str(lm_dir), layer="1", dedup="true", pad_audio="3", offset="2", eos="none"
    )
    first, second = HFUnitLM(**args), HFUnitLM(**args)
    ident = first.identity()
    assert ident == second.identity()
    json.dumps(ident)  # serialisable
    assert "device" not in json.dumps(ident)
    # String arguments were parsed into typed values.
    assert ident["layer"] == 1 and ident["pad_audio"] == 3 and ident["offset"] == 2
    assert ident["dedup"] is True and ident["bos"] == 1 and ident["eos"] is None
    assert ident["dtype"] == "float32" and first.dtype == "float32"
    assert ident["class"] == "reference_models.hf_unit_lm.HFUnitLM"
    assert ident["kmeans"]["n_units"] == K
    weights = (lm_dir / "model.safetensors").read_bytes()
    assert ident["lm"]["weights_hash"] == hashlib.sha256(weights).hexdigest()
    assert ident["lm"]["path"] == str(lm_dir.resolve())

    # The device is not part of the identity.
    assert HFUnitLM(**args, device="cpu").identity() == ident

    # New LM weights at the same path -> different identity (same config).
    lm = transformers.GPT2LMHeadModel.from_pretrained(lm_dir, local_files_only=True)
    with torch.no_grad():
        lm.lm_head.weight.add_(0.01)
    lm.save_pretrained(lm_dir)
    changed = HFUnitLM(**args).identity()
    assert changed != ident
    assert changed["lm"]["weights_hash"] != ident["lm"]["weights_hash"]
    assert changed["lm"]["config_hash"] == ident["lm"]["config_hash"]
    assert changed["encoder"] == ident["encoder"]


def test_bfloat16(files: dict[str, Path]) -> None:
    plugin = HFUnitLM(**_args(files, dtype="bf16"))
    assert plugin.dtype == "bfloat16" and plugin.identity()["dtype"] == "bfloat16"
    (result,) = plugin.loglikelihood([LoglikelihoodRequest(audio=_audio(2500, seed=2))])
    assert np.isfinite(result.logprob) and result.num_tokens >= 2


# --- 6. encode -------------------------------------------------------------------------------


def test_encode(files: dict[str, Path], model: HFUnitLM) -> None:
    audios = [_audio(n, seed=i) for i, n in enumerate(LENGTHS)]
    results = model.encode([EncodeRequest(audio=a) for a in audios])
    for audio, res in zip(audios, results, strict=True):
        frames = ((audio.samples.size - 10) // 5 + 1 - 3) // 2 + 1
        assert res.features.shape == (frames, HIDDEN)
        assert res.features.dtype == np.float32
        assert res.frame_rate == 16000 / 10
    expected = _hidden_states(files["encoder"], audios[0].samples, 2)
    np.testing.assert_allclose(results[0].features, expected, rtol=1e-5, atol=1e-5)


# --- request errors --------------------------------------------------------------------------


def test_request_errors(files: dict[str, Path], model: HFUnitLM) -> None:
    with pytest.raises(ValueError, match="no audio"):
        model.loglikelihood([LoglikelihoodRequest(text="hello", key="t")])
    with pytest.raises(ValueError, match="16000 Hz"):
        model.units(Audio(np.zeros(4000, dtype=np.float32), 8000))
    with pytest.raises(DataError, match="samples"):
        model.units(Audio(np.zeros(15, dtype=np.float32), 16000))  # < 1 encoder frame
    short_ctx = HFUnitLM(**_args(files, lm=str(files["lm_short"])))
    with pytest.raises(DataError, match="LM context of 8"):
        short_ctx.loglikelihood([LoglikelihoodRequest(audio=_audio(4000, seed=1), key="long")])


def test_end_to_end_through_the_cli(files: dict[str, Path], tmp_path: Path) -> None:
    """`slm-eval run --model hf-unit-lm` on tiny official-layout data: the registered plugin is
    found through its entry point, and the scores equal a by-hand scoring of its outputs."""
    from helpers import make_lexical, make_storycloze

    from speechlm_eval.audio import load_audio
    from speechlm_eval.cli import main
    from speechlm_eval.results import strip_volatile

    data = tmp_path / "data"
    make_lexical(data, ids=3)
    ssc = make_storycloze(data, "sStoryCloze", n=4)
    margs = f"encoder={files['encoder']},kmeans={files['kmeans']},lm={files['lm']}"
    out = tmp_path / "out"
    argv = [
        "run",
        "--model",
        "hf-unit-lm",
        "--model_args",
        margs,
        "--tasks",
        "ssc,swuggy",
        "--data_dir",
        str(data),
        "--output_path",
        str(out),
        "--batch_size",
        "4",
        "--use_cache",
        str(tmp_path / "c.sqlite"),
    ]
    assert main(argv) == 0
    assert main(argv) == 0  # second run: all from the cache
    runs = sorted((out / "hf-unit-lm").glob("results_*.json"))
    r1, r2 = (json.loads(p.read_text()) for p in runs)
    assert strip_volatile(r1) == strip_volatile(r2)
    assert r2["runtime"]["cache"]["ssc"]["computed"] == 0
    ident = r1["config"]["model_identity"]
    assert len(ident["lm"]["weights_hash"]) == 64 and ident["kmeans"]["n_units"] == K

    model = HFUnitLM(
        encoder=str(files["encoder"]), kmeans=str(files["kmeans"]), lm=str(files["lm"])
    )
    expected = []
    for i in range(4):
        res = model.loglikelihood(
            [
                LoglikelihoodRequest(audio=load_audio(ssc / f"{i}_{k}.wav"))
                for k in ("correct", "incorrect")
            ]
        )
        pos, neg = (r.logprob / r.num_tokens for r in res)
        expected.append(1.0 if pos > neg else 0.5 if pos == neg else 0.0)
    assert r1["results"]["ssc"]["acc,nll_mean"] == pytest.approx(sum(expected) / 4)
