"""ASR judge ``openai-whisper``: the reference Whisper implementation, any size, from disk.

``model`` is a checkpoint file (``{"dims": ..., "model_state_dict": ...}``, the format
``whisper.load_model`` reads) or an official model name (``large-v3``, ``small.en``, ...)
whose file is already in openai-whisper's download folder (``~/.cache/whisper`` or
``download_root``). Nothing is downloaded: a missing file is an error. For an official name
the file's SHA-256 is checked against the one openai-whisper publishes for it.

Decoding: ``whisper.decode`` on 30 s log-mel windows (temperature 0, no fallback, beam search
of ``beam_size`` or greedy when 1, no timestamps, language fixed): a whole batch at once when
greedy, one window at a time with beam search (openai-whisper's batched beam search is
broken); audio longer than 30 s goes through ``model.transcribe`` with the same options.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..options import Opt, Spec
from .base import ASRJudge, package_version, path_sha256, whisper_decoding

INSTALL = "install it with: pip install openai-whisper (or the judges extra)"


def _whisper() -> Any:
    try:
        import whisper
    except ImportError:
        raise ConfigError(
            f"judge 'openai-whisper' needs the package 'openai-whisper'; {INSTALL}"
        ) from None
    return whisper


def _official_sha256(name: str) -> str | None:
    """The SHA-256 openai-whisper publishes for an official model name (in its URL)."""
    urls = getattr(_whisper(), "_MODELS", {})
    return urls[name].split("/")[-2] if name in urls else None


class OpenAIWhisperJudge(ASRJudge):
    """openai-whisper transcription from a checkpoint on disk.

    Options: ``model`` (checkpoint path or official name; required), ``download_root``
    (where official names are looked up), ``beam_size`` (default 5), ``language`` (default
    ``en``), ``device`` (default ``cpu``), ``batch_size`` (default 16).
    """

    OPTIONS: ClassVar[Spec] = Spec(
        {
            "model": Opt(str, None, doc="checkpoint file, or official name already downloaded"),
            "download_root": Opt(str, None, doc="where official names are looked up"),
            "beam_size": Opt(int, 5, ge=1, doc="1 = greedy"),
            "language": Opt(str, "en"),
            "device": Opt(str, "cpu"),
            "batch_size": Opt(int, 16, ge=1),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        model = opts["model"]
        if not model:
            raise ConfigError(
                f"judge {name!r}: option 'model' is required (a checkpoint file, or an "
                "official model name whose file is already downloaded)"
            )
        path = Path(model).expanduser()
        opts["official_name"] = None
        if not path.is_file():
            root = opts["download_root"] or os.path.join(
                os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                "whisper",
            )
            cached = Path(root) / f"{model}.pt"
            if "/" in model or os.sep in model or not cached.is_file():
                raise ConfigError(
                    f"judge {name!r}: option 'model': no checkpoint file {model!r} (nor "
                    f"{cached}); openai-whisper checkpoints are not downloaded by the harness"
                )
            path = cached
            opts["official_name"] = model
        opts["model"] = str(path.resolve())
        return opts

    def __init__(self, name: str = "openai-whisper", **options: Any) -> None:
        super().__init__(name, **options)
        whisper = _whisper()
        self.path = Path(self.options["model"])
        official = self.options["official_name"]
        if official is not None:
            want = _official_sha256(official)
            if want is not None and self._sha256 != want:
                raise ConfigError(
                    f"judge {self.name!r}: {self.path} does not have the SHA-256 openai-whisper "
                    f"publishes for {official!r} ({want[:12]}...); the file is damaged or not it"
                )
        try:
            # A path (never a name): load_model would download a name.
            self.model = whisper.load_model(str(self.path), device=self.options["device"])
        except Exception as e:  # torch.load / state-dict errors of many types: a bad file
            raise ConfigError(
                f"judge {self.name!r}: cannot load {self.path} as an openai-whisper checkpoint "
                f"({type(e).__name__}: {e})"
            ) from None
        self.model.eval()
        if not self.model.is_multilingual and self.options["language"] != "en":
            raise ConfigError(
                f"judge {self.name!r}: {self.path} is an English-only model; "
                f"language={self.options['language']!r} is not possible"
            )

    @cached_property
    def _sha256(self) -> str:
        return path_sha256(self.path)

    @property
    def _fp16(self) -> bool:
        return self.options["device"].startswith("cuda")

    def _options(self) -> Any:
        whisper = _whisper()
        beam = self.options["beam_size"]
        return whisper.DecodingOptions(
            task="transcribe",
            language=self.options["language"],
            temperature=0.0,
            beam_size=beam if beam > 1 else None,
            without_timestamps=True,
            fp16=self._fp16,
        )

    def _transcribe_batch(self, samples: list[np.ndarray]) -> list[str]:
        import torch

        whisper = _whisper()
        from whisper.audio import N_FRAMES, N_SAMPLES

        n_mels = self.model.dims.n_mels
        out: list[str | None] = [None] * len(samples)
        short = [i for i, s in enumerate(samples) if s.size <= N_SAMPLES]
        with torch.no_grad():
            if short:
                # As model.transcribe prepares its first window: log-mel of the audio followed by
                # 30 s of silence, cut to 3000 frames.
                mels = torch.stack(
                    [
                        whisper.log_mel_spectrogram(
                            torch.from_numpy(samples[i]), n_mels, padding=N_SAMPLES
                        )[:, :N_FRAMES]
                        for i in short
                    ]
                ).to(self.model.device)
                opts = self._options()
                if self.options["beam_size"] > 1:
                    # openai-whisper (up to at least 20250625) fails on beam search over a
                    # batch of several audios (audio features are not repeated per beam; open
                    # PRs openai/whisper#2197, #2389, #2843): decode those one at a time.
                    results = [whisper.decode(self.model, m, opts) for m in mels]
                else:
                    results = whisper.decode(self.model, mels, opts)
                for i, r in zip(short, results, strict=True):
                    out[i] = r.text
            for i, s in enumerate(samples):
                if s.size > N_SAMPLES:
                    beam = self.options["beam_size"]
                    res = self.model.transcribe(
                        s,
                        language=self.options["language"],
                        temperature=0.0,
                        beam_size=beam if beam > 1 else None,
                        condition_on_previous_text=False,
                        fp16=self._fp16,
                        verbose=None,
                    )
                    out[i] = str(res["text"])
        return [t or "" for t in out]

    def identity(self) -> dict[str, Any]:
        o = self.options
        d = self.model.dims
        return {
            **self._identity_head("openai-whisper"),
            "runtime": {"torch": package_version("torch")},
            "model": {
                "name": o["official_name"] or self.path.stem,
                "path": str(self.path),
                "sha256": self._sha256,
                "dims": dict(vars(d)),
                "multilingual": bool(self.model.is_multilingual),
            },
            "compute_type": "float16" if self._fp16 else "float32",
            "decoding": {
                **whisper_decoding(o["beam_size"], o["language"]),
                "suppress_tokens": "-1",
                "features": "log-mel of the utterance + 30 s of silence, first 3000 frames",
                "long_form": "model.transcribe (sequential 30 s windows) above 30 s",
            },
            "input": self._input_identity(),
        }
