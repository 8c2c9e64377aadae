"""gslm-mini's unit vocoder: frame-level units (50 Hz) -> WORLD parameters -> 16 kHz speech.

A unit-to-speech model in two parts, as GSLM's unit vocoders are (Lakhotia et al. 2021:
units -> mel spectrogram -> neural vocoder), with a classic vocoder in place of the neural
one because no neural vocoder's weights ship in a PyPI package here:

1. ``UnitToWorld`` (torch, trained by ``train.py``): unit embeddings -> non-causal dilated
   1-D convolutions at the unit rate (50 Hz, receptive field +-0.56 s) -> for each of the
   four 5 ms WORLD frames of a unit frame: the coded spectral
   envelope (``pyworld.code_spectral_envelope``), the band aperiodicity
   (``pyworld.code_aperiodicity``), a continuous log-F0 (interpolated through unvoiced
   frames) and a voicing logit. Targets are z-scored per dimension (statistics stored with
   the weights). Single target speaker: the Piper ``joe`` voice gslm-mini was trained on.
2. WORLD (``pyworld``, Morise et al. 2016) synthesises the waveform from those parameters.

WORLD analysis and synthesis are the library's (``pyworld``); what is written here is the
small network, its (de)normalisation and the frame bookkeeping, which no library does for
this unit set.

Frame bookkeeping: unit frame ``k`` (Whisper encoder frame, 20 ms) owns WORLD frames
``4k .. 4k+3`` (5 ms each), so ``T`` units give exactly ``320 T`` samples at 16 kHz
(``pyworld.synthesize`` returns ``frame_period * fs / 1000`` samples per frame).

Durations (``DurationTable``): the unit LM works on de-duplicated units, which carry no
duration. Continuations are expanded back to frames with each unit's mean run length on
the vocoder's training speech, rounded with error diffusion so the total duration is kept
and every unit lasts at least one frame. Resynthesis never needs it: it keeps the input's
own run lengths.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speechlm_eval.errors import ConfigError

__all__ = [
    "FORMAT",
    "DurationTable",
    "UnitToWorld",
    "UnitVocoder",
    "VocoderConfig",
    "WorldParams",
    "world_analysis",
    "world_f0",
    "world_synthesis",
]

FORMAT = "gslm-mini-vocoder/1"
SAMPLE_RATE = 16000
FRAME_PERIOD_MS = 5.0
UNIT_HOP = 320  # samples per unit frame (20 ms at 16 kHz)
WORLD_HOP = int(SAMPLE_RATE * FRAME_PERIOD_MS / 1000)  # 80 samples per WORLD frame
UPSAMPLE = UNIT_HOP // WORLD_HOP  # 4 WORLD frames per unit frame
F0_FLOOR, F0_CEIL = 60.0, 400.0  # Hz; wide enough for the male Piper voice and its emphasis


def _pyworld() -> Any:
    try:
        import pyworld
    except ImportError:
        raise ConfigError(
            "gslm-mini's vocoder needs pyworld (PyPI package pyworld-prebuilt, wheels for "
            "Linux/macOS/Windows): pip install 'speechlm-eval[judges]'"
        ) from None
    return pyworld


@dataclass(frozen=True)
class WorldParams:
    """WORLD parameters per 5 ms frame: coded envelope, band aperiodicity, F0 (Hz, 0 = unvoiced)."""

    coded_sp: np.ndarray  # (N, n_sp) float64
    bap: np.ndarray  # (N, n_bap) float64
    f0: np.ndarray  # (N,) float64


def world_analysis(wav: np.ndarray, n_sp: int) -> WorldParams:
    """WORLD analysis of 16 kHz audio: DIO + StoneMask F0, CheapTrick envelope, D4C aperiodicity.

    Returns ``4 * (len(wav) // 320)`` frames: the frames of the whole unit frames of the
    clip (WORLD frame ``i`` is centred on sample ``80 i``).
    """
    pw = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    n = UPSAMPLE * (x.size // UNIT_HOP)
    f0, t = pw.dio(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, t, SAMPLE_RATE)
    sp = pw.cheaptrick(x, f0, t, SAMPLE_RATE, f0_floor=F0_FLOOR)
    ap = pw.d4c(x, f0, t, SAMPLE_RATE)
    coded = pw.code_spectral_envelope(sp, SAMPLE_RATE, n_sp)
    bap = pw.code_aperiodicity(ap, SAMPLE_RATE)
    return WorldParams(coded_sp=coded[:n], bap=bap[:n], f0=f0[:n])


def world_f0(wav: np.ndarray) -> np.ndarray:
    """F0 (Hz, 0 = unvoiced) of 16 kHz audio per 5 ms frame, as :func:`world_analysis` finds it
    (DIO + StoneMask, 60-400 Hz): the F0 the vocoder was trained to predict. ``4 * (len(wav) //
    320)`` frames, WORLD frame ``i`` centred on sample ``80 i``."""
    pw = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    n = UPSAMPLE * (x.size // UNIT_HOP)
    f0, t = pw.dio(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    return np.asarray(pw.stonemask(x, f0, t, SAMPLE_RATE)[:n], dtype=np.float64)


def world_synthesis(params: WorldParams) -> np.ndarray:
    """16 kHz float32 waveform of ``80 * N`` samples from ``N`` WORLD frames."""
    pw = _pyworld()
    fft = pw.get_cheaptrick_fft_size(SAMPLE_RATE, F0_FLOOR)
    sp = pw.decode_spectral_envelope(np.ascontiguousarray(params.coded_sp), SAMPLE_RATE, fft)
    ap = pw.decode_aperiodicity(np.ascontiguousarray(params.bap), SAMPLE_RATE, fft)
    y = pw.synthesize(
        np.ascontiguousarray(params.f0, dtype=np.float64), sp, ap, SAMPLE_RATE, FRAME_PERIOD_MS
    )
    n = WORLD_HOP * len(params.f0)
    y = np.pad(y, (0, max(0, n - y.size)))[:n]
    return y.astype(np.float32)


def continuous_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log-F0 linearly interpolated through unvoiced frames, voiced flags as 0/1 floats).

    The interpolated contour is the usual target for F0 regression (Merlin, NNSVS): every
    frame has a value, the voicing decision is learned separately. A clip with no voiced
    frame gets log(100 Hz) throughout.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    out = np.full(f0.shape, math.log(100.0))
    if voiced.any():
        idx = np.flatnonzero(voiced)
        out = np.interp(np.arange(f0.size), idx, np.log(f0[idx]))
    return out, voiced.astype(np.float64)


def targets(params: WorldParams) -> np.ndarray:
    """Training target rows ``[coded_sp, bap, log-F0 (continuous), voiced]`` (float32)."""
    lf0, vuv = continuous_log_f0(params.f0)
    return np.concatenate([params.coded_sp, params.bap, lf0[:, None], vuv[:, None]], axis=1).astype(
        np.float32
    )


# --- the network -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VocoderConfig:
    """Architecture and WORLD coding of a ``UnitToWorld`` network (stored in ``config.json``)."""

    n_units: int
    n_sp: int = 40  # coded spectral envelope dimensions
    n_bap: int = 1  # band aperiodicities (1 at 16 kHz: pyworld.get_num_aperiodicities)
    channels: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4)
    kernel: int = 5
    dropout: float = 0.1

    @property
    def n_out(self) -> int:
        return self.n_sp + self.n_bap + 2

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VocoderConfig:
        d = dict(d)
        d["dilations"] = tuple(int(x) for x in d["dilations"])
        return cls(**d)


class _Block(nn.Module):
    """Pre-norm residual block: LayerNorm -> dilated conv -> GELU -> 1x1 conv -> dropout."""

    def __init__(self, ch: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(ch)
        pad = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(ch, ch, kernel, padding=pad, dilation=dilation)
        self.proj = nn.Conv1d(ch, ch, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return x + self.drop(self.proj(torch.nn.functional.gelu(self.conv(h))))


class UnitToWorld(nn.Module):
    """Frame-level units (B, T) -> normalised WORLD targets (B, 4T, n_sp + n_bap + 2).

    All the work is done at the unit rate (cheap enough to train on 2 CPU cores): each
    unit frame predicts its four 5 ms WORLD frames at once, and a depthwise convolution at
    the WORLD rate (initialised to the identity) smooths across the 20 ms boundaries.
    """

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_units, cfg.channels)
        self.blocks = nn.ModuleList(
            _Block(cfg.channels, cfg.kernel, d, cfg.dropout) for d in cfg.dilations
        )
        self.norm = nn.LayerNorm(cfg.channels)
        self.out = nn.Linear(cfg.channels, UPSAMPLE * cfg.n_out)
        self.smooth = nn.Conv1d(cfg.n_out, cfg.n_out, 5, padding=2, groups=cfg.n_out)
        with torch.no_grad():
            self.smooth.weight.zero_()
            self.smooth.weight[:, 0, 2] = 1.0
            self.smooth.bias.zero_()
        # Normalisation of the targets (set from the training data, saved with the weights).
        self.register_buffer("mean", torch.zeros(cfg.n_out))
        self.register_buffer("std", torch.ones(cfg.n_out))

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        x = self.embed(units).transpose(1, 2)  # (B, C, T)
        for b in self.blocks:
            x = b(x)
        y = self.out(self.norm(x.transpose(1, 2)))  # (B, T, 4 * n_out)
        bsz, t = units.shape
        y = y.reshape(bsz, t * UPSAMPLE, self.cfg.n_out)  # (B, 4T, n_out)
        return self.smooth(y.transpose(1, 2)).transpose(1, 2)

    @torch.inference_mode()
    def predict(self, units: np.ndarray) -> WorldParams:
        """WORLD parameters (4T frames) for one frame-level unit sequence of length T."""
        cfg = self.cfg
        u = torch.as_tensor(np.asarray(units, dtype=np.int64))[None]
        pred = self(u)[0].double()
        mean, std = self.mean.double(), self.std.double()
        a, b = cfg.n_sp, cfg.n_sp + cfg.n_bap
        y = pred * std + mean
        voiced = pred[:, b + 1] > 0  # logit > 0  <=>  p(voiced) > 0.5 (voicing is not z-scored)
        f0 = torch.where(voiced, torch.exp(y[:, b]), torch.zeros_like(y[:, b]))
        bap = torch.clamp(y[:, a:b], max=0.0)  # band aperiodicity is in dB, <= 0 by definition
        return WorldParams(coded_sp=y[:, :a].numpy(), bap=bap.numpy(), f0=f0.numpy())


# --- durations ---------------------------------------------------------------------------------


class DurationTable:
    """Mean run length (in 20 ms frames) of each unit, from de-duplicated training speech.

    Written by hand: it is a lookup table and a rounding rule, nothing a library provides.
    """

    def __init__(self, mean_frames: np.ndarray) -> None:
        m = np.asarray(mean_frames, dtype=np.float64)
        if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or np.any(m < 1.0):
            raise ValueError("duration table: expected finite mean run lengths >= 1, one per unit")
        self.mean_frames = m

    @classmethod
    def fit(cls, frame_units: list[np.ndarray], n_units: int) -> tuple[DurationTable, dict]:
        """Per-unit mean run length over utterances; unseen units get the overall mean."""
        total = np.zeros(n_units)
        count = np.zeros(n_units)
        for u in frame_units:
            values, lengths = run_lengths(u)
            np.add.at(total, values, lengths)
            np.add.at(count, values, 1)
        overall = total.sum() / max(count.sum(), 1)
        mean = np.where(count > 0, total / np.maximum(count, 1), overall)
        info = {
            "runs": int(count.sum()),
            "mean_run_frames": round(float(overall), 4),
            "units_unseen": int((count == 0).sum()),
        }
        return cls(np.maximum(mean, 1.0)), info

    def frames(self, units: np.ndarray) -> np.ndarray:
        """Integer frame count per de-duplicated unit (>= 1 each).

        Error diffusion: each count is the mean plus the rounding error carried so far,
        rounded, so the total stays within one frame of the sum of the means.
        """
        u = np.asarray(units, dtype=np.int64)
        out = np.empty(u.size, dtype=np.int64)
        carry = 0.0
        for i, unit in enumerate(u):
            out[i], carry = self.step(int(unit), carry)
        return out

    def step(self, unit: int, carry: float) -> tuple[int, float]:
        """Frame count of one more unit given the carried rounding error; the new carry."""
        x = float(self.mean_frames[unit])
        n = max(1, math.floor(x + carry + 0.5))
        return n, carry + x - n

    def expand(self, units: np.ndarray) -> np.ndarray:
        """Frame-level units: each de-duplicated unit repeated for its frame count."""
        u = np.asarray(units, dtype=np.int64)
        return np.repeat(u, self.frames(u))


def run_lengths(frame_units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each run, its length in frames) of a frame-level unit sequence."""
    u = np.asarray(frame_units, dtype=np.int64)
    if u.size == 0:
        return u, u
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    return u[starts], np.diff(np.r_[starts, u.size])


# --- the vocoder as shipped --------------------------------------------------------------------


class UnitVocoder:
    """Load / save / run a trained vocoder directory (``config.json``, ``model.safetensors``,
    ``durations.json``)."""

    CONFIG = "config.json"
    WEIGHTS = "model.safetensors"
    DURATIONS = "durations.json"

    def __init__(self, net: UnitToWorld, durations: DurationTable) -> None:
        if durations.mean_frames.size != net.cfg.n_units:
            raise ValueError(
                f"duration table has {durations.mean_frames.size} units, "
                f"the network {net.cfg.n_units}"
            )
        self.net = net.eval()
        self.durations = durations

    @property
    def n_units(self) -> int:
        return self.net.cfg.n_units

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / UNIT_HOP

    def __call__(self, frame_units: np.ndarray) -> np.ndarray:
        """16 kHz float32 speech, exactly 320 samples per unit frame."""
        u = np.asarray(frame_units, dtype=np.int64)
        if u.ndim != 1 or u.size == 0:
            raise ValueError(f"expected a non-empty 1-D unit sequence, got shape {u.shape}")
        if u.min() < 0 or u.max() >= self.n_units:
            raise ValueError(f"units must lie in 0..{self.n_units - 1}")
        return world_synthesis(self.net.predict(u))

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"format": FORMAT, "sample_rate": SAMPLE_RATE, **self.net.cfg.to_json()}
        cfg.update(extra or {})
        (folder / self.CONFIG).write_text(json.dumps(cfg, indent=2) + "\n")
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / self.WEIGHTS), metadata={"format": FORMAT})
        dur = {"unit_rate_hz": SAMPLE_RATE / UNIT_HOP}
        dur["mean_frames"] = [float(x) for x in self.durations.mean_frames]  # exact repr
        (folder / self.DURATIONS).write_text(json.dumps(dur, indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path) -> UnitVocoder:
        """A vocoder directory written by :meth:`save`; a ConfigError names what is wrong."""
        from safetensors.torch import load_file

        paths = [folder / cls.CONFIG, folder / cls.WEIGHTS, folder / cls.DURATIONS]
        for p in paths:
            if not p.is_file():
                raise ConfigError(f"gslm-mini vocoder: {p} is missing (rebuild with train.py)")
        try:
            raw = json.loads(paths[0].read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            fields = set(VocoderConfig.__dataclass_fields__)
            cfg = VocoderConfig.from_json({k: v for k, v in raw.items() if k in fields})
            net = UnitToWorld(cfg)
            net.load_state_dict(load_file(str(paths[1])), strict=True)
            dur = json.loads(paths[2].read_text(encoding="utf-8"))
            table = DurationTable(np.asarray(dur["mean_frames"], dtype=np.float64))
            return cls(net, table)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ConfigError(f"gslm-mini vocoder: cannot load {folder} ({e})") from None


# --- training ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of ``UnitToWorld``: a fixed number of steps (not a time limit: determinism)."""

    steps: int = 3000
    batch: int = 16  # segments per step
    segment: int = 100  # unit frames per segment (2 s)
    lr: float = 2e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    # Fraction of input unit frames replaced by a random unit in training: the vocoder must
    # not trust any single frame (units of other voices and sampled units are noisier than
    # the training voice's own), and it cannot memorise its 15-35 min of training speech.
    unit_noise: float = 0.05


def fit(
    utterances: list[tuple[np.ndarray, np.ndarray]],
    cfg: VocoderConfig,
    train: TrainConfig,
    seed: int,
    heldout: list[tuple[np.ndarray, np.ndarray]] | None = None,
    log_every: int = 100,
    eval_every: int = 0,
) -> tuple[UnitToWorld, dict[str, Any]]:
    """Train a ``UnitToWorld`` on ``(frame units (T,), targets (4T, n_out))`` pairs.

    Each step takes ``batch`` random segments of ``segment`` unit frames (utterances shorter
    than a segment are used whole and padded; padding is masked out of the loss).
    Deterministic for a given seed and thread count on CPU: seeded initialisation and
    segment choice (``train.py`` also sets ``torch.use_deterministic_algorithms``; not done
    here because its first call imports torch's compiler stack, ~20 s).
    """
    for u, y in utterances:
        if y.shape != (UPSAMPLE * len(u), cfg.n_out):
            raise ValueError(f"targets {y.shape} do not match {len(u)} units x {cfg.n_out}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UnitToWorld(cfg)
    allt = np.concatenate([y for _, y in utterances])
    mean = allt.mean(0)
    std = allt.std(0) + 1e-5
    b = cfg.n_sp + cfg.n_bap + 1  # the voicing column is a probability target: not z-scored
    mean[b], std[b] = 0.0, 1.0
    net.mean.copy_(torch.from_numpy(mean))
    net.std.copy_(torch.from_numpy(std))
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in net.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": train.weight_decay},
            {"params": rest, "weight_decay": 0},
        ],
        lr=train.lr,
        betas=(0.9, 0.98),
    )
    warm = max(1, int(train.warmup * train.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return train.lr * (step + 1) / warm
        t = (step - warm) / max(1, train.steps - warm)
        return train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    lengths = np.array([len(u) for u, _ in utterances])
    weights = lengths / lengths.sum()  # segments drawn in proportion to length
    seg = train.segment
    history: list[dict[str, float]] = []
    net.train()
    for step in range(train.steps):
        units = np.zeros((train.batch, seg), dtype=np.int64)
        tgt = np.zeros((train.batch, UPSAMPLE * seg, cfg.n_out), dtype=np.float32)
        mask = np.zeros((train.batch, UPSAMPLE * seg), dtype=np.float32)
        for i, j in enumerate(rng.choice(len(utterances), size=train.batch, p=weights)):
            u, y = utterances[j]
            start = int(rng.integers(0, max(1, len(u) - seg + 1)))
            piece = u[start : start + seg]
            units[i, : len(piece)] = piece
            tgt[i, : UPSAMPLE * len(piece)] = y[UPSAMPLE * start : UPSAMPLE * (start + len(piece))]
            mask[i, : UPSAMPLE * len(piece)] = 1.0
        if train.unit_noise > 0:
            swap = rng.random(units.shape) < train.unit_noise
            units[swap] = rng.integers(0, cfg.n_units, size=int(swap.sum()))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss, parts = _masked_loss(net, torch.from_numpy(units), torch.from_numpy(tgt), mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        history.append(parts)
        if log_every and (step % log_every == 0 or step == train.steps - 1):
            avg = {k: round(float(np.mean([h[k] for h in history[-log_every:]])), 4) for k in parts}
            print(f"  vocoder step {step}/{train.steps} {avg}", flush=True)
        if heldout and eval_every and step % eval_every == eval_every - 1:
            print(f"  vocoder step {step} held-out {evaluate(net, heldout)}", flush=True)
            net.train()
    net.eval()
    last = history[-min(len(history), 50) :]
    info: dict[str, Any] = {
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "train_utterances": len(utterances),
        "train_unit_frames": int(lengths.sum()),
        "final_train_loss_avg50": {
            k: round(float(np.mean([h[k] for h in last])), 4) for k in last[0]
        },
    }
    if heldout:
        info["heldout"] = evaluate(net, heldout)
    return net, info


def _masked_loss(
    net: UnitToWorld, units: torch.Tensor, target: torch.Tensor, mask: np.ndarray
) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = net.cfg
    m = torch.from_numpy(mask)
    n = m.sum().clamp(min=1)
    pred = net(units)
    z = (target - net.mean) / net.std
    a, b = cfg.n_sp, cfg.n_sp + cfg.n_bap
    se = (pred - z) ** 2
    sp = (se[..., :a].mean(-1) * m).sum() / n
    bap = (se[..., a:b].mean(-1) * m).sum() / n
    lf0 = (se[..., b] * m).sum() / n
    bce = nn.functional.binary_cross_entropy_with_logits(
        pred[..., b + 1], target[..., b + 1], reduction="none"
    )
    vuv = (bce * m).sum() / n
    total = sp + bap + lf0 + vuv
    parts = {"sp": sp, "bap": bap, "lf0": lf0, "vuv": vuv}
    return total, {k: float(v.detach()) for k, v in parts.items()}


@torch.inference_mode()
def evaluate(net: UnitToWorld, utterances: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Held-out errors, each utterance whole as at inference.

    ``mcd_db``: mel-cepstral-style distortion of the coded envelope (dB, excluding c0);
    ``f0_rmse_cents`` on frames voiced in both; ``vuv_error``: voicing decision error rate.
    """
    cfg = net.cfg
    a, b = cfg.n_sp, cfg.n_sp + cfg.n_bap
    net.eval()
    mcd, cents, vuv_err, n_frames, n_voiced = 0.0, 0.0, 0.0, 0, 0
    for u, y in utterances:
        p = net.predict(u)
        t_sp = y[:, :a].astype(np.float64)
        # Coded envelope rows are log-power cepstrum-like coefficients (pyworld's coding);
        # report the usual MCD constant on them (a relative number: lower is better).
        d = p.coded_sp[:, 1:] - t_sp[:, 1:]
        mcd += float((10.0 / math.log(10) * np.sqrt(2 * (d**2).sum(1))).sum())
        tv = y[:, b + 1] > 0.5
        pv = p.f0 > 0
        vuv_err += float((tv != pv).sum())
        both = tv & pv
        if both.any():
            ratio = np.log2(p.f0[both] / np.exp(y[both, b]))
            cents += float(((1200 * ratio) ** 2).sum())
            n_voiced += int(both.sum())
        n_frames += len(y)
    return {
        "utterances": len(utterances),
        "mcd_db": round(mcd / max(1, n_frames), 3),
        "f0_rmse_cents": round(math.sqrt(cents / max(1, n_voiced)), 1),
        "vuv_error": round(vuv_err / max(1, n_frames), 4),
    }
