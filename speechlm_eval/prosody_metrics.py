"""pGSLM prosody metrics as pure functions: stream space (pGSLM's own) and audio space (ours).

Source of the definitions: fairseq ``examples/textless_nlp/pgslm`` (Kharitonov et al., ACL 2022,
"Text-Free Prosody-Aware Generative Spoken Language Modeling"), read at fairseq 3d262bb:
``eval/cont_metrics.py`` (metrics), ``fairseq/data/codedataset.py`` (``parse_code``,
``align_f0_to_durations``, ``interpolate_f0``, ``CodeDataset.preprocess_f0``,
``naive_quantize``), ``data_utils.py`` (``F0Stat``), ``quantize_f0.py`` (bin edges),
``naive_decoder.py`` (``Naive_F0_Decoder``) and ``fairseq/criterions/speech_ulm_criterion.py``
(``mae_loss``). The code here is written anew from those definitions.

Two families, deliberately named apart: their values are not comparable.

**Stream space** (:func:`min_mae`, :func:`pooled_std`, :func:`prosody_correlation`,
:func:`f0_correlation`, :func:`duration_correlation`): pGSLM's metrics, computed on the model's
own streams, one value per deduplicated unit segment: durations in unit frames (20 ms for
HuBERT 50 Hz), F0 as the speaker-mean-normalised log-F0 of the segment (:func:`segment_f0`,
:func:`normalise_log_f0`; quantised models are dequantised with :func:`dequantise_f0_bins`).
Samples and targets are position-aligned because pGSLM teacher-forces the other streams, so
every sample has the ground truth's segments. Only a model that exposes these streams can be
scored this way.

**Audio space** (``audio_*``): F0 re-extracted from the generated audio by a pitch tracker
(e.g. :mod:`speechlm_eval.judges.pitch`), so it works for any model. A generated continuation
and the ground-truth continuation are not time-aligned (different content, length and timing),
so a position-wise error is meaningless; these are utterance-level re-derivations of ours, not
pGSLM's:

- utterance statistic (:func:`audio_f0_utterance_mean`): the mean, over the voiced frames of
  one audio, of ``log(F0) - speaker_log_f0_mean`` (no interpolation: frame-level voiced values
  only). The speaker mean is the *ground-truth* speaker's (:func:`speaker_log_f0_stats` over that
  speaker's reference audio), also for generated audio, so a model that shifts the register is
  penalised. An audio with no voiced frame has no value (``None``) and is counted as excluded.
- :func:`audio_f0_min_mae`: per prompt, the minimum over its samples of
  ``|generated mean - ground-truth continuation mean|``, averaged over prompts (pGSLM's "best of
  N samples" correctness, at utterance level).
- :func:`audio_f0_correlation`: Pearson r between the prompt's mean and each generated
  continuation's mean, the prompt value repeated once per sample, as pGSLM pairs them.
- :func:`audio_f0_pooled_std`: the std of all voiced frames' normalised log-F0 pooled over all
  continuations (frames, not segments: the audio analogue of pGSLM's pooled segment std);
  compare the generated value with the same function on the ground-truth continuations.
- Duration analogue: re-encode the audio with the model's unit encoder (the representation
  pGSLM's duration stream is built from), deduplicate with :func:`deduplicate_units`, and use
  the mean run length per continuation (:func:`utterance_mean_duration`) in
  :func:`audio_duration_min_mae`, :func:`audio_duration_correlation` and the run lengths in
  :func:`audio_duration_pooled_std`. Caveats: the content is not teacher-forced, so durations
  mix tempo with content; runs cut by the continuation boundaries are counted as they are.

Exclusions are explicit: no NaN enters a mean. Values that cannot exist (a prompt with no voiced
frame, an empty continuation) are dropped and counted in the returned dict
(``excluded_prompts``, ``excluded_samples``, ``excluded_utterances``); an aggregate left with
nothing is ``None``. Non-finite inputs are rejected (``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "audio_duration_correlation",
    "audio_duration_min_mae",
    "audio_duration_pooled_std",
    "audio_f0_correlation",
    "audio_f0_min_mae",
    "audio_f0_pooled_std",
    "audio_f0_utterance_mean",
    "deduplicate_units",
    "dequantise_f0_bins",
    "duration_correlation",
    "f0_bin_edges",
    "f0_correlation",
    "interpolated_span",
    "min_mae",
    "normalise_log_f0",
    "pooled_std",
    "prosody_correlation",
    "quantise_f0",
    "segment_f0",
    "speaker_log_f0_stats",
    "stream_mean",
    "utterance_mean_duration",
]

# pGSLM aligns F0 to durations with a tolerance of 5 unit frames (prepare_dataset._align_f0).
DEFAULT_TOLERANCE_UNIT_FRAMES = 5

ArrayLike = Any  # numpy array, or a sequence numpy can read


# --------------------------------------------------------------------------- helpers


def _vector(values: ArrayLike, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return x


def _f0_vector(values: ArrayLike, what: str) -> np.ndarray:
    x = _vector(values, what)
    if (x < 0).any():
        raise ValueError(f"{what}: F0 must be >= 0 (0 marks an unvoiced frame)")
    return x


def _prompt_blocks(values: ArrayLike, what: str) -> list[np.ndarray]:
    """(prompts x samples x positions) array or a list of per-prompt (samples x positions)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 3:
            raise ValueError(f"{what}: expected (prompts, samples, positions), got {values.shape}")
        blocks = list(values)
    else:
        blocks = list(values)
    out = []
    for i, b in enumerate(blocks):
        a = np.asarray(b, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"{what}[{i}]: expected (samples, positions), got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{what}[{i}]: no samples")
        if not np.isfinite(a).all():
            raise ValueError(f"{what}[{i}]: contains NaN or infinite values")
        out.append(a)
    if not out:
        raise ValueError(f"{what}: no prompts")
    return out


def _prompt_masks(mask: ArrayLike | None, blocks: list[np.ndarray], what: str) -> list[np.ndarray]:
    if mask is None:
        return [np.ones(b.shape[1], dtype=bool) for b in blocks]
    masks = list(mask)
    if len(masks) != len(blocks):
        raise ValueError(f"{what}: {len(masks)} masks for {len(blocks)} prompts")
    out = []
    for i, (m, b) in enumerate(zip(masks, blocks, strict=True)):
        m = np.asarray(m)
        if m.dtype != bool or m.shape != (b.shape[1],):
            raise ValueError(f"{what}[{i}]: expected a boolean mask of shape ({b.shape[1]},)")
        out.append(m)
    return out


def _optional_value(v: float | None) -> float | None:
    """``None`` and NaN both mean "no value" (a missing mean); a finite float passes."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        raise ValueError("an utterance value is infinite")
    return v


# --------------------------------------------------------------------------- representation


def deduplicate_units(units: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Collapse repeated consecutive units: ``(codes, durations)``, durations in unit frames.

    pGSLM's duration stream (fairseq ``codedataset.parse_code``, ``torch.unique_consecutive``
    with counts); pGSLM then appends EOS with duration 0, which is not done here.
    """
    u = np.asarray(units)
    if u.ndim != 1:
        raise ValueError(f"units: expected a 1-D array, got shape {u.shape}")
    if u.size == 0:
        return u.copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
    durations = np.diff(np.concatenate([starts, [u.size]]))
    return u[starts], durations.astype(np.int64)


def segment_f0(
    f0_hz: ArrayLike | None,
    f0_frame_rate: float,
    durations_frames: ArrayLike,
    unit_frame_rate: float,
    tolerance_unit_frames: float = DEFAULT_TOLERANCE_UNIT_FRAMES,
) -> np.ndarray:
    """F0 per deduplicated-unit segment: the mean of the segment's voiced (non-zero) F0 frames,
    0.0 where it has none (fairseq ``codedataset.align_f0_to_durations``, re-derived).

    ``ratio = f0_frame_rate / unit_frame_rate`` F0 frames per unit frame (pGSLM: 200 Hz / 50 Hz
    = 4). The F0 track is first brought to ``int(ratio * sum(durations))`` frames: cut, or
    extended by repeating its last frame; a length difference above
    ``tolerance_unit_frames * ratio`` F0 frames raises ``ValueError`` (pGSLM: 5 unit frames).
    Segment ``k`` covers F0 frames ``[int(c_k), int(c_{k+1}))`` with ``c_k`` the running sum of
    ``duration * ratio`` (so a non-integer ratio is handled as pGSLM does). A zero duration (e.g.
    EOS) gives 0.0. ``f0_hz=None`` (a tracker failure) gives all zeros, as pGSLM's
    ``prepare_dataset._align_f0``; an empty track is treated as all unvoiced.
    ``F0Track.hz`` / ``F0Track.frame_rate`` of the pitch judge fit ``f0_hz`` / ``f0_frame_rate``.
    """
    if f0_frame_rate <= 0 or unit_frame_rate <= 0:
        raise ValueError("frame rates must be positive")
    d = np.asarray(durations_frames)
    if d.ndim != 1:
        raise ValueError("durations_frames: expected a 1-D array")
    whole = np.issubdtype(d.dtype, np.integer) or (
        np.isfinite(d).all() and (d == np.round(d)).all()
    )
    if d.size and not whole:
        raise ValueError("durations_frames: expected whole unit frames")
    d = d.astype(np.int64)
    if (d < 0).any():
        raise ValueError("durations_frames: negative duration")
    if f0_hz is None:
        return np.zeros(d.size, dtype=np.float64)
    f0 = _f0_vector(f0_hz, "f0_hz")
    ratio = f0_frame_rate / unit_frame_rate
    target = int(ratio * int(d.sum()))
    diff = f0.size - target
    if abs(diff) > tolerance_unit_frames * ratio:
        raise ValueError(
            f"F0 has {f0.size} frames, durations need {target} (tolerance "
            f"{tolerance_unit_frames * ratio:g} F0 frames)"
        )
    if diff > 0:
        f0 = f0[:target]
    elif diff < 0:
        last = f0[-1] if f0.size else 0.0
        f0 = np.concatenate([f0, np.full(-diff, last)])
    bounds = np.concatenate([[0.0], np.cumsum(d * ratio)]).astype(np.int64)
    out = np.zeros(d.size, dtype=np.float64)
    for k in range(d.size):
        seg = f0[bounds[k] : bounds[k + 1]]
        voiced = seg[seg != 0]
        if voiced.size:
            out[k] = voiced.mean()
    return out


def speaker_log_f0_stats(f0_arrays: Sequence[ArrayLike | None]) -> tuple[float, float]:
    """``(mean, std)`` of log-F0 over all voiced (non-zero) frames of one speaker's F0 tracks.

    pGSLM's ``data_utils.F0Stat`` (``logf0_mean`` / ``logf0_std``): frame-level, unaligned F0,
    population std (``sqrt(E[z^2] - E[z]^2)``, computed here as the equivalent ddof=0 std);
    ``None`` tracks (tracker failures) are skipped. ``ValueError`` if no frame is voiced.
    """
    logs = [np.zeros(0)]
    for i, a in enumerate(f0_arrays):
        if a is not None:
            f0 = _f0_vector(a, f"f0_arrays[{i}]")
            logs.append(np.log(f0[f0 != 0]))
    z = np.concatenate(logs)
    if z.size == 0:
        raise ValueError("speaker_log_f0_stats: no voiced frame")
    return float(z.mean()), float(z.std())


def normalise_log_f0(
    values: ArrayLike,
    speaker_mean: float,
    interpolate: bool = True,
    speaker_std: float | None = None,
) -> np.ndarray:
    """pGSLM's F0 stream from segment F0 in Hz (0 = unvoiced): ``CodeDataset.preprocess_f0``.

    Order, as in pGSLM with ``--interpolate-f0 --log-f0 --normalize-f0-mean``:

    1. interpolate (``codedataset.interpolate_f0``), only when more than one value is voiced:
       zeros between voiced values are replaced by linear interpolation over the *index*
       (segments, not time); zeros before the first and after the last voiced value stay 0;
    2. on the non-zero values only: ``log``, minus ``speaker_mean`` (a speaker's
       ``logf0_mean``), then divided by ``speaker_std`` if given (``--normalize-f0-std``).

    Zeros (unvoiced edges, or all zeros) stay 0.0 and are not shifted by the mean.
    """
    x = _f0_vector(values, "values")
    if interpolate:
        voiced = np.flatnonzero(x != 0)
        if voiced.size > 1:
            idx = np.arange(x.size, dtype=np.float64)
            inside = (idx >= voiced[0]) & (idx <= voiced[-1])
            x = np.where(inside, np.interp(idx, voiced.astype(np.float64), x[voiced]), 0.0)
    out = x.copy()
    m = out != 0
    out[m] = np.log(out[m]) - speaker_mean
    if speaker_std is not None:
        if speaker_std <= 0:
            raise ValueError("speaker_std must be positive")
        out[m] = out[m] / speaker_std
    return out


def interpolated_span(values: ArrayLike) -> np.ndarray:
    """Which segments :func:`normalise_log_f0` (``interpolate=True``) gives an F0 value: the
    voiced (non-zero) ones and the unvoiced ones it interpolates between them, i.e. every
    segment from the first voiced one to the last; all False when none is voiced. A boolean
    mask, the "voiced" set of an F0 stream in Hz after interpolation (its normalised values
    may be 0.0: an F0 at the speaker mean)."""
    x = _f0_vector(values, "values")
    voiced = np.flatnonzero(x != 0)
    idx = np.arange(x.size)
    if voiced.size == 0:
        return np.zeros(x.size, dtype=bool)
    return (idx >= voiced[0]) & (idx <= voiced[-1])


def _edges(edges: ArrayLike) -> np.ndarray:
    e = _vector(edges, "edges")
    if e.size == 0:
        raise ValueError("edges: need at least one edge")
    if (np.diff(e) < 0).any():
        raise ValueError("edges: must be non-decreasing")
    return e


def quantise_f0(values: ArrayLike, edges: ArrayLike) -> np.ndarray:
    """Bin index of each value: the number of edges strictly below it
    (fairseq ``codedataset.naive_quantize``); ``len(edges) + 1`` bins."""
    x = _vector(values, "values")
    return np.searchsorted(_edges(edges), x, side="left").astype(np.int64)


def dequantise_f0_bins(bins: ArrayLike, edges: ArrayLike) -> np.ndarray:
    """Value of each bin (pGSLM ``Naive_F0_Decoder``): bin 0 -> ``edges[0]``, bin k (inner) ->
    midpoint of ``edges[k-1]`` and ``edges[k]``, last bin -> ``edges[-1]``.

    pGSLM maps its special tokens (BOS/EOS/PAD) to -5.0; here indices outside
    ``[0, len(edges)]`` raise ``ValueError``: strip special tokens first.
    """
    e = _edges(edges)
    b = np.asarray(bins)
    if b.size and not np.issubdtype(b.dtype, np.integer):
        raise ValueError("bins: expected integer bin indices")
    b = b.astype(np.int64)
    if b.size and (b.min() < 0 or b.max() > e.size):
        raise ValueError(f"bins: indices must lie in [0, {e.size}]")
    centres = np.concatenate([e[:1], 0.5 * (e[1:] + e[:-1]), e[-1:]])
    return centres[b]


def f0_bin_edges(values: ArrayLike, n_bins: int = 32, hist_bins: int = 100_000) -> np.ndarray:
    """``n_bins - 1`` equal-mass edges for :func:`quantise_f0` (pGSLM ``quantize_f0.py``).

    pGSLM's recipe: a ``hist_bins``-bin histogram of all values (pooled normalised log-F0 of
    voiced frames), cumulative percentage; for thresholds ``100/n, 2*100/n, ...`` the edge is
    the *left* edge of the histogram bin whose cumulative percentage is nearest the threshold.
    """
    x = _vector(values, "values")
    if x.size == 0 or n_bins < 2:
        raise ValueError("f0_bin_edges: need values and n_bins >= 2")
    hist, bin_x = np.histogram(x, hist_bins)
    cum = np.cumsum(hist) / x.size * 100
    step = 100 / n_bins
    threshold = step
    edges = []
    for _ in range(n_bins - 1):
        edges.append(bin_x[int(np.abs(cum - threshold).argmin())])
        threshold += step  # accumulated as pGSLM does
    return np.asarray(edges, dtype=np.float64)


# --------------------------------------------------------------------------- stream space


def min_mae(samples: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """pGSLM's correctness ("Duration MAE" / "F0 MAE", ``cont_metrics.continuation``).

    ``samples``: (prompts x samples x positions) or a list of per-prompt (samples x positions)
    arrays (ragged across prompts); ``target``: per prompt, the ground-truth continuation
    (positions,). ``mask`` (optional, per prompt, boolean, True = the position counts; pGSLM's
    masks are the inverse, True = padding) selects continuation positions.

    Per prompt: ``min over samples of sum_t |sample_t - target_t|`` over counted positions;
    summed over prompts; divided by the total number of counted positions (pGSLM divides by
    the count of non-padding duration positions, which equals the F0 one for its shifts).
    Unvoiced (0) F0 positions are not excluded. ``ValueError`` if no position counts.
    """
    blocks = _prompt_blocks(samples, "samples")
    targets = [_vector(t, f"target[{i}]") for i, t in enumerate(target)]
    if len(targets) != len(blocks):
        raise ValueError(f"{len(targets)} targets for {len(blocks)} prompts")
    masks = _prompt_masks(mask, blocks, "mask")
    total, count = 0.0, 0
    for i, (b, t, m) in enumerate(zip(blocks, targets, masks, strict=True)):
        if t.shape != (b.shape[1],):
            raise ValueError(f"target[{i}]: {t.size} positions, samples have {b.shape[1]}")
        errors = (np.abs(b - t) * m).sum(axis=1)
        total += float(errors.min())
        count += int(m.sum())
    if count == 0:
        raise ValueError("min_mae: no continuation position")
    return total / count


def pooled_std(values: ArrayLike, mask: ArrayLike | None = None) -> float:
    """pGSLM's expressiveness ("F0 Std" / "Dur Std", ``cont_metrics``):
    ``sqrt(E[x^2] - E[x]^2)`` pooled over all continuation positions of all samples and prompts.

    Input as in :func:`min_mae`. pGSLM's E[.] sums each prompt's values divided by its number
    of samples, over the total count of positions: with the same number of samples per prompt
    this is the plain mean over all values (``numpy.std(ddof=0)`` of everything); with ragged
    sample counts each prompt keeps the weight of its positions. Computed as the (equal)
    weighted mean squared deviation, which cannot go negative from rounding.
    pGSLM masks padding for discrete F0 only; pass ``mask`` to select positions.
    """
    blocks = _prompt_blocks(values, "values")
    masks = _prompt_masks(mask, blocks, "mask")
    count = sum(int(m.sum()) for m in masks)
    if count == 0:
        raise ValueError("pooled_std: no continuation position")
    mean = (
        sum(float(b[:, m].sum()) / b.shape[0] for b, m in zip(blocks, masks, strict=True)) / count
    )
    var = sum(
        float(((b[:, m] - mean) ** 2).sum()) / b.shape[0]
        for b, m in zip(blocks, masks, strict=True)
    )
    return math.sqrt(var / count)


def stream_mean(values: ArrayLike, exclude_zeros: bool = False) -> float | None:
    """Mean of a stream segment (prompt prefix or continuation), ``None`` if nothing counts.

    pGSLM's correlation means (``cont_metrics.correlation``): durations over all positions;
    F0 with ``exclude_zeros=True``, zeros (unvoiced after interpolation) left out of both the
    sum and the count, for the prompt and the continuation alike.
    """
    x = _vector(values, "values")
    if exclude_zeros:
        x = x[x != 0]
    return float(x.mean()) if x.size else None


def prosody_correlation(
    prompt_means: Sequence[float | None],
    continuation_means_per_sample: Sequence[Sequence[float | None]],
) -> tuple[float, int]:
    """pGSLM's consistency ("F0 corr" / "Duration corr"): ``(r, n_pairs)``.

    One pair per (prompt, sample): the prompt's ground-truth mean repeated for each of its
    samples' continuation means; ``scipy.stats.pearsonr`` over all pairs. Pairs whose prompt or
    continuation mean is missing (``None``/NaN) are dropped; ``n_pairs`` counts those kept, so
    a caller can report the exclusions. ``ValueError`` with fewer than 2 pairs; ``r`` is NaN
    (undefined, returned without a warning) when either side is constant.
    """
    if len(prompt_means) != len(continuation_means_per_sample):
        raise ValueError(
            f"{len(prompt_means)} prompt means for {len(continuation_means_per_sample)} prompts"
        )
    xs, ys = [], []
    for p, conts in zip(prompt_means, continuation_means_per_sample, strict=True):
        pv = _optional_value(p)
        if pv is None:
            continue
        for c in conts:
            cv = _optional_value(c)
            if cv is not None:
                xs.append(pv)
                ys.append(cv)
    n = len(xs)
    if n < 2:
        raise ValueError(f"prosody_correlation: {n} pair(s), need at least 2")
    x, y = np.asarray(xs), np.asarray(ys)
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan"), n
    return float(stats.pearsonr(x, y)[0]), n


def _stream_correlation(
    prompt_values: Sequence[ArrayLike],
    continuation_samples: Sequence[Sequence[ArrayLike]],
    exclude_zeros: bool,
) -> dict[str, Any]:
    if len(prompt_values) != len(continuation_samples):
        raise ValueError(f"{len(prompt_values)} prompts, {len(continuation_samples)} sample sets")
    pm = [stream_mean(p, exclude_zeros) for p in prompt_values]
    cm = [[stream_mean(s, exclude_zeros) for s in samples] for samples in continuation_samples]
    return _utterance_correlation(pm, cm)


def f0_correlation(
    prompt_f0: Sequence[ArrayLike],
    continuation_f0: Sequence[Sequence[ArrayLike]],
    *,
    prompt_voiced: Sequence[ArrayLike] | None = None,
    continuation_voiced: Sequence[Sequence[ArrayLike]] | None = None,
) -> dict[str, Any]:
    """pGSLM's "F0 corr" from stream values: ``prompt_f0[i]`` the ground-truth prefix F0 stream of
    prompt i, ``continuation_f0[i]`` its samples' generated continuation F0 streams (dequantised
    if discrete). Means exclude zeros (:func:`stream_mean`). A sample with no non-zero value is
    dropped (``excluded_samples``; pGSLM asserts this never happens); a prompt with no non-zero
    prefix value (pGSLM would get NaN) or no sample left contributes no pair
    (``excluded_prompts``). Returns ``{"r", "n_pairs", "n_prompts", "excluded_prompts",
    "excluded_samples"}``; ``r`` is ``None`` with fewer than 2 pairs, NaN if a side is constant.

    ``prompt_voiced`` / ``continuation_voiced`` (both or neither; boolean masks shaped as the
    values): the voiced positions, given explicitly; means are then over those positions
    instead of the non-zero ones (a dequantised F0 bin may be exactly 0.0, the speaker mean,
    and is voiced); "no non-zero value" above reads "no voiced value".
    """
    if prompt_voiced is None and continuation_voiced is None:
        return _stream_correlation(prompt_f0, continuation_f0, exclude_zeros=True)
    if prompt_voiced is None or continuation_voiced is None:
        raise ValueError("f0_correlation: give both prompt_voiced and continuation_voiced")
    if len(prompt_voiced) != len(prompt_f0) or len(continuation_voiced) != len(continuation_f0):
        raise ValueError("f0_correlation: one voiced mask per prompt and per sample")
    prompts = [
        _voiced_values(v, m, f"prompt_f0[{i}]")
        for i, (v, m) in enumerate(zip(prompt_f0, prompt_voiced, strict=True))
    ]
    conts = []
    for i, (vs, ms) in enumerate(zip(continuation_f0, continuation_voiced, strict=True)):
        if len(vs) != len(ms):
            raise ValueError(f"continuation_voiced[{i}]: {len(ms)} masks for {len(vs)} samples")
        conts.append(
            [
                _voiced_values(v, m, f"continuation_f0[{i}][{j}]")
                for j, (v, m) in enumerate(zip(vs, ms, strict=True))
            ]
        )
    return _stream_correlation(prompts, conts, exclude_zeros=False)


def _voiced_values(values: ArrayLike, voiced: ArrayLike, what: str) -> np.ndarray:
    x = _vector(values, what)
    m = np.asarray(voiced)
    if m.shape != x.shape or (m.size and m.dtype != bool):
        raise ValueError(f"{what}: expected a boolean voiced mask of shape {x.shape}")
    return x[m.astype(bool)]


def duration_correlation(
    prompt_durations: Sequence[ArrayLike], continuation_durations: Sequence[Sequence[ArrayLike]]
) -> dict[str, Any]:
    """pGSLM's "Duration corr": as :func:`f0_correlation` with plain means over all given positions
    (pass only non-padding positions); empty sequences are excluded and counted."""
    return _stream_correlation(prompt_durations, continuation_durations, exclude_zeros=False)


# --------------------------------------------------------------------------- audio space


def audio_f0_utterance_mean(f0_hz: ArrayLike, speaker_log_f0_mean: float) -> float | None:
    """Mean of ``log(F0) - speaker_log_f0_mean`` over the voiced (non-zero) frames of one
    audio's F0 track; ``None`` if no frame is voiced. Our utterance-level statistic (module
    docstring); the speaker mean is the ground-truth speaker's."""
    f0 = _f0_vector(f0_hz, "f0_hz")
    v = f0[f0 != 0]
    return float((np.log(v) - speaker_log_f0_mean).mean()) if v.size else None


def utterance_mean_duration(units: ArrayLike) -> float | None:
    """Mean run length (unit frames) of the deduplicated units re-encoded from one audio;
    ``None`` for an empty sequence. The audio-space duration statistic (module docstring)."""
    _, d = deduplicate_units(units)
    return float(d.mean()) if d.size else None


def _utterance_min_mae(
    gen_means_per_prompt: Sequence[Sequence[float | None]], truth_means: Sequence[float | None]
) -> dict[str, Any]:
    if len(gen_means_per_prompt) != len(truth_means):
        raise ValueError(f"{len(gen_means_per_prompt)} sample sets for {len(truth_means)} truths")
    errors, excluded_prompts, excluded_samples = [], 0, 0
    for gens, truth in zip(gen_means_per_prompt, truth_means, strict=True):
        g = [_optional_value(v) for v in gens]
        excluded_samples += sum(v is None for v in g)
        t = _optional_value(truth)
        g = [v for v in g if v is not None]
        if t is None or not g:
            excluded_prompts += 1
            continue
        errors.append(min(abs(v - t) for v in g))
    return {
        "min_mae": float(np.mean(errors)) if errors else None,
        "n_prompts": len(errors),
        "excluded_prompts": excluded_prompts,
        "excluded_samples": excluded_samples,
    }


def _utterance_correlation(
    prompt_means: Sequence[float | None], gen_means_per_prompt: Sequence[Sequence[float | None]]
) -> dict[str, Any]:
    if len(prompt_means) != len(gen_means_per_prompt):
        raise ValueError(f"{len(prompt_means)} prompts, {len(gen_means_per_prompt)} sample sets")
    excluded_prompts = excluded_samples = 0
    kept_p, kept_g = [], []
    for p, gens in zip(prompt_means, gen_means_per_prompt, strict=True):
        g = [_optional_value(v) for v in gens]
        excluded_samples += sum(v is None for v in g)
        pv = _optional_value(p)
        g = [v for v in g if v is not None]
        if pv is None or not g:
            excluded_prompts += 1
            continue
        kept_p.append(pv)
        kept_g.append(g)
    n = sum(len(g) for g in kept_g)
    r = prosody_correlation(kept_p, kept_g)[0] if n >= 2 else None
    return {
        "r": r,
        "n_pairs": n,
        "n_prompts": len(kept_p),
        "excluded_prompts": excluded_prompts,
        "excluded_samples": excluded_samples,
    }


def audio_f0_min_mae(
    gen_means_per_prompt: Sequence[Sequence[float | None]], truth_means: Sequence[float | None]
) -> dict[str, Any]:
    """Audio-space F0 correctness: per prompt ``min over samples |gen mean - truth mean|`` of
    :func:`audio_f0_utterance_mean` values, averaged over prompts.

    Missing generated means (``None``/NaN: no voiced frame) are dropped and counted in
    ``excluded_samples``; a prompt with no ground-truth mean or no generated mean left is
    counted in ``excluded_prompts``. Returns ``{"min_mae", "n_prompts", "excluded_prompts",
    "excluded_samples"}``; ``min_mae`` is ``None`` when no prompt is left.
    """
    return _utterance_min_mae(gen_means_per_prompt, truth_means)


def audio_f0_correlation(
    prompt_means: Sequence[float | None], gen_means_per_prompt: Sequence[Sequence[float | None]]
) -> dict[str, Any]:
    """Audio-space F0 consistency: Pearson r of (prompt mean, generated continuation mean)
    pairs, the prompt mean repeated for each sample (as pGSLM pairs them).

    Exclusions as in :func:`audio_f0_min_mae`. Returns ``{"r", "n_pairs", "n_prompts",
    "excluded_prompts", "excluded_samples"}``; ``r`` is ``None`` with fewer than 2 pairs and
    NaN when either side is constant (see :func:`prosody_correlation`).
    """
    return _utterance_correlation(prompt_means, gen_means_per_prompt)


def audio_f0_pooled_std(
    f0_tracks: Sequence[ArrayLike], speaker_log_f0_means: float | Sequence[float]
) -> dict[str, Any]:
    """Audio-space F0 expressiveness: the std (ddof=0) of ``log(F0) - speaker mean`` over the
    voiced frames of all given continuations pooled (each frame weighs the same).

    ``speaker_log_f0_means``: one ground-truth speaker mean for all tracks, or one per track.
    Run it on the generated continuations and on the ground-truth ones and compare. A track
    with no voiced frame is counted in ``excluded_utterances``. Returns ``{"std", "n_frames",
    "n_utterances", "excluded_utterances"}``; ``std`` is ``None`` when no frame is voiced.
    """
    tracks = list(f0_tracks)
    if isinstance(speaker_log_f0_means, (int, float, np.floating, np.integer)):
        means = [float(speaker_log_f0_means)] * len(tracks)
    else:
        means = [float(m) for m in speaker_log_f0_means]
        if len(means) != len(tracks):
            raise ValueError(f"{len(means)} speaker means for {len(tracks)} tracks")
    frames, excluded = [], 0
    for i, (t, m) in enumerate(zip(tracks, means, strict=True)):
        f0 = _f0_vector(t, f"f0_tracks[{i}]")
        v = f0[f0 != 0]
        if v.size == 0:
            excluded += 1
            continue
        frames.append(np.log(v) - m)
    z = np.concatenate(frames) if frames else np.zeros(0)
    return {
        "std": float(z.std()) if z.size else None,
        "n_frames": int(z.size),
        "n_utterances": len(frames),
        "excluded_utterances": excluded,
    }


def audio_duration_min_mae(
    gen_means_per_prompt: Sequence[Sequence[float | None]], truth_means: Sequence[float | None]
) -> dict[str, Any]:
    """Audio-space duration correctness: :func:`audio_f0_min_mae`'s rule on
    :func:`utterance_mean_duration` values (unit frames) of re-encoded audio."""
    return _utterance_min_mae(gen_means_per_prompt, truth_means)


def audio_duration_correlation(
    prompt_means: Sequence[float | None], gen_means_per_prompt: Sequence[Sequence[float | None]]
) -> dict[str, Any]:
    """Audio-space duration consistency: :func:`audio_f0_correlation`'s rule on
    :func:`utterance_mean_duration` values of the prompt and of each continuation."""
    return _utterance_correlation(prompt_means, gen_means_per_prompt)


def audio_duration_pooled_std(unit_sequences: Sequence[ArrayLike]) -> dict[str, Any]:
    """Audio-space duration expressiveness: the std (ddof=0) of the run lengths of all
    deduplicated unit sequences (one per continuation, re-encoded from audio) pooled.
    Empty sequences count in ``excluded_utterances``. Returns ``{"std", "n_segments",
    "n_utterances", "excluded_utterances"}``; ``std`` is ``None`` with no segment."""
    runs, excluded = [], 0
    for u in unit_sequences:
        _, d = deduplicate_units(u)
        if d.size == 0:
            excluded += 1
        else:
            runs.append(d.astype(np.float64))
    z = np.concatenate(runs) if runs else np.zeros(0)
    return {
        "std": float(z.std()) if z.size else None,
        "n_segments": int(z.size),
        "n_utterances": len(runs),
        "excluded_utterances": excluded,
    }
