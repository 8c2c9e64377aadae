"""Per-model parts of ``hf-audio-chat``: how each instruction / omni model family of
transformers is loaded, prompted, fed audio and asked to generate.

A :class:`ChatFamily` owns what differs between model families -- the model class, the chat
messages its template expects, the processor call and the check that the audio reached the
model, the path to the language-model head, the ``generate`` call -- so that
:class:`~reference_models.hf_audio_chat.HFAudioChat` owns batching, scoring, seeding and the
identity once for all of them.

Supported (each verified on a tiny randomly initialised config in the tests):

- ``phi4-multimodal``: ``Phi4MultimodalForCausalLM`` + ``Phi4MultimodalProcessor``
  (``model_type`` ``phi4_multimodal``); audio in, text out (its image side is not used; the
  image processor needs torchvision, and without it an inert one stands in). A separate
  ``speech-lora/`` adapter must be merged into the weights first.
- ``qwen2-audio``: ``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor``
  (``model_type`` ``qwen2_audio``); text answers only.
- ``granite-speech``: ``GraniteSpeechForConditionalGeneration`` + ``GraniteSpeechProcessor``
  (``model_type`` ``granite_speech``); its feature extractor needs torchaudio; text answers
  only.
- ``seamless-m4t-v2``: ``SeamlessM4Tv2ForSpeechToText`` (or the checkpoint of the full
  ``SeamlessM4Tv2Model``, whose speech encoder and text decoder it loads) +
  ``SeamlessM4TProcessor`` (``model_type`` ``seamless_m4t_v2``): speech-to-text translation
  into ``tgt_lang``; no text prompt, so requests carry audio only; text answers only.
- ``voxtral``: ``VoxtralForConditionalGeneration`` + ``VoxtralProcessor`` (``model_type``
  ``voxtral``); the prompt is built by mistral-common from ``tekken.json`` (no Jinja
  template), so ``pip install mistral-common``; text answers only.

The processor trap: ``Qwen2AudioProcessor`` takes the waveforms as ``audio=``. Older
transformers releases ignored an ``audios=`` keyword without a word (the model then saw one
unexpanded ``<|AUDIO|>`` text token and answered without hearing anything); 5.x raises. Either
way the keyword here is ``audio=``, and :meth:`ChatFamily.encode` checks on every batch that
each clip was turned into features and into as many placeholder tokens as the encoder will
produce, so a processor that drops the audio fails loudly instead of yielding deaf answers.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.errors import ConfigError, DataError, PluginError

__all__ = [
    "FAMILIES",
    "ChatFamily",
    "GraniteSpeechFamily",
    "Phi4MultimodalFamily",
    "Qwen2AudioFamily",
    "SeamlessM4Tv2Family",
    "VoxtralFamily",
    "check_clip",
    "family_for",
    "read_model_type",
]


def read_model_type(path: Path) -> str:
    """``model_type`` of the ``config.json`` in ``path`` (read as JSON: no class is needed to
    say which family a folder holds, so an unsupported one gets a clear message)."""
    try:
        with open(path / "config.json", encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model argument 'model': cannot read {path}/config.json ({e})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise ConfigError(f"model argument 'model': {path}/config.json has no model_type")
    return model_type


def _dtype_kwarg() -> str:
    """``from_pretrained`` takes ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


class ChatFamily:
    """What one model family needs beyond the shared chat logic (see the module doc)."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # config.json ``model_type`` values it serves
    model_class: ClassVar[str]  # transformers class name
    speaks: ClassVar[bool] = False  # whether ``respond`` can return audio
    end_of_turn: ClassVar[str | None] = "<|im_end|>"  # token that closes an assistant turn
    # Whether clips of different lengths must not share a batch: the encoder would see the
    # padding of the longer ones (no feature mask), so a result would depend on its batch.
    batch_by_length: ClassVar[bool] = False
    extractor_attr: ClassVar[str] = "feature_extractor"  # the processor's audio part
    encoder_decoder: ClassVar[bool] = False  # scored through a decoder prefix, not a prompt

    # --- options and requests ----------------------------------------------------------------

    def check_options(self, options: dict[str, Any]) -> None:
        """Options this family cannot honour, refused before anything is loaded."""
        if options.get("tgt_lang") is not None:
            raise ConfigError(
                f"model argument 'tgt_lang': {self.name} answers in the language it is asked "
                "in; tgt_lang is for seamless-m4t-v2"
            )

    def setup(self, model: Any, processor: Any, options: dict[str, Any], path: Path) -> None:
        """Family settings that need the loaded model (nothing here)."""

    def identity_extra(self, options: dict[str, Any]) -> dict[str, Any]:
        """Settings of this family's own for the identity (none here)."""
        return {}

    def check_request(self, where: str, has_audio: bool, has_text: bool) -> None:
        """A request this family cannot take (chat families take any)."""

    def feature_extractor(self, processor: Any) -> Any:
        """The processor's audio feature extractor (its sampling rate is the model's)."""
        return getattr(processor, self.extractor_attr)

    def check_template(self, processor: Any, system: str | None) -> None:
        """A chat template that writes today's date into its default system prompt would make
        answers depend on the day of the run: then a ``system`` prompt must be given."""
        template = getattr(processor, "chat_template", None) or getattr(
            processor.tokenizer, "chat_template", None
        )
        if system is None and isinstance(template, str) and "strftime_now" in template:
            raise ConfigError(
                f"model argument 'system': the {self.name} chat template writes today's date "
                "into its default system prompt (answers would depend on the day of the run); "
                "give a system prompt"
            )

    # --- loading -----------------------------------------------------------------------------

    def load_processor(self, path: Path) -> Any:
        """The processor saved in ``path`` (``AutoProcessor``, local files only)."""
        from transformers import AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # missing tokenizer files, unknown processor class, ...
            raise ConfigError(
                f"model argument 'processor': cannot load a processor from {path} "
                f"({type(e).__name__}: {e})"
            ) from None
        if not hasattr(processor, "tokenizer") or not hasattr(processor, self.extractor_attr):
            raise ConfigError(
                f"model argument 'processor': {path} holds a {type(processor).__name__}, "
                f"expected the {self.name} processor (a tokenizer and an audio feature extractor)"
            )
        return processor

    def load_model(self, path: Path, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
        """The model saved in ``path``, in eval mode on ``device`` (local files only; a
        ``.bin`` is read with ``torch.load(weights_only=True)`` by transformers)."""
        import transformers

        cls = getattr(transformers, self.model_class)
        try:
            model = cls.from_pretrained(str(path), local_files_only=True, **{_dtype_kwarg(): dtype})
        except Exception as e:
            raise ConfigError(
                f"model argument 'model': cannot load {self.model_class} from {path} "
                f"({type(e).__name__}: {e})"
            ) from None
        return model.to(device).eval()

    # --- prompting ---------------------------------------------------------------------------

    def messages(self, system: str | None, text: str | None, has_audio: bool) -> list[dict]:
        """The chat (system turn if given, one user turn: the audio, then the text)."""
        content: list[dict[str, Any]] = []
        if has_audio:
            content.append({"type": "audio"})
        if text is not None:
            content.append({"type": "text", "text": text})
        msgs: list[dict[str, Any]] = []
        if system is not None:
            msgs.append({"role": "system", "content": [{"type": "text", "text": system}]})
        msgs.append({"role": "user", "content": content})
        return msgs

    def render(self, processor: Any, system: str | None, text: str | None, has_audio: bool) -> Any:
        """The prompt up to and including the assistant's turn header: its text here (a
        family whose tokenizer builds prompts itself returns the messages instead)."""
        return processor.apply_chat_template(
            self.messages(system, text, has_audio), add_generation_prompt=True, tokenize=False
        )

    # --- audio -------------------------------------------------------------------------------

    def audio_token_id(self, processor: Any) -> int:
        """Id of the placeholder token the audio features replace."""
        return int(processor.audio_token_id)

    @staticmethod
    def audio_tokens(mel_frames: int) -> int:
        """Audio placeholders per clip of ``mel_frames`` frames: the Whisper-style encoder's
        stride-2 convolution, then its stride-2 pooling (the formula of the processor and of
        ``_get_feat_extract_output_lengths``)."""
        return ((mel_frames - 1) // 2 + 1 - 2) // 2 + 1

    def processor_call(self, processor: Any, prompts: list[Any], audios: list[np.ndarray]) -> Any:
        """The processor on a batch: ``audio=`` (not ``audios=``: see the module doc)."""
        kwargs: dict[str, Any] = {"text": prompts, "return_tensors": "pt", "padding": True}
        if audios:
            kwargs["audio"] = audios
            kwargs["sampling_rate"] = int(self.feature_extractor(processor).sampling_rate)
        return processor(**kwargs)

    def template_fingerprint(self, processor: Any) -> str:
        """What decides how a chat becomes tokens besides the hashed processor files (the
        Jinja chat template here), hashed into the identity."""
        return str(processor.chat_template)

    def encode(
        self, processor: Any, prompts: list[Any], audios: Sequence[np.ndarray | None]
    ) -> Any:
        """Token ids (left-padded), attention mask and audio features of a batch of prompts,
        ``audios[i]`` the clip of prompt ``i`` or None; checked so that no clip is dropped."""
        clips = [a for a in audios if a is not None]
        processor.tokenizer.padding_side = "left"  # generation continues every row at the end
        batch = self.processor_call(processor, prompts, clips)
        self.check_audio(processor, batch, audios)
        return batch

    def check_audio(self, processor: Any, batch: Any, audios: Sequence[np.ndarray | None]) -> None:
        """Every clip became features and as many placeholder tokens in its own row as the
        encoder produces for it; a row without audio has none. Raises PluginError otherwise
        (the processor ignored the audio, or a template lost the placeholder)."""
        n_clips = sum(a is not None for a in audios)
        ids = batch["input_ids"]
        counts = (ids == self.audio_token_id(processor)).sum(-1).tolist()
        features = batch.get("input_features")
        if n_clips == 0:
            if features is not None or any(counts):
                raise PluginError(f"{self.name}: audio placeholders in a batch without audio")
            return
        mask = batch.get("feature_attention_mask")
        if features is None or mask is None or features.shape[0] != n_clips:
            got = "no" if features is None else str(features.shape[0])
            raise PluginError(
                f"{self.name}: the processor returned {got} audio feature rows for {n_clips} "
                "clips: the audio was dropped (the keyword is audio=, not audios=)"
            )
        frames = mask.sum(-1).tolist()
        hop = int(self.feature_extractor(processor).hop_length)
        j = 0
        for row, (clip, count) in enumerate(zip(audios, counts, strict=True)):
            want = 0
            if clip is not None:
                # The clip's frames must match its length (up to the 30 s window): the features
                # are of this clip, not of silence or of another one.
                limit = int(features.shape[-1])
                if abs(frames[j] - min(-(-clip.shape[0] // hop), limit)) > 1:
                    raise PluginError(
                        f"{self.name}: clip {j} has {clip.shape[0]} samples but "
                        f"{frames[j]} feature frames"
                    )
                want = self.audio_tokens(int(frames[j]))
                j += 1
            if count != want:
                raise PluginError(
                    f"{self.name}: row {row} has {count} audio placeholder tokens, expected "
                    f"{want}: the audio was not expanded into the prompt"
                )

    def min_samples(self, processor: Any) -> int:
        """Fewest samples giving one audio token (shorter clips would vanish from the prompt)."""
        hop = int(self.feature_extractor(processor).hop_length)
        frames = 1
        while self.audio_tokens(frames) < 1:
            frames += 1
        return (frames - 1) * hop + 1

    def max_samples(self, processor: Any) -> int:
        """Longest clip the processor keeps; longer ones are cut (Whisper's 30 s window)."""
        fe = self.feature_extractor(processor)
        return int(getattr(fe, "n_samples", 30 * int(fe.sampling_rate)))

    # --- the network -------------------------------------------------------------------------

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The tensors of a processed batch the model's forward takes."""
        keep = ("input_features", "feature_attention_mask")
        return {k: batch[k] for k in keep if batch.get(k) is not None}

    def generation_inputs(self, model: Any, batch: Any) -> dict[str, Any]:
        """What ``generate`` takes: the prompt ids and mask and the audio inputs."""
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            **self.model_inputs(batch),
        }

    def new_tokens(self, out: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """The answer part of ``generate``'s sequences (after the prompt)."""
        return out[:, inputs["input_ids"].shape[1] :]

    def decoder_prefix(self, model: Any) -> list[int]:
        """The decoder's first tokens before an answer (encoder-decoder families only)."""
        raise PluginError(f"{self.name} is not an encoder-decoder family")

    def text_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module producing the LM hidden states (run with ``input_ids`` and audio)."""
        return model.model

    def lm_head(self, model: torch.nn.Module) -> torch.nn.Module:
        """The output projection from hidden states to vocabulary logits."""
        return model.get_output_embeddings()

    def prepare_forward(self, model: torch.nn.Module, has_audio: bool) -> None:
        """Set the model up for a scoring forward pass of a batch with or without audio as
        its ``generate`` would (nothing to do here)."""

    def logits(self, model: torch.nn.Module, head: torch.nn.Module, hidden: torch.Tensor) -> Any:
        """Vocabulary logits of some final hidden states (the plain output projection)."""
        return head(hidden)

    def generate(self, model: torch.nn.Module, inputs: dict[str, Any], config: Any) -> Any:
        """Token sequences (prompt + answer) from ``model.generate``."""
        return model.generate(**inputs, generation_config=config)


class Qwen2AudioFamily(ChatFamily):
    """Qwen2-Audio(-7B-Instruct): Whisper-large encoder (128 mel bins, 30 s window, 25 audio
    tokens per second) + Qwen2 LM; ChatML template with ``Audio 1: <|audio_bos|><|AUDIO|>
    <|audio_eos|>`` for each clip."""

    name = "qwen2-audio"
    model_types = ("qwen2_audio",)
    model_class = "Qwen2AudioForConditionalGeneration"


def _wav_base64(samples: np.ndarray, rate: int) -> str:
    """A clip as a base64 WAV file of 32-bit floats (mistral-common takes audio as files;
    float samples make the round trip exact)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class VoxtralFamily(ChatFamily):
    """Voxtral (Mini 3B / Small 24B): Whisper-large-v3 encoder (128 mel bins, 30-s chunks) +
    a projector stacking 4 encoder frames (12.5 Hz) + a Mistral/Llama LM. The prompt
    ``<s>[INST][BEGIN_AUDIO][AUDIO]x375k text[/INST]`` is built by mistral-common from the
    checkpoint's ``tekken.json``: every clip is padded to a whole number k of 30-s chunks,
    each chunk becoming 375 ``[AUDIO]`` tokens; longer clips take more chunks (no cut).
    Tokenizers older than v13 refuse a system prompt in a chat with audio."""

    name = "voxtral"
    model_types = ("voxtral",)
    model_class = "VoxtralForConditionalGeneration"
    end_of_turn = "</s>"

    def load_processor(self, path: Path) -> Any:
        """``VoxtralProcessor`` from ``tekken.json`` (mistral-common) and the Whisper feature
        extractor's settings, built explicitly: ``AutoProcessor`` picks the tokenizer class
        from a ``config.json`` that a processor-only folder does not have."""
        try:
            import mistral_common  # noqa: F401
        except ImportError:
            raise ConfigError(
                "hf-audio-chat: the voxtral family needs mistral-common "
                "(pip install mistral-common)"
            ) from None
        from transformers import MistralCommonBackend, VoxtralProcessor, WhisperFeatureExtractor

        if not (path / "tekken.json").is_file():
            raise ConfigError(
                f"model argument 'processor': {path} has no tekken.json (the voxtral tokenizer)"
            )
        try:
            tokenizer = MistralCommonBackend.from_pretrained(str(path), local_files_only=True)
            features = WhisperFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        except Exception as e:
            raise ConfigError(
                f"model argument 'processor': cannot load the voxtral processor from {path} "
                f"({type(e).__name__}: {e})"
            ) from None
        return VoxtralProcessor(feature_extractor=features, tokenizer=tokenizer)

    @staticmethod
    def _audio_config(processor: Any) -> Any:
        """mistral-common's audio settings (sampling rate, frame rate, chunk length)."""
        encoder = processor.tokenizer.tokenizer.instruct_tokenizer.audio_encoder
        if encoder is None:
            raise ConfigError("voxtral: the tokenizer's tekken.json has no audio section")
        return encoder

    def template_fingerprint(self, processor: Any) -> str:
        """The prompt format is mistral-common's instruct encoding of the tekken.json
        version (the file itself is hashed with the processor files)."""
        import mistral_common

        version = processor.tokenizer.tokenizer.instruct_tokenizer.tokenizer.version
        return f"mistral-common {mistral_common.__version__} instruct {version.value}"

    def messages(self, system: str | None, text: str | None, has_audio: bool) -> list[dict]:
        """OpenAI-style messages; the audio part gets its clip in :meth:`encode`."""
        msgs = super().messages(system, text, has_audio)
        if system is not None:  # mistral-common takes a system turn's content as a string
            msgs[0]["content"] = system
        return msgs

    def render(self, processor: Any, system: str | None, text: str | None, has_audio: bool) -> Any:
        """The messages themselves: mistral-common tokenizes a chat, not a text prompt."""
        return self.messages(system, text, has_audio)

    def processor_call(self, processor: Any, prompts: list[Any], audios: list[np.ndarray]) -> Any:
        """Each chat with its clip (a base64 WAV) in its audio part, through
        ``VoxtralProcessor.apply_chat_template`` (tokens from mistral-common, features from
        the Whisper feature extractor, one 3000-frame row per 30-s chunk)."""
        rate = int(self.feature_extractor(processor).sampling_rate)
        clips = iter(audios)
        chats = []
        for msgs in prompts:
            msgs = copy.deepcopy(msgs)
            for part in msgs[-1]["content"]:
                if isinstance(part, dict) and part.get("type") == "audio":
                    part["base64"] = _wav_base64(next(clips), rate)
            chats.append(msgs)
        try:
            return processor.apply_chat_template(
                chats, tokenize=True, return_dict=True, return_tensors="pt"
            )
        except (ValueError, AssertionError) as e:  # mistral-common's request validation
            raise ConfigError(f"voxtral: the tokenizer refused the chat ({e})") from None

    def encode(
        self, processor: Any, prompts: list[Any], audios: Sequence[np.ndarray | None]
    ) -> Any:
        """As :meth:`ChatFamily.encode`, chats with audio matched by position (a prompt
        with an audio part takes the next clip)."""
        has = [any(p.get("type") == "audio" for p in m[-1]["content"]) for m in prompts]
        if has != [a is not None for a in audios]:
            raise PluginError("voxtral: the audio parts of the chats do not match the clips")
        return super().encode(processor, prompts, audios)

    def chunk_samples(self, processor: Any) -> int:
        """Samples per 30-s chunk (each clip is padded to a whole number of chunks)."""
        config = self._audio_config(processor).audio_config
        return int(config.chunk_frames)

    def tokens_per_chunk(self, processor: Any) -> int:
        """``[AUDIO]`` tokens per chunk: chunk seconds x frame rate (12.5 Hz -> 375)."""
        config = self._audio_config(processor).audio_config
        return round(float(config.chunk_length_s) * float(config.frame_rate))

    def check_audio(self, processor: Any, batch: Any, audios: Sequence[np.ndarray | None]) -> None:
        """Each clip became its chunks of features and ``[BEGIN_AUDIO]`` + 375 ``[AUDIO]``
        per chunk in its own row (see :meth:`ChatFamily.check_audio`)."""
        ids = batch["input_ids"]
        encoder = self._audio_config(processor)
        counts = (ids == self.audio_token_id(processor)).sum(-1).tolist()
        begins = (ids == int(encoder.begin_audio_token)).sum(-1).tolist()
        features = batch.get("input_features")
        per = self.chunk_samples(processor)
        chunks = [0 if a is None else max(1, -(-a.shape[0] // per)) for a in audios]
        if sum(chunks) == 0:
            if features is not None or any(counts):
                raise PluginError(f"{self.name}: audio placeholders in a batch without audio")
            return
        if features is None or features.shape[0] != sum(chunks):
            got = "no" if features is None else str(features.shape[0])
            raise PluginError(
                f"{self.name}: the processor returned {got} feature chunks for {sum(chunks)} "
                "30-s chunks of audio: the audio was dropped"
            )
        for row, (k, count, begin) in enumerate(zip(chunks, counts, begins, strict=True)):
            want = k * self.tokens_per_chunk(processor)
            if count != want or begin != (1 if k else 0):
                raise PluginError(
                    f"{self.name}: row {row} has {count} audio placeholder tokens, expected "
                    f"{want}: the audio was not expanded into the prompt"
                )

    def min_samples(self, processor: Any) -> int:
        """One sample is padded to a whole chunk."""
        return 1

    def max_samples(self, processor: Any) -> int:
        """No window: a long clip takes more chunks."""
        return sys.maxsize

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """Only the features (no feature mask: every chunk is a full 30 s)."""
        return {"input_features": batch["input_features"]} if "input_features" in batch else {}


class GraniteSpeechFamily(ChatFamily):
    """Granite Speech (3.x): a conformer CTC encoder on 80-bin log-mels stacked by two (160
    features per 20 ms), a Q-former projector turning each window of 15 encoder frames into
    3 audio embeddings, and a Granite LM. The prompt is the tokenizer's chat template over
    string contents, the user turn starting with ``<|audio|>``, which the processor repeats
    once per audio embedding.

    Three traps handled here: (1) the encoder takes no feature mask, so clips of different
    lengths are never batched together (``batch_by_length``); (2) real checkpoints carry a
    LoRA adapter that ``generate`` enables only when a batch has audio -- the scoring pass
    does the same, and batches are never mixed; (3) transformers 5.x computes this model's
    logits as ``lm_head(h)`` without dividing by the LM's ``logits_scaling`` (Granite's
    causal LM and transformers 4.x divide), so the division is applied here when the loaded
    class does not, for scores and for sampling temperatures alike."""

    name = "granite-speech"
    model_types = ("granite_speech",)
    model_class = "GraniteSpeechForConditionalGeneration"
    end_of_turn = "<|end_of_text|>"
    batch_by_length = True
    extractor_attr = "audio_processor"

    def load_model(self, path: Path, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
        """The model, with the logits divisor it needs (see the class doc) probed once on a
        one-token forward: ``logits_scaling`` if the class's logits lack it, else 1."""
        model = super().load_model(path, dtype, device)
        scaling = float(getattr(model.config.get_text_config(), "logits_scaling", 1.0) or 1.0)
        divisor = 1.0
        if scaling != 1.0:
            # Any text token (not the audio placeholder, which needs features).
            token = 1 if int(model.config.audio_token_id) == 0 else 0
            ids = torch.full((1, 1), token, dtype=torch.long, device=device)
            with torch.inference_mode():
                full = model(input_ids=ids).logits[0, -1].float()
                raw = self.lm_head(model)(model.model(input_ids=ids).last_hidden_state[0, -1])
            raw = raw.float()
            divisor = scaling if torch.allclose(full, raw, rtol=1e-3, atol=1e-4) else 1.0
        model._slm_logits_divisor = divisor  # read by logits() and generate()
        return model

    def render(self, processor: Any, system: str | None, text: str | None, has_audio: bool) -> str:
        """The tokenizer's chat template over string contents (Granite's template does not
        take content parts); the audio token opens the user turn."""
        msgs = [] if system is None else [{"role": "system", "content": system}]
        user = (processor.audio_token if has_audio else "") + (text or "")
        msgs.append({"role": "user", "content": user})
        return processor.tokenizer.apply_chat_template(
            msgs, add_generation_prompt=True, tokenize=False
        )

    def template_fingerprint(self, processor: Any) -> str:
        """The tokenizer's chat template (the one :meth:`render` uses)."""
        return str(processor.tokenizer.chat_template)

    def audio_token_id(self, processor: Any) -> int:
        """Id of ``<|audio|>``."""
        return int(processor.tokenizer.convert_tokens_to_ids(processor.audio_token))

    def processor_call(self, processor: Any, prompts: list[Any], audios: list[np.ndarray]) -> Any:
        """The processor on a batch (waveforms as ``audio=``, 16 kHz)."""
        return processor(text=prompts, audio=audios or None, return_tensors="pt", padding=True)

    def embed_count(self, processor: Any, samples: int) -> int:
        """Audio embeddings of a clip of ``samples``: log-mel frames (hop 160, centred),
        stacked by two, in windows of 15 frames, each giving 15 // 5 = 3 Q-former outputs."""
        fe = self.feature_extractor(processor)
        mel = samples // int(fe.melspec_kwargs["hop_length"]) + 1
        window = int(fe.projector_window_size)
        blocks = -(-(mel // 2) // window)
        return blocks * (window // int(fe.projector_downsample_rate))

    def check_audio(self, processor: Any, batch: Any, audios: Sequence[np.ndarray | None]) -> None:
        """Each clip gave a row of features and as many ``<|audio|>`` tokens in its own row as
        it has audio embeddings (see :meth:`ChatFamily.check_audio`)."""
        n_clips = sum(a is not None for a in audios)
        counts = (batch["input_ids"] == self.audio_token_id(processor)).sum(-1).tolist()
        features, mask = batch.get("input_features"), batch.get("input_features_mask")
        if n_clips == 0:
            if features is not None or any(counts):
                raise PluginError(f"{self.name}: audio placeholders in a batch without audio")
            return
        if features is None or mask is None or features.shape[0] != n_clips:
            got = "no" if features is None else str(features.shape[0])
            raise PluginError(
                f"{self.name}: the processor returned {got} audio feature rows for {n_clips} "
                "clips: the audio was dropped"
            )
        sizes = mask.sum(-1).tolist()
        j = 0
        for row, (clip, count) in enumerate(zip(audios, counts, strict=True)):
            want = 0
            if clip is not None:
                want = self.embed_count(processor, int(clip.shape[0]))
                if sizes[j] != want:
                    raise PluginError(
                        f"{self.name}: clip {j} has {clip.shape[0]} samples but {sizes[j]} "
                        f"audio embeddings, expected {want}"
                    )
                j += 1
            if count != want:
                raise PluginError(
                    f"{self.name}: row {row} has {count} audio placeholder tokens, expected "
                    f"{want}: the audio was not expanded into the prompt"
                )

    def min_samples(self, processor: Any) -> int:
        """One hop gives two log-mel frames, one encoder frame, one window."""
        return int(self.feature_extractor(processor).melspec_kwargs["hop_length"])

    def max_samples(self, processor: Any) -> int:
        """No window: the encoder runs over the whole clip in blocks."""
        return sys.maxsize

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The stacked log-mels and the mask of valid audio embeddings."""
        keep = ("input_features", "input_features_mask")
        return {k: batch[k] for k in keep if batch.get(k) is not None}

    def prepare_forward(self, model: torch.nn.Module, has_audio: bool) -> None:
        """The LoRA adapter on with audio, off without, as ``generate`` does."""
        if getattr(model, "_hf_peft_config_loaded", False):
            if has_audio:
                model.enable_adapters()
            else:
                model.disable_adapters()

    def logits(self, model: torch.nn.Module, head: torch.nn.Module, hidden: torch.Tensor) -> Any:
        """``lm_head(h) / logits_scaling`` (see the class doc)."""
        return head(hidden) / getattr(model, "_slm_logits_divisor", 1.0)

    def generate(self, model: torch.nn.Module, inputs: dict[str, Any], config: Any) -> Any:
        """``model.generate`` (which switches the LoRA adapter itself), sampling at the
        temperature that the divided logits would have."""
        divisor = getattr(model, "_slm_logits_divisor", 1.0)
        if config.do_sample and divisor != 1.0:
            config = copy.deepcopy(config)
            config.temperature = config.temperature * divisor
        return model.generate(**inputs, generation_config=config)


class SeamlessM4Tv2Family(ChatFamily):
    """SeamlessM4T v2 speech-to-text: a w2v-BERT conformer speech encoder on 80-bin fbanks
    stacked by two (160 features per 20 ms) and a text decoder that writes the translation
    into the target language after the prefix (decoder start ``</s>``, ``__lang__``). No chat
    and no text prompt: ``respond`` transcribes/translates the request's audio, and
    ``loglikelihood`` scores a text answer as that translation.

    The speech encoder takes a feature mask, but in transformers 5.25 its length adaptor (a
    stride-8 convolution after the conformer) reads the padded positions' hidden states,
    which the conformer leaves non-zero: the last valid frame of a clip whose length is not
    a multiple of the stride then depends on the longer clips of its batch. Clips of
    different lengths are therefore never batched together (``batch_by_length``)."""

    name = "seamless-m4t-v2"
    model_types = ("seamless_m4t_v2",)
    model_class = "SeamlessM4Tv2ForSpeechToText"
    end_of_turn = None
    encoder_decoder = True
    batch_by_length = True
    default_lang = "eng"

    def check_options(self, options: dict[str, Any]) -> None:
        """No chat: the system prompt and the instruction have nowhere to go."""
        for key in ("system", "instruction"):
            if options.get(key) is not None:
                raise ConfigError(
                    f"model argument {key!r}: {self.name} translates speech and takes no text "
                    "prompt"
                )

    def setup(self, model: Any, processor: Any, options: dict[str, Any], path: Path) -> None:
        """The decoder prefix of ``tgt_lang`` from the checkpoint's language-code map
        (``text_decoder_lang_to_code_id`` of its generation config), kept on the model."""
        codes = getattr(model.generation_config, "text_decoder_lang_to_code_id", None)
        if not codes and (path / "generation_config.json").is_file():
            # transformers may rebuild the generation config from the model config on load.
            with open(path / "generation_config.json", encoding="utf-8") as f:
                codes = json.load(f).get("text_decoder_lang_to_code_id")
        if not isinstance(codes, dict) or not codes:
            raise ConfigError(
                f"model argument 'model': {path}/generation_config.json has no "
                "text_decoder_lang_to_code_id (the target-language codes of seamless-m4t-v2)"
            )
        lang = (options.get("tgt_lang") or self.default_lang).strip("_")
        if lang not in codes:
            raise ConfigError(
                f"model argument 'tgt_lang': {lang!r} is not a language of this model; "
                f"expected one of {', '.join(sorted(codes))}"
            )
        start = int(model.config.decoder_start_token_id)
        model._slm_decoder_prefix = [start, int(codes[lang])]  # read by decoder_prefix()

    def identity_extra(self, options: dict[str, Any]) -> dict[str, Any]:
        """The target language (what the answers are written in)."""
        return {"tgt_lang": (options.get("tgt_lang") or self.default_lang).strip("_")}

    def check_request(self, where: str, has_audio: bool, has_text: bool) -> None:
        """Audio only: a question in text would be silently ignored."""
        if not has_audio:
            raise DataError(f"{where}: {self.name} needs audio (it translates speech)")
        if has_text:
            raise DataError(
                f"{where}: {self.name} translates speech and takes no text prompt; the "
                "request has text"
            )

    def decoder_prefix(self, model: Any) -> list[int]:
        """Decoder start and target-language ids (set by :meth:`setup`)."""
        return list(model._slm_decoder_prefix)

    def load_processor(self, path: Path) -> Any:
        """``AutoProcessor`` (``SeamlessM4TProcessor``): checked for its fbank extractor."""
        processor = super().load_processor(path)
        if type(processor.feature_extractor).__name__ != "SeamlessM4TFeatureExtractor":
            raise ConfigError(
                f"model argument 'processor': {path} holds a "
                f"{type(processor.feature_extractor).__name__}, expected the "
                "SeamlessM4TFeatureExtractor"
            )
        return processor

    def render(self, processor: Any, system: str | None, text: str | None, has_audio: bool) -> Any:
        """No prompt (the audio is the whole input)."""
        return None

    def template_fingerprint(self, processor: Any) -> str:
        """No template: the prompt is the audio and the decoder prefix."""
        return "seamless-m4t-v2: no prompt"

    def processor_call(self, processor: Any, prompts: list[Any], audios: list[np.ndarray]) -> Any:
        """The feature extractor through the processor (``audio=``, 16 kHz)."""
        rate = int(self.feature_extractor(processor).sampling_rate)
        return processor(audio=audios, sampling_rate=rate, return_tensors="pt")

    def encode(
        self, processor: Any, prompts: list[Any], audios: Sequence[np.ndarray | None]
    ) -> Any:
        """Features and their mask for a batch of clips (every request has one)."""
        batch = self.processor_call(processor, list(prompts), [a for a in audios if a is not None])
        self.check_audio(processor, batch, audios)
        return batch

    @staticmethod
    def feature_frames(processor: Any, samples: int) -> int:
        """Stacked feature frames of a clip: 25-ms fbank windows every 10 ms, then pairs."""
        fe = processor.feature_extractor
        window = round(0.025 * fe.sampling_rate)
        hop = round(0.010 * fe.sampling_rate)
        fbank = 1 + (samples - window) // hop if samples >= window else 0
        return fbank // int(fe.stride)

    def check_audio(self, processor: Any, batch: Any, audios: Sequence[np.ndarray | None]) -> None:
        """Every clip became a row of features whose mask covers its own length."""
        features, mask = batch.get("input_features"), batch.get("attention_mask")
        if features is None or mask is None or features.shape[0] != len(audios):
            got = "no" if features is None else str(features.shape[0])
            raise PluginError(
                f"{self.name}: the processor returned {got} audio feature rows for "
                f"{len(audios)} clips: the audio was dropped"
            )
        for j, (clip, frames) in enumerate(zip(audios, mask.sum(-1).tolist(), strict=True)):
            want = self.feature_frames(processor, int(clip.shape[0]))
            if frames != want:
                raise PluginError(
                    f"{self.name}: clip {j} has {clip.shape[0]} samples but {frames} feature "
                    f"frames, expected {want}"
                )

    def min_samples(self, processor: Any) -> int:
        """Two fbank frames (one stacked frame): 25 ms + 10 ms."""
        fe = processor.feature_extractor
        return round(0.025 * fe.sampling_rate) + round(0.010 * fe.sampling_rate)

    def max_samples(self, processor: Any) -> int:
        """No window (relative positions; long clips cost memory, not a cut)."""
        return sys.maxsize

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The stacked fbanks and their frame mask."""
        return {
            "input_features": batch["input_features"],
            "attention_mask": batch["attention_mask"],
        }

    def generation_inputs(self, model: Any, batch: Any) -> dict[str, Any]:
        """Features, mask, and the decoder prefix of every row."""
        prefix = torch.tensor([self.decoder_prefix(model)] * batch["input_features"].shape[0])
        return {**self.model_inputs(batch), "decoder_input_ids": prefix}

    def new_tokens(self, out: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """The decoder's sequences after the prefix."""
        return out[:, inputs["decoder_input_ids"].shape[1] :]

    def generate(self, model: torch.nn.Module, inputs: dict[str, Any], config: Any) -> Any:
        """``GenerationMixin.generate`` with the prefix given (the model's own ``generate``
        rebuilds it from ``tgt_lang`` and a generation-config map the adapter replaces)."""
        from transformers import GenerationMixin

        config = copy.deepcopy(config)
        config.decoder_start_token_id = self.decoder_prefix(model)[0]
        return GenerationMixin.generate(model, **inputs, generation_config=config)


class Phi4MultimodalFamily(ChatFamily):
    """Phi-4-multimodal(-instruct): a conformer audio encoder on 80-bin log-mels (25-ms
    windows every 10 ms), 8 frames per audio embedding, and a Phi-4-mini LM; the chat template
    writes ``<|user|><|audio|>text<|end|><|assistant|>`` and the processor repeats
    ``<|audio|>`` once per embedding.

    The processor also holds an image processor, which imports torchvision; a harness that
    sends no images does not need it, so where torchvision does not import an inert image
    processor stands in (the audio path is the processor's own). The encoder's convolutional
    subsampling sees the padding of a batch of clips, so clips of different lengths are
    never batched together. Microsoft's checkpoint keeps the speech LoRA in ``speech-lora/``,
    which transformers loads through peft; this family refuses such a folder rather than
    answer with the base weights: merge the adapter first."""

    name = "phi4-multimodal"
    model_types = ("phi4_multimodal",)
    model_class = "Phi4MultimodalForCausalLM"
    end_of_turn = "<|end|>"
    batch_by_length = True
    extractor_attr = "audio_processor"

    def load_processor(self, path: Path) -> Any:
        """``AutoProcessor``; without torchvision, the same processor class from the folder's
        tokenizer and audio feature extractor and an inert image processor."""
        try:
            import torchvision  # noqa: F401
        except Exception:  # absent, or a build that does not load beside this torch
            return self._audio_only_processor(path)
        try:
            return super().load_processor(path)
        except ConfigError:  # e.g. a folder saved without a real image processor
            return self._audio_only_processor(path)

    def _audio_only_processor(self, path: Path) -> Any:
        from transformers import (
            AutoTokenizer,
            Phi4MultimodalFeatureExtractor,
            Phi4MultimodalProcessor,
        )
        from transformers.image_processing_utils import ImageProcessingMixin

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            audio = Phi4MultimodalFeatureExtractor.from_pretrained(str(path), local_files_only=True)
            return Phi4MultimodalProcessor(
                image_processor=ImageProcessingMixin(),
                audio_processor=audio,
                tokenizer=tokenizer,
                chat_template=tokenizer.chat_template,
            )
        except Exception as e:
            raise ConfigError(
                f"model argument 'processor': cannot load the phi4-multimodal processor from "
                f"{path} ({type(e).__name__}: {e})"
            ) from None

    def load_model(self, path: Path, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
        """The model; a ``speech-lora/`` beside it is refused (see the class doc)."""
        if (path / "speech-lora").is_dir():
            raise ConfigError(
                f"model argument 'model': {path} keeps its speech LoRA in speech-lora/, which "
                "hf-audio-chat does not load; merge it into the weights (peft "
                "merge_and_unload) and give the merged folder"
            )
        return super().load_model(path, dtype, device)

    def embed_count(self, processor: Any, samples: int) -> int:
        """Audio embeddings of a clip: log-mel frames (400-sample windows, hop 160),
        compressed 8 to 1 (rounding up), then by the Q-former rate (1)."""
        fe = self.feature_extractor(processor)
        frames = (samples - int(fe.win_length)) // int(fe.hop_length) + 1
        frames *= int(fe.audio_feat_stride)
        embeds = -(-frames // int(fe.audio_compression_rate))
        return -(-embeds // int(fe.audio_downsample_rate))

    def check_audio(self, processor: Any, batch: Any, audios: Sequence[np.ndarray | None]) -> None:
        """Each clip gave a row of features and as many ``<|audio|>`` tokens in its own row
        as it has audio embeddings (see :meth:`ChatFamily.check_audio`)."""
        n_clips = sum(a is not None for a in audios)
        counts = (batch["input_ids"] == self.audio_token_id(processor)).sum(-1).tolist()
        features, sizes = batch.get("audio_input_features"), batch.get("audio_embed_sizes")
        if n_clips == 0:
            if features is not None or any(counts):
                raise PluginError(f"{self.name}: audio placeholders in a batch without audio")
            return
        if features is None or sizes is None or features.shape[0] != n_clips:
            got = "no" if features is None else str(features.shape[0])
            raise PluginError(
                f"{self.name}: the processor returned {got} audio feature rows for {n_clips} "
                "clips: the audio was dropped"
            )
        j = 0
        for row, (clip, count) in enumerate(zip(audios, counts, strict=True)):
            want = 0
            if clip is not None:
                want = self.embed_count(processor, int(clip.shape[0]))
                if int(sizes[j]) != want:
                    raise PluginError(
                        f"{self.name}: clip {j} has {clip.shape[0]} samples but "
                        f"{int(sizes[j])} audio embeddings, expected {want}"
                    )
                j += 1
            if count != want:
                raise PluginError(
                    f"{self.name}: row {row} has {count} audio placeholder tokens, expected "
                    f"{want}: the audio was not expanded into the prompt"
                )

    def min_samples(self, processor: Any) -> int:
        """One log-mel window."""
        return int(self.feature_extractor(processor).win_length)

    def max_samples(self, processor: Any) -> int:
        """No window cut by the processor."""
        return sys.maxsize

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The log-mels, their frame mask and the embedding count of each clip."""
        keep = ("audio_input_features", "audio_embed_sizes", "audio_attention_mask")
        return {k: batch[k] for k in keep if batch.get(k) is not None}


FAMILIES: dict[str, ChatFamily] = {
    f.name: f
    for f in (
        Qwen2AudioFamily(),
        VoxtralFamily(),
        GraniteSpeechFamily(),
        SeamlessM4Tv2Family(),
        Phi4MultimodalFamily(),
    )
}


def family_for(path: Path, requested: str) -> ChatFamily:
    """The family of the model in ``path``: by its ``model_type`` (``requested`` = ``auto``),
    or the one requested, which must then agree with it."""
    model_type = read_model_type(path)
    found = next((f for f in FAMILIES.values() if model_type in f.model_types), None)
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES.values())
    if found is None:
        raise ConfigError(
            f"model argument 'model': {path} holds a {model_type!r} model, not a supported "
            f"family; supported: {supported}"
        )
    if requested != "auto" and requested != found.name:
        raise ConfigError(
            f"model argument 'family': {requested!r} was requested but {path} holds a "
            f"{model_type!r} model ({found.name})"
        )
    return found


def check_clip(family: ChatFamily, processor: Any, samples: np.ndarray, where: str) -> None:
    """A clip long enough to give the model at least one audio token."""
    need = family.min_samples(processor)
    if samples.shape[0] < need:
        raise DataError(
            f"{where}: audio has {samples.shape[0]} samples; {family.name} needs at least {need}"
        )
