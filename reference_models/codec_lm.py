"""Codec language models (AudioLM / VALL-E / SpeechGPT-Gen style) as a speechlm-eval plugin.

A codec LM is a neural audio codec (:mod:`reference_models.codecs`: EnCodec, Mimi, DAC,
X-Codec from transformers) plus a causal LM over its codes. The codec turns a waveform into
``K`` codebooks x ``F`` frames of codes; a *token layout*, declared by ``layout`` and
recorded in the identity, says how the LM reads them:

``first``
    codebook 0 only (AudioLM's coarse stage, VALL-E's AR stage): code ``c`` of frame ``t``
    is token ``offset + c``; tokens ``[bos] c0_0 c0_1 ... c0_{F-1} [eos]`` for any
    ``AutoModelForCausalLM``.
``flat``
    all ``K`` codebooks, frame-major (``c0_0 c1_0 ... c{K-1}_0 c0_1 ...``), codebook ``k``
    offset by ``k * codebook_size``: code ``c`` of codebook ``k`` is token
    ``offset + k * codebook_size + c``; ``[bos] ... [eos]`` around them, any
    ``AutoModelForCausalLM``.
``delay``
    ``K`` parallel streams with MusicGen's delay pattern, for a parallel-stream LM
    (``MusicgenForCausalLM``'s interface: ``input_ids`` of shape ``[B*K, T]``, logits
    ``[B*K, T, V]``, one embedding table and head per codebook). Stream ``k`` at step ``s``
    holds ``bos`` for ``s <= k``, code ``c_k[s-k-1] + offset`` for ``k < s <= F+k``, and
    ``pad`` after; ``F + K`` steps in all. This is the grid ``build_delay_pattern_mask``
    builds (``huggingface/transformers: src/transformers/models/musicgen/modeling_musicgen.py``)
    with its ``max_length`` set to ``F + K``.

What ``loglikelihood`` scores (natural log; ``num_tokens`` = how many terms are summed, so
the harness' mean is per scored token):

- ``first`` / ``flat``: every token after the first of ``[bos] codes [eos]``, each given all
  tokens before it: ``F`` (first) or ``K*F`` (flat) codes plus the EOS when ``eos`` is set;
  without ``bos`` the first code is context only (it has no prediction).
- ``delay``: the ``K*F`` code positions of the grid, each predicted from the logits of its
  own stream at the previous step; ``bos`` and ``pad`` positions are inputs, never scored.

All paths are local; nothing is downloaded. Example ``--model_args``::

    codec=/models/encodec_24khz,lm=/models/codec-gpt2,layout=flat,codebooks=2
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity
from speechlm_eval.model import (
    ContinueRequest,
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ResynthesizeRequest,
    SpeechLM,
)
from speechlm_eval.options import REQUIRED, Opt, Spec

from .codecs import CODEC_FAMILIES, Codec, make_codec
from .gslm_mini.sampling import SampleOptions, _warpers, check_options, sample_seed
from .hf_unit_lm import (
    _DTYPES,
    BATCH_SIZE,
    _model_dir,
    load_config,
    load_pretrained,
    torch_device,
)
from .units import UnitLM

__all__ = ["LAYOUTS", "CodeLayout", "CodecLM", "ParallelCodeLM"]

LAYOUTS: tuple[str, ...] = ("first", "flat", "delay")
_CODEC = f"a transformers audio codec ({', '.join(CODEC_FAMILIES)})"
_LM = "a transformers causal LM over the codes"

OPTIONS = Spec(
    {
        "codec": Opt(
            Path, REQUIRED, check=_model_dir(_CODEC), identity=False, doc=f"local dir of {_CODEC}"
        ),
        "lm": Opt(Path, REQUIRED, check=_model_dir(_LM), identity=False, doc=f"local dir of {_LM}"),
        "layout": Opt(str, REQUIRED, choices=LAYOUTS, doc="token layout: first, flat or delay"),
        "codebooks": Opt(
            int,
            None,
            ge=1,
            doc="codebooks the codec returns (default: delay: the LM's num_codebooks; "
            "otherwise all the codec has)",
        ),
        "offset": Opt(
            int,
            ge=0,
            nullable=False,
            derive=lambda v: 0 if v["layout"] == "delay" else 2,
            doc="token id of code 0 (default 2; delay: 0)",
        ),
        # The unit LMs' convention (PAD=0, <S>=1 as BOS and EOS, codes from 2) when offset is 2.
        "bos": Opt(
            int,
            nullable=True,
            derive=lambda v: 1 if v["layout"] != "delay" and v["offset"] == 2 else None,
            expect="an integer token id or none",
        ),
        "eos": Opt(
            int,
            nullable=True,
            derive=lambda v: 1 if v["layout"] != "delay" and v["offset"] == 2 else None,
            expect="an integer token id or none",
        ),
        "pad": Opt(int, None, expect="an integer token id or none", doc="delay: end filler"),
        "features": Opt(str, "codes", choices=("codes", "latents"), doc="what encode returns"),
        "with_prompt": Opt(bool, False, doc="continue: return the prompt too"),
        "device": Opt(str, "cpu", check=torch_device, identity=False),
        "dtype": Opt(
            object, "float32", choices=_DTYPES, expect="one of float32, bfloat16, float16"
        ),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


# --- the token layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeLayout:
    """How codec codes ``[K, F]`` become LM tokens (see the module doc for each ``name``).

    ``codebooks`` (K) and ``codebook_size`` come from the codec; ``offset``, ``bos``, ``eos``
    and (delay) ``pad`` are token ids.
    """

    name: str
    codebooks: int
    codebook_size: int
    offset: int
    bos: int | None
    eos: int | None
    pad: int | None = None

    @property
    def modelled(self) -> int:
        """How many codebooks the LM reads and generates (``first``: 1)."""
        return 1 if self.name == "first" else self.codebooks

    @property
    def n_codes(self) -> int:
        """Distinct code tokens the LM's output vocabulary must hold past ``offset``."""
        return self.codebook_size * (self.codebooks if self.name == "flat" else 1)

    def code_tokens(self, k: int) -> tuple[int, int]:
        """Token ids ``[lo, hi)`` of codebook ``k``'s codes."""
        lo = self.offset + (k * self.codebook_size if self.name == "flat" else 0)
        return lo, lo + self.codebook_size

    def stream(self, codes: np.ndarray) -> np.ndarray:
        """``first`` / ``flat``: the codes as one sequence of indices past ``offset``
        (token = index + offset), frame-major for ``flat``."""
        if self.name == "first":
            return np.asarray(codes[0], dtype=np.int64)
        k = np.arange(codes.shape[0], dtype=np.int64)[:, None] * self.codebook_size
        return (np.asarray(codes, dtype=np.int64) + k).T.reshape(-1)

    def grid(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``delay``: the token grid ``[K, F+K]`` and the mask of its code positions."""
        if self.bos is None or self.pad is None:  # resolved by CodecLM before any use
            raise ValueError("the delay layout needs bos and pad")
        n_k, n_f = codes.shape
        ids = np.full((n_k, n_f + n_k), self.pad, dtype=np.int64)
        is_code = np.zeros(ids.shape, dtype=bool)
        for k in range(n_k):
            ids[k, : k + 1] = self.bos
            ids[k, k + 1 : k + 1 + n_f] = np.asarray(codes[k], dtype=np.int64) + self.offset
            is_code[k, k + 1 : k + 1 + n_f] = True
        return ids, is_code

    def describe(self) -> dict[str, Any]:
        """The layout as recorded in the identity (token ranges spelt out)."""
        return {
            "name": self.name,
            "codebooks": self.codebooks,
            "modelled_codebooks": self.modelled,
            "codebook_size": self.codebook_size,
            "offset": self.offset,
            "codebook_offsets": [self.code_tokens(k)[0] for k in range(self.modelled)],
            "bos": self.bos,
            "eos": self.eos,
            "pad": self.pad,
        }

    def check_codes(self, lm_dir: Path, vocab_size: int) -> None:
        """The codes fit the LM's ``vocab_size`` outputs (checked on its config, before any
        weights load); a one-line ConfigError otherwise."""
        top = self.offset + self.n_codes
        if top > vocab_size:
            flat = self.name == "flat"
            raise ConfigError(
                f"codec-lm: layout={self.name} puts {f'{self.codebooks} x ' if flat else ''}"
                f"{self.codebook_size} codes at offset {self.offset} (token ids up to "
                f"{top - 1}), but the LM ('lm' {lm_dir}) has a vocabulary of {vocab_size} "
                f"(expected offset + {'codebooks x ' if flat else ''}codebook_size <= vocab_size)"
            )

    def check_specials(self, rows: int) -> None:
        """``bos`` / ``eos`` / ``pad`` are ids below ``rows`` (the vocabulary; for the delay
        layout's input-only ``bos`` / ``pad``, the embedding table) and not code ids."""
        top = self.offset + self.n_codes
        for name, tok in (("bos", self.bos), ("eos", self.eos), ("pad", self.pad)):
            if tok is None:
                continue
            if not 0 <= tok < rows:
                raise ConfigError(
                    f"model argument {name!r}: token id {tok} is outside the LM vocabulary "
                    f"(0..{rows - 1})"
                )
            if self.offset <= tok < top:
                raise ConfigError(
                    f"model argument {name!r}: token id {tok} collides with the codes "
                    f"(token ids {self.offset}..{top - 1}); expected a special token outside "
                    "them, or none"
                )


# --- the LM parts ----------------------------------------------------------------------------


def _cache_of(out: Any) -> Any:
    """The key/value cache of a forward's output (``cache`` in transformers >= 5,
    ``past_key_values`` before)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


class _Stepper:
    """Incremental forward passes of a causal LM with its key/value cache: ``(ids) ->
    logits`` of the new positions, each call continuing the previous ones."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._cache: Any = None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        kw = {} if self._cache is None else {self._cache_kw: self._cache}
        out = self.model(input_ids=ids.to(self.device), use_cache=True, **kw)
        self._cache = _cache_of(out)
        return out.logits


def _draw(
    logits: torch.Tensor,
    allowed: torch.Tensor,
    opts: SampleOptions,
    warpers: list[Any],
    generator: torch.Generator,
) -> int:
    """One token from ``logits`` restricted to ``allowed``: greedy at temperature 0, else
    Hugging Face's warpers (temperature, top-k, top-p, gslm-mini's order) then a draw from
    ``generator``."""
    scores = logits.float().cpu().clone()
    scores[~allowed] = -math.inf
    if opts.temperature == 0.0:
        return int(torch.argmax(scores))
    s = scores[None]
    for w in warpers:
        s = w(None, s)
    return int(torch.multinomial(torch.softmax(s, dim=-1), 1, generator=generator)[0, 0])


class ParallelCodeLM:
    """A parallel-stream causal LM (``MusicgenForCausalLM``'s interface) under the
    ``delay`` layout: batched log-probabilities and sampling."""

    def __init__(
        self,
        model: torch.nn.Module,
        layout: CodeLayout,
        max_tokens: int | None,
        device: torch.device,
    ) -> None:
        self.model, self.layout, self.max_tokens, self.device = model, layout, max_tokens, device

    @torch.inference_mode()
    def logprobs(self, grids: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        """Sum of the code positions' log-probabilities, per ``(ids, is_code)`` grid. All
        grids go through the LM as one right-padded batch with an attention mask."""
        n_k = self.layout.codebooks
        widths = [ids.shape[1] for ids, _ in grids]
        width = max(widths)
        ids_b = torch.zeros((len(grids), n_k, width), dtype=torch.long)  # padding: masked
        mask = torch.zeros((len(grids), width), dtype=torch.long)
        for i, (ids, _) in enumerate(grids):
            ids_b[i, :, : ids.shape[1]] = torch.from_numpy(ids)
            mask[i, : ids.shape[1]] = 1
        out = self.model(
            input_ids=ids_b.reshape(-1, width).to(self.device),
            attention_mask=mask.to(self.device),
            use_cache=False,
        )
        logits = out.logits.reshape(len(grids), n_k, width, -1)
        totals = []
        for i, (ids, is_code) in enumerate(grids):
            w = ids.shape[1]
            # Row by row keeps the float32 copy at K x T x V rather than B x K x T x V.
            logp = torch.log_softmax(logits[i, :, : w - 1].float(), dim=-1)
            scored = torch.from_numpy(is_code[:, 1:]).to(logp.device)
            # bos / pad targets may lie outside the output vocabulary (MusicGen's 2048): gather
            # a code id there instead, and drop those terms.
            target = torch.from_numpy(ids[:, 1:]).to(logp.device).masked_fill(~scored, 0)
            per_tok = logp.gather(-1, target[..., None])[..., 0]
            totals.append(float(per_tok[scored].sum()))
        return totals

    @torch.inference_mode()
    def sample(
        self,
        prompt: np.ndarray,
        n_frames: int,
        opts: SampleOptions,
        generator: torch.Generator,
    ) -> np.ndarray:
        """Codes ``[K, n_frames]`` drawn after the prompt's codes ``[K, Fp]``.

        The grid is the prompt's delay grid up to step ``Fp`` (every stream known there);
        from step ``Fp + 1`` stream ``k`` takes its own prompt codes while it has any left,
        then draws (streams in order 0..K-1, one generator), and ``pad`` after its last new
        frame, until stream ``K-1`` has its ``n_frames``-th new code.
        """
        lay = self.layout
        n_k, n_p = prompt.shape
        ids, _ = lay.grid(prompt)
        warpers = _warpers(opts)
        step = _Stepper(self.model, self.device)
        logits = step(torch.from_numpy(ids[:, : n_p + 1]))[:, -1]
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
        allowed[slice(*lay.code_tokens(0))] = True
        new = np.zeros((n_k, n_frames), dtype=np.int64)
        last = n_p + n_frames + n_k - 1
        for s in range(n_p + 1, last + 1):
            col = []
            for k in range(n_k):
                f = s - k - 1
                if f < 0:
                    tok = lay.bos
                elif f < n_p:
                    tok = int(prompt[k, f]) + lay.offset
                elif f < n_p + n_frames:
                    tok = _draw(logits[k], allowed, opts, warpers, generator)
                    new[k, f - n_p] = tok - lay.offset
                else:
                    tok = lay.pad
                col.append(tok)
            if s < last:
                logits = step(torch.tensor(col, dtype=torch.long)[:, None])[:, -1]
        return new


def _load_lm(path: Path, config: Any, dtype: torch.dtype, device: torch.device) -> Any:
    """The LM at ``path``: through ``AutoModelForCausalLM``, or, for a parallel-stream
    decoder it does not map (``MusicgenDecoderConfig``), the transformers class its config
    names in ``architectures`` (transformers' own classes only: no remote code)."""
    import transformers
    from transformers import AutoModelForCausalLM

    cls: Any = AutoModelForCausalLM
    try:
        mapped = type(config) in AutoModelForCausalLM._model_mapping
    except Exception:  # a private mapping; if it changes, let from_pretrained decide
        mapped = True
    if not mapped:
        for arch in getattr(config, "architectures", None) or []:
            if arch.endswith("ForCausalLM") and isinstance(getattr(transformers, arch, None), type):
                cls = getattr(transformers, arch)
                break
    return load_pretrained("lm", cls, path, dtype, device)


def _input_rows(model: torch.nn.Module) -> int | None:
    """Rows of the LM's input embedding table (MusicGen: one table per codebook)."""
    emb = model.get_input_embeddings()
    if isinstance(emb, torch.nn.ModuleList):
        emb = emb[0]
    return int(emb.num_embeddings) if isinstance(emb, torch.nn.Embedding) else None


def _codebooks(o: dict[str, Any], lm_config: Any) -> int | None:
    """The codebooks to take from the codec (None: all), after checking that the LM and the
    layout agree: a parallel-stream LM (``num_codebooks`` in its config) for ``delay`` and
    only there, with as many streams as codebooks; no EOS for ``delay``, no ``pad`` elsewhere."""
    layout, lm = o["layout"], o["lm"]
    streams = getattr(lm_config, "num_codebooks", None)
    if layout != "delay":
        if isinstance(streams, int):
            raise ConfigError(
                f"codec-lm: {lm} reads {streams} parallel streams (num_codebooks); "
                f"use layout=delay, not layout={layout}"
            )
        if o["pad"] is not None:
            raise ConfigError("codec-lm: 'pad' applies to layout=delay only")
        return o["codebooks"]
    if not isinstance(streams, int):
        raise ConfigError(
            "codec-lm: layout=delay needs a parallel-stream LM (a config with num_codebooks, "
            f"e.g. MusicgenForCausalLM); {lm} is a {lm_config.model_type!r} model"
        )
    codebooks = streams if o["codebooks"] is None else o["codebooks"]
    if codebooks != streams:
        raise ConfigError(
            f"codec-lm: layout=delay with codebooks={codebooks}, but the LM reads {streams} "
            "streams (num_codebooks)"
        )
    if o["eos"] is not None:
        raise ConfigError("codec-lm: layout=delay has no EOS token; leave 'eos' unset")
    return codebooks


def _layout(o: dict[str, Any], lm_config: Any, codec: Codec) -> CodeLayout:
    """The token layout with its special tokens resolved (``delay``: ``bos`` from the LM
    config unless given, ``pad`` from it too, else ``bos``)."""
    bos, pad = o["bos"], o["pad"]
    if o["layout"] == "delay":
        bos = bos if bos is not None else getattr(lm_config, "bos_token_id", None)
        if bos is None:
            raise ConfigError(
                "codec-lm: layout=delay needs a start token: pass bos=ID (the LM config has "
                "no bos_token_id)"
            )
        pad = pad if pad is not None else getattr(lm_config, "pad_token_id", None)
        pad = bos if pad is None else pad
    return CodeLayout(
        o["layout"], codec.codebooks, codec.codebook_size, o["offset"], bos, o["eos"], pad
    )


# --- the model -------------------------------------------------------------------------------


class CodecLM(SpeechLM):
    """A codec LM: codec encoder -> codes -> token layout -> causal LM (-> codec decoder).

    Keyword arguments (strings from ``--model_args`` are parsed, see :data:`OPTIONS`):

    - ``codec``: local directory of a transformers EncodecModel / MimiModel / DacModel /
      XcodecModel (mono; runs in float32).
    - ``lm``: local directory of a causal LM over the codes (``AutoModelForCausalLM``; for
      ``layout=delay`` a parallel-stream decoder such as ``MusicgenForCausalLM``).
    - ``layout``: ``first``, ``flat`` or ``delay`` (required; see the module doc).
    - ``codebooks``: codebooks the codec returns (default: delay: the LM's
      ``num_codebooks``; otherwise all the codec has).
    - ``offset`` (default 2; delay 0), ``bos`` / ``eos`` (default 1 when offset is 2, else
      none; delay: ``bos`` defaults to the LM config's ``bos_token_id`` and ``eos`` is not
      supported), ``pad`` (delay only; default the LM's ``pad_token_id``, else ``bos``).
    - ``features``: what ``encode`` returns, ``codes`` (codebook 0 per frame, int64) or
      ``latents`` (the quantiser's input, frames x dims).
    - ``with_prompt``: ``continue`` returns the decoded prompt before the continuation.
    - ``device`` (default cpu), ``dtype`` of the LM (float32 | bfloat16 | float16).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"loglikelihood", "encode", "resynthesize", "continue"}
    )
    sample_rate: int | None = None  # set from the codec (the runner resamples to it)

    def __init__(self, **kwargs: Any) -> None:
        # Everything cheap is parsed and checked before any weights load.
        o = OPTIONS.parse("codec-lm", kwargs)
        layout_name: str = o["layout"]
        lm_config = load_config("lm", o["lm"])
        vocab_size = getattr(lm_config, "vocab_size", None)
        if not isinstance(vocab_size, int):
            raise ConfigError(f"model argument 'lm': {o['lm']}/config.json has no vocab_size")
        codebooks = _codebooks(o, lm_config)
        codec = make_codec(o["codec"], load_config("codec", o["codec"]), codebooks, o["device"])
        layout = _layout(o, lm_config, codec)
        layout.check_codes(o["lm"], vocab_size)
        if layout_name != "delay":
            layout.check_specials(vocab_size)
        # (The delay layout's bos / pad are inputs only, never predicted: MusicGen's 2048 is
        # one past its 2048 outputs. They are checked against the embedding table below.)
        # Hashed once here: identity() is called for every cache lookup and must be cheap.
        self._parts = {
            "codec": saved_model_identity("codec", o["codec"]),
            "lm": saved_model_identity("lm", o["lm"]),
        }

        dtype = getattr(torch, o["dtype"])
        self.codec: Codec = codec.load()
        self.sample_rate = codec.sample_rate
        lm = _load_lm(o["lm"], lm_config, dtype, o["device"])
        max_tokens = getattr(lm_config, "max_position_embeddings", None)
        self.layout = layout
        self.unit_lm: UnitLM | None = None
        self.parallel_lm: ParallelCodeLM | None = None
        if layout_name == "delay":
            layout.check_specials(_input_rows(lm) or vocab_size)
            self.parallel_lm = ParallelCodeLM(lm, layout, max_tokens, o["device"])
        else:
            rows = _input_rows(lm)
            if rows is not None and layout.offset + layout.n_codes > rows:
                raise ConfigError(
                    f"codec-lm: the codes need token ids up to {layout.offset + layout.n_codes - 1}"
                    f" but the LM ('lm') embedding table has {rows} rows"
                )
            # A codec LM over one token stream is a unit LM whose units are codes.
            self.unit_lm = UnitLM(
                lm,
                n_units=layout.n_codes,
                offset=layout.offset,
                bos=layout.bos,
                eos=layout.eos,
                max_tokens=max_tokens,
                device=o["device"],
            )
        self._dtype: str = o["dtype"]
        self._settings = {k: o[k] for k in ("features", "with_prompt", "dtype")}
        super().__init__(**kwargs)

    @property
    def dtype(self) -> str:
        """Compute dtype of the LM (the codec always runs in float32)."""
        return self._dtype

    @property
    def frame_rate(self) -> float:
        """Codec frames per second."""
        return self.codec.frame_rate

    def identity(self) -> dict[str, Any]:
        """Class, codec and LM file hashes, the resolved layout and every output-affecting
        setting (not the device)."""
        cls = type(self)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "codec": {**self._parts["codec"], **self.codec.settings()},
            "lm": dict(self._parts["lm"]),
            "layout": self.layout.describe(),
            **self._settings,
        }

    # --- codes ---------------------------------------------------------------------------------

    def codes(self, audio: Audio) -> np.ndarray:
        """Codes ``[codebooks, frames]`` (int64) of ``audio`` at the codec's rate."""
        self._check_rate(audio)
        return self.codec.encode(audio.samples, audio.source)

    def tokens(self, audio: Audio) -> list[int]:
        """``first`` / ``flat``: the LM token ids of ``audio``, ``[bos] codes [eos]``."""
        if self.unit_lm is None:
            raise ValueError("layout=delay has a token grid, not a sequence (see layout.grid)")
        return self.unit_lm.tokens(self.layout.stream(self.codes(audio)))

    # --- capabilities --------------------------------------------------------------------------

    @torch.inference_mode()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Total log-probability of each request's codes under the LM, per the layout (see
        the module doc), and the number of scored tokens. One right-padded batch."""
        if not requests:
            return []
        codes = []
        for req in requests:
            if req.audio is None:
                raise ValueError(f"codec-lm scores speech only; request {req.key!r} has no audio")
            if req.text is not None:
                raise ValueError(f"codec-lm cannot score text; request {req.key!r} has text set")
            codes.append((req.key or req.audio.source, self.codes(req.audio), req.audio.duration))
        if self.parallel_lm is not None:
            lm = self.parallel_lm
            grids = []
            for where, c, seconds in codes:
                ids = self.layout.grid(c)
                self._fits(where, ids[0].shape[1], lm.max_tokens, seconds, "steps")
                grids.append(ids)
            totals = lm.logprobs(grids)
            counts = [int(is_code.sum()) for _, is_code in grids]
        else:
            assert self.unit_lm is not None
            seqs = []
            for where, c, seconds in codes:
                ids = self.unit_lm.tokens(self.layout.stream(c))
                if len(ids) < 2:
                    raise DataError(
                        f"{where}: only {len(ids)} token(s) to score; need at least 2 "
                        "(use bos/eos, or longer audio)"
                    )
                self._fits(where, len(ids), self.unit_lm.max_tokens, seconds, "tokens")
                seqs.append(ids)
            totals = self.unit_lm.logprobs(seqs)
            counts = [len(s) - 1 for s in seqs]
        return [
            LoglikelihoodResult(logprob=t, num_tokens=n)
            for t, n in zip(totals, counts, strict=True)
        ]

    @staticmethod
    def _fits(where: str, n: int, limit: int | None, seconds: float, what: str) -> None:
        if limit is not None and n > int(limit):
            raise DataError(
                f"{where}: {n} {what} exceed the LM context of {limit} ({seconds:.1f} s of audio)"
            )

    def encode(self, requests: list[EncodeRequest]) -> list[EncodeResult]:
        """``features=codes``: codebook 0 per frame (int64, ``(frames,)``); ``latents``: the
        quantiser's input (float32, ``(frames, dims)``); at the codec's frame rate."""
        out = []
        for req in requests:
            if self._settings["features"] == "codes":
                feats = self.codes(req.audio)[0]
            else:
                self._check_rate(req.audio)
                feats = self.codec.latents(req.audio.samples, req.audio.source)
            out.append(EncodeResult(features=feats, frame_rate=self.frame_rate))
        return out

    def _check_rate(self, audio: Audio) -> None:
        if not isinstance(audio, Audio):
            raise TypeError(f"expected an Audio, got {type(audio).__name__}")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"{audio.source}: audio is {audio.sample_rate} Hz, the codec needs "
                f"{self.sample_rate} Hz (the runner resamples)"
            )

    def resynthesize(self, requests: list[ResynthesizeRequest]) -> list[Audio]:
        """Codec round trip with all ``codebooks``: encode, decode, cut (or zero-pad) to the
        input's length. At the codec's rate; one request at a time."""
        out = []
        for req in requests:
            wav = self.codec.decode(self.codes(req.audio))
            n = req.audio.samples.size
            wav = wav[:n] if wav.size >= n else np.pad(wav, (0, n - wav.size))
            out.append(
                Audio(wav, self.codec.sample_rate, f"codec resynthesis of {req.audio.source}")
            )
        return out

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]]:
        """``num_samples`` sampled continuations of each prompt, decoded by the codec.

        The prompt's codes are the context (``first`` / ``flat``: ``[bos] codes``, no EOS;
        ``delay``: the prompt's grid); codes are drawn with temperature / top-k / top-p
        (temperature 0 = greedy), restricted to the codebook due at each position, for
        ``floor(max_seconds * frame_rate)`` frames, or until the LM draws EOS at a frame
        boundary (never first), or until its context is full. Prompt and continuation codes
        are decoded as one sequence (a smooth join) and cut at the prompt's end unless
        ``with_prompt``. ``first`` decodes codebook 0 alone: there is no fine-codebook stage
        here (AudioLM and VALL-E add one with another model).

        Sample ``j`` uses its own ``torch.Generator`` seeded from ``(seed, j)``: equal seeds
        give identical audio whatever the batch or ``num_samples``.
        """
        results = []
        for req in requests:
            where = f"continue request {req.key or req.prompt.source!r}"
            opts, n, seed, max_frames = _continue_settings(req, self.frame_rate, where)
            prompt = self.codes(req.prompt)[: self.layout.modelled]
            samples = []
            for j in range(n):
                gen = torch.Generator().manual_seed(sample_seed(seed, j))
                new = self.sample_codes(prompt, max_frames, opts, gen, req.prompt.source)
                wav = self.codec.decode(np.concatenate([prompt, new], axis=1))
                if not self._settings["with_prompt"]:
                    wav = wav[prompt.shape[1] * self.codec.hop_length :]
                src = f"codec-lm continuation {j} of {req.prompt.source}"
                samples.append(
                    Audio(np.ascontiguousarray(wav, dtype=np.float32), self.codec.sample_rate, src)
                )
            results.append(samples)
        return results

    def sample_codes(
        self,
        prompt: np.ndarray,
        max_frames: int,
        opts: SampleOptions,
        generator: torch.Generator,
        source: str = "<prompt>",
    ) -> np.ndarray:
        """Codes ``[modelled codebooks, frames]`` drawn after ``prompt`` (its codes, same
        codebooks), at most ``max_frames`` frames."""
        if self.parallel_lm is not None:
            limit = self.parallel_lm.max_tokens
            room = max_frames if limit is None else int(limit) - prompt.shape[1] - prompt.shape[0]
            n = min(max_frames, room)
            if n < 1:
                raise DataError(
                    f"{source}: the prompt's {prompt.shape[1]} frames fill the LM context "
                    f"of {limit}"
                )
            return self.parallel_lm.sample(prompt, n, opts, generator)
        return self._sample_stream(prompt, max_frames, opts, generator, source)

    @torch.inference_mode()
    def _sample_stream(
        self,
        prompt: np.ndarray,
        max_frames: int,
        opts: SampleOptions,
        generator: torch.Generator,
        source: str,
    ) -> np.ndarray:
        lm, lay = self.unit_lm, self.layout
        assert lm is not None
        per = lay.modelled  # tokens per frame
        context = lm.context(lay.stream(prompt))
        limit = int(lm.max_tokens) if lm.max_tokens else None
        n = max_frames if limit is None else min(max_frames, (limit - len(context)) // per)
        if n < 1:
            raise DataError(
                f"{source}: the prompt is {len(context)} tokens; the LM's context is {limit}"
            )
        warpers = _warpers(opts)
        step = _Stepper(lm.model, lm.device)
        logits = step(torch.tensor([context], dtype=torch.long))[0, -1]
        # Position k of a frame may only be a code of codebook k (flat: its own id range).
        allowed = []
        for k in range(per):
            mask = torch.zeros(logits.shape[-1], dtype=torch.bool)
            mask[slice(*lay.code_tokens(k))] = True
            allowed.append(mask)
        with_eos = allowed[0].clone()
        if lay.eos is not None:
            with_eos[lay.eos] = True
        frames: list[list[int]] = []
        for f in range(n):
            frame = []
            for k in range(per):
                mask = with_eos if (k == 0 and f > 0) else allowed[k]
                tok = _draw(logits, mask, opts, warpers, generator)
                if lay.eos is not None and tok == lay.eos:
                    return np.asarray(frames, dtype=np.int64).T.reshape(per, -1)
                frame.append(tok - lay.code_tokens(k)[0])
                if not (f == n - 1 and k == per - 1):
                    logits = step(torch.tensor([[tok]], dtype=torch.long))[0, -1]
            frames.append(frame)
        return np.asarray(frames, dtype=np.int64).T.reshape(per, -1)


def _continue_settings(
    req: ContinueRequest, frame_rate: float, where: str
) -> tuple[SampleOptions, int, int, int]:
    """(sampling options, num_samples, seed, frame budget) of a request, checked."""
    opts = check_options(req.temperature, req.top_k, req.top_p, where)
    n, seed, frames = req.budget(frame_rate, where)
    return opts, n, seed, frames
