"""MOS judge ``utmos22``: the UTMOS22 strong learner from a local weights file; nothing is
downloaded.

UTMOS (Saeki et al., Interspeech 2022; sarulab-speech/UTMOS22, the VoiceMOS Challenge 2022
"strong learner") predicts the naturalness MOS (1-5 scale) of 16 kHz speech: wav2vec 2.0
(base) features, concatenated with a data-domain embedding (domain 0, the main-track data) and
a listener embedding (listener 288, the "mean listener"), a BiLSTM, a two-layer projection to
one score per frame; the clip's score is the mean over frames x 2 + 3. The official code needs
fairseq, which does not install beside current torch; this judge runs the fairseq-free
re-implementation of PyPI ``utmos-pytorch`` (``utmos_pytorch.utmos_torch``: ``UTMOSModel``, the
Lightning module's layout, and ``UTMOSScoreTorch.forward``, validated by its author against the
original to 1e-6), unchanged. Its own loader only downloads (Hugging Face) or loads with
``strict=False`` (a file that fits nothing would give random scores); this judge loads the given
file itself, refusing any file that leaves a parameter of the network unset.

Weights (option ``model``, a file): the original Lightning module's ``state_dict`` -- either
``utmos_state_dict.pt`` (what ``utmos-pytorch`` converts and publishes) or any ``torch.save`` of
a dict holding it under ``"state_dict"`` that ``torch.load(weights_only=True)`` reads. Keys the
network has no place for (the wav2vec 2.0 pre-training remnant ``mask_emb``) are ignored and
listed in the identity. tarepan/SpeechMOS's ``utmos22_strong_step7459_v1.pt`` (torch.hub) has
other names and pre-selected embeddings: it is refused with a message saying so.

Licences: UTMOS22's code is MIT (Saruwatari & Koyama laboratory, The University of Tokyo); its
checkpoint (published in the authors' UTMOS-demo Space) states no licence of its own, and the
re-publishers (utmos-pytorch; tarepan/SpeechMOS, "under MIT") credit the authors, who keep its
copyright; it is fine-tuned from fairseq's wav2vec 2.0 base (MIT). ``utmos-pytorch`` is MIT
(Petr Grinberg), with parts of fairseq (MIT).

A padded batch would change scores (the first convolution's group norm spans the whole padded
signal, and the frame mean counts padded frames), so clips are scored one at a time, as the
package's README advises; ``batch_size`` only sets how many go to the executor per call. A clip
shorter than the convolutional front end's receptive field (400 samples, 25 ms) has no score:
NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    weights_file,
)

INSTALL = "pip install utmos-pytorch==0.1.0"
LICENSE = {
    "code": "utmos-pytorch: MIT (Petr Grinberg; parts of UTMOS22 and fairseq, both MIT)",
    "weights": "UTMOS22 strong learner (Saruwatari & Koyama lab, The University of Tokyo): no "
    "licence of their own; the UTMOS22 repository is MIT and the checkpoint comes from its "
    "UTMOS-demo Space; utmos-pytorch and tarepan/SpeechMOS redistribute it crediting the "
    "authors (SpeechMOS: under MIT); fine-tuned from fairseq's wav2vec 2.0 base (MIT)",
}
# What UTMOSScoreTorch.forward feeds the network for every clip (the official predict.py's).
CONDITIONING = {"domain": 0, "judge_id": 288}


class UTMOS22Judge(Judge):
    """UTMOS22 strong learner (utmos-pytorch) from a local weights file. Options: ``model``
    (the file, required), ``device`` (cpu), ``batch_size`` (audios per executor call, 8; each is
    scored alone)."""

    kind = "mos"
    sample_rate = 16000
    OPTIONS: ClassVar[OptionSpec] = Spec(
        {
            "model": Opt(str, None, doc="UTMOS22 weights file (utmos_state_dict.pt)"),
            "device": Opt(str, "cpu", identity=False, doc="torch device"),
            "batch_size": Opt(int, 8, ge=1, identity=False, doc="audios per call"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        opts["model"] = weights_file(
            name,
            opts["model"],
            "the UTMOS22 strong learner's weights (utmos_state_dict.pt, the Lightning module's "
            "state_dict as published with utmos-pytorch)",
            "the UTMOS22 weights (utmos_state_dict.pt)",
        )
        return opts

    def __init__(self, name: str = "utmos22", **options: Any) -> None:
        super().__init__(name, **options)
        self.path = Path(self.options["model"])
        try:
            from utmos_pytorch import utmos_torch
        except ImportError as e:
            raise ConfigError(
                f"judge {self.name!r} needs the package utmos-pytorch: {INSTALL} "
                f"({type(e).__name__}: {e})"
            ) from None
        self._lib = utmos_torch
        self._scorer, self.ignored_keys = self._load()
        ssl = self._scorer.model.feature_extractors[0].ssl_model
        self.min_samples = _receptive_field(ssl.conv_kernel_sizes, ssl.conv_strides)

    def _load(self) -> tuple[Any, list[str]]:
        import pickle

        import torch

        lib = self._lib
        try:
            sd = torch.load(self.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"judge {self.name!r}: option 'model': {self.path} is not a weights file "
                f"readable with torch.load(weights_only=True) ({type(e).__name__}: {first})"
            ) from None
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]  # a Lightning checkpoint's weights
        if not (isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())):
            raise ConfigError(
                f"judge {self.name!r}: option 'model': {self.path} holds no state_dict (a dict "
                "of tensors, or one under 'state_dict')"
            )
        model = lib.UTMOSModel()
        expected = set(model.state_dict())
        missing = sorted(expected - set(sd))
        if missing:
            if any(k.startswith("wav2vec2.") for k in sd) and "judge_emb" in sd:
                what = (
                    "it looks like tarepan/SpeechMOS's utmos22_strong checkpoint, whose names "
                    "and pre-selected embeddings differ"
                )
            else:
                what = f"{len(missing)} of {len(expected)} parameters missing, e.g. {missing[:3]}"
            raise ConfigError(
                f"judge {self.name!r}: option 'model': {self.path} is not the UTMOS22 strong "
                f"learner's state_dict ({what}); give utmos_state_dict.pt (the Lightning "
                "module's state_dict, as published with utmos-pytorch)"
            )
        try:
            model.load_state_dict({k: sd[k] for k in expected}, strict=True)
        except RuntimeError as e:
            raise ConfigError(
                f"judge {self.name!r}: option 'model': the tensors in {self.path} do not fit "
                f"the UTMOS22 network ({' '.join(str(e).split())[:300]})"
            ) from None
        device = torch.device(self.options["device"])
        # UTMOSScoreTorch without its __init__ (which downloads, or loads with strict=False):
        # the network loaded above, then what its load_utmos_weights does after loading.
        scorer = lib.UTMOSScoreTorch.__new__(lib.UTMOSScoreTorch)
        torch.nn.Module.__init__(scorer)
        scorer.device = str(device)
        scorer.model = model.to(device)
        model.eval()
        lib.remove_weight_norm_for_jit(model)
        for module in model.modules():
            if isinstance(module, torch.nn.LSTM):
                module.flatten_parameters()
        return scorer, sorted(set(sd) - expected)

    def identity(self) -> dict[str, Any]:
        return {
            **self._identity_head("utmos-pytorch"),
            "model": {
                "path": str(self.path),
                "sha256": path_sha256(self.path),
                "architecture": "UTMOS22 strong learner (wav2vec 2.0 base + BLSTM), "
                "utmos_pytorch.utmos_torch.UTMOSModel",
                "ignored_keys": self.ignored_keys,
            },
            "license": LICENSE,
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER},
            "conditioning": CONDITIONING,
            "score": "mean over frames x 2 + 3 (UTMOSScoreTorch.forward)",
            "batching": "one clip at a time",
            "torch": package_version("torch"),
        }

    def predict(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, float]]:
        """``{"utmos22": x}`` (UTMOS22 naturalness, nominally 1-5) of each audio, in order, through
        the executor (cached, deduplicated); NaN for a clip shorter than 25 ms."""
        return run_judge(self, "predict", self._predict, audios, stats, cache, desc)

    def _predict(self, requests: list[JudgeRequest]) -> list[dict[str, float]]:
        # Named after the predictor: the scorers write ``mos_utmos22``, never a bare MOS.
        return [{"utmos22": self.score(r.audio.samples)} for r in requests]

    def score(self, samples: np.ndarray) -> float:
        """The UTMOS22 score of 16 kHz ``samples``, uncached."""
        import torch

        if samples.size < self.min_samples:
            return float("nan")
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        with torch.inference_mode():
            y = self._scorer.score(x.to(self._scorer.device))
        return float(y.reshape(-1)[0])


def _receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Fewest input samples for one output frame of a stack of unpadded 1-D convolutions."""
    n = 1
    for k, s in zip(reversed(kernels), reversed(strides), strict=True):
        n = (n - 1) * s + k
    return n
