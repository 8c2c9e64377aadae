"""Speaker-encoder judge ``speaker``: an embedding per audio, cosine similarity between pairs.

Speaker similarity (SIM) is the cosine of two utterance embeddings. Its scale depends entirely
on the encoder (GE2E, WavLM x-vector and ECAPA-TDNN numbers are not comparable) and on what is
compared (generated speech vs the prompt, or vs the ground truth), so the identity names the
encoder, its weights' SHA-256 and its preprocessing, and numbers are only compared within one.

Backends (option ``backend``):

- ``resemblyzer`` (default, offline: the GE2E weights ``pretrained.pt`` ship in the wheel):
  Resemblyzer's ``VoiceEncoder.embed_utterance`` (256-d, L2-normalised, the mean of 1.6 s
  partial windows at 1.3 windows/s, package defaults). With ``preprocess=true`` (the default)
  each audio first goes through ``resemblyzer.preprocess_wav`` -- what the package documents
  and what the encoder was trained on: volume raised (never lowered) to -30 dBFS, then silences
  longer than ~0.2 s cut out by webrtcvad (mode 3, 30 ms windows); ``preprocess=false`` embeds
  the audio as given. Samples are clipped to [-1, 1] first (preprocess_wav converts to 16-bit
  PCM for its VAD, where larger values would wrap around).
- ``wavlm-sv``: a transformers ``*ForXVector`` model (``microsoft/wavlm-base-plus-sv`` and the
  like; loaded with ``AutoModelForAudioXVector``) and its feature extractor from a local folder
  (``model=DIR``, ``save_pretrained`` output; ``local_files_only``: nothing is downloaded).
  The embedding is the model's x-vector ``embeddings`` output (not normalised; the cosine does
  that). A model runs in padded batches only when padding provably cannot change an embedding
  (checked in the tests to float rounding): its feature encoder uses per-frame layer norm, its
  feature extractor returns the attention mask, and every TDNN dilation is 1. Otherwise it runs
  one utterance at a time: group norm (the base models) normalises over the padded length, and
  transformers' statistics pooling counts TDNN output frames without the dilations
  (``_get_tdnn_output_lengths``), so with dilations > 1 (``wavlm-base-plus-sv``: 1,2,3,1,1) a
  short utterance's mean and std take in frames computed from padding.
- ``ecapa``: a SpeechBrain ``EncoderClassifier`` (``speechbrain/spkrec-ecapa-voxceleb`` and the
  like) from a local folder holding ``hyperparams.yaml`` and its checkpoints (``model=DIR``; a
  top-level ``pretrained_path`` in the YAML is pointed at that folder so nothing is fetched).
  The embedding is ``encode_batch(wav)`` with ``normalize=False`` (SpeechBrain's default and
  what its ``SpeakerRecognition.verify_batch`` uses), one utterance at a time (ECAPA's
  convolutions see the padding at an utterance's end, so batch-mates would change it).
  SpeechBrain imports torchaudio; torchaudio's Linux wheels are CUDA builds whose compiled
  extension cannot load beside the CPU torch: the judge then says how to fix it.

Audio reaches every backend at 16 kHz (the feature extractor's rate for ``wavlm-sv``),
resampled explicitly by the executor. An audio with no signal (all zeros, or nothing left
after Resemblyzer's silence trimming) has an all-NaN embedding, and its similarities are NaN.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError
from ..execute import ExecStats
from ..options import Opt, Spec
from .base import (
    RESAMPLER,
    Judge,
    JudgeRequest,
    OptionSpec,
    package_version,
    path_sha256,
    run_judge,
)

BACKENDS = ("resemblyzer", "wavlm-sv", "ecapa")
# The package each backend runs on (its version goes into the identity).
_PACKAGES = {"resemblyzer": "resemblyzer", "wavlm-sv": "transformers", "ecapa": "speechbrain"}
# What a local folder must hold for each backend (and how the error message describes it).
_FOLDERS = {
    "wavlm-sv": (
        "config.json",
        "a transformers x-vector model folder (save_pretrained output of e.g. "
        "microsoft/wavlm-base-plus-sv, with config.json, weights and preprocessor_config.json)",
    ),
    "ecapa": (
        "hyperparams.yaml",
        "a SpeechBrain speaker-encoder folder (e.g. a copy of speechbrain/spkrec-ecapa-voxceleb: "
        "hyperparams.yaml and embedding_model.ckpt)",
    ),
}
# resemblyzer.embed_utterance's defaults (partial windows), recorded in the identity.
_RESEMBLYZER_PARTIALS = {"window_s": 1.6, "rate_per_s": 1.3, "min_coverage": 0.75}


class SpeakerJudge(Judge):
    """Speaker embeddings and cosine similarity. Options: ``backend`` (``resemblyzer`` |
    ``wavlm-sv`` | ``ecapa``), ``model`` (local folder for wavlm-sv / ecapa; for resemblyzer an
    optional ``.pt`` file replacing the packaged weights), ``preprocess`` (resemblyzer only:
    ``preprocess_wav``, true), ``device`` (cpu), ``batch_size`` (audios per call, 16)."""

    kind = "speaker"
    sample_rate = 16000
    offline_default = "Resemblyzer GE2E encoder (pretrained.pt), shipped in the resemblyzer wheel"
    OPTIONS: ClassVar[OptionSpec] = Spec(
        {
            "backend": Opt(str, "resemblyzer", choices=BACKENDS, doc="speaker encoder"),
            "model": Opt(str, None, doc="local model folder (wavlm-sv, ecapa) or .pt file"),
            "preprocess": Opt(
                bool,
                None,
                nullable=True,
                derive=lambda v: True if v["backend"] == "resemblyzer" else None,
                doc="resemblyzer only: preprocess_wav (volume, silence trimming)",
            ),
            "device": Opt(str, "cpu", identity=False, doc="torch device"),
            "batch_size": Opt(int, 16, ge=1, identity=False, doc="audios per call"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        backend = opts["backend"]
        if backend != "resemblyzer" and opts["preprocess"] is not None:
            raise ConfigError(
                f"judge {name!r}: option 'preprocess' applies to backend 'resemblyzer' only"
            )
        if backend == "resemblyzer":
            if opts["model"]:
                path = Path(opts["model"]).expanduser()
                if not path.is_file():
                    raise ConfigError(
                        f"judge {name!r}: option 'model': {path} is not a file (backend "
                        "'resemblyzer' takes a VoiceEncoder .pt weights file, or nothing for the "
                        "packaged pretrained.pt)"
                    )
                opts["model"] = str(path.resolve())
            return opts
        marker, what = _FOLDERS[backend]
        if not opts["model"]:
            raise ConfigError(
                f"judge {name!r}: backend {backend!r} needs option 'model': the path of {what}; "
                "nothing is downloaded"
            )
        path = Path(opts["model"]).expanduser()
        if not (path / marker).is_file():
            raise ConfigError(
                f"judge {name!r}: option 'model': {path} has no {marker}; put there {what} "
                "(hub ids are not accepted: nothing is downloaded)"
            )
        opts["model"] = str(path.resolve())
        return opts

    def __init__(self, name: str = "speaker", **options: Any) -> None:
        super().__init__(name, **options)
        self.backend: str = self.options["backend"]
        self.path: Path | None = Path(self.options["model"]) if self.options["model"] else None
        if self.backend == "resemblyzer":
            self._init_resemblyzer()
        elif self.backend == "wavlm-sv":
            self._init_xvector()
        else:
            self._init_ecapa()

    # --- loading ------------------------------------------------------------------------------

    def _init_resemblyzer(self) -> None:
        try:
            import resemblyzer
        except ImportError as e:
            raise ConfigError(
                f"judge {self.name!r}: backend 'resemblyzer' needs the packages resemblyzer, "
                "webrtcvad-wheels and librosa: pip install --no-deps resemblyzer webrtcvad-wheels "
                f"&& pip install librosa ({type(e).__name__}: {e})"
            ) from None
        if self.path is None:
            self.path = Path(resemblyzer.__file__).parent / "pretrained.pt"

    @cached_property
    def _encoder(self) -> Any:
        from resemblyzer import VoiceEncoder

        return VoiceEncoder(device=self.options["device"], verbose=False, weights_fpath=self.path)

    def _init_xvector(self) -> None:
        import torch
        import transformers

        assert self.path is not None
        try:
            self._fe = transformers.AutoFeatureExtractor.from_pretrained(
                str(self.path), local_files_only=True
            )
            model = transformers.AutoModelForAudioXVector.from_pretrained(
                str(self.path), local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"judge {self.name!r}: option 'model': cannot load an x-vector model and its "
                f"feature extractor from {self.path} ({type(e).__name__}: {e})".replace("\n", " ")
            ) from None
        self._model = model.to(self.options["device"]).eval()
        self.sample_rate = int(self._fe.sampling_rate)
        # Padded batches are exact (up to float rounding) only with per-frame layer norm in the
        # feature encoder, an attention mask and undilated TDNN layers (see the module doc).
        cfg = model.config
        self._batched = (
            getattr(cfg, "feat_extract_norm", "group") == "layer"
            and bool(getattr(self._fe, "return_attention_mask", False))
            and all(int(d) == 1 for d in getattr(cfg, "tdnn_dilation", (2,)))
        )

    def _init_ecapa(self) -> None:
        assert self.path is not None
        encoder_classifier = _import_speechbrain(self.name)
        overrides = {}
        if _has_top_level_key(self.path / "hyperparams.yaml", "pretrained_path"):
            overrides["pretrained_path"] = str(self.path)  # never the hub id written there
        self._savedir = tempfile.mkdtemp(prefix="slm-eval-speaker-ecapa-")  # links to the folder
        weakref.finalize(self, shutil.rmtree, self._savedir, True)
        try:
            self._sb = encoder_classifier.from_hparams(
                source=str(self.path),
                savedir=self._savedir,
                overrides=overrides,
                run_opts={"device": self.options["device"]},
            )
        except (OSError, ValueError, KeyError, AttributeError, RuntimeError) as e:
            raise ConfigError(
                f"judge {self.name!r}: option 'model': cannot load a SpeechBrain EncoderClassifier "
                f"from {self.path} ({type(e).__name__}: {e})".replace("\n", " ")
            ) from None
        self._sb.eval()
        self.sample_rate = int(getattr(self._sb.hparams, "sample_rate", 16000) or 16000)

    # --- identity -----------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        assert self.path is not None
        ident: dict[str, Any] = {
            **self._identity_head(_PACKAGES[self.backend]),
            "backend": self.backend,
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER},
            "similarity": "cosine",
            "torch": package_version("torch"),
        }
        if self.backend == "resemblyzer":
            packaged = self.options["model"] is None
            ident["model"] = {
                "file": "pretrained.pt" if packaged else str(self.path),
                "sha256": path_sha256(self.path),
                "architecture": "GE2E (3-layer LSTM, 256-d)",
            }
            ident["preprocessing"] = (
                {
                    "function": "resemblyzer.preprocess_wav",
                    "clip": [-1, 1],
                    "volume": "raised to -30 dBFS, never lowered",
                    "silence": "webrtcvad mode 3, 30 ms windows, moving average 8, dilation 7",
                }
                if self.options["preprocess"]
                else {"function": None, "clip": [-1, 1]}
            )
            ident["embedding"] = {"method": "embed_utterance", **_RESEMBLYZER_PARTIALS}
            ident["librosa"] = package_version("librosa")  # the mel spectrogram
            if self.options["preprocess"]:
                ident["webrtcvad"] = package_version("webrtcvad-wheels") or package_version(
                    "webrtcvad"
                )
        elif self.backend == "wavlm-sv":
            cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
            ident["model"] = {
                "path": str(self.path),
                "sha256": path_sha256(self.path),
                "class": type(self._model).__name__,
                "model_type": cfg.get("model_type"),
            }
            ident["preprocessing"] = {
                "feature_extractor": type(self._fe).__name__,
                "do_normalize": bool(getattr(self._fe, "do_normalize", False)),
            }
            ident["embedding"] = {
                "output": "embeddings (x-vector, not normalised)",
                "batching": "padded with attention mask"
                if self._batched
                else "one utterance at a time",
            }
        else:
            ident["model"] = {
                "path": str(self.path),
                "sha256": path_sha256(self.path),
                "class": type(self._sb.mods.embedding_model).__name__,
            }
            ident["preprocessing"] = {"hyperparams": "compute_features + mean_var_norm"}
            ident["embedding"] = {
                "method": "EncoderClassifier.encode_batch",
                "normalize": False,
                "batching": "one utterance at a time",
            }
        return ident

    # --- public methods -----------------------------------------------------------------------

    def embed(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[np.ndarray]:
        """The speaker embedding (float32 vector) of each audio, in order, through the executor
        (cached, deduplicated); all-NaN for an audio without signal."""
        rows = run_judge(self, "embed", self._embed, audios, stats, cache, desc)
        return [np.asarray(row, dtype=np.float32) for row in rows]

    def similarity(
        self,
        a: Sequence[Audio],
        b: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[float]:
        """Cosine similarity of the embeddings of ``a[i]`` and ``b[i]``, for each ``i`` (NaN where
        either audio has no signal). Both lists are embedded in one call (cached, deduplicated)."""
        if len(a) != len(b):
            raise ValueError(
                f"similarity: {len(a)} audios against {len(b)}; pairs need equal counts"
            )
        embs = self.embed([*a, *b], stats, cache, desc)
        return [cosine(x, y) for x, y in zip(embs[: len(a)], embs[len(a) :], strict=True)]

    # --- batched back ends --------------------------------------------------------------------

    def _embed(self, requests: list[JudgeRequest]) -> list[list[float]]:
        samples = [r.audio.samples for r in requests]
        if self.backend == "resemblyzer":
            vecs = [self.embed_resemblyzer(x) for x in samples]
        elif self.backend == "wavlm-sv":
            vecs = self._embed_xvector(samples)
        else:
            vecs = [self._embed_ecapa(x) for x in samples]
        # JSON lists (the cache's format); float32 -> float is exact, and back again.
        return [np.asarray(v, dtype=np.float32).tolist() for v in vecs]

    def _no_signal(self) -> np.ndarray:
        return np.full(self._dim, np.nan, dtype=np.float32)

    @cached_property
    def _dim(self) -> int:
        if self.backend == "resemblyzer":
            return int(self._encoder.linear.out_features)
        if self.backend == "wavlm-sv":
            return int(self._model.config.xvector_output_dim)
        import torch

        with torch.inference_mode():
            out = self._sb.encode_batch(torch.zeros(1, self.sample_rate))
        return int(out.shape[-1])

    def embed_resemblyzer(self, samples: np.ndarray) -> np.ndarray:
        """Resemblyzer embedding of 16 kHz ``samples`` with this judge's settings, uncached."""
        from resemblyzer import preprocess_wav

        x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        if not np.any(x):
            return self._no_signal()
        if self.options["preprocess"]:
            x = preprocess_wav(x)  # no source_sr: already at 16 kHz, not resampled again
            if not np.any(x):  # nothing the VAD called speech
                return self._no_signal()
        return self._encoder.embed_utterance(x)

    def _embed_xvector(self, samples: list[np.ndarray]) -> list[np.ndarray]:
        groups = [samples] if self._batched else [[s] for s in samples]
        out: list[np.ndarray] = []
        for g in groups:
            silent = [not np.any(s) for s in g]
            live = [s for s, z in zip(g, silent, strict=True) if not z]
            embs = iter(self._xvector_forward(live) if live else [])
            out.extend(self._no_signal() if z else next(embs) for z in silent)
        return out

    def _xvector_forward(self, samples: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        inputs = self._fe(
            samples,
            sampling_rate=self.sample_rate,
            padding=True,
            return_tensors="pt",
            return_attention_mask=self._batched,
        )
        kw: dict[str, Any] = {"input_values": inputs["input_values"].to(self._model.device)}
        if self._batched:
            kw["attention_mask"] = inputs["attention_mask"].to(self._model.device)
        with torch.inference_mode(), warnings.catch_warnings():
            # WavLM's attention passes a bool padding mask beside a float position bias; torch
            # warns about the mix (deprecated, still exact), an internal of transformers.
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            emb = self._model(**kw).embeddings
        return list(emb.float().cpu().numpy())

    def _embed_ecapa(self, samples: np.ndarray) -> np.ndarray:
        import torch

        if not np.any(samples):
            return self._no_signal()
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        with torch.inference_mode():
            emb = self._sb.encode_batch(x, normalize=False)
        return emb.reshape(-1).float().cpu().numpy()


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Cosine similarity in float64 (NaN when either vector is zero or NaN)."""
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    denom = float(np.linalg.norm(x64) * np.linalg.norm(y64))
    if not denom or not np.isfinite(denom):
        return float("nan")
    return float(np.dot(x64, y64) / denom)


def _has_top_level_key(path: Path, key: str) -> bool:
    """Whether a YAML file sets ``key`` at the top level (read as text: no YAML tags run)."""
    prefix = f"{key}:"
    return any(line.startswith(prefix) for line in path.read_text(encoding="utf-8").splitlines())


def _torchaudio_lib() -> str:
    """Where torchaudio's compiled extension lives (found without importing torchaudio)."""
    spec = importlib.util.find_spec("torchaudio")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return str(Path(locations[0]) / "lib") if locations else "<site-packages>/torchaudio/lib"


def _import_speechbrain(judge: str) -> Any:
    """``speechbrain.inference.speaker.EncoderClassifier``, or a one-line ConfigError saying how
    to install speechbrain or how to get past torchaudio's CUDA extension on a CPU torch."""
    try:
        from speechbrain.inference.speaker import EncoderClassifier
    except OSError as e:
        if "torchaudio" not in str(e):
            raise
        lib = _torchaudio_lib()
        raise ConfigError(
            f"judge {judge!r}: backend 'ecapa': importing speechbrain failed because torchaudio's "
            f"compiled extension ({lib}/*.so, a CUDA build) cannot load beside this torch "
            f"{package_version('torch')}; fix: rm {lib}/*.so (torchaudio then runs without its "
            "extension, which speechbrain's ECAPA does not use; redo after reinstalling "
            f"torchaudio), or install a torchaudio build made for this torch ({e})"
        ) from None
    except ImportError as e:
        raise ConfigError(
            f"judge {judge!r}: backend 'ecapa' needs the package speechbrain: pip install "
            f"speechbrain ({type(e).__name__}: {e})"
        ) from None
    return EncoderClassifier
