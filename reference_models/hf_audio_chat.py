"""``hf-audio-chat``: instruction-following audio LMs of transformers as a speechlm-eval plugin.

One adapter for the models of transformers that take audio and answer in text: the chat
models Qwen2-Audio, Voxtral, Granite Speech and Phi-4-multimodal, and the speech translator
SeamlessM4T v2 (the per-model parts live in :mod:`reference_models.audio_chat_families`;
``family=auto`` picks one from ``config.json``). Capabilities:

- ``respond``: a :class:`~speechlm_eval.model.RespondRequest` becomes one chat -- an optional
  system turn, then a user turn holding the request's audio (first) and its text (or, when the
  request has no text, the ``instruction`` option) -- rendered by the model's own prompt
  format (the processor's chat template; mistral-common for Voxtral) with the assistant
  header appended; the model then generates the answer. Greedy by default
  (``temperature=0``); with ``temperature > 0`` each request is sampled on its own, from a
  generator seeded by (``seed``, the request's content), so an answer never depends on which
  other requests shared its batch. SeamlessM4T v2 has no chat: it takes audio only and
  answers with its translation into ``tgt_lang`` (default ``eng``).
- ``loglikelihood``: a :class:`~speechlm_eval.model.LoglikelihoodRequest` is read as *a text
  answer given audio*: the user turn is the request's audio (if any) and the ``instruction``
  option (if any); ``text`` is the assistant's answer, tokenised on its own (as given, no
  space added) right after the assistant header (for SeamlessM4T v2: after the decoder's
  target-language prefix), and scored teacher-forced. The result is the sum of the answer
  tokens' natural-log probabilities and their count; the end-of-turn token is not scored.
  This is what multiple-choice scoring compares across candidate answers.

Batching: prompts are left-padded for generation (every row continues at the same position)
and prompt + answer rows right-padded for scoring, with attention masks; audio features are
per clip, so a request's result does not depend on its batch. Where a family's encoder would
see the padding of a batch of clips (Granite Speech, Phi-4-multimodal, SeamlessM4T v2),
clips of different lengths are run in separate batches. The checkpoint's
``generation_config.json`` sampling settings are not used -- only its end-of-sequence ids (and
SeamlessM4T's language codes): the options below are the whole generation recipe, and they
are in the identity.

Example ``--model_args``::

    model=/models/Qwen2-Audio-7B-Instruct,max_new_tokens=256,dtype=bfloat16
    model=/models/Voxtral-Mini-3B-2507,dtype=bfloat16            # pip install mistral-common
    model=/models/granite-speech-3.3-2b,system=You are Granite.  # torchaudio; LoRA: peft>=0.22
    model=/models/seamless-m4t-v2-large,tgt_lang=eng
    model=/models/phi4-mm-speech-merged,max_new_tokens=128     # speech LoRA merged
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.hashing import digest, saved_model_identity, sha256_file
from speechlm_eval.model import (
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RespondRequest,
    RespondResult,
    SpeechLM,
)
from speechlm_eval.options import REQUIRED, Opt, Spec

from .audio_chat_families import FAMILIES, ChatFamily, check_clip, family_for
from .hf_unit_lm import BATCH_SIZE, torch_device

__all__ = ["OPTIONS", "PROCESSOR_FILES", "HFAudioChat"]

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}

# The files a processor is read from (tokenizer, feature extractor, chat template), hashed for
# the identity when present: a changed template or vocabulary changes every answer.
PROCESSOR_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "tekken.json",  # voxtral's tokenizer (mistral-common)
)


def _local_dir(what: str) -> Any:
    """An ``Opt.check``: an existing local directory (nothing is ever downloaded)."""

    def check(path: Path) -> Path:
        if not path.is_dir():
            raise ValueError(f"{path} is not an existing directory (expected {what})")
        return path

    return check


def _model_dir(path: Path) -> Path:
    path = _local_dir("a local model directory written by save_pretrained")(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} has no config.json (expected a save_pretrained directory)")
    return path


OPTIONS = Spec(
    {
        "model": Opt(
            Path,
            REQUIRED,
            check=_model_dir,
            identity=False,  # hashed instead (config and weights)
            doc="local directory of the transformers model (save_pretrained layout)",
        ),
        "processor": Opt(
            Path,
            None,
            check=_local_dir("a local processor directory"),
            identity=False,  # hashed instead (its files)
            doc="local directory of the processor (default: the model directory)",
        ),
        "family": Opt(
            str,
            "auto",
            choices=("auto", *FAMILIES),
            doc="model family (auto: from config.json model_type)",
        ),
        "system": Opt(str, None, doc="system prompt (default: the chat template's own)"),
        "instruction": Opt(
            str,
            None,
            doc="user text after the audio, for requests that carry none (respond) and for "
            "every loglikelihood request (whose text is the answer)",
        ),
        "tgt_lang": Opt(
            str,
            None,
            identity=False,  # in the identity of the families that read it (seamless-m4t-v2)
            doc="language of the answers of seamless-m4t-v2 (a code of its generation config, "
            "e.g. eng; default eng)",
        ),
        "max_new_tokens": Opt(int, 256, ge=1, doc="longest answer, in tokens"),
        "temperature": Opt(float, 0.0, ge=0.0, doc="0 = greedy; > 0 samples"),
        "top_p": Opt(float, 1.0, gt=0.0, le=1.0, doc="nucleus sampling mass (temperature > 0)"),
        "top_k": Opt(int, 0, ge=0, doc="sample among the k likeliest tokens; 0 = all"),
        "seed": Opt(int, 0, doc="seed of the per-request samplers (temperature > 0)"),
        "dtype": Opt(str, "float32", choices=_DTYPES, expect="one of float32, bfloat16, float16"),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


def _files_hash(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the processor files present in ``path``."""
    return {n: sha256_file(path / n) for n in PROCESSOR_FILES if (path / n).is_file()}


def _request_seed(seed: int, fingerprint: dict[str, Any]) -> int:
    """A 63-bit seed from the ``seed`` option and a request's content: the same request gets
    the same sample whatever its batch, and different requests get different draws."""
    h = hashlib.sha256(f"{seed}\0{digest(fingerprint)}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def _samples(audio: Audio, rate: int, where: str) -> np.ndarray:
    if not isinstance(audio, Audio):
        raise TypeError(f"{where}: expected a speechlm_eval Audio, got {type(audio).__name__}")
    if audio.sample_rate != rate:
        raise ValueError(
            f"{where}: audio is {audio.sample_rate} Hz, the model takes {rate} Hz "
            "(the runner resamples)"
        )
    return np.ascontiguousarray(audio.samples, dtype=np.float32)


class HFAudioChat(SpeechLM):
    """An instruction-following audio chat model of transformers (see the module doc).

    Keyword arguments (strings from ``--model_args``, parsed by :data:`OPTIONS`): ``model``
    (required local directory), ``processor`` (default: ``model``), ``family``
    (``auto`` or a name of :data:`~reference_models.audio_chat_families.FAMILIES`),
    ``system``, ``instruction``, ``tgt_lang`` (seamless-m4t-v2 only), ``max_new_tokens`` (256),
    ``temperature`` (0 = greedy), ``top_p`` (1), ``top_k`` (0 = off), ``seed`` (0),
    ``dtype`` (``float32`` | ``bfloat16`` | ``float16``). ``device`` is the harness'
    ``--device`` (``cpu``, ``cuda``, ``cuda:1``; default cpu), kept out of the identity.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"respond", "loglikelihood"})
    likelihood_of: ClassVar[frozenset[str]] = frozenset({"text_given_audio"})  # not audio
    sample_rate: int | None = 16000

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        # Cheap checks first (options, family, files) so a typo fails before a multi-GB load.
        o = OPTIONS.parse("hf-audio-chat", kwargs)
        try:
            dev = torch_device(device or "cpu")
        except ValueError as e:
            raise ConfigError(f"hf-audio-chat: --device: {e}") from None
        self.family: ChatFamily = family_for(o["model"], o["family"])
        self.family.check_options(o)
        proc_dir: Path = o["processor"] or o["model"]
        self._dtype = o["dtype"]
        self.options = o
        model_id = saved_model_identity("model", o["model"])
        if (o["model"] / "generation_config.json").is_file():  # its eos ids are used
            model_id["generation_config_hash"] = sha256_file(o["model"] / "generation_config.json")

        self.processor = self.family.load_processor(proc_dir)
        rate = int(self.family.feature_extractor(self.processor).sampling_rate)
        self.sample_rate = rate
        self.tokenizer = self.processor.tokenizer
        if self.tokenizer.pad_token_id is None:  # left/right padding needs a pad id
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.family.check_template(self.processor, o["system"])
        self.model = self.family.load_model(o["model"], getattr(torch, o["dtype"]), dev)
        self.family.setup(self.model, self.processor, o, o["model"])
        self.torch_device = dev
        self.eos_token_ids = self._eos_ids()
        self.generation_config = self._generation_config()
        super().__init__(device=device, **kwargs)

        import transformers

        template = self.family.template_fingerprint(self.processor)
        self._identity = {
            "family": self.family.name,
            "model": model_id,
            "processor": {"path": str(proc_dir.resolve()), "files": _files_hash(proc_dir)},
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
            "transformers": transformers.__version__,
            "sample_rate": rate,
            "settings": {
                k: v
                for k, v in OPTIONS.identity(o).items()
                if k not in ("family", "seed", "temperature", "top_p", "top_k", "max_new_tokens")
            },
            "generation": self._generation_identity(),
        }
        extra = self.family.identity_extra(o)
        if extra:  # only families with settings of their own (the others' stay as they were)
            self._identity["settings"].update(extra)

    # --- identity ---------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        """Compute dtype of the model (``float32``, ``bfloat16`` or ``float16``)."""
        return self._dtype

    def identity(self) -> dict[str, Any]:
        """Class, family, hashes of config, weights, processor files and chat template, the
        transformers version and every generation setting (not the device)."""
        cls = type(self)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", **self._identity}

    def _generation_identity(self) -> dict[str, Any]:
        o = self.options
        sampling = o["temperature"] > 0
        return {
            "max_new_tokens": o["max_new_tokens"],
            "temperature": o["temperature"],
            # Only sampling reads these: greedy runs with other values share their answers.
            "top_p": o["top_p"] if sampling else None,
            "top_k": o["top_k"] if sampling else None,
            "seed": o["seed"] if sampling else None,
            "eos_token_ids": self.eos_token_ids,
            "pad_token_id": int(self.tokenizer.pad_token_id),
        }

    def _eos_ids(self) -> list[int]:
        """Ids that end an answer: the checkpoint's end-of-sequence ids and the family's
        end-of-turn token (an instruct model closes its answer with it)."""
        ids: list[int] = []
        config = self.model.config
        for src in (self.model.generation_config, config, config.get_text_config()):
            eos = getattr(src, "eos_token_id", None)
            ids.extend([eos] if isinstance(eos, int) else list(eos or []))
        turn = self.family.end_of_turn
        if turn is not None and turn in self.tokenizer.get_vocab():
            ids.append(int(self.tokenizer.convert_tokens_to_ids(turn)))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        out = sorted({int(i) for i in ids})
        if not out:
            raise ConfigError(
                "hf-audio-chat: the model and tokenizer define no end-of-sequence token"
            )
        return out

    def _generation_config(self) -> Any:
        from transformers import GenerationConfig

        o = self.options
        sampling = o["temperature"] > 0
        # A clean default config on the model: generate() fills unset values from it, and the
        # checkpoint's sampling settings (instruct checkpoints may ship some) must not leak in.
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.eos_token_ids, pad_token_id=int(self.tokenizer.pad_token_id)
        )
        return GenerationConfig(
            max_new_tokens=o["max_new_tokens"],
            do_sample=sampling,
            temperature=o["temperature"] if sampling else None,
            top_p=o["top_p"] if sampling else None,
            top_k=o["top_k"] if sampling else None,
            num_beams=1,
            repetition_penalty=1.0,
            eos_token_id=self.eos_token_ids,
            pad_token_id=int(self.tokenizer.pad_token_id),
        )

    # --- prompts ----------------------------------------------------------------------------

    def _clip(self, audio: Audio | None, where: str) -> np.ndarray | None:
        if audio is None:
            return None
        x = _samples(audio, int(self.sample_rate or 16000), where)
        check_clip(self.family, self.processor, x, where)
        if x.shape[0] > self.family.max_samples(self.processor):
            # The model's window is fixed (30 s for Whisper-style encoders): the processor
            # keeps the start. Said once per clip rather than failing a whole benchmark.
            log.warning(
                "%s: %.1f s of audio; %s hears only the first %.0f s",
                where,
                x.shape[0] / audio.sample_rate,
                self.family.name,
                self.family.max_samples(self.processor) / audio.sample_rate,
            )
        return x

    def _to_device(self, tensors: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in tensors.items():
            v = v.to(self.torch_device)
            if v.is_floating_point():  # audio features in the model's dtype
                v = v.to(self.model.dtype)
            out[k] = v
        return out

    # --- respond ----------------------------------------------------------------------------

    @torch.inference_mode()
    def respond(self, requests: list[RespondRequest]) -> list[RespondResult]:
        """Generated text answers, one per request (greedy: one left-padded batch)."""
        if not requests:
            return []
        prompts, clips = [], []
        for i, req in enumerate(requests):
            where = req.key or f"request {i}"
            text = req.text if req.text is not None else self.options["instruction"]
            if req.audio is None and text is None:
                raise DataError(f"{where}: respond request has neither audio nor text")
            self.family.check_request(where, req.audio is not None, req.text is not None)
            clips.append(self._clip(req.audio, where))
            prompts.append(
                self.family.render(
                    self.processor, self.options["system"], text, req.audio is not None
                )
            )
        if self.options["temperature"] > 0:
            texts = []
            for req, p, c in zip(requests, prompts, clips, strict=True):
                seed = _request_seed(self.options["seed"], req.fingerprint())
                texts.extend(self._generate([p], [c], seed))
        else:
            texts = [""] * len(requests)
            for group in self._groups(clips):
                out = self._generate([prompts[i] for i in group], [clips[i] for i in group], None)
                for i, t in zip(group, out, strict=True):
                    texts[i] = t
        return [RespondResult(text=t) for t in texts]

    def _groups(self, clips: list[np.ndarray | None]) -> list[list[int]]:
        """Indices of the requests that can share a forward pass: all of them, or for a
        family whose encoder sees the padding of a batch of clips (no feature mask), those of
        one clip length (or none), so that no result depends on its batch."""
        if not self.family.batch_by_length:
            return [list(range(len(clips)))]
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(clips):
            groups.setdefault(-1 if c is None else int(c.shape[0]), []).append(i)
        return list(groups.values())

    def _generate(
        self, prompts: list[str], clips: list[np.ndarray | None], seed: int | None
    ) -> list[str]:
        batch = self.family.encode(self.processor, prompts, clips)
        inputs = self._to_device(self.family.generation_inputs(self.model, batch))
        devices = [self.torch_device] if self.torch_device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            out = self.family.generate(self.model, inputs, self.generation_config)
        new = self.family.new_tokens(out, inputs)
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [t.strip() for t in texts]

    # --- loglikelihood ----------------------------------------------------------------------

    @torch.inference_mode()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Teacher-forced log-probability of each request's ``text`` as the assistant's answer
        to its ``audio`` (and the ``instruction`` option): sum over the answer tokens and their
        number. One right-padded forward pass for the batch (per clip length for a family
        with ``batch_by_length``)."""
        if not requests:
            return []
        prompts, clips, answers = [], [], []
        for i, req in enumerate(requests):
            where = req.key or f"request {i}"
            if req.text is None or not req.text:
                raise DataError(
                    f"{where}: hf-audio-chat scores a text answer given audio, and the request "
                    "has no text (speech-likelihood tasks such as sWUGGY need a speech LM)"
                )
            ids = self.tokenizer(req.text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise DataError(f"{where}: the answer {req.text!r} has no tokens")
            answers.append([int(t) for t in ids])
            self.family.check_request(where, req.audio is not None, False)
            clips.append(self._clip(req.audio, where))
            prompts.append(
                self.family.render(
                    self.processor,
                    self.options["system"],
                    self.options["instruction"],
                    req.audio is not None,
                )
            )
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        for group in self._groups(clips):
            scored = self._score(
                [prompts[i] for i in group],
                [clips[i] for i in group],
                [answers[i] for i in group],
                [requests[i].key or str(i) for i in group],
            )
            for i, r in zip(group, scored, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def _score(
        self,
        prompts: list[Any],
        clips: list[np.ndarray | None],
        answers: list[list[int]],
        keys: list[str],
    ) -> list[LoglikelihoodResult]:
        """Teacher-forced answer log-probabilities of one batch (see :meth:`loglikelihood`)."""
        batch = self.family.encode(self.processor, prompts, clips)
        if self.family.encoder_decoder:
            return self._score_seq2seq(batch, answers, keys)
        # Unpad the (left-padded) prompts, append the answers, right-pad: every row keeps the
        # positions it has alone, and padding after it cannot reach it through causal attention.
        rows, starts = [], []
        for ids, mask, ans in zip(
            batch["input_ids"], batch["attention_mask"], answers, strict=True
        ):
            prompt = ids[mask.bool()].tolist()
            starts.append(len(prompt))
            rows.append(prompt + ans)
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            attention[i, : len(r)] = 1
        inputs = self._to_device(
            {"input_ids": input_ids, "attention_mask": attention, **self.family.model_inputs(batch)}
        )
        self.family.prepare_forward(self.model, any(c is not None for c in clips))
        hidden = self.family.text_model(self.model)(**inputs).last_hidden_state
        head = self.family.lm_head(self.model)
        results = []
        for i, (start, ans) in enumerate(zip(starts, answers, strict=True)):
            # Position t predicts token t+1: the answer's tokens are predicted from start-1 on.
            # Only these rows go through the vocabulary projection (a 150k-token head on the
            # whole prompt would cost more memory than the model).
            h = hidden[i, start - 1 : start - 1 + len(ans)]
            logp = torch.log_softmax(self.family.logits(self.model, head, h).float(), dim=-1)
            target = torch.tensor(ans, device=logp.device)
            total = logp.gather(-1, target[:, None]).sum().item()
            if not np.isfinite(total):
                raise PluginError(f"{keys[i]}: non-finite log-probability")
            results.append(LoglikelihoodResult(logprob=float(total), num_tokens=len(ans)))
        return results

    def _score_seq2seq(
        self, batch: Any, answers: list[list[int]], keys: list[str]
    ) -> list[LoglikelihoodResult]:
        """Answer log-probabilities of an encoder-decoder family: the decoder reads its
        prefix (decoder start, target-language code) then the answer, right-padded; the
        encoder reads the audio features with their mask."""
        prefix = self.family.decoder_prefix(self.model)
        rows = [prefix + ans for ans in answers]
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        dec = torch.full((len(rows), width), pad, dtype=torch.long)
        dec_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            dec[i, : len(r)] = torch.tensor(r)
            dec_mask[i, : len(r)] = 1
        inputs = self._to_device(
            {
                **self.family.model_inputs(batch),
                "decoder_input_ids": dec,
                "decoder_attention_mask": dec_mask,
            }
        )
        logits = self.model(**inputs).logits
        results = []
        start = len(prefix)
        for i, ans in enumerate(answers):
            # Decoder position t predicts token t+1: the answer from the prefix's last one on.
            logp = torch.log_softmax(logits[i, start - 1 : start - 1 + len(ans)].float(), dim=-1)
            target = torch.tensor(ans, device=logp.device)
            total = logp.gather(-1, target[:, None]).sum().item()
            if not np.isfinite(total):
                raise PluginError(f"{keys[i]}: non-finite log-probability")
            results.append(LoglikelihoodResult(logprob=float(total), num_tokens=len(ans)))
        return results
