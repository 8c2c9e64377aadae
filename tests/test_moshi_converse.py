"""Moshi's streaming ``converse`` on tiny, randomly initialised local models.

The models are built as in ``test_moshi_lm.py`` (nothing is downloaded), with a tiny Mimi
whose hop is Moshi's 80 ms (640 samples at 8 kHz: 4 SEANet stages and Mimi's x2
downsampling, as the real codec has 1920 at 24 kHz). Checked:

- the streaming Mimi (transformers' streaming encoder, the adapter's streaming decoder)
  against the offline encode / decode of the whole signal, frame by frame;
- the three token streams on the same weights, greedy: the ``moshi`` package's ``LMGen``
  (KV cache), a full package forward per step, a full transformers forward per step (the
  weights mapped by ``moshi_to_transformers``): the same tokens, text logits within 1e-4;
- the tokens a greedy session draws against one teacher-forced forward over the finished
  session (``LMModel.forward``, and the transformers backend's ``audio_logits``): each token
  is the argmax of the logits at its position;
- sessions through the harness' ``drive``: shapes, determinism, causality, the seed's role,
  and a ``converse_fullduplex`` run through ``evaluate`` on the built-in tiny dialogue data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from helpers import build_tiny  # noqa: E402

from reference_models.moshi_backends import (  # noqa: E402
    ConverseSampling,
    MimiStream,
    RecomputeStream,
    moshi_to_transformers,
)
from reference_models.moshi_lm import Moshi, MoshiSession  # noqa: E402
from speechlm_eval.audio import Audio  # noqa: E402
from speechlm_eval.errors import ConfigError  # noqa: E402
from speechlm_eval.model import (  # noqa: E402
    ConverseRequest,
    LoglikelihoodRequest,
    SessionInfo,
)
from speechlm_eval.runner import RunOptions, evaluate  # noqa: E402
from speechlm_eval.streaming import drive  # noqa: E402

try:
    import moshi.models  # noqa: F401

    HAVE_MOSHI = True
except ImportError:
    HAVE_MOSHI = False
NO_MOSHI = (
    "the 'moshi' package is not installed: pip install --no-deps moshi==0.2.13 einops sentencepiece"
)
needs_moshi = pytest.mark.skipif(not HAVE_MOSHI, reason=NO_MOSHI)

SR = 8000
HOP = 640  # 80 ms, Moshi's frame
CARD, TEXT_CARD, PAD = 32, 40, 3
DEP_Q = 2
DELAYS = [0, 0, 1, 0, 1]  # text, Moshi's codebooks, the user's (Moshi 7B's pattern, shrunk)
LAYERS, HEADS, DIM = 2, 2, 16
GREEDY = ConverseSampling(temp=0.0, temp_text=0.0)

TINY_MIMI = dict(
    hidden_size=16,
    num_filters=4,
    upsampling_ratios=[8, 5, 4, 2],  # 320 samples per SEANet step, then x2: 640
    frame_rate=12.5,
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
    sliding_window=8,  # shorter than the tests' sessions: the caches' windows are exercised
    sampling_rate=SR,
)
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
    context=256,
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


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny models run hundreds of small steps: on a shared CPU, torch's thread pool costs far
    more than it gains (measured 15 s -> 0.8 s for a 30-step session under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _hf_config() -> Any:
    # ffn_dim 42: the package's gated MLP of dim_feedforward 32 has 2 x (2 x 32 // 3) units.
    return transformers.MoshiConfig(
        vocab_size=TEXT_CARD,
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        ffn_dim=42,
        num_codebooks=DEP_Q,
        max_position_embeddings=256,
        sliding_window=256,
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
    """Saved tiny checkpoints: ``mimi``, ``hf`` (a random transformers Moshi) and, with the
    package, ``pkg`` (its format) and ``hf_shared`` (the same weights in transformers')."""
    root = tmp_path_factory.mktemp("moshi_converse")
    out = {k: root / k for k in ("mimi", "hf", "pkg", "hf_shared")}
    torch.manual_seed(0)
    mimi = transformers.MimiModel(transformers.MimiConfig(**TINY_MIMI)).eval()
    assert mimi.config.frame_size == HOP
    with torch.no_grad():  # transformers starts Mimi's codebooks at zero: every code alike
        for name, buf in mimi.named_buffers():
            if name.endswith(("codebook.embed", "codebook.embed_sum")):
                buf.copy_(0.1 * torch.randn(buf.shape))
        for p in mimi.parameters():  # non-zero biases, so the transposed-conv bias rule counts
            p.add_(0.02 * torch.randn_like(p))
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
        with torch.no_grad():
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
def model(files: dict[str, Path]) -> Moshi:
    """The reference path when the package is installed (LMGen), else transformers."""
    if HAVE_MOSHI:
        return Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text="silence")
    return Moshi(model=str(files["hf"]), text="silence")


def _speech(frames: int, seed: int) -> Audio:
    """Noise bursts with pauses (something for Mimi to encode), ``frames`` hops long."""
    rng = np.random.default_rng(seed)
    x = (0.2 * rng.standard_normal(frames * HOP)).astype(np.float32)
    x *= np.repeat(rng.random(frames) < 0.6, HOP)
    return Audio(x, SR, f"user{seed}")


def _run(m: Moshi, user: Audio, seed: int = 0) -> np.ndarray:
    return drive(m, ConverseRequest(user=user, key="s", seed=seed)).model.samples


def _user_codes(seed: int, frames: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CARD, (frames, DEP_Q))


def _tokens(stream: Any, user: np.ndarray) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Drive a token stream as a session does (first frame twice): the returned frames
    ``[F, 1 + dep_q]`` and the text logits of every step."""
    out, logits = [], []
    for i, u in enumerate(user):
        if i == 0:
            assert stream.step(u) is None  # reads initial tokens only
            logits.append(stream.text_logits)
        tok = stream.step(u)
        logits.append(stream.text_logits)
        out.append(tok)
    stream.close()
    return np.stack(out), logits


# --- Mimi, one frame at a time -----------------------------------------------------------------


def test_streaming_mimi_equals_offline(model: Moshi) -> None:
    audio = _speech(12, 1)
    codec = model.codec
    offline = codec.encode(audio.samples)
    ms = MimiStream(codec.model, codec.codebooks, HOP)
    streamed = np.stack([ms.encode(audio.samples[i * HOP : (i + 1) * HOP]) for i in range(12)], 1)
    np.testing.assert_array_equal(streamed, offline)
    assert len(np.unique(offline[0])) > 2  # the codes vary: the comparison means something
    wav = codec.decode(offline)
    ms = MimiStream(codec.model, codec.codebooks, HOP)
    pieces = np.concatenate([ms.decode(offline[:, i]) for i in range(12)])
    assert pieces.shape == (12 * HOP,)
    scale = float(np.abs(wav).max())
    assert scale > 1e-3
    np.testing.assert_allclose(pieces, wav[: 12 * HOP], atol=1e-5 * scale)


# --- the token streams against each other and against teacher forcing ---------------------------


@needs_moshi
def test_lmgen_and_recompute_agree_on_shared_weights(files: dict[str, Path]) -> None:
    """Greedy: LMGen (KV cache), the package's full forward per step and transformers' full
    forward per step on the same weights give the same tokens and text logits."""
    pkg = Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text="none")
    hf = Moshi(model=str(files["hf_shared"]), text="none")
    assert pkg.converse_impl == "lmgen" and hf.converse_impl == "recompute"
    user = _user_codes(5, 20)
    from reference_models.moshi_backends import PackageStream

    ref, ref_logits = _tokens(PackageStream(pkg.backend, GREEDY, 0), user)
    brute, brute_logits = _tokens(RecomputeStream(pkg.backend, GREEDY, 0), user)
    other, other_logits = _tokens(RecomputeStream(hf.backend, GREEDY, 0), user)
    assert ref.shape == (20, 1 + DEP_Q)
    np.testing.assert_array_equal(brute, ref)
    np.testing.assert_array_equal(other, ref)
    assert len(np.unique(ref[:, 1])) > 2  # not a constant sequence
    for a, b, c in zip(ref_logits, brute_logits, other_logits, strict=True):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(c, a, atol=1e-4, rtol=1e-4)


def _frame_aligned(tokens: np.ndarray, user: np.ndarray) -> torch.Tensor:
    """``[1, 1 + n_q, F]``: text, Moshi's codes, the user's, frame by frame."""
    return torch.as_tensor(np.concatenate([tokens, user], axis=1).T[None].astype(np.int64))


@needs_moshi
def test_lmgen_greedy_tokens_are_argmax_of_one_full_forward(files: dict[str, Path]) -> None:
    """Brute force: after a greedy session, one ``LMModel.forward`` over the whole session
    (the package's teacher-forced, non-streaming alignment) has its argmax, at every
    position, on the token that the streaming generator drew there."""
    from moshi.utils.compile import no_compile

    from reference_models.moshi_backends import PackageStream

    pkg = Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), text="none")
    user = _user_codes(6, 16)
    tokens, _ = _tokens(PackageStream(pkg.backend, GREEDY, 0), user)
    codes = _frame_aligned(tokens, user)
    with torch.inference_mode(), no_compile():
        out = pkg.backend.model(codes)
    audio = out.logits.argmax(-1)[0]  # [dep_q, F]
    text = out.text_logits.argmax(-1)[0, 0]  # [F]
    mask = out.mask[0]
    assert mask[0].all() and mask[1, :-1].all() and not mask[1, -1]  # the last delayed frame
    np.testing.assert_array_equal(audio[mask].numpy(), codes[0, 1 : 1 + DEP_Q][mask].numpy())
    np.testing.assert_array_equal(text.numpy(), tokens[:, 0])


def test_recompute_greedy_tokens_are_argmax_of_teacher_forcing(files: dict[str, Path]) -> None:
    """The transformers path (no package needed): the tokens of a greedy session are the
    argmax of ``audio_logits`` (one batched teacher-forced forward, the loglikelihood path)
    and of the text logits of one temporal forward over the whole grid."""
    hf = Moshi(model=str(files["hf"]), text="none")
    user = _user_codes(7, 14)
    tokens, logits = _tokens(RecomputeStream(hf.backend, GREEDY, 0), user)
    codes = _frame_aligned(tokens, user)
    lay = hf.backend.layout
    with torch.inference_mode():
        audio = hf.backend.audio_logits(codes)[0].argmax(-1)  # [dep_q, F]
        _, text_logits = hf.backend.temporal_text(lay.grid(codes)[:, :, :-1])
    scored = lay.scored(14, 14)
    np.testing.assert_array_equal(audio[scored].numpy(), codes[0, 1 : 1 + DEP_Q][scored].numpy())
    # text frame f is drawn at grid position f (text undelayed); step 0's logits are those of
    # the doubled first frame's first read, position 0.
    np.testing.assert_array_equal(text_logits[0].argmax(-1).numpy(), tokens[:, 0])
    torch.testing.assert_close(logits[0], text_logits[0, 0].float(), atol=1e-5, rtol=1e-5)
    assert len(np.unique(tokens[:, 1])) > 2


# --- sessions through the harness --------------------------------------------------------------


def test_session_frames_and_determinism(model: Moshi) -> None:
    assert "converse" in model.capabilities
    assert model.converse_frame_seconds == pytest.approx(0.08)
    user = _speech(10, 2)
    res = drive(model, ConverseRequest(user=user, key="a", seed=3))
    ch = res.model.samples
    assert ch.shape == user.samples.shape and ch.dtype == np.float32
    assert res.realtime["frames"] == 10
    assert not ch[:HOP].any()  # the harness' first frame: silence
    # Step 0 already returns Moshi's frame 0 (the first user frame is fed twice).
    assert np.abs(ch[HOP : 2 * HOP]).max() > 1e-3
    np.testing.assert_array_equal(_run(model, user, seed=3), ch)


def test_session_is_causal(model: Moshi) -> None:
    """Changing the user's audio from frame 6 on leaves the model channel up to frame 6
    (what steps 0..5 returned) exactly as it was, and changes what follows."""
    a, b = _speech(12, 3), _speech(12, 4)
    mixed = Audio(np.concatenate([a.samples[: 6 * HOP], b.samples[6 * HOP :]]), SR, "mixed")
    ca, cm = _run(model, a), _run(model, mixed)
    np.testing.assert_array_equal(cm[: 7 * HOP], ca[: 7 * HOP])
    assert not np.array_equal(cm[7 * HOP :], ca[7 * HOP :])


def test_seed_matters_only_when_sampling(files: dict[str, Path], model: Moshi) -> None:
    user = _speech(8, 5)
    assert not np.array_equal(_run(model, user, seed=1), _run(model, user, seed=2))
    kw = dict(converse_temp=0, converse_temp_text=0, text="silence")
    if HAVE_MOSHI:
        greedy = Moshi(model=str(files["pkg"]), mimi=str(files["mimi"]), **kw)
    else:
        greedy = Moshi(model=str(files["hf"]), **kw)
    np.testing.assert_array_equal(_run(greedy, user, seed=1), _run(greedy, user, seed=2))
    # The converse settings key converse's cached outputs only.
    assert greedy.identity() == model.identity()
    assert greedy.method_identity("converse") != model.method_identity("converse")
    assert greedy.method_identity("loglikelihood") == {}


def test_session_records_its_tokens(model: Moshi) -> None:
    probe = [LoglikelihoodRequest(audio=_speech(6, 9))]
    before = model.loglikelihood(probe)[0]
    session = model.open_session(SessionInfo("k", 0, SR, HOP))
    assert isinstance(session, MoshiSession)
    user = _speech(5, 6).samples
    for i in range(5):
        session.step(user[i * HOP : (i + 1) * HOP])
    session.close()
    assert len(session.text) == len(session.model_codes) == len(session.user_codes) == 5
    np.testing.assert_array_equal(np.stack(session.user_codes, 1), model.codes(_speech(5, 6)))
    # The session's streaming state is gone: the teacher-forced path is unchanged after it.
    after = model.loglikelihood(probe)[0]
    assert after.logprob == pytest.approx(before.logprob, rel=1e-6)
    assert after.num_tokens == before.num_tokens


def test_converse_config_errors(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="lmgen needs a moshi-package checkpoint"):
        Moshi(model=str(files["hf"]), text="none", converse_impl="lmgen")
    with pytest.raises(ConfigError, match="converse_temp"):
        Moshi(model=str(files["hf"]), text="none", converse_temp=-1)
    m = Moshi(model=str(files["hf"]), text="none")
    with pytest.raises(ValueError, match="one Mimi hop"):
        m.open_session(SessionInfo("k", 0, SR, 320))


def test_converse_fullduplex_end_to_end(model: Moshi, tmp_path: Path) -> None:
    data = tmp_path / "data"
    build_tiny(data, ["dialogue"])
    opts = RunOptions(
        tasks="converse_fullduplex",
        data_dir=str(data),
        data_source="official",
        output_path=str(tmp_path / "out"),
        use_cache=str(tmp_path / "cache.sqlite"),
        log_samples=True,
        limit=1,
    )
    res = evaluate("moshi", {}, opts, model=model)
    metrics = res["results"]["converse_fullduplex"]
    assert metrics  # scored
    sc = res["scoring"]["converse_fullduplex"]
    assert sc["protocol"]["frame_seconds"] == pytest.approx(0.08)
    assert sc["realtime"]["sessions"] == 1
    (rows,) = [p for p in (tmp_path / "out").rglob("samples_converse_fullduplex_*.jsonl")]
    assert len(rows.read_text().splitlines()) == 1
