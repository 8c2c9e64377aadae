"""Tests of the ``moshi`` plugin on tiny, randomly initialised local models.

Nothing is downloaded: a tiny Mimi codec, a tiny transformers ``MoshiForConditionalGeneration``
and (when Kyutai's ``moshi`` package is installed) a tiny package ``LMModel`` are built and
saved under pytest's tmp_path. The package model's weights are also mapped into a second
transformers model, so that both implementations run on the *same* weights.

Expected numbers come from brute force: each scored token's log-probability from a fresh
forward over its own prefix, with the delayed grid indexed by hand (transformers: temporal
decoder then depth decoder on the token's own step; package: ``forward_text`` then the
depformer's streaming one-codebook-at-a-time path that ``LMGen`` uses). Tests that need the
``moshi`` package skip with the install line when it is absent; the transformers path runs
without it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from reference_models.gslm_mini.sampling import SampleOptions  # noqa: E402
from reference_models.moshi_backends import ZERO, Backend, moshi_to_transformers  # noqa: E402
from reference_models.moshi_lm import Moshi  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError  # noqa: E402
from speechlm_eval.model import ContinueRequest, LoglikelihoodRequest  # noqa: E402

try:
    import moshi.models  # noqa: F401

    HAVE_MOSHI = True
except ImportError:
    HAVE_MOSHI = False
NO_MOSHI = (
    "the 'moshi' package is not installed: pip install --no-deps moshi==0.2.13 einops sentencepiece"
)
needs_moshi = pytest.mark.skipif(not HAVE_MOSHI, reason=NO_MOSHI)

SR = 24000
HOP = 128  # tiny Mimi: 24 kHz / 128 = 187.5 frames/s
CARD, TEXT_CARD, PAD = 32, 40, 3
DEP_Q = 2  # Moshi's own codebooks (the user has as many)
DELAYS = [0, 0, 1, 0, 1]  # text, Moshi's codebooks, the user's: Moshi 7B's pattern, shrunk
LAYERS, HEADS, DIM = 2, 2, 16

TINY_MIMI = dict(
    hidden_size=16,
    num_filters=4,
    upsampling_ratios=[8, 8],
    codebook_size=CARD,
    codebook_dim=8,
    num_quantizers=4,
    num_semantic_quantizers=1,
    vector_quantization_hidden_dimension=8,
    upsample_groups=16,
    num_hidden_layers=1,
    intermediate_size=32,
    num_attention_heads=2,
    num_key_value_heads=2,
    sliding_window=16,
    sampling_rate=SR,
)
# The package LMModel of ``../shared/reference/model-adapters.md`` §2 (two temporal layers).
PACKAGE_KWARGS: dict[str, Any] = dict(
    delays=DELAYS,
    n_q=2 * DEP_Q,
    dep_q=DEP_Q,
    card=CARD,
    text_card=TEXT_CARD,
    existing_text_padding_id=PAD,
    dim=DIM,
    num_heads=HEADS,
    num_layers=LAYERS,
    hidden_scale=2,
    context=64,
    positional_embedding="rope",
    norm="rms_norm_f32",
    gating="silu",
    depformer_dim=DIM,
    depformer_num_heads=2,
    depformer_num_layers=1,
    depformer_dim_feedforward=32,
    depformer_multi_linear=True,
    depformer_weights_per_step=True,
    depformer_pos_emb="none",
)


def _hf_config() -> Any:
    # ffn_dim 42: the package's gated MLP of dim_feedforward 32 has 2 x (2 x 32 // 3) units.
    return transformers.MoshiConfig(
        vocab_size=TEXT_CARD,
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        ffn_dim=42,
        num_codebooks=DEP_Q,
        max_position_embeddings=64,
        sliding_window=64,
        pad_token_id=PAD,
        audio_encoder_config=dict(model_type="mimi", **TINY_MIMI),
        depth_decoder_config=dict(
            hidden_size=DIM,
            num_hidden_layers=1,
            num_attention_heads=2,
            ffn_dim=42,
            sliding_window=4,
            max_position_embeddings=4,
        ),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Saved tiny checkpoints: ``mimi`` (transformers MimiModel), ``hf`` (a random transformers
    Moshi holding that Mimi), and with the package ``pkg`` (its format) and ``hf_shared``
    (the same weights in transformers' format)."""
    root = tmp_path_factory.mktemp("moshi")
    out = {k: root / k for k in ("mimi", "hf", "pkg", "hf_shared")}
    torch.manual_seed(0)
    mimi = transformers.MimiModel(transformers.MimiConfig(**TINY_MIMI)).eval()
    with torch.no_grad():  # transformers starts Mimi's codebooks at zero: every code alike
        for name, buf in mimi.named_buffers():
            if name.endswith(("codebook.embed", "codebook.embed_sum")):
                buf.copy_(0.1 * torch.randn(buf.shape))
    mimi.save_pretrained(out["mimi"])
    hf = transformers.MoshiForConditionalGeneration(_hf_config()).eval()
    with torch.no_grad():  # flexible linears start at std 1: near one-hot depth outputs
        for p in hf.depth_decoder.parameters():
            if p.dim() == 3:
                p.mul_(DIM**-0.5)
    hf.audio_encoder.load_state_dict(mimi.state_dict())
    hf.save_pretrained(out["hf"])
    if HAVE_MOSHI:
        from moshi.models.lm import LMModel
        from safetensors.torch import save_file

        lm = LMModel(device="cpu", dtype=torch.float32, **PACKAGE_KWARGS).eval()
        with torch.no_grad():  # norms start at 1: randomise them so their mapping is tested
            for name, p in lm.named_parameters():
                if name.endswith("alpha"):
                    p.uniform_(0.5, 1.5)
        out["pkg"].mkdir()
        state = {k: v.contiguous() for k, v in lm.state_dict().items()}
        save_file(state, str(out["pkg"] / "model.safetensors"))
        (out["pkg"] / "config.json").write_text(
            json.dumps({**PACKAGE_KWARGS, "model_type": "moshi"})
        )
        shared = transformers.MoshiForConditionalGeneration(_hf_config()).eval()
        missing, unexpected = shared.load_state_dict(
            moshi_to_transformers(lm.state_dict(), LAYERS, HEADS, depth_layers=1), strict=False
        )
        assert not unexpected and all(k.startswith("audio_encoder.") for k in missing)
        shared.audio_encoder.load_state_dict(mimi.state_dict())
        shared.save_pretrained(out["hf_shared"])
    return out


@pytest.fixture(scope="module")
def hf_model(files: dict[str, Path]) -> Moshi:
    return Moshi(model=str(files["hf"]), text="silence")


@pytest.fixture(scope="module")
def pkg_model(files: dict[str, Path]) -> Moshi:
    if not HAVE_MOSHI:
        pytest.skip(NO_MOSHI)
    return Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text="silence")


def _audio(n: int, seed: int) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(n)).astype(np.float32), SR, f"noise{seed}")


def _codes(seed: int, frames: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CARD, (DEP_Q, frames))


# --- brute force -----------------------------------------------------------------------------


def _streams(model: Moshi, codes: np.ndarray, text: str, user: str) -> np.ndarray:
    """The frame-aligned streams ``[1+n_q, F]`` written out by hand: text, Moshi's codes,
    the user's (the codec's codes of zeros, or the zero token)."""
    n = codes.shape[1]
    text_row = np.full((1, n), ZERO if text == "none" else PAD)
    if user == "zero":
        user_rows = np.full((DEP_Q, n), ZERO)
    else:
        user_rows = model.codec.encode(np.zeros(n * HOP, dtype=np.float32))[:DEP_Q, :n]
    return np.concatenate([text_row, codes, user_rows]).astype(np.int64)


def _at(streams: np.ndarray, j: int, step: int) -> int:
    """Grid step ``step`` of stream ``j``: frame ``step - 1 - delay``, or the initial token."""
    f = step - 1 - DELAYS[j]
    return (TEXT_CARD if j == 0 else CARD) if f < 0 else int(streams[j, f])


def _brute_hf(model: Moshi, streams: np.ndarray, k: int, t: int) -> torch.Tensor:
    """Log-probabilities of codebook ``k`` at frame ``t`` (transformers, one prefix)."""
    hf = model.backend.model
    p = t + DELAYS[1 + k]  # the temporal position that predicts it
    rows = []
    for s in range(p + 1):
        e = torch.zeros(DIM)
        for j in range(streams.shape[0]):
            tok = _at(streams, j, s)
            table = hf.decoder.model.embed_tokens if j == 0 else hf.embed_tokens[j - 1]
            if tok != ZERO:
                e = e + table.weight[tok]
        rows.append(e)
    state = hf.decoder(inputs_embeds=torch.stack(rows)[None]).last_hidden_state[0, -1]
    dd = hf.depth_decoder
    toks = [_at(streams, j, p + 1) for j in range(k + 1)]  # step p+1: text, codebooks < k
    embs = []
    for j, tok in enumerate(toks):
        table = dd.text_embed_tokens if j == 0 else dd.embed_tokens[j - 1]
        embs.append(torch.zeros(DIM) if tok == ZERO else table.weight[tok])
    out = dd(
        input_ids=torch.tensor([toks]).clamp(min=0),
        inputs_embeds=torch.stack(embs)[None],
        last_hidden_state=state[None, None],
        attention_mask=torch.ones((1, k + 1), dtype=torch.long),
    )
    return torch.log_softmax(out.logits[0, k].float(), -1)


def _brute_pkg(model: Moshi, streams: np.ndarray, k: int, t: int) -> torch.Tensor:
    """The same through the package: ``forward_text`` on the prefix, then the depformer one
    codebook at a time in streaming mode (``LMGen.depformer_step``'s path)."""
    from moshi.utils.compile import no_compile

    lm = model.backend.model
    p = t + DELAYS[1 + k]
    grid = torch.tensor([[_at(streams, j, s) for s in range(p + 1)] for j in range(len(DELAYS))])
    with no_compile():
        states, _ = lm.forward_text(grid[None])
        with lm.depformer.streaming(1):
            for cb in range(k + 1):
                tok = torch.tensor([[[_at(streams, cb, p + 1)]]])
                logits = lm.forward_depformer(cb, tok, states[:, -1:])
    return torch.log_softmax(logits[0, 0, 0].float(), -1)


def _scored(frames: int) -> list[tuple[int, int]]:
    return [(k, t) for k in range(DEP_Q) for t in range(frames) if t + DELAYS[1 + k] < frames]


def _brute_logprobs(model: Moshi, codes: np.ndarray, brute: Any, text: str, user: str):
    streams = _streams(model, codes, text, user)
    out = np.full(codes.shape, np.nan)
    with torch.inference_mode():
        for k, t in _scored(codes.shape[1]):
            out[k, t] = float(brute(model, streams, k, t)[codes[k, t]])
    return out


# --- 1. likelihood -------------------------------------------------------------------------------


@pytest.mark.parametrize("text,user", [("silence", "silence"), ("none", "zero")])
def test_transformers_logprobs_equal_brute_force(files, text: str, user: str) -> None:
    model = Moshi(model=str(files["hf"]), text=text, user=user)
    codes = _codes(1, 6)
    got = model.token_logprobs([codes])[0]
    want = _brute_logprobs(model, codes, _brute_hf, text, user)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # Every codebook-0 frame is scored; the delayed codebook loses its last frame.
    assert (~np.isnan(got)).sum() == 6 + (DEP_Q - 1) * 5


@needs_moshi
@pytest.mark.parametrize("text,user", [("silence", "silence"), ("none", "zero")])
def test_package_logprobs_equal_brute_force(files, text: str, user: str) -> None:
    model = Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text=text, user=user)
    assert model.implementation == "moshi"
    codes = _codes(2, 6)
    got = model.token_logprobs([codes])[0]
    want = _brute_logprobs(model, codes, _brute_pkg, text, user)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_loglikelihood_sums_scored_tokens(hf_model: Moshi) -> None:
    audio = _audio(1100, 3)  # 1100 / 128 -> 9 frames
    codes = hf_model.codes(audio)
    assert codes.shape == (DEP_Q, 9) and len(np.unique(codes)) > 3
    (r,) = hf_model.loglikelihood([LoglikelihoodRequest(audio=audio)])
    lp = hf_model.token_logprobs([codes])[0]
    assert r.num_tokens == 9 + (DEP_Q - 1) * 8
    assert r.logprob == pytest.approx(float(np.nansum(lp)), rel=1e-9)


@pytest.mark.parametrize("which", ["hf", "pkg"])
def test_batched_equals_single(hf_model: Moshi, which: str, request) -> None:
    model = hf_model if which == "hf" else request.getfixturevalue("pkg_model")
    reqs = [LoglikelihoodRequest(audio=_audio(n, seed=n)) for n in (700, 1300, 400)]
    batched = model.loglikelihood(reqs)
    single = [model.loglikelihood([r])[0] for r in reqs]
    for b, s in zip(batched, single, strict=True):
        assert b.num_tokens == s.num_tokens
        assert b.logprob == pytest.approx(s.logprob, rel=1e-5)
    assert len({b.num_tokens for b in batched}) == 3


def _order(k: int, t: int) -> tuple[int, int]:
    """When a Moshi-stream token is predicted: (temporal position, depth index)."""
    return (t + DELAYS[1 + k], k)


@pytest.mark.parametrize("which", ["hf", "pkg"])
def test_no_future_token_changes_an_earlier_logprob(hf_model: Moshi, which: str, request) -> None:
    """Changing one token (Moshi's or the user's) leaves every token predicted before it as
    it was: no step reads its own answer (the transformers labels path would)."""
    model = hf_model if which == "hf" else request.getfixturevalue("pkg_model")
    codes = _codes(4, 7)
    base = model.token_logprobs([codes])[0]
    for k, t in [(0, 3), (1, 2), (0, 6)]:
        changed = codes.copy()
        changed[k, t] = (changed[k, t] + 1) % CARD
        lp = model.token_logprobs([changed])[0]
        for k2, t2 in _scored(7):
            if _order(k2, t2) < _order(k, t):
                assert lp[k2, t2] == pytest.approx(base[k2, t2], abs=1e-5), (k, t, k2, t2)
        later = [(k2, t2) for k2, t2 in _scored(7) if _order(k2, t2) > _order(k, t)]
        if later:
            assert any(abs(lp[x] - base[x]) > 1e-6 for x in later)
    # The user's frame t enters the temporal state from grid step t + 1 + delay on.
    user = model._user_codes(7).copy()
    user[0, 4] = (user[0, 4] + 1) % CARD
    model._silence[7] = user
    try:
        lp = model.token_logprobs([codes])[0]
    finally:
        model._silence.clear()
    for k2, t2 in _scored(7):
        if _order(k2, t2)[0] <= 4:  # positions 0..4 read grid steps up to 4, user frames < 4
            assert lp[k2, t2] == pytest.approx(base[k2, t2], abs=1e-5)


def test_labels_path_leaks_and_is_not_used(hf_model: Moshi, monkeypatch) -> None:
    """transformers' ``forward(text_labels=, audio_labels=)`` scores step t's audio from a
    state that has read step t: its codebook-0 logits at t move when that very code moves.
    The plugin never calls that forward, nor the depth decoder with labels."""
    hf = hf_model.backend.model
    codes = torch.from_numpy(_codes(5, 5))[None]
    user = torch.from_numpy(hf_model._user_codes(5))[None]
    text = torch.full((1, 5), PAD)

    def labels_logits(moshi_codes: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = hf(
                input_ids=text,
                moshi_audio_codes=moshi_codes,
                user_audio_codes=user,
                text_labels=text,
                audio_labels=moshi_codes,
            )
        return out.audio_logits.reshape(5, DEP_Q, CARD)

    moved = codes.clone()
    moved[0, 0, 3] = (moved[0, 0, 3] + 1) % CARD
    assert not torch.allclose(labels_logits(codes)[3, 0], labels_logits(moved)[3, 0])

    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("MoshiForConditionalGeneration.forward was called")

    depth_forward = type(hf.depth_decoder).forward

    def no_labels(self: Any, *a: Any, **k: Any) -> Any:
        assert k.get("labels") is None
        return depth_forward(self, *a, **k)

    monkeypatch.setattr(type(hf), "forward", refuse)
    monkeypatch.setattr(type(hf.depth_decoder), "forward", no_labels)
    (r,) = hf_model.loglikelihood([LoglikelihoodRequest(audio=_audio(900, 6))])
    assert np.isfinite(r.logprob)
    hf_model.continue_([ContinueRequest(prompt=_audio(500, 7), max_seconds=3 / 187.5)])


# --- 2. the two implementations on the same weights ----------------------------------------------


@needs_moshi
@pytest.mark.parametrize("text,user", [("silence", "silence"), ("none", "zero")])
def test_package_and_transformers_agree(files, text: str, user: str) -> None:
    """Reference (package ``LMModel.forward``) vs transformers on the same tiny weights:
    per-token log-probabilities, and greedy continuations."""
    pkg = Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text=text, user=user)
    hf = Moshi(model=str(files["hf_shared"]), text=text, user=user)
    assert (pkg.implementation, hf.implementation) == ("moshi", "transformers")
    codes = [_codes(8, 9), _codes(9, 5)]
    for a, b in zip(pkg.token_logprobs(codes), hf.token_logprobs(codes), strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    # The grid the transformers path builds is the package's own (Backend.audio_logits, the
    # generic path, against LMModel.forward on the package model).
    batch = pkg._streams(codes, 9)
    with pkg.backend.running():
        ref = pkg.backend.audio_logits(batch)
        generic = Backend.audio_logits(pkg.backend, batch)
    for i, c in enumerate(codes):
        mask = pkg.backend.layout.scored(c.shape[1], 9)
        torch.testing.assert_close(generic[i][mask], ref[i][mask], rtol=1e-5, atol=1e-5)
    greedy = SampleOptions(temperature=0.0)
    prompt = _codes(10, 4)
    a = pkg.sample_codes(prompt, 5, greedy, torch.Generator())
    b = hf.sample_codes(prompt, 5, greedy, torch.Generator())
    np.testing.assert_array_equal(a, b)


# --- 3. continue -------------------------------------------------------------------------------


def test_greedy_continuation_equals_argmax_loop(hf_model: Moshi) -> None:
    """Temperature 0: each new token is the argmax of its brute-force distribution given the
    prompt and the tokens drawn before it (in the depth transformer's order)."""
    prompt = _codes(11, 3)
    got = hf_model.sample_codes(prompt, 3, SampleOptions(temperature=0.0), torch.Generator())
    assert got.shape == (DEP_Q, 3)
    seq = np.concatenate([prompt, np.zeros((DEP_Q, 4), dtype=np.int64)], axis=1)  # 3 + 3 + delay
    todo = sorted(((k, t) for k in range(DEP_Q) for t in range(3, 7)), key=lambda x: _order(*x))
    with torch.inference_mode():
        for k, t in todo:
            if _order(k, t)[0] > 3 + 3 - 1 + 1:  # past the last position the loop runs
                continue
            streams = _streams(hf_model, seq, "silence", "silence")
            seq[k, t] = int(torch.argmax(_brute_hf(hf_model, streams, k, t)))
    np.testing.assert_array_equal(got, seq[:, 3:6])


def test_continue_is_seeded_per_sample(hf_model: Moshi) -> None:
    prompt = _audio(600, 12)  # 5 frames
    req = ContinueRequest(prompt=prompt, num_samples=2, max_seconds=4 / 187.5, seed=3)
    a = hf_model.continue_([req])[0]
    one = ContinueRequest(prompt=prompt, num_samples=1, max_seconds=4 / 187.5, seed=3)
    b = hf_model.continue_([one, req])
    assert [x.samples.size for x in a] == [4 * HOP, 4 * HOP]
    assert all(x.sample_rate == SR for x in a)
    # Sample 0 is the same whatever num_samples and the batch around it.
    np.testing.assert_array_equal(a[0].samples, b[0][0].samples)
    np.testing.assert_array_equal(a[1].samples, b[1][1].samples)
    np.testing.assert_array_equal(a[1].samples, hf_model.continue_([req])[0][1].samples)
    assert not np.array_equal(a[0].samples, a[1].samples)  # another seed, other audio
    other = ContinueRequest(prompt=prompt, num_samples=1, max_seconds=4 / 187.5, seed=4)
    assert not np.array_equal(a[0].samples, hf_model.continue_([other])[0][0].samples)


def test_continue_with_prompt(files) -> None:
    model = Moshi(model=str(files["hf"]), text="none", with_prompt="true")
    prompt = _audio(600, 13)
    (out,) = model.continue_([ContinueRequest(prompt=prompt, max_seconds=2 / 187.5)])
    assert out[0].samples.size == (5 + 2) * HOP


# --- 4. identity, options, errors -------------------------------------------------------------


def test_identity(files, hf_model: Moshi) -> None:
    ident = hf_model.identity()
    json.dumps(ident)
    assert ident["class"] == "reference_models.moshi_lm.Moshi"
    assert ident["implementation"] == {"name": "transformers"}
    weights = (files["hf"] / "model.safetensors").read_bytes()
    assert ident["model"]["weights_hash"] == hashlib.sha256(weights).hexdigest()
    assert ident["model"]["format"] == "transformers"
    assert ident["mimi"]["embedded"] and ident["mimi"]["codebooks"] == DEP_Q
    assert ident["layout"]["delays"] == DELAYS and ident["layout"]["text_padding_id"] == PAD
    assert (ident["text"], ident["user"], ident["stream"]) == ("silence", "silence", "model")
    assert "device" not in json.dumps(ident)
    same = Moshi(model=str(files["hf"]), text="silence", device="cpu", batch_size=8)
    assert same.identity() == ident
    assert Moshi(model=str(files["hf"]), text="none").identity()["text"] == "none"
    with_mimi = Moshi(model=str(files["hf"]), mimi=str(files["mimi"]), text="silence")
    mimi_weights = (files["mimi"] / "model.safetensors").read_bytes()
    assert with_mimi.identity()["mimi"]["weights_hash"] == hashlib.sha256(mimi_weights).hexdigest()
    # The same Mimi weights, embedded or not, give the same codes.
    audio = _audio(900, 14)
    np.testing.assert_array_equal(with_mimi.codes(audio), hf_model.codes(audio))


@needs_moshi
def test_package_identity(files, pkg_model: Moshi) -> None:
    ident = pkg_model.identity()
    assert ident["implementation"]["name"] == "moshi"
    assert ident["implementation"]["moshi_version"]
    pkg = files["pkg"]
    assert ident["model"]["format"] == "moshi"
    sha = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in pkg.iterdir()}
    assert ident["model"]["weights_hash"] == sha["model.safetensors"]
    assert ident["model"]["config_hash"] == sha["config.json"]


def test_bfloat16(files, hf_model: Moshi) -> None:
    model = Moshi(model=str(files["hf"]), text="silence", dtype="bf16")
    assert model.dtype == "bfloat16" and model.identity()["dtype"] == "bfloat16"
    assert next(model.backend.model.decoder.parameters()).dtype == torch.bfloat16
    audio = _audio(900, 15)
    np.testing.assert_array_equal(model.codes(audio), hf_model.codes(audio))  # Mimi in float32
    (r,) = model.loglikelihood([LoglikelihoodRequest(audio=audio)])
    (ref,) = hf_model.loglikelihood([LoglikelihoodRequest(audio=audio)])
    assert np.isfinite(r.logprob) and r.num_tokens == ref.num_tokens


def _one_line_error(match: str, **kwargs: Any) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        Moshi(**kwargs)
    assert "\n" not in str(e.value)


def test_config_errors(files, tmp_path: Path, monkeypatch) -> None:
    hf = str(files["hf"])
    _one_line_error("'text' is required", model=hf)
    _one_line_error("'text' must be one of none, silence", model=hf, text="transcript")
    _one_line_error("the user stream is input", model=hf, text="none", stream="user")
    _one_line_error("'dtype' must be one of float32, bfloat16", model=hf, text="none", dtype="fp16")
    _one_line_error("unknown model argument", model=hf, text="none", layers="3")
    _one_line_error("not an existing directory", model=str(tmp_path / "nope"), text="none")
    encodec = tmp_path / "encodec"
    transformers.EncodecConfig().save_pretrained(encodec)
    _one_line_error("is a 'encodec' model", model=hf, mimi=str(encodec), text="none")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "config.json").write_text(json.dumps({"model_type": "hibiki", "dep_q": 8}))
    _one_line_error("'mimi' is required", model=str(pkg), text="none")
    # Without the package, a package checkpoint names the --no-deps install.
    monkeypatch.setitem(sys.modules, "moshi.models", None)
    _one_line_error("--no-deps moshi==0.2.13", model=str(pkg), mimi=str(files["mimi"]), text="none")


@needs_moshi
def test_package_config_errors(files, tmp_path: Path) -> None:
    mimi = str(files["mimi"])
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "config.json").write_text(json.dumps({"model_type": "hibiki"}))
    _one_line_error("'hibiki' checkpoint", model=str(pkg), mimi=mimi, text="none")
    (pkg / "config.json").write_text(json.dumps({**PACKAGE_KWARGS, "lora": True}))
    _one_line_error("sets 'lora'", model=str(pkg), mimi=mimi, text="none")
    (pkg / "config.json").write_text(json.dumps(PACKAGE_KWARGS))
    _one_line_error("has no model.safetensors", model=str(pkg), mimi=mimi, text="none")


def test_request_errors(hf_model: Moshi) -> None:
    with pytest.raises(ValueError, match="no audio"):
        hf_model.loglikelihood([LoglikelihoodRequest(text="hello", key="t")])
    with pytest.raises(ValueError, match="cannot score a transcript"):
        hf_model.loglikelihood([LoglikelihoodRequest(audio=_audio(600, 1), text="hi", key="t")])
    with pytest.raises(ValueError, match="24000 Hz"):
        hf_model.codes(Audio(np.zeros(4000, dtype=np.float32), 16000))
    with pytest.raises(ConfigError, match="max_seconds"):
        hf_model.continue_([ContinueRequest(prompt=_audio(600, 1), max_seconds=0.001)])


# --- 5. end to end through the runner -------------------------------------------------------------


def test_end_to_end(files, tmp_path: Path) -> None:
    """``evaluate("moshi", ...)`` finds the plugin through its entry point, resamples the
    16 kHz data to Mimi's 24 kHz, and scores sStoryCloze as a by-hand computation."""
    from helpers import make_storycloze

    from speechlm_eval.audio import load_audio
    from speechlm_eval.runner import RunOptions, evaluate

    data = tmp_path / "data"
    ssc = make_storycloze(data, "sStoryCloze", n=2)
    args = {"model": str(files["hf"]), "text": "none"}
    res = evaluate("moshi", args, RunOptions(tasks="ssc", data_dir=str(data), no_cache=True))
    assert res["config"]["model_identity"]["text"] == "none"
    model = Moshi(**args)
    expected = []
    for i in range(2):
        pos, neg = (
            r.logprob / r.num_tokens
            for r in model.loglikelihood(
                [
                    LoglikelihoodRequest(audio=load_audio(ssc / f"{i}_{k}.wav").resample(SR))
                    for k in ("correct", "incorrect")
                ]
            )
        )
        expected.append(1.0 if pos > neg else 0.5 if pos == neg else 0.0)
    assert res["results"]["ssc"]["acc,nll_mean"] == pytest.approx(sum(expected) / 2)
