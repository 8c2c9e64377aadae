"""HuBERT-unit language models (GSLM / TWIST / SLAM style) as a speechlm-eval plugin.

Pipeline: 16 kHz waveform -> self-supervised encoder (transformers HubertModel,
Wav2Vec2Model or WavLMModel) -> hidden states of one layer -> nearest K-means
centroid per frame (the "units") -> optional run-length collapse -> token ids
``[bos] + (units + offset) + [eos]`` -> causal LM (transformers
AutoModelForCausalLM) -> summed log-probability.

The model is composed of parts (:mod:`reference_models.units`): :class:`HFEncoder` (the
transformers layer), a :class:`~reference_models.units.UnitTokenizer` (centroids, dedup) and a
:class:`~reference_models.units.UnitLM` (token layout, batched log-probabilities), put together
by :class:`UnitSpeechLM`, which ``gslm-mini`` shares with another encoder.

The defaults follow slamkit (PAD=0, BOS=EOS=``<S>``=1, unit ``u`` -> token
``u + 2``, deduplicated units). Everything is loaded from local directories only;
nothing is downloaded.

Example ``--model_args``::

    encoder=/models/mhubert-25hz,layer=11,kmeans=/models/km500.npy,lm=/models/slam,pad_audio=40
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError, PluginError
from speechlm_eval.hashing import saved_model_identity, sha256_file
from speechlm_eval.model import (
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SpeechLM,
)
from speechlm_eval.options import REQUIRED, Opt, Spec

from .units import FrameEncoder, UnitLM, UnitTokenizer, dedup_units, quantize

__all__ = ["HFEncoder", "HFUnitLM", "UnitSpeechLM", "dedup_units", "load_centroids", "quantize"]

# Accepted spellings -> canonical name (recorded in identities); torch dtypes are accepted too.
_DTYPES: dict[Any, str] = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}
_NPY_MAGIC = b"\x93NUMPY"


def _dtype_kwarg() -> str:
    """``from_pretrained`` takes ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


# --- arguments -------------------------------------------------------------------------------


def torch_device(value: Any) -> torch.device:
    """An ``Opt.check``: a torch device that exists here (``cpu``, ``cuda``, ``cuda:1``)."""
    try:
        device = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise ValueError(f"expected a torch device such as cpu or cuda:0, got {value!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{value!r} requested but CUDA is not available")
    return device


def _model_dir(what: str) -> Callable[[Path], Path]:
    """An ``Opt.check``: a local model directory with a config.json (we never download)."""

    def check(path: Path) -> Path:
        if not path.is_dir():
            raise ValueError(
                f"{path} is not an existing directory (expected a local directory of {what})"
            )
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{path} has no config.json "
                f"(expected a local directory of {what}, as written by save_pretrained)"
            )
        return path

    return check


# Arguments the harness itself may pass (lm-eval habit); accepted, and they change nothing.
BATCH_SIZE = Opt(object, None, identity=False, doc="ignored: batching is the harness' --batch_size")
_ENCODER = "a transformers HuBERT model"
_LM = "a transformers AutoModelForCausalLM"

OPTIONS = Spec(
    {
        "encoder": Opt(
            Path,
            REQUIRED,
            check=_model_dir(_ENCODER),
            identity=False,
            doc=f"the local directory of {_ENCODER}",
        ),
        "layer": Opt(int, None, doc="hidden_states index (0 = transformer input; default last)"),
        "kmeans": Opt(
            Path, REQUIRED, identity=False, doc="a .npy file of K-means centroids (K, D)"
        ),
        "allow_pickle": Opt(bool, False, identity=False, doc="read a pickled sklearn KMeans"),
        "lm": Opt(
            Path,
            REQUIRED,
            check=_model_dir(_LM),
            identity=False,
            doc=f"the local directory of {_LM}",
        ),
        "offset": Opt(int, 2, ge=0, doc="token id of unit 0"),
        # slamkit's layout (PAD=0, <S>=1 as both BOS and EOS) only applies when units start at 2.
        "bos": Opt(
            int,
            nullable=True,
            derive=lambda v: 1 if v["offset"] == 2 else None,
            expect="an integer token id or none",
        ),
        "eos": Opt(
            int,
            nullable=True,
            derive=lambda v: 1 if v["offset"] == 2 else None,
            expect="an integer token id or none",
        ),
        "dedup": Opt(bool, True, doc="collapse repeated consecutive units"),
        "pad_audio": Opt(int, 0, ge=0, doc="zero samples added on each side"),
        "device": Opt(str, "cpu", check=torch_device, identity=False),
        "dtype": Opt(
            object, "float32", choices=_DTYPES, expect="one of float32, bfloat16, float16"
        ),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


# --- units -----------------------------------------------------------------------------------


_PICKLE_HELP = (
    "Loading a pickle (joblib/sklearn KMeans as saved by textlesslib/fairseq) executes code from "
    "the file, so it is refused unless you pass allow_pickle=true. Better: convert it once to a "
    ".npy centroid array and pass that instead: "
    'python -c "import joblib, numpy as np; '
    "np.save('km.npy', joblib.load('{path}').cluster_centers_)\""
)


def load_centroids(path: str | Path, allow_pickle: bool = False) -> np.ndarray:
    """K-means centroids (K x D, float64) from a ``.npy`` array or, if allowed, a pickled KMeans.

    The format is detected from the file's magic bytes, not its extension.
    """
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"model argument 'kmeans': {p} is not an existing file "
            "(expected a .npy array of centroids, shape (K, D))"
        )
    with open(p, "rb") as f:
        is_npy = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    if is_npy:
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as e:
            if "allow_pickle" in str(e):  # an object array: its elements are pickles
                raise ConfigError(
                    f"model argument 'kmeans': {p} is a .npy array of Python objects (pickled), "
                    "which is refused because unpickling runs code; expected a numeric (K, D) "
                    "centroid array, e.g. np.save(path, kmeans.cluster_centers_)"
                ) from None
            raise ConfigError(f"model argument 'kmeans': cannot read {p} ({e})") from None
        except (OSError, EOFError) as e:  # truncated header or data
            raise ConfigError(f"model argument 'kmeans': cannot read {p} ({e})") from None
    else:
        if not allow_pickle:
            raise ConfigError(
                f"model argument 'kmeans': {p} is not a .npy array; it looks like a pickle. "
                + _PICKLE_HELP.format(path=p)
            )
        try:
            import joblib  # reads both joblib dumps and plain pickles

            with warnings.catch_warnings():
                # old sklearn pickles warn about version mismatches; the centres are all we use
                warnings.simplefilter("ignore")
                obj = joblib.load(p)
        except Exception as e:  # unpickling can raise nearly anything
            raise ConfigError(
                f"model argument 'kmeans': cannot unpickle {p} ({type(e).__name__}: {e})"
            ) from None
        arr = obj if isinstance(obj, np.ndarray) else getattr(obj, "cluster_centers_", None)
        if arr is None:
            raise ConfigError(
                f"model argument 'kmeans': {p} holds a {type(obj).__name__}, expected a fitted "
                "sklearn KMeans/MiniBatchKMeans (with cluster_centers_) or a numpy array"
            )
        arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(
            f"model argument 'kmeans': expected a 2-D centroid array (K, D), "
            f"{p} has shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"model argument 'kmeans': expected a float array, {p} has {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"model argument 'kmeans': {p} contains NaN or infinite centroids")
    return arr


def _conv_out_len(n: int, kernels: list[int], strides: list[int]) -> int:
    for k, s in zip(kernels, strides, strict=True):
        n = (n - k) // s + 1
    return n


def _receptive_field(kernels: list[int], strides: list[int]) -> int:
    """Fewest input samples giving one output frame."""
    r = 1
    for k, s in reversed(list(zip(kernels, strides, strict=True))):
        r = (r - 1) * s + k
    return r


# --- loading ---------------------------------------------------------------------------------


def load_config(name: str, path: Path) -> Any:
    """``AutoConfig`` of a local model directory; a ConfigError names the argument ``name``."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # unknown model_type, malformed JSON, ...
        raise ConfigError(
            f"model argument {name!r}: cannot read {path}/config.json ({type(e).__name__}: {e})"
        ) from None


def load_pretrained(
    name: str, auto_cls: Any, path: Path, dtype: torch.dtype, device: torch.device
) -> torch.nn.Module:
    """``auto_cls.from_pretrained`` from a local directory, in eval mode on ``device``."""
    try:
        # transformers reads model.safetensors, or a .bin with torch.load(weights_only=True)
        model = auto_cls.from_pretrained(
            str(path), local_files_only=True, **{_dtype_kwarg(): dtype}
        )
    except pickle.UnpicklingError:
        pickles = ", ".join(sorted(f.name for f in path.glob("*.bin"))) or "a weights file"
        raise ConfigError(
            f"model argument {name!r}: {path}: {pickles} is refused by "
            "torch.load(weights_only=True): the pickle holds objects other than tensors, "
            "and loading them would run code from the file; expected model.safetensors or "
            "a tensors-only pytorch_model.bin (re-save it with save_pretrained in a trusted "
            "environment)"
        ) from None
    except Exception as e:
        raise ConfigError(
            f"model argument {name!r}: cannot load {auto_cls.__name__} from {path} "
            f"({type(e).__name__}: {e})"
        ) from None
    return model.to(device).eval()


# --- the parts -------------------------------------------------------------------------------


class HFEncoder:
    """Frame encoder: one hidden layer of a transformers HuBERT / wav2vec2 / WavLM model.

    ``config``: the encoder's ``AutoConfig`` (read and checked first, see :meth:`check_config`);
    ``layer``: ``hidden_states`` index, 0..num_hidden_layers; ``pad_audio``: zero samples
    added on each side of the waveform; the preprocessor config, when the directory has one,
    normalises the input as the encoder was trained.
    """

    sample_rate = 16000

    def __init__(
        self,
        path: Path,
        config: Any,
        layer: int,
        pad_audio: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.path, self.layer, self.pad_audio = path, layer, pad_audio
        self.dtype, self.device = dtype, device
        self.dim = int(config.hidden_size)
        self.feature_extractor = None
        self.preprocessor_sha256: str | None = None
        encoder_rate = 16000
        if (path / "preprocessor_config.json").is_file():
            from transformers import AutoFeatureExtractor

            try:
                self.feature_extractor = AutoFeatureExtractor.from_pretrained(
                    str(path), local_files_only=True
                )
            except Exception as e:
                raise ConfigError(
                    f"model argument 'encoder': cannot load {path}/preprocessor_config.json "
                    f"({type(e).__name__}: {e})"
                ) from None
            encoder_rate = int(getattr(self.feature_extractor, "sampling_rate", 16000))
            self.preprocessor_sha256 = sha256_file(path / "preprocessor_config.json")
        if encoder_rate != self.sample_rate:
            raise ConfigError(
                f"model argument 'encoder': its preprocessor expects {encoder_rate} Hz audio; "
                f"this plugin feeds {self.sample_rate} Hz"
            )
        self.kernels = [int(k) for k in config.conv_kernel]
        self.strides = [int(s) for s in config.conv_stride]
        self.min_samples = _receptive_field(self.kernels, self.strides)
        self.frame_rate = encoder_rate / math.prod(self.strides)

        from transformers import AutoModel

        self.model = load_pretrained("encoder", AutoModel, path, dtype, device)
        self._truncate(int(config.num_hidden_layers))

    @staticmethod
    def check_config(path: Path, layer: int | None) -> tuple[Any, int]:
        """(config, layer index) of the encoder at ``path``, read and checked before any
        weights are loaded: a HuBERT-like config, ``layer`` in range (None: the last;
        negative: counted from the end, Python-style)."""
        config = load_config("encoder", path)
        for attr in ("conv_stride", "conv_kernel", "hidden_size", "num_hidden_layers"):
            if not hasattr(config, attr):
                raise ConfigError(
                    f"model argument 'encoder': {path} holds a "
                    f"{config.model_type!r} model; expected a HuBERT / wav2vec2 / WavLM "
                    f"encoder (its config has no {attr!r})"
                )
        n_layers = int(config.num_hidden_layers)
        index = n_layers if layer is None else layer
        if index < 0:  # Python-style: -1 is the last layer
            index += n_layers + 1
        if not 0 <= index <= n_layers:
            raise ConfigError(
                f"model argument 'layer': expected 0..{n_layers} for this {n_layers}-layer "
                f"encoder (0 = transformer input, {n_layers} = last layer), got {layer!r}"
            )
        return config, index

    def _truncate(self, n_layers: int) -> None:
        """Drop transformer layers above ``layer``: they cannot affect ``hidden_states[layer]``.

        Only for post-layer-norm encoders (HuBERT-base and its kin, used by GSLM/TWIST/SLAM):
        there ``hidden_states[i]`` is the raw output of layer ``i`` in every transformers
        version, so cutting the stack changes nothing but the cost. Stable-layer-norm encoders
        apply a final norm to the last entry in transformers 4.x, so their stack is kept whole.
        One layer is always kept so that the hidden-state hooks fire.
        """
        if getattr(self.model.config, "do_stable_layer_norm", False):
            return
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) == n_layers:
            keep = max(self.layer, 1)
            if keep < n_layers:
                encoder.layers = layers[:keep]

    @torch.inference_mode()
    def __call__(self, audio: Audio) -> np.ndarray:
        """Layer features (frames x dims, float32) of one utterance.

        One utterance per forward pass: HuBERT-base-style encoders take no attention mask,
        so padding a batch would change the outputs and make results depend on batch size.
        """
        wav = audio.samples
        if self.pad_audio:
            # Zero padding of the raw signal (slamkit pads 40 samples each side for mHuBERT-25Hz).
            wav = np.pad(wav, (self.pad_audio, self.pad_audio))
        if wav.size < self.min_samples:
            raise DataError(
                f"{audio.source}: audio has {audio.samples.size} samples, the encoder needs at "
                f"least {self.min_samples - 2 * self.pad_audio} for one frame"
            )
        if self.feature_extractor is not None:
            wav = self.feature_extractor(wav, sampling_rate=self.sample_rate, return_tensors="np")[
                "input_values"
            ][0]
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        x = x.to(self.device, self.dtype)
        out = self.model(x, output_hidden_states=True)
        hidden = out.hidden_states
        if hidden is None or len(hidden) <= self.layer:
            raise PluginError(
                f"encoder returned {0 if hidden is None else len(hidden)} hidden states, "
                f"layer {self.layer} requested"
            )
        feats = hidden[self.layer][0].float().cpu().numpy()
        expected = _conv_out_len(wav.size, self.kernels, self.strides)
        if feats.shape[0] != expected:  # guards the frame-rate bookkeeping of encode()
            raise PluginError(f"encoder gave {feats.shape[0]} frames, expected {expected}")
        return feats


def check_layout(
    lm_dir: Path, lm_config: Any, n_units: int, offset: int, bos: int | None, eos: int | None
) -> None:
    """The token layout fits the LM's vocabulary: units at ``offset..offset+K-1``, BOS/EOS
    inside the vocabulary and outside the units. Checked on the config, before loading."""
    vocab_size = getattr(lm_config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        raise ConfigError(f"model argument 'lm': {lm_dir}/config.json has no vocab_size")
    if offset + n_units > vocab_size:
        raise ConfigError(
            f"model argument 'kmeans'/'offset': {n_units} units at offset {offset} need "
            f"token ids up to {offset + n_units - 1}, but the LM ('lm') vocabulary has "
            f"only {vocab_size} tokens (expected offset + K <= vocab_size)"
        )
    for name, tok in (("bos", bos), ("eos", eos)):
        if tok is None:
            continue
        if not 0 <= tok < vocab_size:
            raise ConfigError(
                f"model argument {name!r}: token id {tok} is outside the LM vocabulary "
                f"(0..{vocab_size - 1})"
            )
        if offset <= tok < offset + n_units:
            raise ConfigError(
                f"model argument {name!r}: token id {tok} collides with unit "
                f"{tok - offset} (units occupy {offset}..{offset + n_units - 1}); expected a "
                "special token below 'offset' or 'none'"
            )


def load_unit_lm(
    path: Path,
    config: Any,
    n_units: int,
    dtype: torch.dtype,
    device: torch.device,
    *,
    offset: int,
    bos: int | None,
    eos: int | None,
) -> UnitLM:
    """The causal LM at ``path`` (its ``config`` already read and checked, see
    :func:`check_layout`) as a :class:`UnitLM` with this token layout."""
    from transformers import AutoModelForCausalLM

    lm = load_pretrained("lm", AutoModelForCausalLM, path, dtype, device)
    emb = lm.get_input_embeddings()
    if emb is not None and offset + n_units > emb.num_embeddings:
        raise ConfigError(
            f"model argument 'kmeans'/'offset': {n_units} units at offset {offset} exceed the "
            f"LM ('lm') embedding table of {emb.num_embeddings} rows"
        )
    max_tokens = getattr(config, "max_position_embeddings", None)
    return UnitLM(
        lm, n_units=n_units, offset=offset, bos=bos, eos=eos, max_tokens=max_tokens, device=device
    )


# --- the models ------------------------------------------------------------------------------


class UnitSpeechLM(SpeechLM):
    """A speech LM composed of parts: frame encoder -> unit tokenizer -> unit LM.

    Subclasses build the parts (from arguments, from a checkpoint) and hand them to
    ``__init__``; the unit, token, batching and scoring path (``units``, ``tokens``,
    ``loglikelihood``, ``encode``) is this class's, the same for every encoder. ``label``
    names the model in errors about requests.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood", "encode"})
    sample_rate: int | None = 16000
    label: ClassVar[str] = "unit speech LM"

    def __init__(
        self,
        encoder: FrameEncoder,
        tokenizer: UnitTokenizer,
        unit_lm: UnitLM,
        dtype: str = "float32",
        model_args: Mapping[str, Any] | None = None,
    ) -> None:
        # ``model_args``: as given (the harness' ``device`` among them); a separate mapping, as
        # model arguments may share names with the parts (hf-unit-lm's ``encoder``, ``lm``).
        super().__init__(**dict(model_args or {}))
        self.encoder, self.tokenizer, self.unit_lm = encoder, tokenizer, unit_lm
        self._dtype = dtype

    @property
    def dtype(self) -> str:
        """Compute dtype of the encoder and the LM (``float32``, ``bfloat16`` or ``float16``)."""
        return self._dtype

    @property
    def frame_rate(self) -> float:
        """Encoder frames per second."""
        return self.encoder.frame_rate

    @property
    def n_units(self) -> int:
        """Number of K-means clusters (K)."""
        return self.tokenizer.n_units

    def units(self, audio: Audio) -> np.ndarray:
        """Unit sequence (int64; run-length collapsed if ``dedup``) of 16 kHz ``audio``."""
        return self.tokenizer(self._features(audio))

    def frame_units(self, audio: Audio) -> np.ndarray:
        """Units of every encoder frame (int64, never collapsed)."""
        return self.tokenizer.frame_units(self._features(audio))

    def tokens(self, audio: Audio) -> list[int]:
        """LM token ids ``[bos] + (units + offset) + [eos]`` (bos/eos omitted when none)."""
        return self.unit_lm.tokens(self.units(audio))

    @torch.inference_mode()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Sum of ``log p(token | previous tokens)`` over all tokens after the first, per request.

        All requests go through the LM as one right-padded batch with an attention mask.
        """
        if not requests:
            return []
        seqs: list[list[int]] = []
        max_tokens = self.unit_lm.max_tokens
        for req in requests:
            if req.audio is None:
                raise ValueError(
                    f"{self.label} scores speech only; request {req.key!r} has no audio"
                )
            if req.text is not None:
                raise ValueError(
                    f"{self.label} cannot score text; request {req.key!r} has text set"
                )
            ids = self.tokens(req.audio)
            where = req.key or req.audio.source
            if len(ids) < 2:
                raise DataError(
                    f"{where}: only {len(ids)} token(s) to score; need at least 2 "
                    "(use bos/eos, or longer audio)"
                )
            if max_tokens is not None and len(ids) > int(max_tokens):
                raise DataError(
                    f"{where}: {len(ids)} tokens exceed the LM context of {max_tokens} "
                    f"({req.audio.duration:.1f} s of audio)"
                )
            seqs.append(ids)
        totals = self.unit_lm.logprobs(seqs)
        return [
            LoglikelihoodResult(logprob=t, num_tokens=len(s) - 1)
            for t, s in zip(totals, seqs, strict=True)
        ]

    def encode(self, requests: list[EncodeRequest]) -> list[EncodeResult]:
        """Continuous encoder features (frames x dims, float32) per request."""
        return [
            EncodeResult(features=self._features(req.audio), frame_rate=self.frame_rate)
            for req in requests
        ]

    def _features(self, audio: Audio) -> np.ndarray:
        """The encoder's frames of one 16 kHz clip (what the units quantise)."""
        if not isinstance(audio, Audio):
            raise TypeError(f"expected an Audio, got {type(audio).__name__}")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"{audio.source}: audio is {audio.sample_rate} Hz, {self.label} needs "
                f"{self.sample_rate} Hz (the runner resamples)"
            )
        return self.encoder(audio)


class HFUnitLM(UnitSpeechLM):
    """Unit language model over K-means-quantised HuBERT-style features (GSLM, TWIST, SLAM).

    Keyword arguments (strings from ``--model_args`` are parsed, see :data:`OPTIONS`):

    - ``encoder``: local directory of a transformers HubertModel / Wav2Vec2Model / WavLMModel.
    - ``layer``: ``hidden_states`` index to quantise (0 = transformer input; default: last).
    - ``kmeans``: centroids as a ``.npy`` (K, D) array, or a pickled sklearn KMeans with
      ``allow_pickle=true``.
    - ``lm``: local directory of a transformers AutoModelForCausalLM.
    - ``offset``: token id of unit 0 (default 2).
    - ``bos`` / ``eos``: token id or ``none`` (default 1 when offset is 2, else none).
    - ``dedup``: collapse repeated consecutive units (default true).
    - ``pad_audio``: zero samples added on each side before the encoder (default 0).
    - ``device`` (default cpu), ``dtype`` (float32 | bfloat16 | float16; default float32).
    """

    label = "HFUnitLM"

    def __init__(self, **kwargs: Any) -> None:
        # Everything cheap is parsed and checked before any weights load, so that a typo
        # fails in milliseconds rather than after a multi-GB load.
        o = OPTIONS.parse("hf-unit-lm", kwargs)
        dtype = getattr(torch, o["dtype"])
        centroids = load_centroids(o["kmeans"], allow_pickle=o["allow_pickle"])
        enc_config, layer = HFEncoder.check_config(o["encoder"], o["layer"])
        if centroids.shape[1] != int(enc_config.hidden_size):
            raise ConfigError(
                f"model argument 'kmeans': centroids have dimension {centroids.shape[1]}, but "
                f"encoder layer {layer} has hidden size {enc_config.hidden_size} (expected "
                f"centroids of shape (K, {enc_config.hidden_size}) fitted on this encoder)"
            )
        tokenizer = UnitTokenizer(centroids, o["dedup"])
        lm_config = load_config("lm", o["lm"])
        check_layout(o["lm"], lm_config, tokenizer.n_units, o["offset"], o["bos"], o["eos"])
        # Hashed once here: identity() is called for every cache lookup and must be cheap.
        self._identity_parts = {
            "encoder": saved_model_identity("encoder", o["encoder"]),
            "kmeans": {
                "path": str(o["kmeans"].resolve()),
                "sha256": sha256_file(o["kmeans"]),
                "n_units": tokenizer.n_units,
            },
            "lm": saved_model_identity("lm", o["lm"]),
        }
        self._settings = {**OPTIONS.identity(o), "layer": layer}  # the layer as resolved

        encoder = HFEncoder(o["encoder"], enc_config, layer, o["pad_audio"], dtype, o["device"])
        if encoder.preprocessor_sha256 is not None:
            self._identity_parts["encoder"]["preprocessor_hash"] = encoder.preprocessor_sha256
        layout = {k: o[k] for k in ("offset", "bos", "eos")}
        unit_lm = load_unit_lm(o["lm"], lm_config, tokenizer.n_units, dtype, o["device"], **layout)
        super().__init__(encoder, tokenizer, unit_lm, o["dtype"], kwargs)
        self._probe()

    def _probe(self) -> None:
        """Dry run: the encoder returns the requested layer with the centroids' dimension."""
        probe = Audio(
            np.zeros(max(self.encoder.min_samples, 1600), dtype=np.float32), self.sample_rate
        )
        feats = self._features(probe)
        if feats.ndim != 2 or feats.shape[1] != self.tokenizer.dim:
            raise PluginError(
                f"encoder {self.encoder.path} layer {self.encoder.layer} produced features of "
                f"shape {tuple(feats.shape)}, expected (frames, {self.tokenizer.dim})"
            )

    def identity(self) -> dict[str, Any]:
        """Class, file hashes and every output-affecting setting (not the device)."""
        cls = type(self)
        parts = self._identity_parts
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "encoder": dict(parts["encoder"]),
            "kmeans": dict(parts["kmeans"]),
            "lm": dict(parts["lm"]),
            **self._settings,
        }
