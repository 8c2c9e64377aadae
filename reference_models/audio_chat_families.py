"""Per-model parts of ``hf-audio-chat``: how each instruction / omni model family of
transformers is loaded, prompted, fed audio and asked to generate.

A :class:`ChatFamily` owns what differs between model families -- the model class, the chat
messages its template expects, the processor call and the check that the audio reached the
model, the path to the language-model head, the ``generate`` call -- so that
:class:`~reference_models.hf_audio_chat.HFAudioChat` owns batching, scoring, seeding and the
identity once for all of them.

Supported (each verified on a tiny randomly initialised config in the tests):

- ``qwen2-audio``: ``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor``
  (``model_type`` ``qwen2_audio``); text answers only.

The processor trap: ``Qwen2AudioProcessor`` takes the waveforms as ``audio=``. Older
transformers releases ignored an ``audios=`` keyword without a word (the model then saw one
unexpanded ``<|AUDIO|>`` text token and answered without hearing anything); 5.x raises. Either
way the keyword here is ``audio=``, and :meth:`ChatFamily.encode` checks on every batch that
each clip was turned into features and into as many placeholder tokens as the encoder will
produce, so a processor that drops the audio fails loudly instead of yielding deaf answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.errors import ConfigError, DataError, PluginError

__all__ = [
    "FAMILIES",
    "ChatFamily",
    "Qwen2AudioFamily",
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
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "feature_extractor"):
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

    def render(self, processor: Any, system: str | None, text: str | None, has_audio: bool) -> str:
        """The prompt text up to and including the assistant's turn header."""
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

    def processor_call(self, processor: Any, prompts: list[str], audios: list[np.ndarray]) -> Any:
        """The processor on a batch: ``audio=`` (not ``audios=``: see the module doc)."""
        kwargs: dict[str, Any] = {"text": prompts, "return_tensors": "pt", "padding": True}
        if audios:
            kwargs["audio"] = audios
            kwargs["sampling_rate"] = int(processor.feature_extractor.sampling_rate)
        return processor(**kwargs)

    def encode(
        self, processor: Any, prompts: list[str], audios: Sequence[np.ndarray | None]
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
        hop = int(processor.feature_extractor.hop_length)
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
        hop = int(processor.feature_extractor.hop_length)
        frames = 1
        while self.audio_tokens(frames) < 1:
            frames += 1
        return (frames - 1) * hop + 1

    def max_samples(self, processor: Any) -> int:
        """Longest clip the processor keeps; longer ones are cut (Whisper's 30 s window)."""
        fe = processor.feature_extractor
        return int(getattr(fe, "n_samples", 30 * int(fe.sampling_rate)))

    # --- the network -------------------------------------------------------------------------

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The tensors of a processed batch the model's forward takes."""
        keep = ("input_features", "feature_attention_mask")
        return {k: batch[k] for k in keep if batch.get(k) is not None}

    def text_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module producing the LM hidden states (run with ``input_ids`` and audio)."""
        return model.model

    def lm_head(self, model: torch.nn.Module) -> torch.nn.Module:
        """The output projection from hidden states to vocabulary logits."""
        return model.get_output_embeddings()

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


FAMILIES: dict[str, ChatFamily] = {f.name: f for f in (Qwen2AudioFamily(),)}


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
