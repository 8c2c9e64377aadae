"""VAD judge ``silero-vad``: speech segments from Silero VAD, whose weights ship in its wheel.

Used for turn-taking statistics (IPUs, pauses, gaps, overlaps), reflective pause and
interruption, and to find speech in generated audio. Segments are computed by the package's
own ``get_speech_timestamps`` (its state reset per audio, so no audio depends on another) on
16 kHz audio, and returned in seconds (sample index / 16000: exact, no rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError
from ..execute import ExecStats
from .base import (
    RESAMPLER,
    Judge,
    JudgeRequest,
    OptionSpec,
    package_version,
    path_sha256,
    run_judge,
)

Segments = list[tuple[float, float]]


class SileroVADJudge(Judge):
    """Silero VAD (the packaged JIT model). Options: ``threshold`` (speech probability, 0.5),
    ``min_speech_ms`` (250), ``min_silence_ms`` (100), ``speech_pad_ms`` (30) — the package's
    defaults — and ``batch_size`` (audios per call, 16; each audio is processed on its own)."""

    kind = "vad"
    sample_rate = 16000
    offline_default = "silero_vad.jit, shipped in the silero-vad wheel"
    OPTIONS: ClassVar[OptionSpec] = {
        "threshold": (float, 0.5),
        "min_speech_ms": (int, 250),
        "min_silence_ms": (int, 100),
        "speech_pad_ms": (int, 30),
        "batch_size": (int, 16),
    }

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        if not 0 < opts["threshold"] < 1:
            raise ConfigError(f"judge {name!r}: option 'threshold' must be in (0, 1)")
        for key in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if opts[key] < 0:
                raise ConfigError(f"judge {name!r}: option {key!r} must be >= 0")
        return opts

    def __init__(self, name: str = "silero-vad", **options: Any) -> None:
        super().__init__(name, **options)
        try:
            import silero_vad
        except ImportError:
            raise ConfigError(
                f"judge {name!r} needs the package silero-vad: pip install 'speechlm-eval[judges]'"
            ) from None
        self._weights = Path(silero_vad.__file__).parent / "data" / "silero_vad.jit"

    @cached_property
    def _model(self) -> Any:
        from silero_vad import load_silero_vad

        return load_silero_vad(onnx=False)

    def identity(self) -> dict[str, Any]:
        return {
            **self._identity_head("silero-vad"),
            "model": {"file": "silero_vad.jit", "sha256": path_sha256(self._weights)},
            "options": {k: v for k, v in self.options.items() if k != "batch_size"},
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER},
            "torch": package_version("torch"),
        }

    def segments(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[Segments]:
        """Speech segments ``[(start_s, end_s), ...]`` of each audio, through the executor."""
        rows = run_judge(self, "segments", self._segments, audios, stats, cache, desc)
        return [[(float(a), float(b)) for a, b in row] for row in rows]

    def _segments(self, requests: list[JudgeRequest]) -> list[list[list[float]]]:
        import torch
        from silero_vad import get_speech_timestamps

        out = []
        o = self.options
        for r in requests:
            x = torch.from_numpy(r.audio.samples.copy())
            with torch.inference_mode():
                ts = get_speech_timestamps(
                    x,
                    self._model,
                    threshold=o["threshold"],
                    sampling_rate=self.sample_rate,
                    min_speech_duration_ms=o["min_speech_ms"],
                    min_silence_duration_ms=o["min_silence_ms"],
                    speech_pad_ms=o["speech_pad_ms"],
                )
            # JSON lists (the cache's format) of seconds: sample index / rate, exact in float.
            out.append([[t["start"] / self.sample_rate, t["end"] / self.sample_rate] for t in ts])
        return out
