"""Moshi's language model behind one teacher-forced interface, from either implementation.

Moshi (Kyutai) models ``1 + n_q`` parallel token streams at 12.5 frames per second: stream 0
is text (the "inner monologue"), streams ``1 .. dep_q`` are Moshi's own audio (Mimi codes,
``dep_q`` codebooks) and streams ``dep_q + 1 .. n_q`` the user's audio. A *temporal*
transformer reads every stream up to step ``s`` and predicts the text of step ``s + 1``; a
small *depth* transformer then predicts Moshi's ``dep_q`` audio codebooks of step ``s + 1``
one after the other, from the temporal state, the text token of step ``s + 1`` and the
codebooks already predicted at that step. The user's stream is input only: nothing in the
model predicts it.

Streams are *delayed*: stream ``j`` at grid step ``s >= 1`` holds frame ``s - 1 - delays[j]``
(Moshi 7B: text and codebook 0 of each speaker undelayed, codebooks 1-7 one step late), and
step 0 holds the initial tokens (``text_card`` for text, ``card`` for audio). See
:meth:`StreamLayout.grid`.

Two implementations load the same model:

- :class:`PackageBackend`: Kyutai's ``moshi`` package (``moshi.models.lm.LMModel``), the
  **reference**: ``LMModel.forward(codes)`` returns audio logits already aligned with
  ``codes`` (delays and the one-step shift handled inside;
  ``kyutai-labs/moshi: moshi/moshi/models/lm.py``). ``moshi`` 0.2.13 pins ``torch<2.10``,
  so it is installed with ``pip install --no-deps moshi==0.2.13 einops sentencepiece``.
- :class:`TransformersBackend`: transformers' ``MoshiForConditionalGeneration``. Its
  ``forward`` with ``text_labels`` / ``audio_labels`` is **not** used: there the depth
  decoder predicts the audio of step ``s`` from a temporal state that has already read step
  ``s`` (``labels == inputs`` leaks the answer). This backend builds the delayed grid itself,
  runs the temporal decoder on ``inputs_embeds`` and the depth decoder on the next step's
  tokens, with no labels anywhere.

Both honour Moshi's *zero token* (``-1``): an input that contributes nothing (its embedding
is exactly zero), which ``LMModel`` implements natively and :class:`TransformersBackend`
emulates by masking. Loading is from local files only; nothing is downloaded.

For ``converse``, a :class:`TokenStream` runs the LM one 80 ms step at a time with
``LMGen.step``'s contract: :class:`PackageStream` is ``LMGen`` itself (the reference, KV
cache), :class:`RecomputeStream` the brute force on either backend (a full forward per
step). :class:`MimiStream` encodes and decodes Mimi one frame at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity, sha256_file

from .codec_lm import _draw
from .gslm_mini.sampling import SampleOptions, _warpers

__all__ = [
    "INSTALL_MOSHI",
    "ZERO",
    "Backend",
    "ConverseSampling",
    "MimiStream",
    "PackageBackend",
    "PackageStream",
    "RecomputeStream",
    "StreamLayout",
    "TokenStream",
    "TransformersBackend",
    "checkpoint_format",
    "load_backend",
    "moshi_to_transformers",
    "open_stream",
]

ZERO = -1  # Moshi's ``zero_token_id``: no input at this position (embedding exactly zero)
INSTALL_MOSHI = (
    "pip install --no-deps moshi==0.2.13 einops sentencepiece (moshi pins torch<2.10 and "
    "other versions; --no-deps keeps this environment's torch)"
)
# The name of the weights file in Kyutai's PyTorch repositories (``loaders.MOSHI_NAME``).
MOSHI_WEIGHTS = "model.safetensors"
# Keys of a ``moshi``-package config.json that are not ``LMModel`` arguments (the loader's
# ``CheckpointInfo.from_hf_repo`` pops the same ones).
_NOT_LM_KWARGS = (
    "moshi_name",
    "mimi_name",
    "mimi_config_name",
    "tokenizer_name",
    "lora_name",
    "model_type",
    "lm_gen_config",
    "tts_config",
    "stt_config",
    "model_id",
)


# --- the token layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamLayout:
    """Moshi's streams: ``1 + n_q`` of them, their ``delays``, vocabulary sizes and ids.

    ``card``: codes per audio codebook (2048); ``text_card``: text vocabulary (32000);
    ``text_pad``: the text padding id (3 for Moshi: what the inner monologue writes while no
    word is spoken), or None when the checkpoint does not say.
    """

    delays: tuple[int, ...]
    dep_q: int
    n_q: int
    card: int
    text_card: int
    text_pad: int | None

    @property
    def user_q(self) -> int:
        """Codebooks of the user's stream (input only)."""
        return self.n_q - self.dep_q

    @property
    def model_delays(self) -> tuple[int, ...]:
        """Delays of Moshi's own ``dep_q`` codebooks."""
        return self.delays[1 : 1 + self.dep_q]

    def describe(self) -> dict[str, Any]:
        """The layout as recorded in the identity."""
        return {
            "n_q": self.n_q,
            "dep_q": self.dep_q,
            "card": self.card,
            "text_card": self.text_card,
            "text_padding_id": self.text_pad,
            "delays": list(self.delays),
        }

    def grid(self, codes: torch.Tensor) -> torch.Tensor:
        """The delayed input grid ``[B, 1+n_q, T+1]`` of frame-aligned ``codes [B, 1+n_q, T]``.

        Step 0 holds the initial tokens; stream ``j`` at step ``s >= 1`` holds frame
        ``s - 1 - delays[j]`` of ``codes``, or the initial token where that frame is negative.
        This is ``LMModel.forward``'s ``cat([initial, _delay_sequence(codes)])``, written here
        so that the transformers backend reads the same grid.
        """
        b, n_streams, t = codes.shape
        out = torch.empty((b, n_streams, t + 1), dtype=codes.dtype, device=codes.device)
        for j, d in enumerate(self.delays):
            first = self.text_card if j == 0 else self.card
            n = max(t - d, 0)  # frames of stream j inside the grid
            out[:, j, : t + 1 - n] = first
            out[:, j, t + 1 - n :] = codes[:, j, :n]
        return out

    def scored(self, frames: int, width: int) -> torch.Tensor:
        """Mask ``[dep_q, width]`` of the model-stream tokens of a ``frames``-frame sequence
        that the model predicts: frame ``t`` of codebook ``k`` when ``t + delay_k`` is a step
        of the sequence (``< frames``). The last ``delay_k`` frames of a delayed codebook
        would be predicted after the sequence ends, from inputs it does not have, and are not
        scored (``LMModel.forward``'s mask drops the same positions)."""
        t = torch.arange(width)
        return torch.stack([t + d < frames for d in self.model_delays])


# --- the two implementations -----------------------------------------------------------------


class Backend:
    """One implementation of Moshi's LM, in eval mode, with the teacher-forced calls the
    adapter needs (subclasses implement :meth:`temporal` and :meth:`depth`)."""

    name: str = ""

    def __init__(self, model: torch.nn.Module, layout: StreamLayout) -> None:
        self.model, self.layout = model, layout

    @property
    def device(self) -> torch.device:
        """Where the LM's weights are."""
        return next(self.model.parameters()).device

    @contextmanager
    def running(self) -> Iterator[None]:
        """Context of every call (no gradients; the package also disables torch.compile)."""
        with torch.inference_mode():
            yield

    def temporal(self, grid: torch.Tensor) -> torch.Tensor:
        """Temporal transformer states ``[B, S, D]`` (after its final norm) of the input
        ``grid [B, 1+n_q, S]``; position ``s`` has read grid steps ``0..s``."""
        raise NotImplementedError

    def temporal_text(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(:meth:`temporal` states ``[B, S, D]``, text logits ``[B, S, text_card]``) of
        ``grid``: position ``s`` predicts the text token of grid step ``s + 1``."""
        raise NotImplementedError

    def depth(self, state: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Audio logits ``[N, dep_q, card]`` of one step from the temporal ``state [N, D]``
        of the step before and the step's ``inputs [N, dep_q]``: the text token, then
        codebooks ``0 .. dep_q-2``. Causal: codebook ``k``'s logits read ``inputs[:, :k+1]``
        only."""
        raise NotImplementedError

    def audio_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, dep_q, T, card]`` of Moshi's audio codes, aligned with the
        frame-aligned ``codes [B, 1+n_q, T]``: entry ``[b, k, t]`` predicts
        ``codes[b, 1+k, t]``. Entries outside :meth:`StreamLayout.scored` are undefined."""
        lay = self.layout
        b, _, t = codes.shape
        grid = lay.grid(codes.to(self.device))
        states = self.temporal(grid[:, :, :t])  # position s predicts grid step s + 1
        inputs = grid[:, : lay.dep_q, 1:].transpose(1, 2).reshape(b * t, lay.dep_q)
        logits = self.depth(states.reshape(b * t, -1), inputs).reshape(b, t, lay.dep_q, -1)
        logits = logits.transpose(1, 2)  # [B, dep_q, S, card], S = grid position
        # Undelay: codebook k's frame t sits at grid step t + d_k + 1, predicted at t + d_k.
        out = torch.full_like(logits, float("nan"))
        for k, d in enumerate(lay.model_delays):
            out[:, k, : t - d] = logits[:, k, d:]
        return out


class PackageBackend(Backend):
    """Kyutai's ``moshi`` package: ``LMModel`` (the reference implementation)."""

    name = "moshi"

    @contextmanager
    def running(self) -> Iterator[None]:
        from moshi.utils.compile import no_compile

        # The package compiles its RoPE and gating kernels with torch.compile on first use
        # (a C++ toolchain, seconds of start-up); eager mode computes the same thing.
        with torch.inference_mode(), no_compile():
            yield

    def temporal(self, grid: torch.Tensor) -> torch.Tensor:
        return self.temporal_text(grid)[0]

    def temporal_text(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, text_logits = self.model.forward_text(grid.to(self.device))
        return states, text_logits[:, 0]

    def depth(self, state: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        seq = torch.zeros((inputs.shape[0], 1 + lay.n_q, 1), dtype=torch.long, device=self.device)
        seq[:, : lay.dep_q, 0] = inputs  # only the first dep_q rows are read
        logits = self.model.forward_depformer_training(seq, state[:, None])  # [N, dep_q, 1, card]
        return logits[:, :, 0]

    def audio_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """``LMModel.forward(codes).logits``: the package's own alignment (the reference)."""
        return self.model(codes.to(self.device)).logits


def _embed(table: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``table(ids)`` with zero rows where ``ids`` is the zero token (Moshi's semantics)."""
    emb = table(ids.clamp(min=0))
    return torch.where((ids == ZERO)[..., None], torch.zeros_like(emb), emb)


class TransformersBackend(Backend):
    """transformers' ``MoshiForConditionalGeneration``, run without labels (see the module
    doc): temporal decoder on summed stream embeddings, depth decoder on the next step."""

    name = "transformers"

    def temporal(self, grid: torch.Tensor) -> torch.Tensor:
        return self.temporal_text(grid)[0]

    def temporal_text(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        grid = grid.to(self.device)
        emb = _embed(m.decoder.model.embed_tokens, grid[:, 0])
        for j in range(self.layout.n_q):  # Moshi's codebooks, then the user's
            emb = emb + _embed(m.embed_tokens[j], grid[:, 1 + j])
        out = m.decoder(inputs_embeds=emb, use_cache=False)
        return out.last_hidden_state, out.logits

    def depth(self, state: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        dd = self.model.depth_decoder
        inputs = inputs.to(self.device)
        tables = [dd.text_embed_tokens, *dd.embed_tokens][: inputs.shape[1]]
        parts = [_embed(table, inputs[:, k : k + 1]) for k, table in enumerate(tables)]
        # An explicit all-ones mask makes the depth decoder build its causal mask whatever the
        # attention implementation (without one it relies on the kernel's is_causal default).
        out = dd(
            input_ids=inputs.clamp(min=0),
            inputs_embeds=torch.cat(parts, dim=1),
            last_hidden_state=state[:, None],
            attention_mask=torch.ones(inputs.shape, dtype=torch.long, device=self.device),
            use_cache=False,
        )
        return out.logits


# --- streaming (converse) --------------------------------------------------------------------


@dataclass(frozen=True)
class ConverseSampling:
    """How Moshi samples its own tokens in a conversation: temperature and top-k of its audio
    codebooks (``temp``, ``top_k``) and of its text, the inner monologue (``temp_text``,
    ``top_k_text``). Temperature 0 is greedy (argmax); top-k 0 keeps every token. The
    defaults are ``moshi.models.LMGen``'s (package 0.2.13): 0.8 / 250 audio, 0.7 / 25 text."""

    temp: float = 0.8
    temp_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25

    def options(self) -> tuple[SampleOptions, SampleOptions]:
        """(text, audio) options for the harness' sampler (:func:`codec_lm._draw`)."""
        return (
            SampleOptions(self.temp_text, self.top_k_text or None, None),
            SampleOptions(self.temp, self.top_k or None, None),
        )

    def describe(self) -> dict[str, Any]:
        """The settings as recorded in the converse method identity."""
        return {
            "temp": self.temp,
            "top_k": self.top_k,
            "temp_text": self.temp_text,
            "top_k_text": self.top_k_text,
        }


class TokenStream:
    """Moshi's LM run one 80 ms step at a time, with ``moshi.models.LMGen.step``'s contract.

    Step ``s`` (0, 1, ...) gets ``user`` codes ``X_s`` (``[user_q]`` ints): user codebook
    ``j`` of delay ``d_j`` enters grid step ``s`` as ``X_{s - d_j}`` (the initial token while
    ``s <= d_j``, so ``X_0`` is never read: feed the first frame twice, as
    ``moshi/run_inference.py`` does, to align user frame ``f`` with Moshi's frame ``f``). The
    step samples the text token and Moshi's ``dep_q`` codebooks of grid step ``s + 1`` and
    returns Moshi's frame ``s - max(delays)`` (``[1 + dep_q]``: text, codebooks) once every
    codebook of it is sampled, else None. ``text_logits``: the logits the last text token was
    drawn from (float32, CPU), kept for cross-checks."""

    text_logits: torch.Tensor | None = None

    def step(self, user: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """End the stream (frees streaming state)."""


class RecomputeStream(TokenStream):
    """The contract of :class:`TokenStream` on any :class:`Backend`, by brute force: each step
    re-runs the temporal transformer on the whole grid so far (no cache; O(T^2) in the
    session length) and the depth transformer one codebook at a time, exactly the
    teacher-forced calls that :meth:`Backend.audio_logits` scores. Draws come from the
    harness' sampler (Hugging Face warpers, a ``torch.Generator`` seeded with ``seed``).
    The converse path of a transformers checkpoint, and for a package checkpoint the brute
    force that its :class:`PackageStream` is checked against."""

    def __init__(self, backend: Backend, sampling: ConverseSampling, seed: int) -> None:
        self.backend, self.lay = backend, backend.layout
        self.codes = torch.full((1, 1 + self.lay.n_q, 0), ZERO, dtype=torch.long)
        self.offset = 0
        self.generator = torch.Generator().manual_seed(int(seed))
        self.text_opts, self.audio_opts = sampling.options()
        self.text_warpers, self.audio_warpers = _warpers(self.text_opts), _warpers(self.audio_opts)
        self.all_text = torch.ones(self.lay.text_card, dtype=torch.bool)
        self.all_audio = torch.ones(self.lay.card, dtype=torch.bool)

    def step(self, user: np.ndarray) -> np.ndarray | None:
        lay, s = self.lay, self.offset
        # Width s + 1: frame s receives the text (and undelayed codebooks) drawn now.
        grow = torch.full((1, 1 + lay.n_q, s + 1 - self.codes.shape[2]), ZERO, dtype=torch.long)
        self.codes = torch.cat([self.codes, grow], dim=2)
        if s >= 1:  # X_s sits at grid step s, i.e. frame s - 1 of the frame-aligned codes
            self.codes[0, 1 + lay.dep_q :, s - 1] = torch.as_tensor(user[: lay.user_q])
        grid = lay.grid(self.codes[:, :, :s])  # grid steps 0..s
        with self.backend.running():
            states, text_logits = self.backend.temporal_text(grid)
            state = states[:, s]
            self.text_logits = text_logits[0, s].float().cpu()
            tok = _draw(text_logits[0, s], self.all_text, self.text_opts, self.text_warpers,
                        self.generator)  # fmt: skip
            self._put(0, s, tok)
            inputs = torch.full((1, lay.dep_q), ZERO, dtype=torch.long)
            inputs[0, 0] = tok
            for k in range(lay.dep_q):
                logits = self.backend.depth(state, inputs)[0, k]
                tok = _draw(logits, self.all_audio, self.audio_opts, self.audio_warpers,
                            self.generator)  # fmt: skip
                self._put(1 + k, s, tok)
                if k + 1 < lay.dep_q:
                    inputs[0, k + 1] = tok
        self.offset += 1
        f = s - max(lay.delays)
        return None if f < 0 else self.codes[0, : 1 + lay.dep_q, f].numpy().copy()

    def _put(self, stream: int, s: int, tok: int) -> None:
        """Store a token drawn for grid step ``s + 1`` of ``stream``: its frame ``s - d``
        (dropped while negative: LMGen feeds the initial token there instead)."""
        f = s - self.lay.delays[stream]
        if f >= 0:
            self.codes[0, stream, f] = tok


class PackageStream(TokenStream):
    """Kyutai's own streaming generator, ``moshi.models.LMGen`` (the **reference**): the
    package's KV-cached ``LMModel`` in streaming mode, its token cache and delays, and its
    sampler (``sample_token``: softmax at the temperature, top-k, a draw). The draws use the
    global torch generator, so each step runs inside ``torch.random.fork_rng`` with this
    session's generator state (seeded with ``seed``): sessions are reproducible and leave the
    process' generator untouched. CUDA graphs are disabled (a graph would replay stale
    generator state) and so is torch.compile (as in :class:`PackageBackend`)."""

    def __init__(self, backend: PackageBackend, sampling: ConverseSampling, seed: int) -> None:
        from moshi.models.lm import LMGen

        self.backend = backend
        self.device = backend.device
        self.cuda = self.device.type == "cuda"
        self._cpu_rng = torch.Generator().manual_seed(int(seed)).get_state()
        self._cuda_rng = (
            torch.Generator(self.device).manual_seed(int(seed)).get_state() if self.cuda else None
        )
        self.gen = LMGen(
            backend.model,
            use_sampling=True,  # greedy at temperature 0 (sample_token's rule)
            temp=sampling.temp,
            temp_text=sampling.temp_text,
            top_k=sampling.top_k,
            top_k_text=sampling.top_k_text,
            on_text_logits_hook=self._keep_text_logits,
        )
        self._stack = ExitStack()
        with self._running():
            self._stack.enter_context(self.gen.streaming(1))

    def _keep_text_logits(self, logits: torch.Tensor) -> None:
        self.text_logits = logits[0, 0, 0].float().cpu()

    @contextmanager
    def _running(self) -> Iterator[None]:
        from moshi.utils.compile import no_cuda_graph

        devices = [self.device] if self.cuda else []
        with self.backend.running(), no_cuda_graph(), torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self._cpu_rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            yield
            self._cpu_rng = torch.get_rng_state()
            if self._cuda_rng is not None:
                self._cuda_rng = torch.cuda.get_rng_state(self.device)

    def step(self, user: np.ndarray) -> np.ndarray | None:
        lay = self.backend.layout
        x = torch.as_tensor(np.asarray(user[: lay.user_q], dtype=np.int64), device=self.device)
        with self._running():
            out = self.gen.step(x.view(1, -1, 1))
        return None if out is None else out[0, :, 0].cpu().numpy().copy()

    def close(self) -> None:
        self._stack.close()


def open_stream(
    backend: Backend, sampling: ConverseSampling, seed: int, impl: str = "auto"
) -> TokenStream:
    """A :class:`TokenStream` on ``backend``: ``lmgen`` (:class:`PackageStream`, package
    checkpoints only), ``recompute`` (:class:`RecomputeStream`) or ``auto`` (the first for a
    package checkpoint, the second for a transformers one)."""
    if impl == "auto":
        impl = "lmgen" if isinstance(backend, PackageBackend) else "recompute"
    if impl == "lmgen":
        if not isinstance(backend, PackageBackend):
            raise ConfigError(
                "moshi: model argument 'converse_impl': lmgen needs a moshi-package checkpoint "
                f"(moshi.models.LMGen); this one runs on {backend.name}: use recompute or auto"
            )
        return PackageStream(backend, sampling, seed)
    return RecomputeStream(backend, sampling, seed)


class MimiStream:
    """A transformers ``MimiModel`` (float32, eval) used one frame at a time, exactly as the
    offline ``encode`` / ``decode`` of the whole signal (tests check it frame by frame).

    - :meth:`encode`: transformers' own streaming encoder (``use_streaming=True`` with the
      returned ``padding_cache`` and ``encoder_cache``).
    - :meth:`decode`: transformers 5.25 has no streaming decoder (``MimiModel.decode`` keeps
      only the decoder transformer's KV cache; its convolutions restart from zero padding),
      so the decoder's modules are run here with their streaming state: the last
      ``padding_total`` inputs of each causal convolution, the overlap tail of each
      transposed convolution (added to the next frame's head, bias counted once) and the
      decoder transformer's KV cache. O(1) per frame, unlike re-decoding the whole past.
    """

    def __init__(self, model: Any, codebooks: int, hop: int) -> None:
        from transformers.models.mimi.modeling_mimi import (
            MimiConv1d,
            MimiConvTranspose1d,
            MimiResnetBlock,
        )

        self.model, self.codebooks, self.hop = model, int(codebooks), int(hop)
        self._types = (MimiConv1d, MimiConvTranspose1d, MimiResnetBlock)
        self._enc_cache: Any = None
        self._pad_cache: Any = None
        self._dec_cache: Any = None
        self._state: dict[int, torch.Tensor] = {}
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def encode(self, wav: np.ndarray) -> np.ndarray:
        """Codes ``[codebooks]`` (int64) of the next ``hop`` samples."""
        x = torch.from_numpy(np.array(wav, dtype=np.float32)).view(1, 1, -1).to(self.device)
        out = self.model.encode(
            x,
            num_quantizers=self.codebooks,
            encoder_cache=self._enc_cache,
            padding_cache=self._pad_cache,
            use_streaming=True,
        )
        self._enc_cache, self._pad_cache = out.encoder_cache, out.padding_cache
        codes = out.audio_codes
        if codes.shape[-1] != 1:
            raise DataError(
                f"streaming Mimi encoded {wav.size} samples into {codes.shape[-1]} frames; "
                f"expected 1 frame per hop of {self.hop}"
            )
        return codes[0, :, 0].to("cpu", torch.int64).numpy()

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The next ``hop`` samples (float32) of the waveform of one frame ``codes [k]``."""
        dec = self.model.decoder
        c = torch.as_tensor(np.asarray(codes, dtype=np.int64)).view(1, -1, 1).to(self.device)
        h = self.model.quantizer.decode(c)
        if dec.upsample is not None:
            h = self._transposed(dec.upsample, h)
        out = dec.decoder_transformer(h.transpose(1, 2), cache=self._dec_cache, use_cache=True)
        self._dec_cache = out.cache
        h = out.last_hidden_state.transpose(1, 2)
        for layer in dec.decoder_seanet.layers:
            h = self._run(layer, h)
        wav = h.reshape(-1).float().cpu().numpy()
        if wav.size != self.hop:
            raise DataError(f"streaming Mimi decoded one frame into {wav.size} samples")
        return wav

    def _run(self, layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        conv, transposed, resnet = self._types
        if isinstance(layer, conv):
            return self._causal(layer, x)
        if isinstance(layer, transposed):
            return self._transposed(layer, x)
        if isinstance(layer, resnet):
            h = x
            for sub in layer.block:
                h = self._run(sub, h)
            return self._run(layer.shortcut, x) + h
        return layer(x)  # stateless (ELU, identity)

    def _causal(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        if not layer.causal or layer.conv.stride[0] != 1:
            raise ConfigError("moshi: streaming Mimi decoding needs causal stride-1 convolutions")
        pad = int(layer.padding_total)
        past = self._state.get(id(layer))
        if past is None:  # the offline left padding
            if layer.pad_mode == "replicate":
                past = x[..., :1].expand(-1, -1, pad)
            else:
                past = x.new_zeros(x.shape[0], x.shape[1], pad)
        full = torch.cat([past, x], dim=-1)
        self._state[id(layer)] = full[..., full.shape[-1] - pad :]
        return layer.conv(full)

    def _transposed(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        if layer.padding_left != 0:
            raise ConfigError("moshi: streaming Mimi decoding needs trim_right_ratio = 1")
        y = layer.conv(x)
        n = x.shape[-1] * layer.conv.stride[0]
        tail = self._state.get(id(layer))
        if tail is not None:
            y = torch.cat([y[..., : tail.shape[-1]] + tail, y[..., tail.shape[-1] :]], dim=-1)
        rest = y[..., n:]
        bias = layer.conv.bias
        # The tail is added to the next frame's output, which has the bias already.
        self._state[id(layer)] = rest if bias is None else rest - bias[None, :, None]
        return y[..., :n]


# --- loading ---------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"model argument 'model': cannot read {path} ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"model argument 'model': {path} is not a JSON object")
    return data


def checkpoint_format(path: Path) -> str:
    """``"transformers"`` (a ``MoshiForConditionalGeneration`` folder written by
    ``save_pretrained``) or ``"moshi"`` (Kyutai's ``model.safetensors`` with an optional
    ``config.json`` of ``LMModel`` arguments), from the folder's files."""
    if not path.is_dir():
        raise ConfigError(
            f"model argument 'model': {path} is not an existing directory (expected a local "
            "Moshi checkpoint folder: transformers' save_pretrained output, or the moshi "
            "package's model.safetensors + config.json)"
        )
    config = path / "config.json"
    if config.is_file():
        raw = _read_json(config)
        archs = raw.get("architectures") or []
        if "depth_decoder_config" in raw or "MoshiForConditionalGeneration" in archs:
            return "transformers"
    return "moshi"


def _transformers_layout(config: Any) -> StreamLayout:
    k = int(config.num_codebooks)
    # transformers hard-codes Moshi's delays (``build_delay_pattern_mask``): codebook 0 of
    # each speaker undelayed, the others one step late; text undelayed.
    delays = (0, *([0] + [1] * (k - 1)) * 2)
    pad = getattr(config, "pad_token_id", None)
    return StreamLayout(
        delays=delays,
        dep_q=k,
        n_q=2 * k,
        card=int(config.audio_vocab_size),
        text_card=int(config.vocab_size),
        text_pad=None if pad is None else int(pad),
    )


def _load_transformers(
    path: Path, dtype: torch.dtype, device: torch.device, keep_codec: bool
) -> tuple[Backend, dict[str, Any], Any]:
    from transformers import MoshiConfig, MoshiForConditionalGeneration

    from .hf_unit_lm import load_pretrained

    try:
        config = MoshiConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise ConfigError(
            f"model argument 'model': cannot read {path}/config.json as a MoshiConfig "
            f"({type(e).__name__}: {e})"
        ) from None
    layout = _transformers_layout(config)
    identity = saved_model_identity("model", path)
    # The embedded Mimi (``audio_encoder``) must run in float32 like every codec here (its
    # nearest-codeword search makes the codes), so it is loaded in float32 and only the LM
    # parts are cast; with an external ``mimi`` the whole model loads in ``dtype`` directly.
    load_dtype = torch.float32 if keep_codec else dtype
    model = load_pretrained("model", MoshiForConditionalGeneration, path, load_dtype, device)
    if load_dtype != dtype:
        for part in (model.decoder, model.embed_tokens, model.depth_decoder):
            part.to(dtype)
    codec_model = model.audio_encoder if keep_codec else None
    return TransformersBackend(model, layout), identity, codec_model


def _moshi_kwargs(path: Path) -> tuple[dict[str, Any], Path, str | None]:
    """(``LMModel`` arguments, weights file, config hash or None) of a moshi-package folder."""
    from moshi.models import loaders

    config = path / "config.json"
    if config.is_file():
        raw = _read_json(config)
        kind = raw.get("model_type", "moshi")
        if kind != "moshi":
            raise ConfigError(
                f"model argument 'model': {config} is a {kind!r} checkpoint; this adapter "
                "runs Moshi dialogue LMs (model_type 'moshi')"
            )
        for key in ("conditioners", "fuser", "lora", "quantize"):
            if raw.get(key):
                raise ConfigError(
                    f"model argument 'model': {config} sets {key!r}; conditioned, LoRA and "
                    "quantised Moshi checkpoints are not supported"
                )
        weights = path / str(raw.get("moshi_name", MOSHI_WEIGHTS))
        kwargs = {k: v for k, v in raw.items() if k not in _NOT_LM_KWARGS}
        config_hash: str | None = sha256_file(config)
    else:
        # Kyutai's first repositories have no config.json; the package then assumes Moshi 7B
        # (``CheckpointInfo.from_hf_repo``), and so does this adapter.
        weights, kwargs, config_hash = path / MOSHI_WEIGHTS, dict(loaders._lm_kwargs), None
    if not weights.is_file():
        raise ConfigError(
            f"model argument 'model': {path} has no {weights.name} (expected the moshi "
            "package's LM weights as safetensors)"
        )
    if weights.suffix not in (".safetensors", ".sft", ".sfts"):
        raise ConfigError(
            f"model argument 'model': {weights} is not a safetensors file; pickled "
            "checkpoints are refused (loading them runs code from the file)"
        )
    return kwargs, weights, config_hash


def _load_package(
    path: Path, dtype: torch.dtype, device: torch.device
) -> tuple[Backend, dict[str, Any]]:
    try:
        from moshi.models import loaders
    except ImportError as e:
        raise ConfigError(
            f"model argument 'model': {path} is a moshi-package checkpoint, which needs the "
            f"'moshi' package ({e}); install it with: {INSTALL_MOSHI}"
        ) from None
    kwargs, weights, config_hash = _moshi_kwargs(path)
    try:
        lm = loaders.get_moshi_lm(str(weights), lm_kwargs=kwargs, device=device, dtype=dtype)
    except Exception as e:
        raise ConfigError(
            f"model argument 'model': cannot load the Moshi LM from {weights} "
            f"({type(e).__name__}: {e})"
        ) from None
    if lm.fuser is not None or lm.depformer is None or lm.dep_q < 1 or lm.n_q <= lm.dep_q:
        raise ConfigError(
            f"model argument 'model': {path} is not a Moshi dialogue LM (expected a depformer "
            f"over dep_q >= 1 own codebooks and a user stream; n_q={lm.n_q}, dep_q={lm.dep_q})"
        )
    layout = StreamLayout(
        delays=tuple(int(d) for d in lm.delays),
        dep_q=int(lm.dep_q),
        n_q=int(lm.n_q),
        card=int(lm.card),
        text_card=int(lm.text_card),
        text_pad=int(lm.text_padding_token_id),
    )
    identity = {
        "path": str(path.resolve()),
        "config_hash": config_hash if config_hash is not None else "moshi 7B defaults",
        "weights_hash": sha256_file(weights),
    }
    return PackageBackend(lm.eval(), layout), identity


def load_backend(
    path: Path, dtype: torch.dtype, device: torch.device, embedded_codec: bool
) -> tuple[Backend, dict[str, Any], Any]:
    """(backend, identity of the checkpoint files, the embedded Mimi module or None) of the
    Moshi checkpoint folder ``path``. ``embedded_codec``: keep a transformers checkpoint's
    own ``audio_encoder`` in float32 for use as the codec (a moshi-package checkpoint has
    none)."""
    fmt = checkpoint_format(path)
    if fmt == "transformers":
        return _load_transformers(path, dtype, device, embedded_codec)
    backend, identity = _load_package(path, dtype, device)
    return backend, identity, None


def package_version() -> str | None:
    """The installed ``moshi`` distribution's version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moshi")
    except PackageNotFoundError:
        return None


# --- the weight map between the two implementations ------------------------------------------


def _rope_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a query/key projection reordered from the package's interleaved RoPE pairs
    (``r0 i0 r1 i1 ...`` per head) to transformers' split halves (``r0 r1 ... i0 i1 ...``)."""
    out, inp = w.shape
    return w.view(heads, out // heads // 2, 2, inp).transpose(1, 2).reshape(out, inp)


def moshi_to_transformers(
    state: dict[str, torch.Tensor], num_layers: int, num_heads: int, depth_layers: int
) -> dict[str, torch.Tensor]:
    """The state dict of a ``MoshiForConditionalGeneration`` (without ``audio_encoder.*``)
    holding the weights of a package ``LMModel`` state dict, for a model with gated MLPs,
    RMS norms, multi-linear depformer inputs, per-step depformer weights and no layer scale
    (Moshi 7B's architecture). Used to run both implementations on the same weights.

    The map: stream embeddings, text embedding/head and norms one to one; the fused
    ``in_projs`` split into q/k/v (q and k rows reordered for transformers' RoPE layout);
    the depformer's per-codebook modules stacked into transformers' flexible linears.
    """
    n_q = sum(1 for k in state if k.startswith("emb.") and k.endswith(".weight"))
    dep_q = sum(1 for k in state if k.startswith("linears."))
    new: dict[str, torch.Tensor] = {}
    for j in range(n_q):
        new[f"embed_tokens.{j}.weight"] = state[f"emb.{j}.weight"]
    new["decoder.model.embed_tokens.weight"] = state["text_emb.weight"]
    new["decoder.lm_head.weight"] = state["text_linear.weight"]
    new["decoder.model.norm.weight"] = state["out_norm.alpha"].reshape(-1)
    for i in range(num_layers):
        src, dst = f"transformer.layers.{i}.", f"decoder.model.layers.{i}."
        q, k, v = state[src + "self_attn.in_projs.0.weight"].chunk(3)
        new[dst + "self_attn.q_proj.linear.weight"] = _rope_rows(q, num_heads)
        new[dst + "self_attn.k_proj.linear.weight"] = _rope_rows(k, num_heads)
        new[dst + "self_attn.v_proj.linear.weight"] = v
        new[dst + "self_attn.o_proj.linear.weight"] = state[src + "self_attn.out_projs.0.weight"]
        new[dst + "mlp.fc1.weight"] = state[src + "gating.linear_in.weight"]
        new[dst + "mlp.fc2.weight"] = state[src + "gating.linear_out.weight"]
        new[dst + "input_layernorm.weight"] = state[src + "norm1.alpha"].reshape(-1)
        new[dst + "post_attention_layernorm.weight"] = state[src + "norm2.alpha"].reshape(-1)
    new["depth_decoder.text_embed_tokens.weight"] = state["depformer_text_emb.weight"]
    for k in range(dep_q - 1):
        new[f"depth_decoder.embed_tokens.{k}.weight"] = state[f"depformer_emb.{k}.weight"]
    new["depth_decoder.input_projections.weight"] = torch.stack(
        [state[f"depformer_in.{k}.weight"] for k in range(dep_q)]
    )
    new["depth_decoder.lm_heads.weight"] = torch.stack(
        [state[f"linears.{k}.weight"] for k in range(dep_q)]
    )
    for i in range(depth_layers):
        src, dst = f"depformer.layers.{i}.", f"depth_decoder.layers.{i}."
        qkv = [state[src + f"self_attn.in_projs.{k}.weight"].chunk(3) for k in range(dep_q)]
        for n, name in enumerate("qkv"):
            new[dst + f"self_attn.{name}_proj.linear.weight"] = torch.stack([x[n] for x in qkv])
        new[dst + "self_attn.o_proj.linear.weight"] = torch.stack(
            [state[src + f"self_attn.out_projs.{k}.weight"] for k in range(dep_q)]
        )
        new[dst + "mlp.fc1.weight"] = torch.stack(
            [state[src + f"gating.{k}.linear_in.weight"] for k in range(dep_q)]
        )
        new[dst + "mlp.fc2.weight"] = torch.stack(
            [state[src + f"gating.{k}.linear_out.weight"] for k in range(dep_q)]
        )
        new[dst + "input_layernorm.weight"] = state[src + "norm1.alpha"].reshape(-1)
        new[dst + "post_attention_layernorm.weight"] = state[src + "norm2.alpha"].reshape(-1)
    return new
