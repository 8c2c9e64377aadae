"""SPIRIT-LM (base): a Llama checkpoint over interleaved text and HuBERT-unit tokens.

SPIRIT-LM (``facebookresearch/spiritlm``) is Llama-2 with its vocabulary extended: ids
0..31999 are text, 32000 ``[Text]`` and 32001 ``[Speech]`` switch modality, and 32002..32502
are ``[Hu0]``..``[Hu500]`` (501 HuBERT units at 25 Hz, deduplicated). The expressive variant
adds pitch ``[Pi*]`` and style ``[St*]`` units; only the base layout is implemented here.

Pipeline for speech: 16 kHz waveform -> transformers HuBERT layer (:class:`HFEncoder`) ->
nearest of 501 k-means centroids (:class:`~reference_models.units.UnitTokenizer`, dedup) ->
``<s> [Speech] [Hu u1] [Hu u2] ...`` -> Llama logits -> summed log-probabilities.

Everything is read from local files; nothing is downloaded. The speech tokenizer assets are
given as a transformers HuBERT folder plus a ``.npy`` of centroids (convert SPIRIT-LM's own
``mhubert_base_25hz.pt`` / ``L11_quantizer_500.pt`` once; do not assume TWIST's mHuBERT and
km500 give SPIRIT-LM's unit ids).

Example ``--model_args``::

    lm=/models/spirit-lm-base-7b,encoder=/models/spirit-hubert,layer=11,kmeans=/models/spirit-km.npy
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity, sha256_file
from speechlm_eval.model import ContinueRequest, LoglikelihoodRequest, LoglikelihoodResult
from speechlm_eval.options import REQUIRED, Opt, Spec

from .hf_unit_lm import (
    _DTYPES,
    BATCH_SIZE,
    HFEncoder,
    UnitSpeechLM,
    _model_dir,
    load_centroids,
    load_config,
    load_pretrained,
    torch_device,
)
from .units import UnitLM, UnitTokenizer

__all__ = ["HU_OFFSET", "N_UNITS", "SPEECH", "TEXT", "SpiritLM", "sample_seed"]

# The base layout (spiritlm/model/utils.py: get_forbidden_tokens).
TEXT = 32000  # [Text]
SPEECH = 32001  # [Speech]
HU_OFFSET = 32002  # [Hu0]
N_UNITS = 501  # [Hu0]..[Hu500]
_TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)

OPTIONS = Spec(
    {
        "lm": Opt(
            Path,
            REQUIRED,
            check=_model_dir("a SPIRIT-LM Llama checkpoint with its tokenizer"),
            identity=False,
            doc="local directory of the Llama checkpoint and its tokenizer",
        ),
        "encoder": Opt(
            Path,
            REQUIRED,
            check=_model_dir("a transformers HuBERT model"),
            identity=False,
            doc="local directory of the transformers HuBERT speech encoder",
        ),
        "layer": Opt(int, None, doc="hidden_states index to quantise (default: last)"),
        "kmeans": Opt(Path, REQUIRED, identity=False, doc="a .npy file of 501 centroids (501, D)"),
        "pad_audio": Opt(int, 0, ge=0, doc="zero samples added on each side before HuBERT"),
        "device": Opt(str, "cpu", check=torch_device, identity=False),
        "dtype": Opt(
            object, "float32", choices=_DTYPES, expect="one of float32, bfloat16, float16"
        ),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


def _load_tokenizer(lm_dir: Path) -> Any:
    """The checkpoint's tokenizer, checked against the SPIRIT-LM base layout (one-line errors)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(lm_dir), local_files_only=True)
    except Exception as e:  # missing files, sentencepiece absent, malformed JSON ...
        raise ConfigError(
            f"model argument 'lm': cannot load a tokenizer from {lm_dir} ({type(e).__name__}: {e})"
        ) from None
    # Tokenising a string checks both the ids and that the specials are split out as units.
    probe = f"[Text][Speech][Hu0][Hu12][Hu{N_UNITS - 1}]"
    want = [TEXT, SPEECH, HU_OFFSET, HU_OFFSET + 12, HU_OFFSET + N_UNITS - 1]
    got = [int(t) for t in tok(probe, add_special_tokens=False)["input_ids"]]
    if got != want:
        raise ConfigError(
            f"model argument 'lm': the tokenizer in {lm_dir} is not SPIRIT-LM's base layout: "
            f"{probe!r} -> {got}, expected {want}"
        )
    if tok.bos_token_id is None:
        raise ConfigError(f"model argument 'lm': the tokenizer in {lm_dir} has no BOS token")
    return tok


def sample_seed(seed: int, index: int) -> int:
    """The generator seed of continuation ``index`` of a request seeded ``seed``: a hash, so
    that neighbouring (seed, index) pairs do not share streams."""
    digest = hashlib.sha256(f"spirit-lm:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _tokenizer_hash(lm_dir: Path) -> str:
    """One sha256 over the tokenizer files present (name and digest of each)."""
    h = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        p = lm_dir / name
        if p.is_file():
            h.update(f"{name}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


class SpiritLM(UnitSpeechLM):
    """SPIRIT-LM base: log-likelihood of speech, text, or text given speech.

    Keyword arguments (see :data:`OPTIONS`): ``lm`` (Llama checkpoint + tokenizer with the
    SPIRIT-LM special tokens), ``encoder`` (transformers HuBERT folder), ``layer``, ``kmeans``
    (``.npy``, 501 centroids), ``pad_audio``, ``dtype`` (float32 | bfloat16 | float16; the
    published model runs in bfloat16), and the harness' ``device``.

    Sequences and what is scored (markers and BOS are context, never scored):

    - audio only: ``<s> [Speech] units`` -> the unit tokens;
    - text only: ``<s> [Text] text`` -> the text tokens;
    - audio and text: ``<s> [Speech] units [Text] text`` -> the text tokens only, i.e.
      ``log p(text | speech)`` (the ``text_given_audio`` kind).

    ``continue`` serves text output only (``continue_modalities``: speech->text, text->text):
    context ``<s> [Speech] units [Text]`` or ``<s> [Text] text`` (SPIRIT-LM's
    ``_build_prompt``: the output-modality marker follows a prompt of the other modality),
    then text tokens sampled until EOS or ``max_tokens`` (default 50, STSP's text budget),
    every non-text token masked. Speech output needs SPIRIT-LM's unit HiFi-GAN vocoder, which
    this adapter does not load: :meth:`continue_units` samples speech-modality unit
    continuations (units, not audio) for callers that bring their own vocoder.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood", "encode", "continue"})
    continue_modalities: ClassVar[frozenset[str]] = frozenset({"speech->text", "text->text"})
    likelihood_of: ClassVar[frozenset[str]] = frozenset({"audio", "text", "text_given_audio"})
    label: ClassVar[str] = "spirit-lm"

    def __init__(self, **kwargs: Any) -> None:
        # Cheap checks first (options, centroids, configs, tokenizer), then the weights.
        o = OPTIONS.parse("spirit-lm", kwargs)
        dtype = getattr(torch, o["dtype"])
        centroids = load_centroids(o["kmeans"])
        if centroids.shape[0] != N_UNITS:
            raise ConfigError(
                f"model argument 'kmeans': SPIRIT-LM base has {N_UNITS} HuBERT units, "
                f"{o['kmeans']} has {centroids.shape[0]} centroids"
            )
        enc_config, layer = HFEncoder.check_config(o["encoder"], o["layer"])
        if centroids.shape[1] != int(enc_config.hidden_size):
            raise ConfigError(
                f"model argument 'kmeans': centroids have dimension {centroids.shape[1]}, "
                f"encoder hidden size is {enc_config.hidden_size}"
            )
        lm_config = load_config("lm", o["lm"])
        vocab = getattr(lm_config, "vocab_size", None)
        if not isinstance(vocab, int) or vocab < HU_OFFSET + N_UNITS:
            raise ConfigError(
                f"model argument 'lm': vocab_size {vocab} is below SPIRIT-LM base's "
                f"{HU_OFFSET + N_UNITS} tokens"
            )
        self.text_tokenizer = _load_tokenizer(o["lm"])
        self._identity_parts = {
            "encoder": saved_model_identity("encoder", o["encoder"]),
            "kmeans": {
                "path": str(o["kmeans"].resolve()),
                "sha256": sha256_file(o["kmeans"]),
                "n_units": N_UNITS,
            },
            "lm": {
                **saved_model_identity("lm", o["lm"]),
                "tokenizer_hash": _tokenizer_hash(o["lm"]),
            },
            "code_sha256": sha256_file(Path(__file__)),
        }
        self._settings = {**OPTIONS.identity(o), "layer": layer}

        encoder = HFEncoder(o["encoder"], enc_config, layer, o["pad_audio"], dtype, o["device"])
        if encoder.preprocessor_sha256 is not None:
            self._identity_parts["encoder"]["preprocessor_hash"] = encoder.preprocessor_sha256
        from transformers import AutoModelForCausalLM

        model = load_pretrained("lm", AutoModelForCausalLM, o["lm"], dtype, o["device"])
        unit_lm = UnitLM(
            model,
            n_units=N_UNITS,
            offset=HU_OFFSET,
            bos=int(self.text_tokenizer.bos_token_id),
            eos=None,  # SPIRIT-LM prompts end open: no EOS after the units
            max_tokens=getattr(lm_config, "max_position_embeddings", None),
            device=o["device"],
        )
        # SPIRIT-LM's HuBERT units are always deduplicated (25 Hz, run-length collapsed).
        super().__init__(encoder, UnitTokenizer(centroids, dedup=True), unit_lm, o["dtype"], kwargs)

    # --- token layout ------------------------------------------------------------------------

    def text_tokens(self, text: str, where: str) -> list[int]:
        """Text token ids (no BOS); text must stay in the text range (no ``[Hu..]`` in it)."""
        ids = [int(t) for t in self.text_tokenizer(text, add_special_tokens=False)["input_ids"]]
        if not ids:
            raise DataError(f"{where}: the text {text!r} has no tokens")
        if max(ids) >= TEXT:
            raise DataError(f"{where}: the text {text!r} contains SPIRIT-LM special tokens")
        return ids

    def sequence(self, req: LoglikelihoodRequest) -> tuple[list[int], int]:
        """(token ids, index of the first scored token) of one request; see the class doc."""
        where = req.key or (req.audio.source if req.audio is not None else "request")
        ids = [int(self.unit_lm.bos)]  # type: ignore[arg-type]
        if req.audio is None and req.text is None:
            raise DataError(f"{where}: request has neither audio nor text")
        if req.audio is not None:
            units = self.units(req.audio)
            if req.text is None and units.size == 0:
                raise DataError(f"{where}: audio gave no units to score")
            ids += [SPEECH, *(int(u) + HU_OFFSET for u in units)]
        if req.text is None:
            return ids, 2
        ids.append(TEXT)
        start = len(ids)
        return ids + self.text_tokens(req.text, where), start

    # --- scoring -----------------------------------------------------------------------------

    @torch.inference_mode()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Sum of ``log p(token | previous tokens)`` over the scored tokens, and their count.

        All requests go through the Llama as one right-padded batch with an attention mask;
        causal attention keeps each row's positions the same as alone.
        """
        if not requests:
            return []
        seqs = [self.sequence(r) for r in requests]
        limit = self.unit_lm.max_tokens
        for req, (ids, _) in zip(requests, seqs, strict=True):
            if limit is not None and len(ids) > int(limit):
                raise DataError(
                    f"{req.key or 'request'}: {len(ids)} tokens exceed the LM context of {limit}"
                )
        width = max(len(ids) for ids, _ in seqs)
        input_ids = torch.zeros((len(seqs), width), dtype=torch.long)  # pad id masked out
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, _) in enumerate(seqs):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
        device = self.unit_lm.device
        logits = self.unit_lm.model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False
        ).logits
        out = []
        for i, (ids, start) in enumerate(seqs):
            n = len(ids)
            # Position p predicts token p + 1; float32 per row keeps memory at T x V.
            logp = torch.log_softmax(logits[i, start - 1 : n - 1].float(), dim=-1)
            target = input_ids[i, start:n].to(logp.device)
            total = float(logp.gather(1, target[:, None]).sum())
            out.append(LoglikelihoodResult(logprob=total, num_tokens=n - start))
        return out

    # --- speech continuation (units only) -------------------------------------------------------

    @torch.inference_mode()
    def continue_units(
        self,
        prompt: Audio,
        *,
        num_samples: int = 1,
        max_units: int = 250,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
    ) -> list[np.ndarray]:
        """Sample ``num_samples`` unit continuations of ``prompt`` in the speech modality.

        Context ``<s> [Speech] units``; at every step all tokens but ``[Hu0]..[Hu500]`` are
        masked (so the model cannot switch to text or stop), and sample ``i`` draws from a
        CPU generator seeded by :func:`sample_seed` (``seed``, ``i``). Returns unit ids
        (0..500), ``max_units`` each. Not the ``continue`` capability: audio needs a vocoder.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        context = [int(self.unit_lm.bos), SPEECH]  # type: ignore[arg-type]
        context += [int(u) + HU_OFFSET for u in self.units(prompt)]
        limit = self.unit_lm.max_tokens
        if limit is not None and len(context) + max_units > int(limit):
            raise DataError(
                f"{prompt.source}: {len(context)} prompt tokens + {max_units} units exceed "
                f"the LM context of {limit}"
            )
        device = self.unit_lm.device
        model = self.unit_lm.model
        # transformers >= 5 names the key/value cache ``cache``; before, ``past_key_values``.
        cache_kw = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        out = []
        for i in range(num_samples):
            gen = torch.Generator().manual_seed(sample_seed(seed, i))
            step = model(input_ids=torch.tensor([context], device=device), use_cache=True)
            units: list[int] = []
            for _ in range(max_units):
                # Only the unit slice of the vocabulary: the mask of every other token.
                logits = step.logits[0, -1, HU_OFFSET : HU_OFFSET + N_UNITS].float().cpu()
                logits = logits / temperature
                if top_k is not None and top_k < N_UNITS:
                    kth = torch.topk(logits, top_k).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                u = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
                units.append(u)
                cache = step["cache"] if "cache" in step else step["past_key_values"]
                step = model(
                    input_ids=torch.tensor([[u + HU_OFFSET]], device=device),
                    use_cache=True,
                    **{cache_kw: cache},
                )
            out.append(np.asarray(units, dtype=np.int64))
        return out

    # --- text continuation (the continue capability) ---------------------------------------------

    def _step_kwargs(self) -> str:
        model = self.unit_lm.model
        # transformers >= 5 names the key/value cache ``cache``; before, ``past_key_values``.
        return (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )

    @torch.inference_mode()
    def sample_text(
        self,
        context: list[int],
        *,
        max_tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        generator: torch.Generator,
    ) -> list[int]:
        """Text tokens sampled after ``context`` (ids below ``[Text]`` only), until EOS."""
        model, device = self.unit_lm.model, self.unit_lm.device
        cache_kw = self._step_kwargs()
        eos = self.text_tokenizer.eos_token_id
        step = model(input_ids=torch.tensor([context], device=device), use_cache=True)
        ids: list[int] = []
        for _ in range(max_tokens):
            logits = step.logits[0, -1, :TEXT].float().cpu()  # the text range; the rest masked
            if temperature <= 0:
                t = int(torch.argmax(logits))
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.numel():
                    kth = torch.topk(logits, top_k).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = torch.softmax(logits, -1)
                if top_p is not None and top_p < 1:
                    sp, order = torch.sort(probs, descending=True)
                    # keep the smallest prefix whose mass reaches top_p (the first always)
                    drop = torch.cumsum(sp, 0) - sp >= top_p
                    sp[drop] = 0
                    probs = torch.zeros_like(probs).scatter(0, order, sp)
                t = int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
            if eos is not None and t == int(eos):
                break
            ids.append(t)
            cache = step["cache"] if "cache" in step else step["past_key_values"]
            step = model(
                input_ids=torch.tensor([[t]], device=device), use_cache=True, **{cache_kw: cache}
            )
        return ids

    def continue_(self, requests: list[ContinueRequest]) -> list[list[str]]:
        """Text continuations of speech or text prompts (see the class doc); sample ``i`` of
        a request draws from a CPU generator seeded by :func:`sample_seed` (seed, i)."""
        out = []
        for r in requests:
            where = r.key or "continue"
            if r.output != "text":
                raise ConfigError(f"{where}: spirit-lm (base adapter) has no speech output")
            ctx = [int(self.unit_lm.bos)]  # type: ignore[arg-type]
            if r.prompt is not None:
                units = self.units(r.prompt)
                if units.size == 0:
                    raise DataError(f"{where}: the prompt audio gave no units")
                ctx += [SPEECH, *(int(u) + HU_OFFSET for u in units), TEXT]
            else:
                ctx += [TEXT, *self.text_tokens(str(r.prompt_text), where)]
            n_max = int(r.max_tokens or 50)
            limit = self.unit_lm.max_tokens
            if limit is not None and len(ctx) + n_max > int(limit):
                raise DataError(
                    f"{where}: {len(ctx)} prompt tokens + {n_max} new ones exceed the LM "
                    f"context of {limit}"
                )
            texts = []
            for i in range(int(r.num_samples)):
                gen = torch.Generator().manual_seed(sample_seed(r.seed, i))
                ids = self.sample_text(
                    ctx,
                    max_tokens=n_max,
                    temperature=float(r.temperature),
                    top_k=r.top_k,
                    top_p=r.top_p,
                    generator=gen,
                )
                texts.append(self.text_tokenizer.decode(ids, skip_special_tokens=True))
            out.append(texts)
        return out

    def identity(self) -> dict[str, Any]:
        """Class, code hash, file hashes (encoder, centroids, Llama, tokenizer) and settings."""
        cls = type(self)
        parts = self._identity_parts
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "layout": "spirit-lm-base",
            "code_sha256": parts["code_sha256"],
            "encoder": dict(parts["encoder"]),
            "kmeans": dict(parts["kmeans"]),
            "lm": dict(parts["lm"]),
            **self._settings,
        }
