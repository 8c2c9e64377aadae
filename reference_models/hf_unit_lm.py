"""HuBERT-unit language models (GSLM / TWIST / SLAM style) as a speechlm-eval plugin.

Pipeline: 16 kHz waveform -> self-supervised encoder (transformers HubertModel,
Wav2Vec2Model or WavLMModel) -> hidden states of one layer -> nearest K-means
centroid per frame (the "units") -> optional run-length collapse -> token ids
``[bos] + (units + offset) + [eos]`` -> causal LM (transformers
AutoModelForCausalLM) -> summed log-probability.

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

__all__ = ["HFUnitLM", "dedup_units", "load_centroids", "quantize"]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}
_ARGS: tuple[str, ...] = (
    "encoder",
    "layer",
    "kmeans",
    "allow_pickle",
    "lm",
    "offset",
    "bos",
    "eos",
    "dedup",
    "pad_audio",
    "device",
    "dtype",
)
# Arguments the harness itself consumes; tolerated here so they can be passed through.
_HARNESS_ARGS: frozenset[str] = frozenset({"batch_size"})
_NPY_MAGIC = b"\x93NUMPY"


def _dtype_kwarg() -> str:
    """``from_pretrained`` takes ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


# --- argument parsing ------------------------------------------------------------------------


def _parse_int(name: str, value: Any) -> int:
    """An int from an int or a decimal string (``--model_args`` values arrive as strings)."""
    if isinstance(value, bool):  # bool is an int subclass; "layer=True" is a mistake
        raise ConfigError(f"model argument {name!r}: expected an integer, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"model argument {name!r}: expected an integer, got {value!r}")


def _parse_optional_int(name: str, value: Any) -> int | None:
    """An int, or None for ``None`` / ``"none"`` (case-insensitive)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    try:
        return _parse_int(name, value)
    except ConfigError:
        raise ConfigError(
            f"model argument {name!r}: expected an integer token id or 'none', got {value!r}"
        ) from None


def _parse_bool(name: str, value: Any) -> bool:
    """A bool from a bool or one of true/false, 1/0, yes/no (case-insensitive)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "1", "yes"):
            return True
        if v in ("false", "0", "no"):
            return False
    raise ConfigError(f"model argument {name!r}: expected true or false, got {value!r}")


def _parse_dtype(value: Any) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in _DTYPE_NAMES:
        return value
    if isinstance(value, str) and value.strip().lower() in _DTYPES:
        return _DTYPES[value.strip().lower()]
    raise ConfigError(
        f"model argument 'dtype': expected one of float32, bfloat16, float16, got {value!r}"
    )


def _parse_device(value: Any) -> torch.device:
    try:
        device = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"model argument 'device': expected a torch device such as cpu or cuda:0, got {value!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model argument 'device': {value!r} requested but CUDA is not available")
    return device


def _model_dir(name: str, value: Any, what: str) -> Path:
    """A local model directory with a config.json (we never download)."""
    if value is None or str(value).strip() == "":
        raise ConfigError(f"model argument {name!r} is required: the local directory of {what}")
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"model argument {name!r}: {path} is not an existing directory "
            f"(expected a local directory of {what})"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model argument {name!r}: {path} has no config.json "
            f"(expected a local directory of {what}, as written by save_pretrained)"
        )
    return path


# --- units -----------------------------------------------------------------------------------


def dedup_units(units: np.ndarray) -> np.ndarray:
    """Run-length collapse: drop each unit equal to its predecessor (``1 1 2 2 1`` -> ``1 2 1``)."""
    u = np.asarray(units)
    if u.ndim != 1:
        raise ValueError(f"expected a 1-D unit sequence, got shape {u.shape}")
    if u.size == 0:
        return u.copy()
    keep = np.empty(u.shape, dtype=bool)
    keep[0] = True
    np.not_equal(u[1:], u[:-1], out=keep[1:])
    return u[keep]


def quantize(features: np.ndarray | torch.Tensor, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of ``features``.

    Computed in float64 with the expanded form ``|x|^2 - 2 x.c + |c|^2`` so that
    near-ties resolve the same way as a direct computation; exact ties go to the
    lowest index (argmin returns the first minimum).
    """
    x = torch.as_tensor(features).detach().to("cpu", torch.float64)
    c = torch.as_tensor(np.asarray(centroids), dtype=torch.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"features {tuple(x.shape)} and centroids {tuple(c.shape)} do not match")
    d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return torch.argmin(d, dim=1).numpy().astype(np.int64)


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


# --- the plugin ------------------------------------------------------------------------------


class HFUnitLM(SpeechLM):
    """Unit language model over K-means-quantised HuBERT-style features (GSLM, TWIST, SLAM).

    Keyword arguments (strings from ``--model_args`` are parsed):

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

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood", "encode"})
    sample_rate: int | None = 16000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(kwargs) - set(_ARGS) - _HARNESS_ARGS)
        if unknown:
            raise ConfigError(
                f"unknown model argument(s) for HFUnitLM: {', '.join(unknown)}; "
                f"accepted: {', '.join(_ARGS)}"
            )

        # Parse and check everything cheap before loading any weights, so that a typo
        # fails in milliseconds rather than after a multi-GB load.
        encoder_dir = _model_dir("encoder", kwargs.get("encoder"), "a transformers HuBERT model")
        lm_dir = _model_dir("lm", kwargs.get("lm"), "a transformers AutoModelForCausalLM")
        if kwargs.get("kmeans") in (None, ""):
            raise ConfigError(
                "model argument 'kmeans' is required: a .npy file of K-means centroids (K, D)"
            )
        allow_pickle = _parse_bool("allow_pickle", kwargs.get("allow_pickle", False))
        kmeans_path = Path(str(kwargs["kmeans"])).expanduser()
        self._centroids = load_centroids(kmeans_path, allow_pickle=allow_pickle)
        n_units, centroid_dim = self._centroids.shape

        self._offset = _parse_int("offset", kwargs.get("offset", 2))
        if self._offset < 0:
            raise ConfigError(f"model argument 'offset': expected >= 0, got {self._offset}")
        # slamkit's layout (PAD=0, <S>=1 as both BOS and EOS) only applies when units start at 2.
        default_special = 1 if self._offset == 2 else None
        self._bos = _parse_optional_int("bos", kwargs.get("bos", default_special))
        self._eos = _parse_optional_int("eos", kwargs.get("eos", default_special))
        self._dedup = _parse_bool("dedup", kwargs.get("dedup", True))
        self._pad_audio = _parse_int("pad_audio", kwargs.get("pad_audio", 0))
        if self._pad_audio < 0:
            raise ConfigError(f"model argument 'pad_audio': expected >= 0, got {self._pad_audio}")
        self._torch_dtype = _parse_dtype(kwargs.get("dtype", "float32"))
        self._device = _parse_device(kwargs.get("device", "cpu"))

        enc_config = self._load_config("encoder", encoder_dir)
        for attr in ("conv_stride", "conv_kernel", "hidden_size", "num_hidden_layers"):
            if not hasattr(enc_config, attr):
                raise ConfigError(
                    f"model argument 'encoder': {encoder_dir} holds a "
                    f"{enc_config.model_type!r} model; expected a HuBERT / wav2vec2 / WavLM "
                    f"encoder (its config has no {attr!r})"
                )
        n_layers = int(enc_config.num_hidden_layers)
        layer_arg = kwargs.get("layer")
        layer = n_layers if layer_arg in (None, "") else _parse_int("layer", layer_arg)
        if layer < 0:  # Python-style: -1 is the last layer
            layer += n_layers + 1
        if not 0 <= layer <= n_layers:
            raise ConfigError(
                f"model argument 'layer': expected 0..{n_layers} for this {n_layers}-layer "
                f"encoder (0 = transformer input, {n_layers} = last layer), got {layer_arg!r}"
            )
        self._layer = layer
        if centroid_dim != int(enc_config.hidden_size):
            raise ConfigError(
                f"model argument 'kmeans': centroids have dimension {centroid_dim}, but encoder "
                f"layer {layer} has hidden size {enc_config.hidden_size} (expected centroids "
                f"of shape (K, {enc_config.hidden_size}) fitted on this encoder)"
            )

        lm_config = self._load_config("lm", lm_dir)
        vocab_size = getattr(lm_config, "vocab_size", None)
        if not isinstance(vocab_size, int):
            raise ConfigError(f"model argument 'lm': {lm_dir}/config.json has no vocab_size")
        if self._offset + n_units > vocab_size:
            raise ConfigError(
                f"model argument 'kmeans'/'offset': {n_units} units at offset {self._offset} need "
                f"token ids up to {self._offset + n_units - 1}, but the LM ('lm') vocabulary has "
                f"only {vocab_size} tokens (expected offset + K <= vocab_size)"
            )
        for name, tok in (("bos", self._bos), ("eos", self._eos)):
            if tok is None:
                continue
            if not 0 <= tok < vocab_size:
                raise ConfigError(
                    f"model argument {name!r}: token id {tok} is outside the LM vocabulary "
                    f"(0..{vocab_size - 1})"
                )
            if self._offset <= tok < self._offset + n_units:
                raise ConfigError(
                    f"model argument {name!r}: token id {tok} collides with unit "
                    f"{tok - self._offset} (units occupy {self._offset}.."
                    f"{self._offset + n_units - 1}); expected a special token below 'offset' "
                    "or 'none'"
                )
        self._max_tokens = getattr(lm_config, "max_position_embeddings", None)

        # Hashed once here: identity() is called for every cache lookup and must be cheap.
        self._identity_parts = {
            "encoder": saved_model_identity("encoder", encoder_dir),
            "kmeans": {
                "path": str(kmeans_path.resolve()),
                "sha256": sha256_file(kmeans_path),
                "n_units": int(n_units),
            },
            "lm": saved_model_identity("lm", lm_dir),
        }

        # Input normalisation as the encoder's preprocessor config prescribes (if it has one).
        self._feature_extractor = None
        encoder_rate = 16000
        if (encoder_dir / "preprocessor_config.json").is_file():
            from transformers import AutoFeatureExtractor

            try:
                self._feature_extractor = AutoFeatureExtractor.from_pretrained(
                    str(encoder_dir), local_files_only=True
                )
            except Exception as e:
                raise ConfigError(
                    f"model argument 'encoder': cannot load {encoder_dir}/preprocessor_config.json "
                    f"({type(e).__name__}: {e})"
                ) from None
            encoder_rate = int(getattr(self._feature_extractor, "sampling_rate", 16000))
            self._identity_parts["encoder"]["preprocessor_hash"] = sha256_file(
                encoder_dir / "preprocessor_config.json"
            )
        if encoder_rate != self.sample_rate:
            raise ConfigError(
                f"model argument 'encoder': its preprocessor expects {encoder_rate} Hz audio; "
                f"this plugin feeds {self.sample_rate} Hz"
            )
        self._kernels = [int(k) for k in enc_config.conv_kernel]
        self._strides = [int(s) for s in enc_config.conv_stride]
        self._min_samples = _receptive_field(self._kernels, self._strides)
        self._frame_rate = encoder_rate / math.prod(self._strides)

        from transformers import AutoModel, AutoModelForCausalLM

        self._encoder = self._load_model("encoder", AutoModel, encoder_dir)
        self._truncate_encoder(n_layers)
        self._lm = self._load_model("lm", AutoModelForCausalLM, lm_dir)
        emb = self._lm.get_input_embeddings()
        if emb is not None and self._offset + n_units > emb.num_embeddings:
            raise ConfigError(
                f"model argument 'kmeans'/'offset': {n_units} units at offset {self._offset} "
                f"exceed the LM ('lm') embedding table of {emb.num_embeddings} rows"
            )

        # Dry run: proves the encoder returns the requested layer with the centroids' dimension.
        probe = Audio(np.zeros(max(self._min_samples, 1600), dtype=np.float32), self.sample_rate)
        feats = self._features(probe)
        if feats.ndim != 2 or feats.shape[1] != centroid_dim:
            raise PluginError(
                f"encoder {encoder_dir} layer {layer} produced features of shape "
                f"{tuple(feats.shape)}, expected (frames, {centroid_dim})"
            )

    # --- loading helpers ---------------------------------------------------------------------

    @staticmethod
    def _load_config(name: str, path: Path) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # unknown model_type, malformed JSON, ...
            raise ConfigError(
                f"model argument {name!r}: cannot read {path}/config.json ({type(e).__name__}: {e})"
            ) from None

    def _load_model(self, name: str, auto_cls: Any, path: Path) -> torch.nn.Module:
        try:
            # transformers reads model.safetensors, or a .bin with torch.load(weights_only=True)
            model = auto_cls.from_pretrained(
                str(path), local_files_only=True, **{_dtype_kwarg(): self._torch_dtype}
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
        return model.to(self._device).eval()

    def _truncate_encoder(self, n_layers: int) -> None:
        """Drop transformer layers above ``layer``: they cannot affect ``hidden_states[layer]``.

        Only for post-layer-norm encoders (HuBERT-base and its kin, used by GSLM/TWIST/SLAM):
        there ``hidden_states[i]`` is the raw output of layer ``i`` in every transformers
        version, so cutting the stack changes nothing but the cost. Stable-layer-norm encoders
        apply a final norm to the last entry in transformers 4.x, so their stack is kept whole.
        One layer is always kept so that the hidden-state hooks fire.
        """
        if getattr(self._encoder.config, "do_stable_layer_norm", False):
            return
        encoder = getattr(self._encoder, "encoder", None)
        layers = getattr(encoder, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) == n_layers:
            keep = max(self._layer, 1)
            if keep < n_layers:
                encoder.layers = layers[:keep]

    # --- public API --------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        """Compute dtype of the encoder and the LM (``float32``, ``bfloat16`` or ``float16``)."""
        return _DTYPE_NAMES[self._torch_dtype]

    @property
    def frame_rate(self) -> float:
        """Encoder frames per second (sample rate / total convolution stride)."""
        return self._frame_rate

    @property
    def n_units(self) -> int:
        """Number of K-means clusters (K)."""
        return int(self._centroids.shape[0])

    def identity(self) -> dict[str, Any]:
        """Class, file hashes and every output-affecting setting (not the device)."""
        cls = type(self)
        parts = self._identity_parts
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "encoder": dict(parts["encoder"]),
            "kmeans": dict(parts["kmeans"]),
            "lm": dict(parts["lm"]),
            "layer": self._layer,
            "offset": self._offset,
            "bos": self._bos,
            "eos": self._eos,
            "dedup": self._dedup,
            "pad_audio": self._pad_audio,
            "dtype": self.dtype,
        }

    def units(self, audio: Audio) -> np.ndarray:
        """Unit sequence (int64; run-length collapsed if ``dedup``) of 16 kHz ``audio``."""
        units = quantize(self._features(audio), self._centroids)
        return dedup_units(units) if self._dedup else units

    def tokens(self, audio: Audio) -> list[int]:
        """LM token ids ``[bos] + (units + offset) + [eos]`` (bos/eos omitted when none)."""
        ids = (self.units(audio) + self._offset).tolist()
        if self._bos is not None:
            ids.insert(0, self._bos)
        if self._eos is not None:
            ids.append(self._eos)
        return ids

    @torch.inference_mode()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Sum of ``log p(token | previous tokens)`` over all tokens after the first, per request.

        All requests go through the LM as one right-padded batch with an attention mask.
        """
        if not requests:
            return []
        seqs: list[list[int]] = []
        for req in requests:
            if req.audio is None:
                raise ValueError(f"HFUnitLM scores speech only; request {req.key!r} has no audio")
            if req.text is not None:
                raise ValueError(f"HFUnitLM cannot score text; request {req.key!r} has text set")
            ids = self.tokens(req.audio)
            where = req.key or req.audio.source
            if len(ids) < 2:
                raise DataError(
                    f"{where}: only {len(ids)} token(s) to score; need at least 2 "
                    "(use bos/eos, or longer audio)"
                )
            if self._max_tokens is not None and len(ids) > int(self._max_tokens):
                raise DataError(
                    f"{where}: {len(ids)} tokens exceed the LM context of {self._max_tokens} "
                    f"({req.audio.duration:.1f} s of audio)"
                )
            seqs.append(ids)

        lengths = [len(s) for s in seqs]
        width = max(lengths)
        input_ids = torch.zeros((len(seqs), width), dtype=torch.long)  # pad id irrelevant: masked
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            attention_mask[i, : len(s)] = 1
        out = self._lm(
            input_ids=input_ids.to(self._device),
            attention_mask=attention_mask.to(self._device),
            use_cache=False,
        )
        logits = out.logits
        results = []
        for i, n in enumerate(lengths):
            # Row by row keeps the float32 copy at T x V rather than B x T x V.
            logp = torch.log_softmax(logits[i, : n - 1].float(), dim=-1)
            target = input_ids[i, 1:n].to(logp.device)
            total = logp.gather(1, target[:, None]).sum()
            results.append(LoglikelihoodResult(logprob=float(total), num_tokens=n - 1))
        return results

    def encode(self, requests: list[EncodeRequest]) -> list[EncodeResult]:
        """Continuous features of ``layer`` (frames x hidden size, float32) per request."""
        return [
            EncodeResult(features=self._features(req.audio), frame_rate=self._frame_rate)
            for req in requests
        ]

    # --- internals ---------------------------------------------------------------------------

    @torch.inference_mode()
    def _features(self, audio: Audio) -> np.ndarray:
        """Layer features (frames x dims, float32) of one utterance.

        One utterance per forward pass: HuBERT-base-style encoders take no attention mask,
        so padding a batch would change the outputs and make results depend on batch size.
        """
        if not isinstance(audio, Audio):
            raise TypeError(f"expected an Audio, got {type(audio).__name__}")
        if audio.sample_rate != self.sample_rate:
            raise ValueError(
                f"{audio.source}: audio is {audio.sample_rate} Hz, HFUnitLM needs "
                f"{self.sample_rate} Hz (the runner resamples)"
            )
        wav = audio.samples
        if self._pad_audio:
            # Zero padding of the raw signal (slamkit pads 40 samples each side for mHuBERT-25Hz).
            wav = np.pad(wav, (self._pad_audio, self._pad_audio))
        if wav.size < self._min_samples:
            raise DataError(
                f"{audio.source}: audio has {audio.samples.size} samples, the encoder needs at "
                f"least {self._min_samples - 2 * self._pad_audio} for one frame"
            )
        if self._feature_extractor is not None:
            wav = self._feature_extractor(wav, sampling_rate=self.sample_rate, return_tensors="np")[
                "input_values"
            ][0]
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        x = x.to(self._device, self._torch_dtype)
        out = self._encoder(x, output_hidden_states=True)
        hidden = out.hidden_states
        if hidden is None or len(hidden) <= self._layer:
            raise PluginError(
                f"encoder returned {0 if hidden is None else len(hidden)} hidden states, "
                f"layer {self._layer} requested"
            )
        feats = hidden[self._layer][0].float().cpu().numpy()
        expected = _conv_out_len(wav.size, self._kernels, self._strides)
        if feats.shape[0] != expected:  # guards the frame-rate bookkeeping of encode()
            raise PluginError(f"encoder gave {feats.shape[0]} frames, expected {expected}")
        return feats
