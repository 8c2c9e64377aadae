"""Tests of the codec-LM plugin on tiny, randomly initialised local models.

Nothing is downloaded: tiny EnCodec / Mimi / DAC / X-Codec codecs, tiny GPT-2 LMs and a tiny
MusicGen decoder are built and saved under pytest's tmp_path. Expected numbers come from a
brute-force computation: codes from the transformers codec called directly, token ids laid
out by hand, and one LM forward per scored position (no batching, no cache).
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

from reference_models.codec_lm import CodecLM  # noqa: E402
from reference_models.gslm_mini.sampling import SampleOptions  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError, DataError  # noqa: E402
from speechlm_eval.model import (  # noqa: E402
    ContinueRequest,
    EncodeRequest,
    LoglikelihoodRequest,
    ResynthesizeRequest,
)

CS = 32  # codebook size of every tiny codec
K = 4  # codebooks of the tiny EnCodec / Mimi / X-Codec (DAC: 3)
HOP = 64  # tiny EnCodec: 16 kHz / 64 = 250 frames/s
VOCAB = 2 + K * CS  # PAD=0, <S>=1, codes from 2: room for the flat layout of 4 codebooks
MIMI_SR = 24000  # the tiny Mimi runs at 24 kHz, so the end-to-end run resamples


def _codec_configs() -> dict[str, tuple[type, object]]:
    """The tiny codecs (``../shared/reference/model-adapters.md`` §1.1, strides adjusted)."""
    t = transformers
    return {
        "encodec": (
            t.EncodecModel,
            t.EncodecConfig(
                hidden_size=16,
                num_filters=4,
                upsampling_ratios=[8, 8],
                num_lstm_layers=1,
                codebook_size=CS,
                target_bandwidths=[2.5, 5.0],  # 1.25 kbps per codebook: 2 and 4 codebooks
                sampling_rate=16000,
            ),
        ),
        "mimi": (
            t.MimiModel,
            t.MimiConfig(
                hidden_size=16,
                num_filters=4,
                upsampling_ratios=[8, 4],
                codebook_size=CS,
                codebook_dim=8,
                num_quantizers=K,
                num_semantic_quantizers=1,
                vector_quantization_hidden_dimension=8,
                upsample_groups=16,
                num_hidden_layers=1,
                intermediate_size=32,
                num_attention_heads=2,
                num_key_value_heads=2,
                sliding_window=16,
                sampling_rate=MIMI_SR,
            ),
        ),
        "dac": (
            t.DacModel,
            t.DacConfig(
                encoder_hidden_size=4,
                downsampling_ratios=[4, 8],
                decoder_hidden_size=16,
                n_codebooks=3,
                codebook_size=CS,
                codebook_dim=4,
                sampling_rate=16000,
            ),
        ),
        "xcodec": (
            t.XcodecModel,
            t.XcodecConfig(
                acoustic_model_config=dict(
                    encoder_hidden_size=4,
                    downsampling_ratios=[2, 5],
                    upsampling_ratios=[5, 2],
                    decoder_hidden_size=16,
                    hidden_size=16,
                    codebook_dim=4,
                    n_codebooks=2,
                    codebook_size=CS,
                ),
                semantic_model_config=dict(
                    model_type="hubert",
                    hidden_size=16,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                    intermediate_size=32,
                    conv_dim=(8, 8),
                    conv_stride=(5, 2),
                    conv_kernel=(10, 3),
                    num_conv_pos_embeddings=16,
                    num_conv_pos_embedding_groups=2,
                ),
                target_bandwidths=[16.0, 32.0],
                codebook_size=CS,
            ),
        ),
    }


def _save_gpt2(path: Path, seed: int, vocab_size: int = VOCAB, n_positions: int = 512) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        n_layer=1,
        n_embd=32,
        n_head=2,
        vocab_size=vocab_size,
        n_positions=n_positions,
        bos_token_id=1,
        eos_token_id=1,
    )
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    return path


def _save_musicgen(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.MusicgenDecoderConfig(
        vocab_size=CS,
        num_codebooks=K,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        max_position_embeddings=256,
        pad_token_id=CS,  # MusicGen: pad = bos = codebook_size, one past the outputs
        bos_token_id=CS,
    )
    transformers.MusicgenForCausalLM(cfg).eval().save_pretrained(path)
    return path


def _audio(n: int, seed: int, sr: int = 16000) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    # A chirp plus noise: varies over time, so the codes are not all the same.
    x = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(n)
    return Audio(x.astype(np.float32), sr, f"utt{seed}")


def _spread_codebooks(model: torch.nn.Module, family: str) -> None:
    """Codewords that the encoder's frames actually spread over: transformers initialises
    EnCodec / Mimi / X-Codec codebooks to zeros, so every frame would get code 0."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if family == "encodec":
            # Codebook 0 = encoder frames of a chirp; codebook k = frame differences halved
            # k times, about the size of what is left after k codebooks.
            wav = np.concatenate([_audio(3000, seed).samples for seed in (100, 101)])
            frames = model.encoder(torch.from_numpy(wav)[None, None])[0].T
            for k, layer in enumerate(model.quantizer.layers):
                a, b = (torch.randperm(len(frames), generator=g)[:CS] for _ in range(2))
                code = frames[a] if k == 0 else (frames[a] - frames[b]) * 0.5**k
                layer.codebook.embed.copy_(code)
            return
        for name, buf in model.named_buffers():  # Mimi, X-Codec (DAC's are random already)
            if name.endswith(("codebook.embed", "codebook.embed_sum")):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny codecs and LMs on disk (built once for the module)."""
    root = tmp_path_factory.mktemp("codec_lm")
    out: dict[str, Path] = {}
    for i, (name, (cls, cfg)) in enumerate(_codec_configs().items()):
        torch.manual_seed(10 + i)
        model = cls(cfg).eval()
        _spread_codebooks(model, name)
        model.save_pretrained(root / name)
        out[name] = root / name
    out["gpt2"] = _save_gpt2(root / "gpt2", seed=1)
    out["gpt2_small"] = _save_gpt2(root / "gpt2_v60", seed=2, vocab_size=60)
    out["gpt2_ctx"] = _save_gpt2(root / "gpt2_ctx16", seed=3, n_positions=16)
    out["musicgen"] = _save_musicgen(root / "musicgen", seed=4)
    out["root"] = root
    return out


def _args(files: dict[str, Path], layout: str, lm: str = "gpt2", **kw: str) -> dict[str, str]:
    """Model args as the CLI delivers them: all strings."""
    return {"codec": str(files["encodec"]), "lm": str(files[lm]), "layout": layout, **kw}


@pytest.fixture(scope="module")
def models(files: dict[str, Path]) -> dict[str, CodecLM]:
    return {
        "first": CodecLM(**_args(files, "first")),
        "flat": CodecLM(**_args(files, "flat")),
        "delay": CodecLM(**_args(files, "delay", lm="musicgen")),
    }


# --- brute force ------------------------------------------------------------------------------


def _direct_codes(files: dict[str, Path], family: str, wav: np.ndarray) -> torch.Tensor:
    """Codes [K, F] from the transformers codec called directly."""
    cls, _ = _codec_configs()[family]
    model = cls.from_pretrained(files[family], local_files_only=True).eval()
    hop = {"dac": 32, "xcodec": 10}.get(family)
    if hop:  # DAC / X-Codec feature extractors right-pad to a multiple of the hop
        wav = np.pad(wav, (0, -wav.size % hop))
    x = torch.from_numpy(wav.astype(np.float32))[None, None]
    with torch.no_grad():
        if family == "encodec":
            return model.encode(x, bandwidth=5.0).audio_codes[0, 0]
        if family == "mimi":
            return model.encode(x, num_quantizers=K).audio_codes[0]
        if family == "dac":
            return model.encode(x).audio_codes[0]
        return model.encode(x, bandwidth=32.0).audio_codes[0]


def _direct_decode(files: dict[str, Path], family: str, codes: torch.Tensor) -> np.ndarray:
    cls, _ = _codec_configs()[family]
    model = cls.from_pretrained(files[family], local_files_only=True).eval()
    with torch.no_grad():
        if family == "encodec":
            y = model.decode(codes[None, None], [None]).audio_values
        elif family == "dac":
            y = model.decode(audio_codes=codes[None]).audio_values
        else:
            y = model.decode(codes[None]).audio_values
    return y.reshape(-1).numpy()


def _brute_stream(lm_dir: Path, tokens: list[int]) -> float:
    """Sum over i >= 1 of log p(tokens[i] | tokens[:i]), one forward per prefix."""
    lm = transformers.GPT2LMHeadModel.from_pretrained(lm_dir, local_files_only=True).eval()
    total = 0.0
    with torch.no_grad():
        for i in range(1, len(tokens)):
            logits = lm(torch.tensor([tokens[:i]])).logits[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[tokens[i]])
    return total


def _delay_grid(codes: np.ndarray, special: int) -> np.ndarray:
    n_k, n_f = codes.shape
    grid = np.full((n_k, n_f + n_k), special, dtype=np.int64)
    for k in range(n_k):
        for t in range(n_f):
            grid[k, t + k + 1] = codes[k, t]
    return grid


def _brute_delay(lm_dir: Path, codes: np.ndarray) -> tuple[float, int]:
    """Every code (k, t) sits at step t + k + 1 of stream k and is scored from stream k's
    logits after steps 0..t+k, one forward per step."""
    lm = transformers.MusicgenForCausalLM.from_pretrained(lm_dir, local_files_only=True).eval()
    grid = _delay_grid(codes, CS)
    n_k, n_f = codes.shape
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(1, n_f + n_k):
            logits = lm(input_ids=torch.from_numpy(grid[:, :s])).logits[:, -1].double()
            for k in range(n_k):
                if 0 <= s - k - 1 < n_f:
                    total += float(torch.log_softmax(logits[k], -1)[grid[k, s]])
                    count += 1
    return total, count


# --- 1. log-likelihood: each layout against brute force ----------------------------------------


@pytest.mark.parametrize("layout", ["first", "flat", "delay"])
def test_logprob_matches_brute_force(
    files: dict[str, Path], models: dict[str, CodecLM], layout: str
) -> None:
    audio = _audio(1500, seed=1)
    codes = _direct_codes(files, "encodec", audio.samples).numpy()
    n_f = codes.shape[1]
    assert codes.shape == (K, -(-1500 // HOP)) and len(set(codes[0].tolist())) > 3
    plugin = models[layout]
    np.testing.assert_array_equal(plugin.codes(audio), codes)
    (result,) = plugin.loglikelihood([LoglikelihoodRequest(audio=audio, key="a")])
    if layout == "delay":
        expected, count = _brute_delay(files["musicgen"], codes)
        assert count == result.num_tokens == K * n_f  # bos and pad positions are not scored
    else:
        if layout == "first":
            body = [2 + int(c) for c in codes[0]]
        else:  # frame-major, codebook k offset by k * 32
            body = [2 + k * CS + int(codes[k, t]) for t in range(n_f) for k in range(K)]
        tokens = [1, *body, 1]
        assert plugin.tokens(audio) == tokens
        expected = _brute_stream(files["gpt2"], tokens)
        assert result.num_tokens == len(body) + 1  # every code and the EOS
    np.testing.assert_allclose(result.logprob, expected, rtol=1e-5)


def test_delay_grid_is_musicgens(files: dict[str, Path], models: dict[str, CodecLM]) -> None:
    """The delay grid equals MusicGen's own ``build_delay_pattern_mask`` over the whole
    sequence (max_length = frames + codebooks), with bos = pad = codebook_size."""
    codes = models["delay"].codes(_audio(700, seed=2))
    ids, is_code = models["delay"].layout.grid(codes)
    lm = transformers.MusicgenForCausalLM.from_pretrained(files["musicgen"]).eval()
    start = np.full((K, 1), CS, dtype=np.int64)
    inp = torch.from_numpy(np.concatenate([start, codes], axis=1))
    _, pattern = lm.build_delay_pattern_mask(inp, pad_token_id=CS, max_length=ids.shape[1])
    np.testing.assert_array_equal(ids, pattern.numpy())
    np.testing.assert_array_equal(ids, _delay_grid(codes, CS))
    assert is_code.sum() == codes.size


def test_no_bos_no_eos(files: dict[str, Path]) -> None:
    """Without bos the first code is context only; without eos nothing follows the codes."""
    plugin = CodecLM(**_args(files, "flat", bos="none", eos="none", codebooks="2"))
    audio = _audio(900, seed=3)
    codes = plugin.codes(audio)
    body = [2 + k * CS + int(codes[k, t]) for t in range(codes.shape[1]) for k in range(2)]
    assert plugin.tokens(audio) == body
    (r,) = plugin.loglikelihood([LoglikelihoodRequest(audio=audio)])
    assert r.num_tokens == len(body) - 1
    np.testing.assert_allclose(r.logprob, _brute_stream(files["gpt2"], body), rtol=1e-5)


# --- 2. batching: right padding and masks --------------------------------------------------------


@pytest.mark.parametrize("layout", ["first", "flat", "delay"])
def test_batch_equals_single_calls(models: dict[str, CodecLM], layout: str) -> None:
    model = models[layout]
    reqs = [
        LoglikelihoodRequest(audio=_audio(n, seed=i), key=str(i))
        for i, n in enumerate((700, 1500, 1100))
    ]
    batched = model.loglikelihood(reqs)
    singles = [model.loglikelihood([r])[0] for r in reqs]
    assert len({r.num_tokens for r in batched}) == 3  # lengths differ: padding is exercised
    for b, s in zip(batched, singles, strict=True):
        assert b.num_tokens == s.num_tokens
        np.testing.assert_allclose(b.logprob, s.logprob, rtol=0, atol=1e-4)
    assert model.loglikelihood([]) == []


# --- 3. codecs: codes, latents, round trip -------------------------------------------------------


@pytest.mark.parametrize("family", ["encodec", "mimi", "dac", "xcodec"])
def test_codec_families(files: dict[str, Path], family: str) -> None:
    sr = MIMI_SR if family == "mimi" else 16000
    plugin = CodecLM(codec=str(files[family]), lm=str(files["gpt2"]), layout="first")
    assert plugin.sample_rate == sr
    audio = _audio(1210, seed=4, sr=sr)  # not a multiple of any hop
    direct = _direct_codes(files, family, audio.samples)
    codes = plugin.codes(audio)
    np.testing.assert_array_equal(codes, direct.numpy())
    assert codes.shape[0] == (3 if family == "dac" else K)

    # resynthesize: the codec's own decode of all codebooks, cut to the input's length
    (out,) = plugin.resynthesize([ResynthesizeRequest(audio=audio)])
    assert out.sample_rate == sr and out.samples.size == audio.samples.size
    np.testing.assert_allclose(
        out.samples, _direct_decode(files, family, direct)[: audio.samples.size], atol=1e-5
    )

    # encode: codebook 0 per frame, at the codec's frame rate
    (enc,) = plugin.encode([EncodeRequest(audio=audio)])
    np.testing.assert_array_equal(enc.features, codes[0])
    assert enc.features.dtype == np.int64
    assert enc.frame_rate == pytest.approx(sr / plugin.codec.hop_length)
    assert plugin.identity()["codec"]["family"] == family

    # loglikelihood (first layout) against brute force
    (r,) = plugin.loglikelihood([LoglikelihoodRequest(audio=audio)])
    tokens = [1, *(2 + int(c) for c in codes[0]), 1]
    np.testing.assert_allclose(r.logprob, _brute_stream(files["gpt2"], tokens), rtol=1e-5)


def test_latents(files: dict[str, Path]) -> None:
    plugin = CodecLM(**_args(files, "first", features="latents"))
    audio = _audio(1500, seed=5)
    (enc,) = plugin.encode([EncodeRequest(audio=audio)])
    model = transformers.EncodecModel.from_pretrained(files["encodec"]).eval()
    with torch.no_grad():
        expected = model.encoder(torch.from_numpy(audio.samples)[None, None])[0].T.numpy()
    assert enc.features.shape == (plugin.codes(audio).shape[1], 16) == expected.shape
    assert enc.features.dtype == np.float32 and enc.frame_rate == 16000 / HOP
    np.testing.assert_allclose(enc.features, expected, atol=1e-6)
    # X-Codec's latent is its fused (acoustic + semantic) quantiser input, one row per frame
    xc = CodecLM(
        codec=str(files["xcodec"]), lm=str(files["gpt2"]), layout="first", features="latents"
    )
    (enc,) = xc.encode([EncodeRequest(audio=audio)])
    assert enc.features.shape[0] == xc.codes(audio).shape[1] and enc.features.ndim == 2


def test_fewer_codebooks_are_a_prefix(files: dict[str, Path], models: dict[str, CodecLM]) -> None:
    """codebooks=2 picks EnCodec's 2.5 kbps; residual quantisation is greedy, so its codes are
    the first two of the 4-codebook codes."""
    two = CodecLM(**_args(files, "flat", codebooks="2"))
    audio = _audio(1000, seed=6)
    np.testing.assert_array_equal(two.codes(audio), models["flat"].codes(audio)[:2])
    ident = two.identity()
    assert ident["codec"]["bandwidth"] == 2.5 and ident["layout"]["codebooks"] == 2
    assert ident["layout"]["codebook_offsets"] == [2, 34]


# --- 4. continue: shapes and determinism ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["first", "flat", "delay"])
def test_continue_is_seeded(models: dict[str, CodecLM], layout: str) -> None:
    model = models[layout]
    prompt = _audio(640, seed=7)  # 10 frames

    def run(seed: int, n: int = 2, **kw: object) -> list[np.ndarray]:
        req = ContinueRequest(prompt=prompt, num_samples=n, max_seconds=0.04, seed=seed, **kw)
        (out,) = model.continue_([req])
        assert len(out) == n and all(a.sample_rate == 16000 for a in out)
        return [a.samples for a in out]

    a, b = run(3), run(3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)  # same seed, same audio
    c = run(4)
    assert not any(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not np.array_equal(a[0], a[1])  # samples of one request differ
    np.testing.assert_array_equal(run(3, n=3)[1], a[1])  # sample j depends on (seed, j) only
    # top_k=1 is greedy decoding, whatever the seed
    np.testing.assert_array_equal(run(5, n=1, top_k=1)[0], run(6, n=1, temperature=0.0)[0])
    for x in a:  # at most 10 frames (0.04 s at 250 frames/s); EOS may end a sample early
        assert 0 < x.size <= 10 * HOP and x.size % HOP == 0


def test_continue_lengths_and_codes(files: dict[str, Path], models: dict[str, CodecLM]) -> None:
    plugin = CodecLM(**_args(files, "flat", eos="none", with_prompt="true"))
    prompt = _audio(640, seed=8)
    req = ContinueRequest(prompt=prompt, num_samples=1, max_seconds=0.05, seed=1, top_p=0.9)
    (out,) = plugin.continue_([req])
    assert out[0].samples.size == (10 + 12) * HOP  # prompt frames + floor(0.05 * 250) frames
    # the drawn codes are codes of their own codebook, and decode to the returned audio
    gen = torch.Generator().manual_seed(0)
    opts = SampleOptions()
    codes = plugin.codes(prompt)
    new = plugin.sample_codes(codes, 7, opts, gen)
    assert new.shape == (K, 7) and new.min() >= 0 and new.max() < CS
    new_delay = models["delay"].sample_codes(codes, 5, opts, gen)
    assert new_delay.shape == (K, 5) and new_delay.max() < CS
    # first: codebook 0 only, decoded alone
    new_first = models["first"].sample_codes(codes[:1], 6, opts, gen)
    assert new_first.shape[0] == 1 and new_first.shape[1] <= 6


def test_greedy_continuation_matches_brute_force(
    files: dict[str, Path], models: dict[str, CodecLM]
) -> None:
    """Greedy codes drawn with the key/value cache equal an argmax loop that runs the LM on
    the whole sequence at every step (flat: codebook k's id range at position k)."""
    greedy = SampleOptions(temperature=0.0)
    gen = torch.Generator().manual_seed(0)
    flat = CodecLM(**_args(files, "flat", eos="none"))
    prompt = flat.codes(_audio(640, seed=10))
    drawn = flat.sample_codes(prompt, 4, greedy, gen)
    lm = transformers.GPT2LMHeadModel.from_pretrained(files["gpt2"]).eval()
    tokens = [1] + [2 + k * CS + int(prompt[k, t]) for t in range(10) for k in range(K)]
    expected = np.zeros((K, 4), dtype=np.int64)
    with torch.no_grad():
        for i in range(4 * K):
            k = i % K
            logits = lm(torch.tensor([tokens])).logits[0, -1]
            code = int(torch.argmax(logits[2 + k * CS : 2 + (k + 1) * CS]))
            expected[k, i // K] = code
            tokens.append(2 + k * CS + code)
    np.testing.assert_array_equal(drawn, expected)

    delay = models["delay"]
    drawn = delay.sample_codes(prompt, 3, greedy, gen)
    mg = transformers.MusicgenForCausalLM.from_pretrained(files["musicgen"]).eval()
    grid = _delay_grid(np.concatenate([prompt, np.zeros((K, 3), dtype=np.int64)], 1), CS)
    with torch.no_grad():
        for s in range(11, 10 + 3 + K):  # steps after the prompt's last full step (10)
            logits = mg(input_ids=torch.from_numpy(grid[:, :s])).logits[:, -1]
            for k in range(K):
                if 10 <= s - k - 1 < 13:  # a new frame of stream k
                    grid[k, s] = int(torch.argmax(logits[k]))
    np.testing.assert_array_equal(drawn, np.stack([grid[k, 11 + k : 14 + k] for k in range(K)]))


# --- 5. arguments and identity -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"lm": "GPT2_SMALL"}, r"layout=flat puts 4 x 32 codes .* vocabulary of 60"),
        ({"layout": "first", "offset": "40", "lm": "GPT2_SMALL"}, "vocabulary of 60"),
        ({"layout": "delay"}, "parallel-stream LM"),
        ({"lm": "MUSICGEN"}, "use layout=delay"),
        ({"layout": "delay", "lm": "MUSICGEN", "codebooks": "2"}, "reads 4 streams"),
        ({"layout": "delay", "lm": "MUSICGEN", "eos": "1"}, "no EOS"),
        ({"codebooks": "5"}, "'codebooks'"),
        ({"offset": "none"}, "'offset'"),
        ({"bos": "5"}, "'bos'.*collides"),
        ({"eos": "500"}, "'eos'.*outside"),
        ({"pad": "0"}, "'pad' applies to layout=delay only"),
        ({"layout": "coarse"}, "'layout'"),
        ({"features": "units"}, "'features'"),
        ({"dtype": "int8"}, "'dtype'"),
        ({"codec": "GPT2"}, "supported codecs: encodec, mimi, dac, xcodec"),
        ({"codec": "/nonexistent/codec"}, "'codec'"),
        ({"lyout": "flat"}, "lyout"),
    ],
)
def test_bad_args(files: dict[str, Path], overrides: dict[str, str], needle: str) -> None:
    subst = {
        "GPT2_SMALL": str(files["gpt2_small"]),
        "MUSICGEN": str(files["musicgen"]),
        "GPT2": str(files["gpt2"]),
    }
    args = _args(files, "flat")
    args.update({k: subst.get(v, v) for k, v in overrides.items()})
    with pytest.raises(ConfigError, match=needle) as info:
        CodecLM(**args)
    assert "\n" not in str(info.value)  # one line


def test_layout_is_required(files: dict[str, Path]) -> None:
    args = _args(files, "flat")
    del args["layout"]
    with pytest.raises(ConfigError, match="'layout' is required"):
        CodecLM(**args)


def test_identity(files: dict[str, Path], tmp_path: Path) -> None:
    lm_dir = tmp_path / "lm"
    shutil.copytree(files["gpt2"], lm_dir)
    args = {**_args(files, "flat"), "lm": str(lm_dir)}
    first, second = CodecLM(**args), CodecLM(**args, device="cpu")
    ident = first.identity()
    assert ident == second.identity()  # the device is not part of it
    json.dumps(ident)
    assert "device" not in json.dumps(ident)
    assert ident["class"] == "reference_models.codec_lm.CodecLM"
    assert ident["layout"] == {
        "name": "flat",
        "codebooks": K,
        "modelled_codebooks": K,
        "codebook_size": CS,
        "offset": 2,
        "codebook_offsets": [2, 34, 66, 98],
        "bos": 1,
        "eos": 1,
        "pad": None,
    }
    assert ident["dtype"] == "float32" and ident["features"] == "codes"
    weights = (files["encodec"] / "model.safetensors").read_bytes()
    assert ident["codec"]["weights_hash"] == hashlib.sha256(weights).hexdigest()
    assert ident["codec"]["frame_rate"] == 250.0 and ident["codec"]["sample_rate"] == 16000
    assert ident["lm"]["path"] == str(lm_dir.resolve())
    assert CodecLM(**{**args, "layout": "first"}).identity()["layout"]["name"] == "first"

    lm = transformers.GPT2LMHeadModel.from_pretrained(lm_dir, local_files_only=True)
    with torch.no_grad():
        lm.lm_head.weight.add_(0.01)
    lm.save_pretrained(lm_dir)
    changed = CodecLM(**args).identity()
    assert changed["lm"]["weights_hash"] != ident["lm"]["weights_hash"]
    assert changed["lm"]["config_hash"] == ident["lm"]["config_hash"]
    assert changed["codec"] == ident["codec"]


def test_bfloat16(files: dict[str, Path]) -> None:
    plugin = CodecLM(**_args(files, "delay", lm="musicgen", dtype="bf16"))
    assert plugin.dtype == "bfloat16" and plugin.identity()["dtype"] == "bfloat16"
    (r,) = plugin.loglikelihood([LoglikelihoodRequest(audio=_audio(900, seed=9))])
    assert np.isfinite(r.logprob) and r.num_tokens == K * plugin.codes(_audio(900, 9)).shape[1]


def test_request_errors(files: dict[str, Path], models: dict[str, CodecLM]) -> None:
    model = models["flat"]
    with pytest.raises(ValueError, match="no audio"):
        model.loglikelihood([LoglikelihoodRequest(text="hello", key="t")])
    with pytest.raises(ValueError, match="16000 Hz"):
        model.codes(Audio(np.zeros(4000, dtype=np.float32), 8000))
    with pytest.raises(DataError, match="samples"):
        model.codes(Audio(np.zeros(10, dtype=np.float32), 16000))  # under one hop
    short = CodecLM(**_args(files, "flat", lm="gpt2_ctx"))
    with pytest.raises(DataError, match="LM context of 16"):
        short.loglikelihood([LoglikelihoodRequest(audio=_audio(1500, seed=1), key="long")])
    with pytest.raises(ConfigError, match="max_seconds"):
        model.continue_([ContinueRequest(prompt=_audio(640, 1), max_seconds=0.001)])
    with pytest.raises(ConfigError, match="seed"):
        model.continue_([ContinueRequest(prompt=_audio(640, 1), seed=-1)])


# --- 6. end to end through the runner ------------------------------------------------------------


def test_end_to_end(files: dict[str, Path], tmp_path: Path) -> None:
    """``evaluate("codec-lm", ...)`` finds the plugin through its entry point; the sSC score
    equals a by-hand scoring of its log-probabilities; the 24 kHz Mimi run resamples."""
    from helpers import make_lexical, make_storycloze

    from speechlm_eval.audio import load_audio
    from speechlm_eval.runner import RunOptions, evaluate

    data = tmp_path / "data"
    make_lexical(data, ids=2)
    ssc = make_storycloze(data, "sStoryCloze", n=3)
    args = {"codec": str(files["encodec"]), "lm": str(files["gpt2"]), "layout": "flat"}
    opts = RunOptions(tasks="ssc,swuggy", data_dir=str(data), use_cache=str(tmp_path / "c.db"))
    res = evaluate("codec-lm", args, opts)
    ident = res["config"]["model_identity"]
    assert ident["layout"]["name"] == "flat" and len(ident["lm"]["weights_hash"]) == 64
    assert 0.0 <= res["results"]["swuggy"]["acc,nll_sum"] <= 1.0

    model = CodecLM(**args)
    expected = []
    for i in range(3):
        pos, neg = (
            r.logprob / r.num_tokens
            for r in model.loglikelihood(
                [
                    LoglikelihoodRequest(audio=load_audio(ssc / f"{i}_{k}.wav"))
                    for k in ("correct", "incorrect")
                ]
            )
        )
        expected.append(1.0 if pos > neg else 0.5 if pos == neg else 0.0)
    assert res["results"]["ssc"]["acc,nll_mean"] == pytest.approx(sum(expected) / 3)

    mimi = {"codec": str(files["mimi"]), "lm": str(files["gpt2"]), "layout": "first"}
    res = evaluate("codec-lm", mimi, RunOptions(tasks="swuggy", data_dir=str(data), no_cache=True))
    assert res["config"]["model_identity"]["codec"]["sample_rate"] == MIMI_SR
    assert 0.0 <= res["results"]["swuggy"]["acc,nll_sum"] <= 1.0
