"""Pitch judge ``pitch``: an F0 contour per audio by a named DSP tracker, deterministic.

No weights: the algorithm, its package version and its parameters are the judge's identity.

- ``harvest`` (default; WORLD, Morise 2017, by ``pyworld``): robust voicing decisions;
- ``dio`` (WORLD, Morise 2009, refined by ``stonemask``): faster, more octave/voicing errors;
- ``yaapt`` (AMFM-decompy's pYAAPT, Zahorian & Hu 2008): pGSLM's tracker with pGSLM's settings
  (fairseq ``codedataset.get_f0``): 20 ms frames, 25 ms time-domain frames,
  ``nccf_thresh1=0.25``, audio peak-normalised to 0.95 and zero-padded by 10 ms on each side
  (so frame ``i`` is centred at ``i * frame_period_ms``), F0 searched in pYAAPT's default
  60-400 Hz. Its F0 is quantised by integer-sample lags (a 150 Hz tone reads 148.1 Hz). A clip
  pYAAPT cannot track (too short: it raises) is all unvoiced, as pGSLM read such failures.

Defaults: 5 ms frame period (pGSLM's step; ``frame_period_ms``), F0 search range 71-800 Hz for
WORLD (its own defaults; ``f0_floor`` / ``f0_ceil``), on 16 kHz audio (pGSLM's rate),
resampled explicitly by the executor. Frame ``i`` is centred at ``i * frame_period_ms`` ms;
``0.0`` marks an unvoiced frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError
from ..execute import ExecStats
from ..options import Opt, Spec
from .base import RESAMPLER, Judge, JudgeRequest, OptionSpec, package_version, run_judge

ALGORITHMS = ("harvest", "dio", "yaapt")
# What the identity calls each algorithm, and the package that implements it.
_NAMES = {
    "harvest": ("WORLD harvest", "pyworld-prebuilt"),
    "dio": ("WORLD dio+stonemask", "pyworld-prebuilt"),
    "yaapt": ("pYAAPT", "AMFM-decompy"),
}
# pGSLM's pYAAPT settings (fairseq examples/textless_nlp/pgslm, codedataset.get_f0).
YAAPT_SETTINGS = {"frame_length": 20.0, "tda_frame_length": 25.0, "nccf_thresh1": 0.25}
YAAPT_PEAK = 0.95  # peak level after normalisation
YAAPT_PAD_MS = 10.0  # zero padding on each side (half of frame_length)


@dataclass(frozen=True)
class F0Track:
    """An F0 contour: ``hz[i]`` is the F0 of the frame centred at ``i / frame_rate`` seconds,
    ``0.0`` where the frame is unvoiced."""

    hz: tuple[float, ...]
    frame_rate: float  # frames per second (1000 / frame_period_ms)

    @property
    def voiced(self) -> np.ndarray:
        """Boolean mask of voiced frames."""
        return np.asarray(self.hz) > 0


class PitchJudge(Judge):
    """F0 contours. Options: ``algorithm`` (``harvest`` | ``dio``: dio refined by stonemask |
    ``yaapt``), ``frame_period_ms`` (5.0), ``f0_floor`` / ``f0_ceil`` (71 / 800 Hz; for yaapt
    60 / 400 Hz), ``batch_size`` (audios per call, 16; each audio is analysed on its own)."""

    kind = "pitch"
    sample_rate = 16000
    offline_default = "WORLD harvest (pyworld-prebuilt; DSP, no weights)"
    OPTIONS: ClassVar[OptionSpec] = Spec(
        {
            "algorithm": Opt(str, "harvest", choices=ALGORITHMS, doc="F0 tracker"),
            "frame_period_ms": Opt(float, 5.0, gt=0, le=100, doc="hop between frames, ms"),
            # Each tracker's own defaults (pGSLM kept pYAAPT's), unless given.
            "f0_floor": Opt(
                float,
                71.0,
                gt=0,
                derive=lambda v: 60.0 if v["algorithm"] == "yaapt" else 71.0,
                doc="lowest F0 searched, Hz",
            ),
            "f0_ceil": Opt(
                float,
                800.0,
                gt=0,
                derive=lambda v: 400.0 if v["algorithm"] == "yaapt" else 800.0,
                doc="highest F0 searched, Hz",
            ),
            "batch_size": Opt(int, 16, ge=1, identity=False, doc="audios per call"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        if opts["f0_floor"] >= opts["f0_ceil"]:
            raise ConfigError(f"judge {name!r}: option 'f0_floor' must be below 'f0_ceil'")
        # WORLD searches up to the Nyquist frequency only; a higher ceiling would silently cap.
        if opts["f0_ceil"] >= cls.sample_rate / 2:
            raise ConfigError(
                f"judge {name!r}: option 'f0_ceil' must be below {cls.sample_rate // 2} Hz"
            )
        return opts

    def __init__(self, name: str = "pitch", **options: Any) -> None:
        super().__init__(name, **options)
        package = _NAMES[self.options["algorithm"]][1]
        try:
            if package == "AMFM-decompy":
                import amfm_decompy.pYAAPT  # noqa: F401
            else:
                import pyworld  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"judge {name!r} needs the package {package}: pip install 'speechlm-eval[judges]'"
            ) from None

    @property
    def frame_rate(self) -> float:
        """F0 frames per second."""
        return 1000.0 / self.options["frame_period_ms"]

    def identity(self) -> dict[str, Any]:
        o = self.options
        algorithm, package = _NAMES[o["algorithm"]]
        ident = {
            **self._identity_head(package),
            "algorithm": algorithm,
            "options": {k: v for k, v in o.items() if k != "batch_size"},
            "input": {"sample_rate": self.sample_rate, "resampler": RESAMPLER, "dtype": "float64"},
            "numpy": package_version("numpy"),
        }
        if o["algorithm"] == "yaapt":
            ident["yaapt"] = {**YAAPT_SETTINGS, "peak": YAAPT_PEAK, "pad_ms": YAAPT_PAD_MS}
            ident["scipy"] = package_version("scipy")  # its filters and FFTs
        return ident

    def f0(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[F0Track]:
        """The F0 contour of each audio, in order, through the executor (cached, deduplicated)."""
        rows = run_judge(self, "f0", self._f0, audios, stats, cache, desc)
        return [F0Track(tuple(float(v) for v in row), self.frame_rate) for row in rows]

    def _f0(self, requests: list[JudgeRequest]) -> list[list[float]]:
        return [self.contour(r.audio.samples).tolist() for r in requests]

    def contour(self, samples: np.ndarray) -> np.ndarray:
        """F0 (Hz, 0 = unvoiced) of 16 kHz ``samples`` with this judge's settings, uncached."""
        import pyworld

        o = self.options
        # WORLD's C code reads doubles; float32 input is rejected, so convert explicitly.
        x = np.ascontiguousarray(samples, dtype=np.float64)
        kw = {
            "f0_floor": o["f0_floor"],
            "f0_ceil": o["f0_ceil"],
            "frame_period": o["frame_period_ms"],
        }
        if o["algorithm"] == "yaapt":
            return self._yaapt(x)
        if o["algorithm"] == "harvest":
            f0, _ = pyworld.harvest(x, self.sample_rate, **kw)
        else:
            coarse, t = pyworld.dio(x, self.sample_rate, **kw)
            f0 = pyworld.stonemask(x, coarse, t, self.sample_rate)
        return np.asarray(f0, dtype=np.float64)

    def _yaapt(self, x: np.ndarray) -> np.ndarray:
        """pYAAPT as pGSLM called it: peak-normalised, padded by half a frame on each side."""
        import amfm_decompy.basic_tools as basic
        import amfm_decompy.pYAAPT as pyaapt

        o = self.options
        peak = float(np.abs(x).max())
        if peak > 0:  # silence stays silence (pGSLM used librosa.util.normalize, same effect)
            x = x / peak * YAAPT_PEAK
        pad = round(YAAPT_PAD_MS * self.sample_rate / 1000)
        x = np.pad(x, (pad, pad))
        # pYAAPT warns on silent or short input (numpy 0/0 and means of empty slices, scipy's
        # medfilt kernel longer than the voiced run; those frames come out unvoiced): expected
        # internals, not the user's concern.
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                track = pyaapt.yaapt(
                    basic.SignalObj(x, self.sample_rate),
                    frame_space=o["frame_period_ms"],
                    f0_min=o["f0_floor"],
                    f0_max=o["f0_ceil"],
                    **YAAPT_SETTINGS,
                )
            except (IndexError, ValueError):
                # pYAAPT fails on clips too short to track (a few frames); pGSLM read a failure
                # as "no F0": all frames unvoiced, as many as pYAAPT's framing gives.
                space = o["frame_period_ms"] * self.sample_rate / 1000
                length = YAAPT_SETTINGS["frame_length"] * self.sample_rate / 1000
                return np.zeros(max(0, int((x.size - length) // space)))
        return np.asarray(track.samp_values, dtype=np.float64)
