"""The one audio value type of the harness, and the one place where audio is read.

Audio is float32, mono, with an integer sample rate. Everything that reaches a
model goes through :func:`load_audio` (files) or :class:`Audio` (arrays), so the
checks below happen exactly once and identically for every task.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import DataError


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples at ``sample_rate`` Hz.

    Construction validates: 1-D, non-empty, finite, float32, positive integer rate.
    ``source`` names where the audio came from, so errors can point at the file.
    """

    samples: np.ndarray
    sample_rate: int
    source: str = field(default="<array>", compare=False)

    def __post_init__(self) -> None:
        s = self.samples
        where = self.source
        if not isinstance(s, np.ndarray):
            raise DataError(f"{where}: audio samples must be a numpy array, got {type(s).__name__}")
        if s.ndim != 1:
            raise DataError(f"{where}: expected mono audio (1-D samples), got shape {s.shape}")
        if s.dtype != np.float32:
            raise DataError(f"{where}: expected float32 samples, got {s.dtype}")
        if s.size == 0:
            raise DataError(f"{where}: audio is empty (0 samples)")
        if not np.all(np.isfinite(s)):
            raise DataError(f"{where}: audio contains NaN or infinite samples")
        if not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate <= 0:
            raise DataError(
                f"{where}: sample rate must be a positive integer, got {self.sample_rate!r}"
            )

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.size / self.sample_rate

    def content_hash(self) -> str:
        """SHA-256 of the sample rate and the raw float32 samples (identity of the signal)."""
        h = hashlib.sha256()
        h.update(str(int(self.sample_rate)).encode())
        h.update(b":")
        h.update(np.ascontiguousarray(self.samples).tobytes())
        return h.hexdigest()

    def resample(self, target_rate: int) -> Audio:
        """Polyphase resampling (scipy) to ``target_rate``; returns self when rates match."""
        if target_rate == self.sample_rate:
            return self
        from scipy.signal import resample_poly

        g = gcd(int(self.sample_rate), int(target_rate))
        y = resample_poly(self.samples.astype(np.float64), target_rate // g, self.sample_rate // g)
        return Audio(y.astype(np.float32), int(target_rate), self.source)


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file, read without decoding the samples."""

    path: Path
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path, expected_rate: int | None = None) -> AudioInfo:
    """Read and check an audio file's header: readable, mono, non-empty, expected rate."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: audio file not found")
    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises several types for unreadable files
        raise DataError(f"{p}: cannot read audio file ({e})") from None
    if info.channels != 1:
        raise DataError(f"{p}: expected mono audio, file has {info.channels} channels")
    if info.frames <= 0:
        raise DataError(f"{p}: audio file is empty (0 frames)")
    if expected_rate is not None and info.samplerate != expected_rate:
        raise DataError(
            f"{p}: sample rate is {info.samplerate} Hz, the dataset declares {expected_rate} Hz"
        )
    return AudioInfo(p, int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: str | Path, expected_rate: int | None = None, info: AudioInfo | None = None
) -> Audio:
    """Decode an audio file into a validated :class:`Audio` (mono float32).

    ``info``: the file's header as :func:`audio_info` already checked it (saves a re-read).
    """
    p = Path(path)
    if info is None:
        audio_info(p, expected_rate)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise DataError(f"{p}: cannot decode audio ({e})") from None
    return Audio(np.ascontiguousarray(data[:, 0]), int(sr), str(p))
