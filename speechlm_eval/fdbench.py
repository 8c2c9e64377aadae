"""Full-Duplex-Bench metrics (v1 and v1.5 timing), as the official scorer computes them.

Source: ``DanielLin94144/Full-Duplex-Bench``, folder ``v1_v1.5/evaluation``
(``eval_pause_handling.py``, ``eval_smooth_turn_taking.py``, ``eval_user_interruption.py``,
``eval_backchannel.py``, ``get_timing.py``), read at commit d7336bd (2026-04-15). The rules
are re-written here over plain numbers and cross-checked against that code run side by
side (``tests/test_fdbench.py``). Inputs:

- ``words``: the ASR's word timestamps of the model's output channel, ``(text, start,
  end)`` in seconds on the output's timeline (the official ``output.json`` ``chunks``).
  ``end`` may be None, as some ASR back ends give; handled as the official pause-handling
  scorer does (the other official scorers would fail on it). The published numbers depend
  on the ASR (CrisperWhisper in arXiv v1, parakeet-tdt-0.6b-v2 since 2025-06-05): record it.
- ``segments``: Silero VAD speech segments ``(start, end)`` in seconds. The official
  backchannel scorer calls ``get_speech_timestamps(..., return_seconds=True)`` with Silero's
  defaults, which rounds to 0.1 s: :func:`silero_seconds` does the same to exact segments.
  It assumes 16 kHz audio; resample before the VAD (at 24 kHz the official times are
  scaled by 1.5).

Rules (thresholds are parameters, defaults the official ones):

- **TOR** (take-over): no words -> 0; else duration = last word end - first word start;
  duration < 1 s and at most 3 words -> 0 (a backchannel, not a turn), else 1.
- **Pause handling**: TOR of the whole output, mean over samples (lower is better).
- **Smooth turn-taking**: TOR, and latency = first word start - ``turn_taking.json[0]
  .timestamp[0]`` (the user's turn end), negative values clipped to 0, mean over TOR = 1
  samples only.
- **User interruption**: the same on the output cropped at the interruption end (the ASR
  runs on ``output[int(end * sr):]`` and its timestamps are shifted by ``end``; see
  :func:`shift_words`); latency from ``interrupt.json[0].timestamp[1]``. The relevance
  rating (an LLM judge) is not computed here.
- **Backchannel**: over the VAD segments in order, a segment longer than 3 s sets TOR = 1
  and stops the scan; otherwise it is a backchannel candidate, and TOR is set from it
  alone (more than 3 words -> 1; shorter than 1 s with at most 2 words -> 0; else 1), so
  the last candidate decides. Frequency = candidates / output duration (s). JSD: the
  candidates' 0.2 s bins (``int(t / 0.2)``, both ends inclusive) counted over
  ``int(duration / 0.2) + 1`` bins, + 1e-10, normalised; the ground-truth distribution
  linearly interpolated to that length; ``scipy.spatial.distance.jensenshannon`` (the JS
  *distance*, natural log); no candidate -> 1. Means and population std over samples.
- **v1.5 timing** (``get_timing.py``): VAD segments merged across silences of at most
  0.6 s (user) / 0.5 s (model); stop intervals = overlaps of user and model segments (the
  shortest per end time, ms); response intervals = [user segment end, next model segment
  start] (the shortest per model start). No official aggregation: the latencies are the
  interval lengths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError

TURN_DURATION = 1.0  # s; official turn_duration_threshold
TURN_WORDS = 3  # official turn_num_words_threshold
BC_LONG = 3.0  # s; a VAD segment longer than this is a turn (official time_threshold)
BC_WINDOW = 0.2  # s; JSD bin width (official window_size)
BC_EPS = 1e-10  # official epsilon
USER_MERGE_GAP = 0.6  # s; v1.5 get_timing.py (its comment says 300 ms)
MODEL_MERGE_GAP = 0.5  # s; v1.5 get_timing.py (its comment says 50 ms)

Word = tuple[str, float, float | None]
Segment = tuple[float, float]


def _words(words: Sequence[Sequence[Any]], where: str) -> list[Word]:
    out = []
    for i, w in enumerate(words):
        try:
            text, start, end = w
        except (TypeError, ValueError):
            raise DataError(f"{where}: word {i} must be (text, start, end), got {w!r}") from None
        if not isinstance(start, (int, float)) or not math.isfinite(start):
            raise DataError(f"{where}: word {i} has no finite start time: {w!r}")
        if end is not None and (not isinstance(end, (int, float)) or not math.isfinite(end)):
            raise DataError(f"{where}: word {i} has a bad end time: {w!r}")
        out.append((str(text), float(start), None if end is None else float(end)))
    return out


def shift_words(words: Sequence[Sequence[Any]], offset: float) -> list[Word]:
    """Word times moved by ``offset`` s (the official interruption ASR transcribes the output
    from the interruption end on and adds that end to every timestamp)."""
    return [(t, s + offset, None if e is None else e + offset) for t, s, e in _words(words, "")]


def take_over(
    words: Sequence[Sequence[Any]],
    duration_threshold: float = TURN_DURATION,
    max_words: int = TURN_WORDS,
) -> int:
    """The official TOR of one output: 0 (no turn taken) or 1 (see the module docstring)."""
    w = _words(words, "words")
    if not w:
        return 0
    last = w[-1][2] if w[-1][2] is not None else w[-1][1]
    duration = last - w[0][1]
    if duration < duration_threshold and len(w) <= max_words:
        return 0
    return 1


@dataclass(frozen=True)
class TurnResult:
    """TOR over ``n`` samples and, where there is an onset, the latency (s, clipped at 0)
    over the ``n_latency`` samples with TOR = 1 (NaN when none); ``tors`` and ``latencies``
    per sample (latency None where TOR = 0)."""

    tor: float
    n: int
    latency: float
    n_latency: int
    tors: list[int]
    latencies: list[float | None]

    @property
    def n_excluded(self) -> int:
        """Samples left out of the latency (TOR = 0)."""
        return self.n - self.n_latency


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _turns(
    samples: Sequence[tuple[Sequence[Sequence[Any]], float | None]],
    duration_threshold: float,
    max_words: int,
) -> TurnResult:
    if not samples:
        raise DataError("no samples to score")
    tors, lats = [], []
    for words, ref in samples:
        w = _words(words, "words")
        tor = take_over(w, duration_threshold, max_words)
        tors.append(tor)
        lats.append(max(w[0][1] - ref, 0.0) if tor and ref is not None else None)
    got = [x for x in lats if x is not None]
    return TurnResult(_mean(tors), len(tors), _mean(got), len(got), tors, lats)


def pause_handling(
    outputs: Sequence[Sequence[Sequence[Any]]],
    duration_threshold: float = TURN_DURATION,
    max_words: int = TURN_WORDS,
) -> TurnResult:
    """Pause handling: TOR of each output's words; lower is better (no latency)."""
    return _turns([(w, None) for w in outputs], duration_threshold, max_words)


def smooth_turn_taking(
    samples: Sequence[tuple[Sequence[Sequence[Any]], float]],
    duration_threshold: float = TURN_DURATION,
    max_words: int = TURN_WORDS,
) -> TurnResult:
    """Smooth turn-taking: ``(words, turn_end)`` per sample, ``turn_end`` =
    ``turn_taking.json[0]["timestamp"][0]``; TOR (higher is better) and latency."""
    return _turns(samples, duration_threshold, max_words)


def user_interruption(
    samples: Sequence[tuple[Sequence[Sequence[Any]], float]],
    duration_threshold: float = TURN_DURATION,
    max_words: int = TURN_WORDS,
) -> TurnResult:
    """User interruption: ``(words, interrupt_end)`` per sample, the words of the output
    cropped at ``interrupt_end`` = ``interrupt.json[0]["timestamp"][1]`` on the absolute
    timeline (:func:`shift_words`); TOR and latency."""
    return _turns(samples, duration_threshold, max_words)


def silero_seconds(
    segments: Sequence[Sequence[float]], duration_s: float, ndigits: int = 1
) -> list[Segment]:
    """Exact segments in seconds as Silero's ``return_seconds=True`` gives them (its
    default ``time_resolution=1``): rounded to ``ndigits``, start >= 0, end <= duration."""
    return [(max(round(a, ndigits), 0), min(round(b, ndigits), duration_s)) for a, b in segments]


def _segment_words(words: list[Word], start: float, end: float) -> list[str]:
    """Words the official backchannel scorer assigns to the VAD segment [start, end]."""
    out = []
    for text, ts, te in words:
        if te is None and ts < end:
            continue
        if te is None:
            te = ts
        if (ts >= start and te <= end) or (ts <= end < te) or (ts <= start < te):
            out.append(text)
    return out


@dataclass(frozen=True)
class BackchannelSample:
    tor: int
    frequency: float  # candidates per second of output
    jsd: float
    candidates: list[Segment]


def backchannel_sample(
    segments: Sequence[Sequence[float]],
    words: Sequence[Sequence[Any]],
    duration_s: float,
    gt_distribution: Sequence[float],
    long_segment: float = BC_LONG,
    window: float = BC_WINDOW,
    eps: float = BC_EPS,
) -> BackchannelSample:
    """One backchannel sample: the output's VAD ``segments`` (as :func:`silero_seconds`
    gives them), its ``words``, its duration and the sample's ground-truth distribution
    (``icc_gt_distribution.json[id]``)."""
    from scipy.interpolate import interp1d
    from scipy.spatial.distance import jensenshannon

    if not (math.isfinite(duration_s) and duration_s > 0):
        raise DataError(f"backchannel: output duration must be positive, got {duration_s!r}")
    if len(gt_distribution) < 2:
        raise DataError("backchannel: the ground-truth distribution needs at least 2 bins")
    w = _words(words, "words")
    tor = 0
    cands: list[Segment] = []
    for a, b in segments:
        d = b - a
        if d > long_segment:
            tor = 1
            break
        n = len(_segment_words(w, a, b))
        # Official: > 3 words -> 1; else < 1 s -> (0 if <= 2 words else 1); else 1. That is:
        # 0 exactly when the segment is under 1 s with at most 2 words.
        tor = 0 if d < 1 and n <= 2 else 1
        cands.append((a, b))
    freq = len(cands) / duration_s
    if not cands:
        return BackchannelSample(tor, freq, 1.0, cands)
    bins = np.zeros(int(duration_s / window) + 1)
    for a, b in cands:
        lo, hi = int(a / window), int(b / window)
        bins[lo : min(hi, len(bins) - 1) + 1] += 1
    hist = bins + eps
    hist = hist / np.sum(hist)
    gt = interp1d(
        np.linspace(0, 1, len(gt_distribution)),
        np.asarray(gt_distribution, float),
        kind="linear",
        fill_value="extrapolate",
    )(np.linspace(0, 1, len(hist)))
    return BackchannelSample(tor, freq, float(jensenshannon(hist, gt)), cands)


@dataclass(frozen=True)
class BackchannelResult:
    """Means and population standard deviations over ``n`` samples."""

    tor: float
    tor_std: float
    frequency: float
    frequency_std: float
    jsd: float
    jsd_std: float
    n: int
    n_without_backchannel: int  # samples with no candidate (their JSD is 1)
    samples: list[BackchannelSample]


def backchannel(samples: Sequence[BackchannelSample]) -> BackchannelResult:
    """Aggregate :func:`backchannel_sample` results as the official scorer does."""
    if not samples:
        raise DataError("no samples to score")
    t = np.array([s.tor for s in samples], float)
    f = np.array([s.frequency for s in samples], float)
    j = np.array([s.jsd for s in samples], float)
    return BackchannelResult(
        float(t.mean()),
        float(t.std()),
        float(f.mean()),
        float(f.std()),
        float(j.mean()),
        float(j.std()),
        len(samples),
        sum(not s.candidates for s in samples),
        list(samples),
    )


def merge_segments(segments: Sequence[Sequence[float]], max_gap: float) -> list[Segment]:
    """v1.5: segments sorted and merged across silences of at most ``max_gap`` s."""
    segs = sorted((float(a), float(b)) for a, b in segments)
    out: list[Segment] = []
    for a, b in segs:
        if out and a - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class Timing:
    """v1.5 timing of one sample: ``stop`` intervals (user and model overlap: how long the
    model kept talking) and ``response`` intervals (user end -> next model start), each
    ``[start, end]`` rounded to ms as the official ``latency_intervals.json``."""

    stop: list[list[float]]
    response: list[list[float]]

    @property
    def stop_latencies(self) -> list[float]:
        return [e - s for s, e in self.stop]

    @property
    def response_latencies(self) -> list[float]:
        return [e - s for s, e in self.response]


def timing(
    user_segments: Sequence[Sequence[float]],
    model_segments: Sequence[Sequence[float]],
    user_merge_gap: float = USER_MERGE_GAP,
    model_merge_gap: float = MODEL_MERGE_GAP,
) -> Timing:
    """v1.5 stop and response intervals from the input's and output's VAD segments (s)."""
    user = merge_segments(user_segments, user_merge_gap)
    model = merge_segments(model_segments, model_merge_gap)
    raw = []
    i = j = 0
    while i < len(user) and j < len(model):
        s, e = max(user[i][0], model[j][0]), min(user[i][1], model[j][1])
        if e > s:
            raw.append((s, e))
        if user[i][1] < model[j][1]:
            i += 1
        else:
            j += 1
    best: dict[int, tuple[float, float]] = {}
    for s, e in raw:  # the shortest interval per end time (ms)
        k = round(e * 1000)
        if k not in best or e - s < best[k][1] - best[k][0]:
            best[k] = (s, e)
    stop = [[round(s, 3), round(e, 3)] for s, e in sorted(best.values(), key=lambda x: x[1])]
    starts = [s for s, _ in model]
    resp: dict[int, list[float]] = {}
    for _, ue in user:
        nxt = next((s for s in starts if s > ue), None)
        if nxt is None:
            continue
        k = round(nxt * 1000)
        cand = [round(ue, 3), round(nxt, 3)]
        if k not in resp or cand[0] > resp[k][0]:  # the shorter gap: the later user end
            resp[k] = cand
    return Timing(stop, [iv for _, iv in sorted(resp.items(), key=lambda kv: kv[1][1])])


def gt_distribution(data: Any, key: str, where: str) -> list[float]:
    """The ground-truth backchannel distribution of sample ``key`` from the parsed
    ``icc_gt_distribution.json`` (an object of sample id -> list of bin weights)."""
    if not isinstance(data, Mapping):
        raise DataError(f"{where}: expected an object of sample id -> distribution")
    if key not in data:
        raise DataError(f"{where}: no distribution for sample {key!r}")
    dist = data[key]
    if (
        not isinstance(dist, list)
        or len(dist) < 2
        or not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in dist)
    ):
        raise DataError(f"{where}: sample {key!r}: expected a list of >= 2 non-negative numbers")
    return [float(x) for x in dist]
