"""MOS judge ``nisqa``: NISQA (Mittag et al.) from a local checkpoint file; nothing is downloaded.

NISQA predicts listening-test scores without a reference. Its checkpoints (``.tar`` files written
by ``torch.save``) hold the network's weights (``model_state_dict``) and every setting it was
trained with (``args``: the mel front end, the architecture). The official ones, in the
``weights/`` folder of gabrielmittag/NISQA:

- ``nisqa.tar`` (NISQA v2.0, ``NISQA_DIM``): transmitted-speech quality, five outputs -- overall
  MOS, noisiness, discontinuity, coloration, loudness -- returned as ``nisqa``, ``nisqa_noi``,
  ``nisqa_dis``, ``nisqa_col``, ``nisqa_loud`` (the network's output order, the official
  ``predict_dim`` names prefixed with the predictor, so that scorers write ``mos_nisqa``, never
  a bare MOS another predictor could share);
- ``nisqa_tts.tar`` (NISQA-TTS v1.0, ``NISQA``): naturalness of synthesised speech, one output,
  returned as ``nisqa``; ``nisqa_mos_only.tar`` (``NISQA``): overall quality only, ``nisqa``.

The NISQA code is MIT; the official weights are CC BY-NC-SA 4.0 (non-commercial, share-alike:
``weights/LICENSE_model_weights`` of that repository). The identity records the file's SHA-256.

The pipeline is the official one (``NISQA_lib``): a mel spectrogram of the clip (librosa,
magnitude, ``ms_n_mels`` bands up to ``ms_fmax``, ``ms_win_length`` s windows every
``ms_hop_length`` s, in dB re 1.0 with an 80 dB floor), cut into ``ms_seg_length``-frame
segments every ``ms_seg_hop_length`` frames, a CNN on each segment, a time-dependency network
(self-attention or LSTM) over the segments, and attention pooling to each output. The official
checkpoints set no ``ms_sr``: each clip is analysed at its own sample rate (the window lengths
are in seconds), so by default this judge takes each audio at the rate it comes in, untouched;
``sample_rate=N`` (or a checkpoint's ``ms_sr``) brings every audio to one rate first.

Two back ends build the network (option ``backend``); both use torchmetrics' copy of the mel
front end and segmentation (``torchmetrics.functional.audio.nisqa``, the same librosa calls as
the official ``get_librosa_melspec`` and ``segment_specs``; checked against them in the tests):

- ``torchmetrics`` (default; Apache-2.0, a port of the MIT code): torchmetrics' modules cover
  the NISQA v2.0 architecture -- adaptive-pooling CNN, self-attention, attention pooling --
  which is ``nisqa.tar``'s. torchmetrics' own ``non_intrusive_speech_quality_assessment`` only
  reads a file it downloads to ``~/.torchmetrics``; this judge builds the same modules from the
  given file instead. A ``NISQA`` (one-output) checkpoint of that architecture is run by the
  same modules in the official ``NISQA.forward`` order (written out below: torchmetrics has no
  one-output model class). Other architectures are refused with a ConfigError.
- ``nisqa``: the official code itself (PyPI ``nisqa`` 2.0.post2, ``nisqa.NISQA_lib``), every
  single-ended architecture, including NISQA-TTS's LSTM. That wheel pins torch==2.2.1 and other
  exact versions, so it is installed with ``pip install --no-deps nisqa==2.0.post2`` (it runs on
  the harness' torch and numpy; its imports need pandas, matplotlib, scipy, tqdm, librosa).

Every part of the network sees only a clip's own segments (packed sequences in the CNN and LSTM,
padding masks in self-attention and pooling), so clips of different lengths are scored together
in one padded batch without changing a score (checked in the tests to float rounding). A clip
shorter than one segment (~0.15 s at the official settings) has no score: NaN for every output.
A clip longer than ``max_segments`` segments (the checkpoint's ``ms_max_segments``: 1300, 52 s,
for the official ones) is refused, as the official code refuses it; raise ``max_segments`` to
score it (the padding length never changes a score).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio import Audio
from ..cache import ResultCache
from ..errors import ConfigError, DataError
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

BACKENDS = ("torchmetrics", "nisqa")
# The network's outputs in order, by architecture, as the official predict_dim / predict_mos name
# them (without their "_pred" suffix).
# Keys named after the predictor, so that results never put NISQA and another predictor's
# MOS under one metric name (the scorers write ``mos_<key>``: ``mos_nisqa``, ``mos_nisqa_noi``).
OUTPUTS = {
    "NISQA_DIM": ("nisqa", "nisqa_noi", "nisqa_dis", "nisqa_col", "nisqa_loud"),
    "NISQA": ("nisqa",),
}
# Checkpoint settings of the mel front end and segmentation (recorded in the identity).
FEATURE_ARGS = (
    "ms_sr",
    "ms_fmax",
    "ms_n_fft",
    "ms_hop_length",
    "ms_win_length",
    "ms_n_mels",
    "ms_seg_length",
    "ms_seg_hop_length",
    "ms_max_segments",
)
LICENSE = {
    "code": "MIT (gabrielmittag/NISQA); torchmetrics' port: Apache-2.0",
    "weights": "the official nisqa*.tar: CC BY-NC-SA 4.0 (gabrielmittag/NISQA "
    "weights/LICENSE_model_weights); other checkpoints: their authors' terms",
}
INSTALL = {
    "torchmetrics": "pip install 'torchmetrics>=1.9,<1.10' librosa requests",
    "nisqa": "pip install 'torchmetrics>=1.9,<1.10' librosa requests && "
    "pip install --no-deps nisqa==2.0.post2",
}


class NISQAJudge(Judge):
    """NISQA from a local checkpoint. Options: ``model`` (the ``.tar`` file, required),
    ``backend`` (``torchmetrics``, cpu only | ``nisqa``), ``sample_rate`` (default: each
    audio's own, as the official code), ``max_segments`` (longest clip, in segments; default:
    the checkpoint's), ``device`` (cpu), ``batch_size`` (audios per padded batch, 8)."""

    kind = "mos"
    sample_rate = None  # each audio at its own rate (option sample_rate: one rate for all)
    OPTIONS: ClassVar[OptionSpec] = Spec(
        {
            "model": Opt(str, None, doc="NISQA checkpoint file (nisqa.tar, nisqa_tts.tar, ...)"),
            "backend": Opt(str, "torchmetrics", choices=BACKENDS, doc="who builds the network"),
            "sample_rate": Opt(int, None, ge=1, doc="bring every audio to this rate first"),
            # Not identity: padding is masked, so the limit decides which clips are refused,
            # never a score.
            "max_segments": Opt(int, None, ge=1, identity=False, doc="longest clip, segments"),
            "device": Opt(str, "cpu", identity=False, doc="torch device"),
            "batch_size": Opt(int, 8, ge=1, identity=False, doc="audios per padded batch"),
        }
    )

    @classmethod
    def resolve_options(cls, name: str, options: Any) -> dict[str, Any]:
        opts = super().resolve_options(name, options)
        opts["model"] = weights_file(
            name,
            opts["model"],
            "a NISQA checkpoint file (e.g. nisqa.tar or nisqa_tts.tar from the weights/ folder "
            "of gabrielmittag/NISQA; CC BY-NC-SA 4.0)",
            "a NISQA checkpoint (nisqa.tar, nisqa_tts.tar, ...)",
        )
        return opts

    def __init__(self, name: str = "nisqa", **options: Any) -> None:
        super().__init__(name, **options)
        self.path = Path(self.options["model"])
        self.backend: str = self.options["backend"]
        if self.backend == "torchmetrics" and self.options["device"] != "cpu":
            # Its masks and packed-sequence lengths are made on the CPU whatever the network's
            # device; NISQA is small (a 6-layer CNN, two 64-d attention layers) and quick there.
            raise ConfigError(
                f"judge {self.name!r}: backend 'torchmetrics' runs on device=cpu only (its NISQA "
                "port builds its masks on the CPU); use backend=nisqa for another device"
            )
        self._tm = _import_torchmetrics_nisqa(self.name, self.backend)
        if self.backend == "nisqa":
            self._nl = _import_nisqa_lib(self.name)
        self.args, state = self._read_checkpoint()
        self.architecture: str = self.args.get("model") or "NISQA"
        if self.architecture not in OUTPUTS:
            raise ConfigError(
                f"judge {self.name!r}: {self.path} is a {self.architecture!r} checkpoint; this "
                f"judge runs the single-ended models {sorted(OUTPUTS)} (NISQA_DE needs a "
                "reference signal)"
            )
        self.outputs = OUTPUTS[self.architecture]
        ms_sr = self.args.get("ms_sr")
        given = self.options["sample_rate"]
        if ms_sr and given and int(given) != int(ms_sr):
            raise ConfigError(
                f"judge {self.name!r}: option 'sample_rate' is {given} but the checkpoint "
                f"{self.path} was made for ms_sr={ms_sr}"
            )
        self.sample_rate = int(given or ms_sr) if (given or ms_sr) else None
        self.max_segments = int(self.options["max_segments"] or self.args["ms_max_segments"])
        self._network = self._build(state)

    # --- loading ------------------------------------------------------------------------------

    def _read_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        import pickle

        import torch

        try:
            ckpt = torch.load(self.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"judge {self.name!r}: option 'model': {self.path} is not a NISQA checkpoint "
                f"readable with torch.load(weights_only=True) ({type(e).__name__}: {first}); "
                "if it is a trusted NISQA file holding other Python objects, keep its 'args' and "
                "'model_state_dict' only: torch.save({k: torch.load(f, weights_only=False)[k] "
                "for k in ('args', 'model_state_dict')}, out)"
            ) from None
        ok = (
            isinstance(ckpt, dict)
            and isinstance(ckpt.get("args"), dict)
            and isinstance(ckpt.get("model_state_dict"), dict)
        )
        if not ok:
            found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ConfigError(
                f"judge {self.name!r}: option 'model': {self.path} is not a NISQA checkpoint "
                f"(a dict with 'args' and 'model_state_dict'; found {found})"
            )
        missing = [k for k in FEATURE_ARGS if k not in ckpt["args"]]
        if missing:
            raise ConfigError(
                f"judge {self.name!r}: option 'model': the args of {self.path} lack {missing}"
            )
        return dict(ckpt["args"]), ckpt["model_state_dict"]

    def _build(self, state: dict[str, Any]) -> Any:
        import torch

        if self.backend == "torchmetrics":
            net = self._build_torchmetrics()
        else:
            cls = getattr(self._nl, self.architecture)
            params = inspect.signature(cls).parameters
            net = cls(**{k: v for k, v in self.args.items() if k in params})
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:300]
            raise ConfigError(
                f"judge {self.name!r}: option 'model': the weights in {self.path} do not fit the "
                f"{self.architecture} network its args describe ({detail})"
            ) from None
        return net.to(torch.device(self.options["device"])).eval()

    def _build_torchmetrics(self) -> Any:
        import torch

        a, tm = self.args, self._tm
        unsupported = {
            "cnn_model": (a.get("cnn_model"), "adapt"),
            "cnn_fc_out_h": (a.get("cnn_fc_out_h"), None),
            "td": (a.get("td"), "self_att"),
            "td_sa_pos_enc": (bool(a.get("td_sa_pos_enc")), False),
            "td_2": (a.get("td_2") or "skip", "skip"),
            "pool": (a.get("pool"), "att"),
        }
        bad = {k: v for k, (v, want) in unsupported.items() if v != want}
        if a.get("pool_att_h") is None:
            bad["pool_att_h"] = None
        if bad:
            raise ConfigError(
                f"judge {self.name!r}: {self.path} uses {bad}, which torchmetrics' NISQA port "
                "lacks (it has the NISQA v2.0 network: adapt CNN, self_att, att pooling); use "
                f"backend=nisqa: {INSTALL['nisqa']}"
            )
        if self.architecture == "NISQA_DIM":
            return tm._NISQADIM(a)

        class _NISQA(torch.nn.Module):
            # The official one-output NISQA (NISQA_lib.NISQA: cnn -> time_dependency ->
            # [time_dependency_2 = skip] -> pool), made of torchmetrics' modules, whose
            # parameter names are the official ones; torchmetrics has no class for it.
            def __init__(self, args: dict[str, Any]) -> None:
                super().__init__()
                self.cnn = tm._Framewise(args)
                self.time_dependency = tm._TimeDependency(args)
                self.pool = tm._Pooling(args)

            def forward(self, x: Any, n_wins: Any) -> Any:
                x = self.cnn(x, n_wins)
                x, n_wins = self.time_dependency(x, n_wins)
                return self.pool(x, n_wins)

        return _NISQA(a)

    # --- identity -----------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        package = "torchmetrics" if self.backend == "torchmetrics" else "nisqa"
        ident: dict[str, Any] = {
            **self._identity_head(package),
            "backend": self.backend,
            "model": {
                "path": str(self.path),
                "sha256": path_sha256(self.path),
                "architecture": self.architecture,
                "outputs": list(self.outputs),
            },
            "license": LICENSE,
            "input": (
                {"sample_rate": self.sample_rate, "resampler": RESAMPLER}
                if self.sample_rate
                else {"sample_rate": "each audio's own (not resampled)"}
            ),
            "features": {k: self.args[k] for k in FEATURE_ARGS if k != "ms_max_segments"},
            "features_code": "torchmetrics.functional.audio.nisqa",
            "torchmetrics": package_version("torchmetrics"),
            "torch": package_version("torch"),
            "librosa": package_version("librosa"),
        }
        return ident

    # --- scoring ------------------------------------------------------------------------------

    def predict(
        self,
        audios: Sequence[Audio],
        stats: ExecStats | None = None,
        cache: ResultCache | None = None,
        desc: str | None = None,
    ) -> list[dict[str, float]]:
        """The checkpoint's outputs (``nisqa``; with ``nisqa.tar`` also ``nisqa_noi``,
        ``nisqa_dis``, ``nisqa_col``, ``nisqa_loud``) for each audio, in order, through the
        executor (cached, deduplicated); NaN for a clip shorter than one segment."""
        return run_judge(self, "predict", self._predict, audios, stats, cache, desc)

    def _predict(self, requests: list[JudgeRequest]) -> list[dict[str, float]]:
        return self.score_batch([(r.audio.samples, r.audio.sample_rate) for r in requests])

    def score_batch(self, clips: list[tuple[np.ndarray, int]]) -> list[dict[str, float]]:
        """Scores of ``(samples, sample_rate)`` clips in one padded batch, uncached."""
        import torch

        segments: list[Any] = []
        counts: list[int] = []
        for samples, rate in clips:
            seg, n = self._segments(samples, rate)
            segments.append(seg)
            counts.append(n)
        live = [i for i, n in enumerate(counts) if n > 0]
        out = [dict.fromkeys(self.outputs, math.nan) for _ in clips]
        if not live:
            return out
        width = max(counts[i] for i in live)
        x = torch.stack([segments[i][:width] for i in live])
        if self.backend == "nisqa":
            x = x.unsqueeze(2)  # the official layout: (batch, segment, channel=1, mel, frame)
        n_wins = torch.tensor([counts[i] for i in live], dtype=torch.long)
        device = torch.device(self.options["device"])
        with torch.inference_mode():
            # the official modules move n_wins where each needs it (cpu, backend torchmetrics)
            y = self._network(x.to(device), n_wins.to(device)).float().cpu().numpy()
        for row, i in zip(y, live, strict=True):
            out[i] = {k: float(v) for k, v in zip(self.outputs, row, strict=True)}
        return out

    def _segments(self, samples: np.ndarray, rate: int) -> tuple[Any, int]:
        """The clip's mel segments, padded to ``max_segments`` (torchmetrics' functions), and
        their count (0: too short for one segment)."""
        import torch

        x = np.ascontiguousarray(samples, dtype=np.float32)
        spec = self._tm._get_librosa_melspec(x[None], int(rate), self.args)
        frames = spec.shape[-1]
        if frames < int(self.args["ms_seg_length"]):
            return None, 0
        hop = int(self.args["ms_seg_hop_length"])
        n = math.ceil((frames - (int(self.args["ms_seg_length"]) - 1)) / hop)
        if n > self.max_segments:
            raise DataError(
                f"judge {self.name!r}: a {x.size / rate:.1f} s clip makes {n} NISQA segments, "
                f"more than max_segments={self.max_segments} (the official code refuses it too); "
                f"give the judge max_segments={n} or more (padding never changes a score)"
            )
        args = {**self.args, "ms_max_segments": self.max_segments}
        seg, n_wins = self._tm._segment_specs(torch.from_numpy(spec), args)
        assert int(n_wins) == n
        return seg[0], n


def _import_torchmetrics_nisqa(judge: str, backend: str) -> Any:
    """``torchmetrics.functional.audio.nisqa`` with the parts this judge uses, or a one-line
    ConfigError saying what to install."""
    try:
        import torchmetrics.functional.audio.nisqa as tm
    except ImportError as e:
        raise ConfigError(
            f"judge {judge!r} needs torchmetrics (NISQA's mel front end, and its network for "
            f"backend 'torchmetrics'): {INSTALL[backend]} ({type(e).__name__}: {e})"
        ) from None
    names = ("_get_librosa_melspec", "_segment_specs", "_NISQADIM", "_Framewise")
    names += ("_TimeDependency", "_Pooling")
    missing = [n for n in names if not hasattr(tm, n)]
    if missing:
        raise ConfigError(
            f"judge {judge!r}: torchmetrics {package_version('torchmetrics')} lacks the NISQA "
            f"internals this judge was written against ({missing}): {INSTALL[backend]}"
        )
    if getattr(tm, "librosa", None) is None:
        raise ConfigError(
            f"judge {judge!r}: torchmetrics' NISQA needs librosa and requests installed: "
            f"{INSTALL[backend]}"
        )
    return tm


def _import_nisqa_lib(judge: str) -> Any:
    try:
        import nisqa.NISQA_lib as nl
    except ImportError as e:
        raise ConfigError(
            f"judge {judge!r}: backend 'nisqa' needs the official NISQA code: {INSTALL['nisqa']} "
            f"({type(e).__name__}: {e})"
        ) from None
    return nl
