"""The one audio value type of the harness, and the one place where audio is read.

Audio is float32, mono, with an integer sample rate. Everything that reaches a
model goes through :func:`load_audio` (files) or :class:`Audio` (arrays), so the
checks below happen exactly once and identically for every task.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True, eq=False)
class TwoChannelAudio:
    """Two time-aligned mono channels of one conversation (channel ``a``, channel ``b``).

    The value type of dialogue audio: a dGSLM-style two-channel prompt or continuation, the
    user and model channels of a ``converse`` session, a stereo corpus file. Construction
    validates both channels as :class:`Audio` (each names its channel in errors) and that
    they share one sample rate and one length, so the timeline is the same for both.
    """

    a: Audio
    b: Audio
    source: str = field(default="<two-channel>", compare=False)

    def __post_init__(self) -> None:
        for name, ch in (("a", self.a), ("b", self.b)):
            if not isinstance(ch, Audio):
                raise DataError(
                    f"{self.source}: channel {name} must be an Audio, got {type(ch).__name__}"
                )
        if self.a.sample_rate != self.b.sample_rate:
            raise DataError(
                f"{self.source}: the two channels have different sample rates "
                f"({self.a.sample_rate} and {self.b.sample_rate} Hz)"
            )
        if self.a.samples.size != self.b.samples.size:
            raise DataError(
                f"{self.source}: the two channels have different lengths "
                f"({self.a.samples.size} and {self.b.samples.size} samples); "
                "a conversation's channels must share one timeline"
            )

    @classmethod
    def from_array(cls, samples: np.ndarray, sample_rate: int, source: str) -> TwoChannelAudio:
        """From a ``(frames, 2)`` array (soundfile's layout of a stereo file)."""
        x = np.asarray(samples)
        if x.ndim != 2 or x.shape[1] != 2:
            raise DataError(f"{source}: expected two channels (frames, 2), got shape {x.shape}")
        return cls(
            Audio(np.ascontiguousarray(x[:, 0], dtype=np.float32), sample_rate, f"{source}[a]"),
            Audio(np.ascontiguousarray(x[:, 1], dtype=np.float32), sample_rate, f"{source}[b]"),
            source,
        )

    @property
    def sample_rate(self) -> int:
        return int(self.a.sample_rate)

    @property
    def duration(self) -> float:
        """Length in seconds (both channels)."""
        return self.a.duration

    def channel(self, name: str) -> Audio:
        """Channel ``"a"`` or ``"b"``."""
        if name not in ("a", "b"):
            raise ValueError(f"channel must be 'a' or 'b', got {name!r}")
        return self.a if name == "a" else self.b

    def content_hash(self) -> str:
        """SHA-256 over both channels' :meth:`Audio.content_hash` (order matters)."""
        return hashlib.sha256(
            f"{self.a.content_hash()}|{self.b.content_hash()}".encode()
        ).hexdigest()

    def resample(self, target_rate: int) -> TwoChannelAudio:
        """Both channels resampled (:meth:`Audio.resample`); self when rates match."""
        if target_rate == self.sample_rate:
            return self
        return TwoChannelAudio(
            self.a.resample(target_rate), self.b.resample(target_rate), self.source
        )

    def to_array(self) -> np.ndarray:
        """``(frames, 2)`` float32, for writing a stereo file."""
        return np.stack([self.a.samples, self.b.samples], axis=1)


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file, read without decoding the samples."""

    path: Path
    sample_rate: int
    frames: int
    channels: int
    subtype: str = ""  # libsndfile's name of the sample encoding (PCM_16, FLOAT, ...)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


# 8-bit linear PCM keeps ~48 dB of dynamic range: as a speech benchmark file it is almost
# always a botched conversion, and scores computed on it are not comparable. Companded
# 8-bit telephone codecs (ULAW/ALAW) are a deliberate choice and stay accepted.
REFUSED_SUBTYPES = {"PCM_S8": "8-bit signed PCM", "PCM_U8": "8-bit unsigned PCM"}
# Encodings that store floats: the only ones whose samples can leave [-1, 1] as stored
# (integer PCM cannot; lossy decoders may overshoot slightly by design, so they are exempt).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
# Writers that stream to a pipe put a huge placeholder in the size field (ffmpeg 0xFFFFFFFF,
# SoX 0x7FFFF000, others 0x7FFFFFFF): libsndfile then reads to the end of the file, rightly.
_STREAMED_SIZE = 0x7FFF0000
_UNKNOWN_LENGTH = 2**62  # libsndfile reports SF_COUNT_MAX frames when a header has no length


def check_audio_path(path: str | Path) -> Path:
    """``path`` must be an existing regular file; otherwise say what it is instead."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise DataError(f"{p}: dangling symbolic link (its target {os.readlink(p)} does not exist)")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected an audio file")
    if not p.exists():
        raise DataError(f"{p}: audio file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file, expected an audio file")
    return p


def _truncated_data(extra_info: str) -> tuple[int, int] | None:
    """(declared, present) bytes of a WAV data chunk cut short, from libsndfile's header log.

    libsndfile reads a truncated WAV without an error and just reports fewer frames; its
    parse log ("data : 3200 (should be 1000)") is the only place the mismatch shows.
    """
    m = _DATA_SIZE.search(extra_info)
    if not m:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if declared >= _STREAMED_SIZE or declared <= present:
        return None
    align = _BLOCK_ALIGN.search(extra_info)
    # A missing pad byte (odd-sized chunk) is not a missing frame.
    if declared - present < (int(align.group(1)) if align else 1):
        return None
    return declared, present


def audio_info(
    path: str | Path, expected_rate: int | None = None, multichannel: bool = False
) -> AudioInfo:
    """Read and check an audio file's header.

    Checks: a readable regular file, not 8-bit PCM, data not cut short, mono (unless
    ``multichannel``: an :class:`AudioRef` then picks one channel), non-empty, and (when given)
    the expected sample rate. Each failure is a :class:`DataError` naming the file.
    """
    p = check_audio_path(path)
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (0 bytes), expected audio")
    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises several types for unreadable files
        raise DataError(f"{p}: cannot read audio file ({e})") from None
    if info.subtype in REFUSED_SUBTYPES:
        raise DataError(
            f"{p}: {REFUSED_SUBTYPES[info.subtype]} ({info.subtype}) is not accepted; expected "
            "16-bit or wider PCM (PCM_16, PCM_24, PCM_32), float (FLOAT, DOUBLE) or a compressed "
            "format such as FLAC"
        )
    cut = _truncated_data(getattr(info, "extra_info", "") or "")
    if cut:
        raise DataError(
            f"{p}: truncated file: the WAV header declares {cut[0]} bytes of samples, the file "
            f"holds {cut[1]} (an interrupted copy or download?)"
        )
    if info.channels != 1 and not multichannel:
        raise DataError(f"{p}: expected mono audio, file has {info.channels} channels")
    if info.frames <= 0:
        raise DataError(f"{p}: audio file is empty (0 frames)")
    if info.frames >= _UNKNOWN_LENGTH:
        raise DataError(
            f"{p}: the file does not state its length (a FLAC written to a stream?); "
            "re-encode it so that its header holds the number of samples"
        )
    if expected_rate is not None and info.samplerate != expected_rate:
        raise DataError(
            f"{p}: sample rate is {info.samplerate} Hz, the dataset declares {expected_rate} Hz"
        )
    return AudioInfo(p, int(info.samplerate), int(info.frames), int(info.channels), info.subtype)


@dataclass(frozen=True)
class AudioRef:
    """A view of an audio file, read only when loaded: one ``channel`` (``None``: the file must
    be mono), from ``offset`` seconds for ``duration`` seconds (``None``: to the end). A 3 s
    prompt, one side of a two-channel dialogue and a stereo file's left channel are views of
    their files, not copies; each loads as a validated mono :class:`Audio`."""

    path: Path
    offset: float = 0.0
    duration: float | None = None
    channel: int | None = None
    expected_rate: int | None = None

    @classmethod
    def of(cls, x: AudioRef | str | Path, expected_rate: int | None = None) -> AudioRef:
        """``x`` itself when it is already a view, else a view of the whole file ``x``."""
        return x if isinstance(x, AudioRef) else cls(Path(x), expected_rate=expected_rate)

    def info(self) -> AudioInfo:
        """The file's checked header, and this view checked against it."""
        info = audio_info(self.path, self.expected_rate, multichannel=self.channel is not None)
        if self.channel is not None and not 0 <= self.channel < info.channels:
            raise DataError(
                f"{self.path}: channel {self.channel} requested, the file has {info.channels}"
            )
        start, stop = self._frames(info)
        if not (0 <= start < stop <= info.frames):
            raise DataError(
                f"{self.path}: the view {self.offset:g} s + {self.duration} s is outside the "
                f"file ({info.duration:g} s)"
            )
        return info

    def _frames(self, info: AudioInfo) -> tuple[int, int]:
        start = round(self.offset * info.sample_rate)
        if self.duration is None:
            return start, info.frames
        return start, start + round(self.duration * info.sample_rate)

    def seconds(self, info: AudioInfo) -> float:
        """Length of the view (the executor's cost for longest-first ordering)."""
        start, stop = self._frames(info)
        return (stop - start) / info.sample_rate

    def head(self, seconds: float) -> AudioRef:
        """The first ``seconds`` of this view (e.g. a continuation prompt)."""
        return replace(self, duration=seconds)

    def load(self, info: AudioInfo | None = None) -> Audio:
        """Decode the view into a validated mono :class:`Audio` (see :func:`load_audio`)."""
        info = info if info is not None else self.info()
        start, stop = self._frames(info)
        whole = start == 0 and stop == info.frames
        label = str(self.path)
        if self.channel is not None or not whole:
            label += f"[ch {self.channel or 0}, {start}:{stop}]"
        return _decode(self.path, info, self.channel or 0, None if whole else (start, stop), label)


def load_audio(
    path: str | Path, expected_rate: int | None = None, info: AudioInfo | None = None
) -> Audio:
    """Decode an audio file into a validated :class:`Audio` (mono float32).

    ``info``: the file's header as :func:`audio_info` already checked it (saves a re-read).
    Beyond :class:`Audio`'s checks: every frame the header announces is decoded, and samples
    stored as floats lie in [-1, 1] (larger values are unnormalised or clipped audio).
    """
    p = Path(path)
    if info is None:
        info = audio_info(p, expected_rate)
    return _decode(p, info, 0, None, str(p))


def _decode(
    p: Path, info: AudioInfo, channel: int, span: tuple[int, int] | None, label: str
) -> Audio:
    """Decode ``channel`` of ``p`` (frames ``span``, or all) and validate it: every frame the
    header announces is there, and float samples lie in [-1, 1]."""
    start, stop = span if span is not None else (0, None)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True, start=start, stop=stop)
    except Exception as e:
        raise DataError(f"{p}: cannot decode audio ({e})") from None
    want = (span[1] - span[0]) if span is not None else info.frames
    # MPEG frame counts come from a stream scan that other encoders' VBR files can defeat.
    if data.shape[0] != want and not info.subtype.startswith("MPEG"):
        raise DataError(
            f"{p}: decoded {data.shape[0]} frames, the header declares {want} "
            "(a truncated or corrupt file?)"
        )
    audio = Audio(np.ascontiguousarray(data[:, channel]), int(sr), label)
    if info.subtype in FLOAT_SUBTYPES:
        peak_at = int(np.argmax(np.abs(audio.samples)))
        peak = float(abs(audio.samples[peak_at]))
        if peak > 1.0:
            raise DataError(
                f"{p}: float samples must lie in [-1, 1], the largest magnitude is {peak:g} "
                f"(sample {peak_at}, {peak_at / int(sr):.3f} s); the audio is unnormalised "
                "(e.g. integer-scaled) or clipped: rescale it or store it as 16-bit PCM"
            )
    return audio
