"""Moshi (Kyutai's full-duplex speech LM with an inner monologue) as a speechlm-eval plugin.

Capabilities: ``loglikelihood``, ``continue`` and ``converse`` (full duplex: 80 ms of user
audio in, 80 ms of Moshi out, per step; :class:`MoshiSession`).

**Which stream holds the test audio.** Moshi models three streams (text, its own audio, the
user's audio; :mod:`reference_models.moshi_backends`), and only its own audio is *predicted*
(the depth transformer outputs Moshi's ``dep_q`` codebooks; the user's stream is input only),
so the log-likelihood of audio is defined only there: the test audio goes into **Moshi's own
stream** (``stream=model``, the only value). The other two streams are filled as chosen:

- ``user=silence`` (default): the Mimi codes of an all-zero waveform as long as the test
  audio, which is what Moshi hears while its interlocutor is silent (transformers'
  ``generate`` feeds the same "blank audio"); ``user=zero``: Moshi's zero token, no input.
- ``text=none``: the zero token at every step, no text input at all ("speech only");
  ``text=silence``: the text padding id (3) at every step, what the inner monologue holds
  while no word is spoken ("with the text stream", padding only). Required: the two are
  different measurements (slamkit's table has a speech-only and a with-text Moshi row) and
  the identity records which one was made. Scoring a word-aligned transcript in the text
  stream is not supported (it needs the SentencePiece tokenizer and word timings).

**What loglikelihood scores.** The natural-log probability of Moshi's audio tokens, all
``dep_q`` codebooks, each predicted by the depth transformer from the temporal state of the
step before, the step's text token and the lower codebooks of its own frame (teacher
forcing, no labels: :class:`~reference_models.moshi_backends.TransformersBackend` explains
the transformers leak avoided). Delayed codebooks (1-7 for Moshi) are scored at their
delayed position; their last ``delay`` frames would be predicted after the sequence ends
and are not scored. ``num_tokens`` = the scored count: ``F + (dep_q-1)(F-1)`` for ``F``
frames of Moshi 7B.

**Implementations.** A ``model`` folder in the ``moshi`` package's format (``model.safetensors``
with an optional ``config.json`` of ``LMModel`` arguments) runs on the package's
``LMModel.forward`` (the reference); a transformers ``MoshiForConditionalGeneration`` folder
runs on transformers with the teacher-forced forward. The tests run both on the same tiny
weights (:func:`~reference_models.moshi_backends.moshi_to_transformers`) and compare.

**Converse.** Per 80 ms step (one Mimi hop): the user's frame is encoded by Mimi's streaming
encoder into the user stream, the LM takes one step (Moshi samples its text token, the inner
monologue, then its own codebooks with the acoustic delays), and Moshi's newest complete
frame is decoded by a streaming Mimi decoder. The first user frame is fed twice (as
``moshi/run_inference.py`` does), so step ``i`` returns Moshi's frame ``i``, drawn after user
frames ``0..i``; the harness plays it in frame ``i + 1``. Only past and current user audio
is ever read. Two LM paths (``converse_impl``):

- ``lmgen`` (default for a package checkpoint, **the reference**): the package's streaming
  ``moshi.models.LMGen`` (KV-cached ``LMModel``, its delays and its sampler), seeded per
  session (:class:`~reference_models.moshi_backends.PackageStream`).
- ``recompute`` (the only path for a transformers checkpoint): a full temporal forward over
  the grid so far at every step, no cache (O(T^2) in the session length), with the harness'
  sampler (:class:`~reference_models.moshi_backends.RecomputeStream`).

Greedy (temperatures 0), the two give the same tokens on the same weights (tests: LMGen, the
package recomputed and transformers recomputed agree token for token, text logits within
1e-4, and every drawn token is the argmax of one teacher-forced forward over the session).
With sampling they draw from the same distributions but with different samplers, so their
outputs differ. Sampling defaults are ``LMGen``'s: ``converse_temp=0.8``,
``converse_top_k=250`` (audio), ``converse_temp_text=0.7``, ``converse_top_k_text=25``;
a session is seeded from the harness' seed, so the same seed and user audio give the same
model channel. Mimi: transformers 5.25's encoder streams natively (``use_streaming``); its
decoder does not, so :class:`~reference_models.moshi_backends.MimiStream` runs the decoder's
modules with streaming state (equal to the offline decode, tested). ``text`` and ``user``
play no part in ``converse`` (the text stream is sampled, the user stream is the user),
though the constructor still requires ``text``.

Example ``--model_args``::

    model=/models/moshiko-pytorch-bf16,mimi=/models/mimi,text=none,dtype=bfloat16
    model=/models/moshiko-pytorch-bf16,mimi=/models/mimi,text=none,converse_temp=0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity
from speechlm_eval.model import (
    ContinueRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SessionInfo,
    SpeechLM,
)
from speechlm_eval.options import REQUIRED, Opt, Spec

from .codec_lm import _continue_settings, _draw
from .codecs import Codec, check_codec_config
from .gslm_mini.sampling import SampleOptions, _warpers, sample_seed
from .hf_unit_lm import BATCH_SIZE, _model_dir, load_config, torch_device
from .moshi_backends import (
    ZERO,
    Backend,
    ConverseSampling,
    MimiStream,
    TokenStream,
    checkpoint_format,
    load_backend,
    open_stream,
    package_version,
)

__all__ = ["OPTIONS", "Moshi", "MoshiSession"]

_DTYPES: dict[Any, str] = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
}


def _own_stream(value: str) -> str:
    """``stream``: only Moshi's own stream can be scored (see the module doc)."""
    if value.strip().lower() != "model":
        raise ValueError(
            f"only 'model' is supported, got {value!r}: Moshi predicts its own audio stream "
            "only; the user stream is input, so its likelihood is not defined"
        )
    return "model"


OPTIONS = Spec(
    {
        "model": Opt(
            Path,
            REQUIRED,
            identity=False,
            doc="local Moshi checkpoint folder (transformers save_pretrained, or the moshi "
            "package's model.safetensors + config.json)",
        ),
        "mimi": Opt(
            Path,
            None,
            check=_model_dir("a transformers MimiModel"),
            identity=False,
            doc="local transformers MimiModel folder (default: a transformers Moshi's own "
            "audio_encoder; required for a moshi-package checkpoint)",
        ),
        "text": Opt(
            str,
            REQUIRED,
            choices=("none", "silence"),
            doc="text stream: none (zero tokens, speech only) or silence (padding id)",
        ),
        "user": Opt(
            str,
            "silence",
            choices=("silence", "zero"),
            doc="user stream: silence (Mimi codes of zeros) or zero (zero tokens)",
        ),
        "stream": Opt(str, "model", check=_own_stream, doc="the stream holding the test audio"),
        "with_prompt": Opt(bool, False, doc="continue: return the prompt too"),
        "converse_temp": Opt(
            float, 0.8, ge=0.0, doc="converse: temperature of Moshi's audio tokens (0 = greedy)"
        ),
        "converse_top_k": Opt(
            int, 250, ge=0, doc="converse: top-k of Moshi's audio tokens (0 = all)"
        ),
        "converse_temp_text": Opt(
            float, 0.7, ge=0.0, doc="converse: temperature of the inner monologue (0 = greedy)"
        ),
        "converse_top_k_text": Opt(
            int, 25, ge=0, doc="converse: top-k of the inner monologue (0 = all)"
        ),
        "converse_impl": Opt(
            str,
            "auto",
            choices=("auto", "lmgen", "recompute"),
            doc="converse: lmgen (the moshi package's LMGen, package checkpoints), recompute "
            "(a full forward per step, any checkpoint) or auto (lmgen when possible)",
        ),
        "device": Opt(str, "cpu", check=torch_device, identity=False),
        "dtype": Opt(object, "float32", choices=_DTYPES, expect="one of float32, bfloat16"),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


class Moshi(SpeechLM):
    """Moshi's LM with its Mimi codec: ``loglikelihood`` of audio in Moshi's own stream,
    ``continue`` (sampling that stream after a prompt) and ``converse`` (a streaming session,
    :meth:`open_session`). See the module doc.

    Keyword arguments (strings from ``--model_args`` are parsed, see :data:`OPTIONS`):

    - ``model``: a local Moshi checkpoint folder: transformers ``MoshiForConditionalGeneration``
      (``save_pretrained``), or the ``moshi`` package's ``model.safetensors`` with an optional
      ``config.json`` (without one, Moshi 7B's architecture, as the package assumes).
    - ``mimi``: a local transformers ``MimiModel`` folder (e.g. ``kyutai/mimi``); optional for
      a transformers checkpoint, whose ``audio_encoder`` is used by default.
    - ``text``: ``none`` or ``silence`` (required); ``user``: ``silence`` (default) or ``zero``;
      ``stream``: ``model`` (the only value).
    - ``with_prompt``: ``continue`` returns the decoded prompt before the continuation.
    - ``converse_temp`` / ``converse_top_k`` (audio, default 0.8 / 250) and
      ``converse_temp_text`` / ``converse_top_k_text`` (text, 0.7 / 25): ``converse``
      sampling (temperature 0 greedy, top-k 0 all); ``converse_impl``: ``auto`` (default),
      ``lmgen`` or ``recompute`` (see the module doc).
    - ``dtype`` of the LM (``float32`` default, ``bfloat16``; Mimi always runs in float32);
      ``device``: the harness' ``--device`` (``cpu``, ``cuda``, ``cuda:N``).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood", "continue", "converse"})
    sample_rate: int | None = None  # set from the codec (the runner resamples to it)
    # Moshi's Mimi hop (1920 samples at 24 kHz); each instance sets its codec's hop / rate.
    converse_frame_seconds: ClassVar[float | None] = 0.08

    def __init__(self, **kwargs: Any) -> None:
        # Cheap checks first, so that a typo fails before a multi-GB load.
        o = OPTIONS.parse("moshi", kwargs)
        fmt = checkpoint_format(o["model"])
        mimi_config = None
        if o["mimi"] is not None:
            mimi_config = load_config("mimi", o["mimi"])
            _check_mimi(o["mimi"], mimi_config)
        elif fmt == "moshi":
            raise ConfigError(
                f"moshi: model argument 'mimi' is required: {o['model']} is a moshi-package "
                "checkpoint without a codec; pass a transformers MimiModel folder (kyutai/mimi)"
            )
        dtype = getattr(torch, o["dtype"])
        device = o["device"]
        backend, model_id, embedded = load_backend(o["model"], dtype, device, o["mimi"] is None)
        lay = backend.layout
        if o["text"] == "silence" and lay.text_pad is None:
            raise ConfigError(
                f"moshi: text=silence needs the text padding id, which {o['model']} does not "
                "set (pad_token_id); use text=none"
            )
        codebooks = max(lay.dep_q, lay.user_q)
        if o["mimi"] is not None:
            codec_path, codec_config = o["mimi"], mimi_config
            self._codec_id: dict[str, Any] = saved_model_identity("mimi", o["mimi"])
        else:
            codec_path, codec_config = o["model"], backend.model.config.audio_encoder_config
            _check_mimi(codec_path, codec_config)
            self._codec_id = {"embedded": "audio_encoder of the 'model' checkpoint"}
        have = int(getattr(codec_config, "num_quantizers", 0))
        if have < codebooks:
            raise ConfigError(
                f"moshi: the Mimi codec at {codec_path} has {have} codebooks; the LM reads "
                f"{lay.dep_q} in its own stream and {lay.user_q} in the user's"
            )
        cls = check_codec_config(codec_path, codec_config)
        codec = cls(codec_path, codec_config, codebooks, device)
        if codec.codebook_size != lay.card:
            raise ConfigError(
                f"moshi: the Mimi codec has {codec.codebook_size} codes per codebook, the LM "
                f"reads {lay.card} (model {o['model']})"
            )
        if embedded is not None:
            codec.model = embedded.float().eval()
        else:
            codec.load()
        self.codec: Codec = codec
        self.backend: Backend = backend
        self.sample_rate = codec.sample_rate
        self._model_id = {"format": fmt, **model_id}
        self._dtype: str = o["dtype"]
        self._settings = {k: o[k] for k in ("text", "user", "stream", "with_prompt", "dtype")}
        self._silence: dict[int, np.ndarray] = {}
        self.converse_sampling = ConverseSampling(
            temp=o["converse_temp"],
            top_k=o["converse_top_k"],
            temp_text=o["converse_temp_text"],
            top_k_text=o["converse_top_k_text"],
        )
        impl = o["converse_impl"]
        if impl == "auto":
            impl = "lmgen" if backend.name == "moshi" else "recompute"
        elif impl == "lmgen" and backend.name != "moshi":
            raise ConfigError(
                "moshi: model argument 'converse_impl': lmgen needs a moshi-package checkpoint "
                f"(moshi.models.LMGen); {o['model']} is a transformers one: use recompute"
            )
        self.converse_impl: str = impl
        # The instance's frame: one Mimi hop (the harness checks it is whole samples).
        self.converse_frame_seconds = codec.hop_length / codec.sample_rate  # type: ignore[misc]
        super().__init__(**kwargs)

    # --- description -------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        """Compute dtype of the LM (the codec always runs in float32)."""
        return self._dtype

    @property
    def frame_rate(self) -> float:
        """Mimi frames (LM steps) per second: 12.5 for Moshi."""
        return self.codec.frame_rate

    @property
    def implementation(self) -> str:
        """``moshi`` (Kyutai's package, the reference) or ``transformers``."""
        return self.backend.name

    def identity(self) -> dict[str, Any]:
        """Class, implementation (and the moshi package's version), checkpoint and codec file
        hashes, the stream layout and every output-affecting setting (not the device)."""
        cls = type(self)
        impl: dict[str, Any] = {"name": self.implementation}
        if self.implementation == "moshi":
            # Outside the harness' tracked packages, and it computes the numbers.
            impl["moshi_version"] = package_version()
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "implementation": impl,
            "model": dict(self._model_id),
            "layout": self.backend.layout.describe(),
            "mimi": {**self._codec_id, **self.codec.settings()},
            "scored": "model-stream audio tokens, all codebooks, at their delayed positions",
            **self._settings,
        }

    # --- streams -----------------------------------------------------------------------------

    def codes(self, audio: Audio) -> np.ndarray:
        """Mimi codes ``[codebooks, frames]`` (int64) of ``audio`` at the codec's rate."""
        if not isinstance(audio, Audio):
            raise TypeError(f"expected an Audio, got {type(audio).__name__}")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"{audio.source}: audio is {audio.sample_rate} Hz, Mimi needs "
                f"{self.sample_rate} Hz (the runner resamples)"
            )
        return self.codec.encode(audio.samples, audio.source)

    def _user_codes(self, frames: int) -> np.ndarray:
        """The user stream ``[user_q, frames]`` for ``frames`` steps, per the ``user`` option:
        the Mimi codes of ``frames`` hops of zeros, or zero tokens."""
        lay = self.backend.layout
        if self._settings["user"] == "zero":
            return np.full((lay.user_q, frames), ZERO, dtype=np.int64)
        if frames not in self._silence:
            wav = np.zeros(frames * self.codec.hop_length, dtype=np.float32)
            codes = self.codec.encode(wav, "<silence>")
            if codes.shape[1] < frames:  # Mimi gives one frame per hop
                raise DataError(
                    f"Mimi encoded {frames} hops of silence into {codes.shape[1]} frames"
                )
            self._silence[frames] = codes[: lay.user_q, :frames]
        return self._silence[frames]

    def _streams(self, model_codes: list[np.ndarray], width: int) -> torch.Tensor:
        """The frame-aligned batch ``[B, 1+n_q, width]``: text per ``text``, Moshi's stream
        = each sequence's codes, the user's per ``user``; zero tokens past each end."""
        lay = self.backend.layout
        batch = torch.full((len(model_codes), 1 + lay.n_q, width), ZERO, dtype=torch.long)
        text = ZERO if self._settings["text"] == "none" else lay.text_pad
        for i, c in enumerate(model_codes):
            n = c.shape[1]
            batch[i, 0, :n] = text
            batch[i, 1 : 1 + lay.dep_q, :n] = torch.from_numpy(c[: lay.dep_q])
            batch[i, 1 + lay.dep_q :, :n] = torch.from_numpy(self._user_codes(n))
        return batch

    # --- loglikelihood -----------------------------------------------------------------------

    def token_logprobs(self, model_codes: list[np.ndarray]) -> list[np.ndarray]:
        """Per-token log-probabilities ``[dep_q, frames]`` (float64; NaN where a token is not
        scored) of Moshi-stream codes ``[>= dep_q, frames]``, one right-padded batch."""
        if not model_codes:
            return []
        lay = self.backend.layout
        width = max(c.shape[1] for c in model_codes)
        batch = self._streams(model_codes, width)
        with self.backend.running():
            logits = self.backend.audio_logits(batch)  # [B, dep_q, T, card]
        target = batch[:, 1 : 1 + lay.dep_q].clamp(min=0).to(logits.device)
        out = []
        for i, c in enumerate(model_codes):
            # One sequence at a time keeps the float32 copy at dep_q x T x card.
            logp = torch.log_softmax(logits[i].float(), dim=-1)
            per_tok = logp.gather(-1, target[i][..., None])[..., 0].double().cpu()
            mask = lay.scored(c.shape[1], width)
            out.append(torch.where(mask, per_tok, np.nan)[:, : c.shape[1]].numpy())
        return out

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Sum of the scored Moshi-stream token log-probabilities of each request's audio and
        their count (see the module doc). One batch through the LM."""
        codes = []
        for req in requests:
            if req.audio is None:
                raise ValueError(f"moshi scores speech only; request {req.key!r} has no audio")
            if req.text is not None:
                raise ValueError(
                    f"moshi cannot score a transcript (text stream: {self._settings['text']}); "
                    f"request {req.key!r} has text set"
                )
            codes.append(self.codes(req.audio))
        results = []
        for lp in self.token_logprobs(codes):
            scored = ~np.isnan(lp)
            results.append(
                LoglikelihoodResult(logprob=float(lp[scored].sum()), num_tokens=int(scored.sum()))
            )
        return results

    # --- converse ----------------------------------------------------------------------------

    def method_identity(self, method: str) -> dict[str, Any]:
        """``converse`` outputs also depend on the streaming implementation and the sampling
        settings (the other methods' cached outputs do not)."""
        if method != "converse":
            return {}
        out: dict[str, Any] = {
            "impl": self.converse_impl,
            "sampling": self.converse_sampling.describe(),
            "first_frame_fed_twice": True,
        }
        if self.converse_impl == "lmgen":
            out["sampler"] = "moshi LMGen sample_token"
        else:
            out["sampler"] = "Hugging Face warpers + torch.multinomial"
        return out

    def open_session(self, info: SessionInfo) -> MoshiSession:
        """One streaming conversation (:class:`MoshiSession`): one Mimi hop in, one out, per
        step; sampling seeded from ``info.seed``."""
        return MoshiSession(self, info)

    # --- continue ----------------------------------------------------------------------------

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]]:
        """``num_samples`` continuations of Moshi's stream after each prompt, decoded by Mimi.

        The prompt's codes fill Moshi's stream; the text and user streams continue as set by
        ``text`` and ``user`` (the text stream is not sampled); ``floor(max_seconds x 12.5)``
        new frames are drawn with temperature / top-k / top-p (temperature 0 is greedy),
        every codebook of a frame in the depth transformer's order. Sample ``j`` uses its own
        ``torch.Generator`` seeded from ``(seed, j)``: equal seeds give identical audio
        whatever the batch. Prompt and continuation are decoded as one sequence and cut at
        the prompt's end unless ``with_prompt``.
        """
        lay = self.backend.layout
        results = []
        for req in requests:
            where = f"continue request {req.key or req.prompt.source!r}"
            opts, n, seed, frames = _continue_settings(req, self.frame_rate, where)
            prompt = self.codes(req.prompt)[: lay.dep_q]
            samples = []
            for j in range(n):
                gen = torch.Generator().manual_seed(sample_seed(seed, j))
                new = self.sample_codes(prompt, frames, opts, gen)
                wav = self.codec.decode(np.concatenate([prompt, new], axis=1))
                if not self._settings["with_prompt"]:
                    wav = wav[prompt.shape[1] * self.codec.hop_length :]
                src = f"moshi continuation {j} of {req.prompt.source}"
                samples.append(
                    Audio(np.ascontiguousarray(wav, dtype=np.float32), self.codec.sample_rate, src)
                )
            results.append(samples)
        return results

    def sample_codes(
        self, prompt: np.ndarray, frames: int, opts: SampleOptions, generator: torch.Generator
    ) -> np.ndarray:
        """Moshi-stream codes ``[dep_q, frames]`` drawn after ``prompt`` ``[dep_q, Fp]``.

        Grid position ``p`` (the temporal state after step ``p``) predicts frame ``p - d_k``
        of codebook ``k``; positions run from the first one with a frame to draw to the one
        completing the last delayed codebook. At each, the codebooks go in order: a prompt
        frame is fed as is, any other is drawn (frames past the budget are drawn too, as the
        next codebooks read them, and dropped). The temporal transformer is re-run on the
        whole grid at each position (no cache), so every draw reads exactly the logits
        :meth:`token_logprobs` scores.
        """
        lay = self.backend.layout
        n_p = prompt.shape[1]
        total = n_p + frames
        delays = lay.model_delays
        last = total - 1 + max(delays)  # the position of the last delayed codebook's frame
        width = last + 1
        full = torch.full((1, 1 + lay.n_q, width), ZERO, dtype=torch.long)
        full[0, 0] = ZERO if self._settings["text"] == "none" else lay.text_pad
        full[0, 1 : 1 + lay.dep_q, :n_p] = torch.as_tensor(np.asarray(prompt, dtype=np.int64))
        full[0, 1 + lay.dep_q :] = torch.from_numpy(self._user_codes(width))
        warpers = _warpers(opts)
        allowed = torch.ones(lay.card, dtype=torch.bool)
        with self.backend.running():
            for p in range(n_p + min(delays), last + 1):
                grid = lay.grid(full)
                state = self.backend.temporal(grid[:, :, : p + 1])[:, p]
                inputs = grid[:, : lay.dep_q, p + 1].clone()  # text, codebooks 0..dep_q-2
                for k, d in enumerate(delays):
                    f = p - d
                    if f < n_p:  # a prompt frame (already in the grid)
                        continue
                    logits = self.backend.depth(state, inputs)[0, k]
                    tok = _draw(logits, allowed, opts, warpers, generator)
                    full[0, 1 + k, f] = tok
                    if k + 1 < lay.dep_q:
                        inputs[0, k + 1] = tok
        return full[0, 1 : 1 + lay.dep_q, n_p:total].numpy().copy()


class MoshiSession:
    """One streaming conversation of :class:`Moshi` (the ``converse`` capability).

    Each :meth:`step` hears one Mimi hop of the user (80 ms for Moshi), encodes it with the
    streaming Mimi encoder into the user stream's codes, runs one LM step (Moshi samples its
    text token and its own codebooks, with the acoustic delays) and returns Moshi's newest
    complete frame, decoded by the streaming Mimi decoder (silence until the first frame is
    complete). The first user frame is fed twice, as ``moshi/run_inference.py`` does: the
    LM's first step reads only initial tokens, and the second aligns user frame ``f`` with
    Moshi's frame ``f`` (the training alignment). So with Moshi's delays (``max = 1``), step
    ``i`` returns Moshi's frame ``i``, sampled after hearing user frames ``0..i``, and the
    harness plays it in frame ``i + 1``. Everything read is past or current user audio.

    ``text``, ``model_codes``, ``user_codes``: the tokens of the session so far (the inner
    monologue, Moshi's codes ``[dep_q]`` and the user's ``[user_q]`` per frame).
    """

    def __init__(self, moshi: Moshi, info: SessionInfo) -> None:
        codec = moshi.codec
        if info.sample_rate != codec.sample_rate or info.frame_samples != codec.hop_length:
            raise ValueError(
                f"converse session {info.key!r}: frames of {info.frame_samples} samples at "
                f"{info.sample_rate} Hz; Moshi steps one Mimi hop ({codec.hop_length} samples "
                f"at {codec.sample_rate} Hz)"
            )
        self.layout = moshi.backend.layout
        self.mimi = MimiStream(codec.model, codec.codebooks, codec.hop_length)
        seed = sample_seed(info.seed, 0)
        self.lm: TokenStream = open_stream(
            moshi.backend, moshi.converse_sampling, seed, moshi.converse_impl
        )
        self.hop = codec.hop_length
        self.text: list[int] = []
        self.model_codes: list[np.ndarray] = []
        self.user_codes: list[np.ndarray] = []

    def step(self, user: np.ndarray) -> np.ndarray:
        """Hear one frame of the user, return Moshi's next frame (float32, one hop)."""
        lay = self.layout
        codes = self.mimi.encode(user)[: lay.user_q]
        if not self.user_codes:
            self.lm.step(codes)  # the first frame twice (see the class doc)
        self.user_codes.append(codes)
        tokens = self.lm.step(codes)
        if tokens is None:
            return np.zeros(self.hop, dtype=np.float32)
        self.text.append(int(tokens[0]))
        self.model_codes.append(tokens[1 : 1 + lay.dep_q])
        return self.mimi.decode(tokens[1 : 1 + lay.dep_q]).astype(np.float32, copy=False)

    def close(self) -> None:
        """Free the LM's streaming state."""
        self.lm.close()


def _check_mimi(path: Path, config: Any) -> None:
    """The codec config read from ``path`` is a transformers Mimi (another family is a
    one-line error)."""
    kind = getattr(config, "model_type", None)
    if kind != "mimi":
        raise ConfigError(
            f"moshi: the codec at {path} is a {kind!r} model; expected a transformers "
            "MimiModel (Moshi's codec, e.g. kyutai/mimi)"
        )
