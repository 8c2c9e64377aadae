"""MOS judge ``dnsmos``: DNSMOS P.835 and P.808 from the ``speechmos`` wheel (weights inside).

DNSMOS (Reddy et al., ICASSP 2022; Microsoft DNS-Challenge ``DNSMOS/dnsmos_local.py``) predicts
the listening-test scores of ITU-T P.835 — SIG (speech signal), BAK (background noise), OVRL
(overall) — and of P.808 (one overall score), each on a 1-5 MOS scale, without a reference.
It runs on 16 kHz audio (resampled explicitly by the executor) in 9.01 s windows with a 1 s
hop; a clip shorter than 9.01 s is tiled (repeated) to that length; the clip's scores are the
means over windows. SIG/BAK/OVRL come from the raw network outputs through fixed polynomials;
``personalized=true`` uses the personalized model (``pdnsmos_models``, trained to penalise
interfering talkers) and its polynomials. All of this is ``speechmos.dnsmos.DNSMOS.__call__``,
which this judge calls unchanged, on its own ONNX Runtime sessions (CPU provider, a fixed
thread count, so scores never depend on the machine's core count or on other audios).

speechmos rejects samples outside [-1, 1]; this judge clips them first (what a 16-bit file of
the same audio would hold) and says so in its identity.
"""

from __future__ import annotations

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

# What speechmos returns -> the keys this judge returns.
OUTPUTS = {"ovrl_mos": "ovrl", "sig_mos": "sig", "bak_mos": "bak", "p808_mos": "p808"}


class DNSMOSJudge(Judge):
    """DNSMOS (the ONNX models shipped in ``speechmos``). Options: ``personalized`` (false),
    ``threads`` (ONNX Runtime intra-op threads, 1), ``batch_size`` (audios per call, 8; each
    audio is scored on its own)."""

    kind = "mos"
    sample_rate = 16000
    offline_default = "DNSMOS P.835 + P.808 ONNX models, shipped in the speechmos wheel"
    OPTIONS: ClassVar[OptionSpec] = Spec(
        {
            "personalized": Opt(bool, False, doc="personalized DNSMOS (penalises other talkers)"),
            # Not identity: the ONNX CPU kernels give the same scores for any thread count
            # given here (checked in tests); fixed so that a run never depends on the machine.
            "threads": Opt(int, 1, ge=1, identity=False, doc="ONNX Runtime intra-op threads"),
            "batch_size": Opt(int, 8, ge=1, identity=False, doc="audios per call"),
        }
    )

    def __init__(self, name: str = "dnsmos", **options: Any) -> None:
        super().__init__(name, **options)
        try:
            import onnxruntime  # noqa: F401
            import speechmos.dnsmos
        except ImportError:
            raise ConfigError(
                f"judge {name!r} needs the packages speechmos, onnxruntime and librosa: "
                "pip install 'speechlm-eval[judges]'"
            ) from None
        root = Path(speechmos.dnsmos.__file__).parent
        primary = "pdnsmos_models" if self.options["personalized"] else "dnsmos_models"
        self._files = {
            "primary": root / primary / "sig_bak_ovr.onnx",
            "p808": root / "dnsmos_models" / "model_v8.onnx",
        }

    @cached_property
    def _model(self) -> Any:
        import onnxruntime as ort
        from speechmos.dnsmos import DNSMOS

        def session(path: Path) -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.options["threads"]
            so.inter_op_num_threads = 1
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        # DNSMOS.__init__ builds default sessions (all cores, any provider): bypass it and
        # set the attributes its __call__ reads, so the scoring code itself is speechmos'.
        model = DNSMOS.__new__(DNSMOS)
        model.primary_model_path = str(self._files["primary"])
        model.onnx_sess = session(self._files["primary"])
        model.p808_onnx_sess = session(self._files["p808"])
        return model

    def identity(self) -> dict[str, Any]:
        root = self._files["p808"].parent.parent
        return {
            **self._identity_head("speechmos"),
            "model": {
                role: {"file": p.relative_to(root).as_posix(), "sha256": path_sha256(p)}
                for role, p in self._files.items()
            },
            "options": {"personalized": self.options["personalized"]},
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER, "clip": [-1, 1]},
            "windows": {"length_s": 9.01, "hop_s": 1.0, "short_clips": "tiled"},
            "onnxruntime": package_version("onnxruntime"),
            "librosa": package_version("librosa"),  # P.808's mel features
        }

    def predict(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, float]]:
        """``{"ovrl", "sig", "bak", "p808"}`` (MOS, nominally 1-5) of each audio, in order,
        through the executor (cached, deduplicated)."""
        return run_judge(self, "predict", self._predict, audios, stats, cache, desc)

    def _predict(self, requests: list[JudgeRequest]) -> list[dict[str, float]]:
        return [self.score(r.audio.samples) for r in requests]

    def score(self, samples: np.ndarray) -> dict[str, float]:
        """Scores of 16 kHz ``samples``, uncached."""
        x = np.clip(samples, -1.0, 1.0)
        raw = self._model(x, self.sample_rate, self.options["personalized"])
        return {ours: float(raw[theirs]) for theirs, ours in OUTPUTS.items()}
