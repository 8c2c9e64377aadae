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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from speechlm_eval.errors import ConfigError
from speechlm_eval.hashing import saved_model_identity, sha256_file

__all__ = [
    "INSTALL_MOSHI",
    "ZERO",
    "Backend",
    "PackageBackend",
    "StreamLayout",
    "TransformersBackend",
    "checkpoint_format",
    "load_backend",
    "moshi_to_transformers",
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
        states, _text_logits = self.model.forward_text(grid.to(self.device))
        return states

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
        m = self.model
        grid = grid.to(self.device)
        emb = _embed(m.decoder.model.embed_tokens, grid[:, 0])
        for j in range(self.layout.n_q):  # Moshi's codebooks, then the user's
            emb = emb + _embed(m.embed_tokens[j], grid[:, 1 + j])
        out = m.decoder(inputs_embeds=emb, use_cache=False)
        return out.last_hidden_state

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
