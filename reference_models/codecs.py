"""Neural audio codecs from transformers behind one contract, for :mod:`reference_models.codec_lm`.

A codec turns a mono waveform at its own sample rate into ``K`` parallel streams of discrete
codes at ``frame_rate`` frames per second (residual vector quantisation: codebook 0 is the
coarsest, each further codebook quantises what the previous ones left), and codes back into
a waveform. Supported families (transformers model types), each loaded from a local
``save_pretrained`` folder and run in float32, one clip per call:

========  ==================  ==========================================================
family    class               how ``codebooks=N`` is obtained
========  ==================  ==========================================================
encodec   ``EncodecModel``    the smallest ``target_bandwidths`` entry with >= N quantizers
mimi      ``MimiModel``       ``num_quantizers=N`` (codebook 0 is Mimi's semantic one)
dac       ``DacModel``        ``n_quantizers=N``
xcodec    ``XcodecModel``     the smallest ``target_bandwidths`` entry with >= N quantizers
========  ==================  ==========================================================

Residual quantisation is greedy, so the first N codebooks do not depend on how many more
are computed; where a codec selects codebooks by bandwidth the extra ones are dropped.

Facts used here are read from transformers' own source (``models/<family>/modeling_*.py``
and ``configuration_*.py``): EnCodec's ``encode`` returns ``[chunks, B, K, F]`` and defaults
to the *lowest* bandwidth, X-Codec's to the *highest*; DAC's ``decode`` returns ``[B, T]``;
DAC's (and X-Codec's) feature extractor right-pads the waveform to a multiple of the hop.
Not supported: chunked / normalising EnCodec checkpoints (the 48 kHz stereo model), X-Codec2
(its mel front end needs torchaudio) and SNAC (not a transformers model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.errors import ConfigError, DataError

__all__ = ["CODEC_FAMILIES", "Codec", "check_codec_config", "make_codec"]


class Codec:
    """A transformers codec model (one family, see the module doc) in float32 on ``device``.

    ``codebooks``: how many codebooks :meth:`encode` returns (None: all the codec has).
    Subclasses say how to run the family's model (:meth:`_codes`, :meth:`_latents`,
    :meth:`_decode`); this class holds the shared bookkeeping and checks.
    """

    family: ClassVar[str] = ""
    # Right-pad the waveform to a whole number of hops before encoding, as the family's
    # feature extractor does (DAC, X-Codec); EnCodec and Mimi pad inside their convolutions.
    pad_to_hop: ClassVar[bool] = False

    def __init__(
        self, path: Path, config: Any, codebooks: int | None, device: torch.device
    ) -> None:
        # Config-only: cheap, so that the token layout is checked before any weights load.
        self.path, self.config, self.device = path, config, device
        self.sample_rate = int(self._sample_rate(config))
        self.hop_length = int(self._hop_length(config))
        # Exact frames per second (the configs' ``frame_rate`` properties round up).
        self.frame_rate = self.sample_rate / self.hop_length
        self.codebook_size = int(config.codebook_size)
        self.max_codebooks = int(self._max_codebooks(config))
        n = self.max_codebooks if codebooks is None else int(codebooks)
        if not 1 <= n <= self.max_codebooks:
            raise ConfigError(
                f"model argument 'codebooks': the {self.family} codec at {path} has "
                f"{self.max_codebooks} codebooks, got {codebooks!r}"
            )
        self.codebooks = n
        self.model: Any = None

    def load(self) -> Codec:
        """Load the weights (float32, eval mode, on ``device``); returns self."""
        from transformers import AutoModel

        from .hf_unit_lm import load_pretrained

        # The codec always runs in float32: its nearest-codeword search is what makes the
        # codes, and a lower precision could change them (the LM takes ``dtype``).
        self.model = load_pretrained("codec", AutoModel, self.path, torch.float32, self.device)
        return self

    # --- per-family facts (overridden) ---------------------------------------------------------

    @staticmethod
    def _sample_rate(config: Any) -> int:
        return int(config.sampling_rate)

    @staticmethod
    def _hop_length(config: Any) -> int:
        return int(np.prod(config.upsampling_ratios))

    @staticmethod
    def _max_codebooks(config: Any) -> int:
        return int(config.num_quantizers)

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        """[1, 1, T] waveform -> [K', F] codes with K' >= ``codebooks``."""
        raise NotImplementedError

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """[1, 1, T] waveform -> [D, F] continuous latents, the quantiser's input."""
        raise NotImplementedError

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[1, k, F] codes -> [T'] waveform."""
        raise NotImplementedError

    # --- the contract --------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """What the codec contributes to the model identity (besides its file hashes)."""
        return {
            "family": self.family,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "codebook_size": self.codebook_size,
            "codebooks": self.codebooks,
        }

    def _input(self, wav: np.ndarray, source: str) -> torch.Tensor:
        x = np.ascontiguousarray(wav, dtype=np.float32)
        if self.pad_to_hop and x.size % self.hop_length:
            x = np.pad(x, (0, self.hop_length - x.size % self.hop_length))
        if x.size < self.hop_length:
            raise DataError(
                f"{source}: audio has {wav.size} samples, the {self.family} codec needs at "
                f"least {self.hop_length} (one frame)"
            )
        return torch.from_numpy(x)[None, None].to(self.device)

    @torch.inference_mode()
    def encode(self, wav: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Codes ``[codebooks, frames]`` (int64) of a mono waveform at :attr:`sample_rate`."""
        codes = self._codes(self._input(wav, source))[: self.codebooks]
        if codes.ndim != 2 or codes.shape[0] != self.codebooks or codes.shape[1] < 1:
            raise DataError(
                f"{source}: the {self.family} codec gave codes of shape {tuple(codes.shape)}, "
                f"expected ({self.codebooks}, frames >= 1)"
            )
        return codes.to("cpu", torch.int64).numpy()

    @torch.inference_mode()
    def latents(self, wav: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Pre-quantisation latents ``[frames, dims]`` (float32): what the quantiser reads."""
        return self._latents(self._input(wav, source)).float().T.contiguous().cpu().numpy()

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Waveform (float32, at :attr:`sample_rate`) of codes ``[k, frames]``, 1 <= k <=
        ``codebooks`` (fewer codebooks: a coarser reconstruction)."""
        c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
        if c.ndim != 2 or not 1 <= c.shape[0] <= self.codebooks or c.shape[1] < 1:
            raise ValueError(
                f"expected codes of shape (1..{self.codebooks}, frames), got {c.shape}"
            )
        wav = self._decode(c[None].to(self.device))
        return wav.reshape(-1).float().cpu().numpy()


def _bandwidth_for(codec: Codec) -> float:
    """The lowest of the codec's ``target_bandwidths`` (kbps) whose quantizer count covers
    ``codec.codebooks``: EnCodec and X-Codec pick their codebooks by bandwidth."""
    quantizer = codec.model.quantizer
    for b in sorted(codec.config.target_bandwidths):
        if quantizer.get_num_quantizers_for_bandwidth(float(b)) >= codec.codebooks:
            return float(b)
    raise ConfigError(  # max_codebooks comes from the highest bandwidth, so not reached
        f"model argument 'codebooks': no bandwidth of {codec.path} gives {codec.codebooks}"
    )


class _Encodec(Codec):
    family = "encodec"

    bandwidth: float | None = None

    def load(self) -> Codec:
        super().load()
        self.bandwidth = _bandwidth_for(self)
        return self

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "bandwidth": self.bandwidth}

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.encode(x, bandwidth=self.bandwidth, return_dict=True)
        return out.audio_codes[0, 0]  # [chunks=1, B=1, K, F]

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(x)[0]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes[None], [None], return_dict=True).audio_values


class _Mimi(Codec):
    family = "mimi"

    @staticmethod
    def _hop_length(config: Any) -> int:
        return int(config.frame_size)  # the SEANet hop times Mimi's extra downsampling

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, num_quantizers=self.codebooks).audio_codes[0]

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self.model.encoder
        if not hasattr(encoder, "encoder_seanet"):
            raise ConfigError(
                "codec-lm: Mimi latents need transformers >= 5 (MimiModel.encoder returning "
                "latents); use features=codes"
            )
        return encoder(x).latents[0]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes).audio_values


class _Dac(Codec):
    family = "dac"
    pad_to_hop = True

    @staticmethod
    def _hop_length(config: Any) -> int:
        return int(np.prod(config.downsampling_ratios))

    @staticmethod
    def _max_codebooks(config: Any) -> int:
        return int(config.n_codebooks)

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, n_quantizers=self.codebooks, return_dict=True).audio_codes[0]

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(x)[0]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values


class _Xcodec(Codec):
    family = "xcodec"
    pad_to_hop = True

    bandwidth: float | None = None

    def load(self) -> Codec:
        super().load()
        self.bandwidth = _bandwidth_for(self)
        return self

    @staticmethod
    def _sample_rate(config: Any) -> int:
        return int(config.sample_rate)

    @staticmethod
    def _hop_length(config: Any) -> int:
        return int(config.hop_length)

    @staticmethod
    def _max_codebooks(config: Any) -> int:
        return int(config.num_quantizers)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "bandwidth": self.bandwidth}

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, bandwidth=self.bandwidth, return_dict=True).audio_codes[0]

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        # X-Codec fuses its acoustic and semantic (HuBERT) branches with ``fc`` right before
        # the quantiser; its output is the latent. Captured with a hook rather than by
        # re-running the fusion here, so it is what the codec itself computes.
        seen: list[torch.Tensor] = []
        handle = self.model.fc.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            self._codes(x)
        finally:
            handle.remove()
        return seen[-1][0].T  # fc works on [B, F, D]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes, return_dict=True).audio_values


_FAMILIES: dict[str, type[Codec]] = {c.family: c for c in (_Encodec, _Mimi, _Dac, _Xcodec)}
CODEC_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)


def check_codec_config(path: Path, config: Any) -> type[Codec]:
    """The codec class for ``config`` (read from ``path``), or a one-line ConfigError: an
    unsupported family, or an EnCodec variant this contract cannot express."""
    model_type = getattr(config, "model_type", None)
    cls = _FAMILIES.get(str(model_type))
    if cls is None:
        raise ConfigError(
            f"model argument 'codec': {path} holds a {model_type!r} model; supported codecs: "
            f"{', '.join(CODEC_FAMILIES)} (transformers EncodecModel, MimiModel, DacModel, "
            "XcodecModel)"
        )
    chunked = getattr(config, "chunk_length_s", None) is not None
    if cls is _Encodec and (chunked or getattr(config, "normalize", False)):
        raise ConfigError(
            f"model argument 'codec': {path} is a chunked / normalising EnCodec (the 48 kHz "
            "model); only unchunked mono EnCodec (24 kHz, MusicGen's 32 kHz) is supported"
        )
    channels = int(getattr(config, "audio_channels", 1))
    if channels != 1:
        raise ConfigError(
            f"model argument 'codec': {path} is a {channels}-channel codec; only mono is supported"
        )
    if not isinstance(getattr(config, "codebook_size", None), int):
        raise ConfigError(f"model argument 'codec': {path}/config.json has no codebook_size")
    return cls


def make_codec(path: Path, config: Any, codebooks: int | None, device: torch.device) -> Codec:
    """The codec at ``path`` (its ``config`` already read), returning ``codebooks`` codebooks
    (None: all of them); checked on the config only, its weights not loaded yet
    (:meth:`Codec.load`)."""
    return check_codec_config(path, config)(path, config, codebooks, device)
