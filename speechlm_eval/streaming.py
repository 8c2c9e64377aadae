"""The harness side of a ``converse`` session: stream the user channel, collect the model's.

The protocol (also in the README and DESIGN.md):

- The model declares a frame length (:attr:`SpeechLM.converse_frame_seconds`) and a sample
  rate; the user channel is brought to that rate once, before the session (a stimulus
  preparation step: the resampling filter's few milliseconds of support are not model
  look-ahead), and zero-padded to a whole number of frames.
- :meth:`SpeechLM.open_session` gets a :class:`SessionInfo` (key, seed, rate, frame size) and
  nothing about the user's audio. The harness then calls ``step`` once per frame, in time
  order, with a read-only copy of that frame only: the model cannot see audio from the
  future, whatever it does.
- Frame ``i`` returned by the model is written at frame ``i + 1`` of the model channel (a
  reply to audio heard up to time t starts at t at the earliest); the model channel is then
  cut to the user channel's length. Its first frame is silence.
- Every returned frame is checked (a 1-D float array of exactly ``frame_samples`` finite
  values); a wrong one, or an exception from the model, stops the run with one error naming
  the session and the frame index. No partial session is ever returned (so none is cached).

Real-time behaviour is measured per session on the machine that ran it: the compute time of
each step against the frame's duration (:func:`realtime_summary`). Latencies that tasks
report are on the audio timeline, never on this wall clock, so scores do not depend on the
machine; the wall-clock figures are recorded beside them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .audio import Audio
from .errors import PluginError, SlmEvalError
from .model import ConverseRequest, ConverseResult, SessionInfo, SpeechLM


def frame_samples(model: SpeechLM) -> int:
    """Samples per streaming step of ``model`` (its frame length at its rate), checked."""
    name = type(model).__name__
    sec = getattr(model, "converse_frame_seconds", None)
    rate = model.sample_rate
    if rate is None:
        raise PluginError(f"{name}: a converse model must declare its sample_rate")
    if not isinstance(sec, (int, float)) or not 0 < float(sec) <= 10:
        raise PluginError(
            f"{name}: converse_frame_seconds must be a number of seconds in (0, 10], got {sec!r}"
        )
    n = round(float(sec) * int(rate))
    if n < 1 or abs(n - float(sec) * int(rate)) > 1e-6 * int(rate):
        raise PluginError(
            f"{name}: converse_frame_seconds={sec} is not a whole number of samples at {rate} Hz"
        )
    return n


def realtime_summary(compute: list[float], frame_seconds: float) -> dict[str, Any]:
    """Wall-clock behaviour of one session: steps of ``frame_seconds`` that took ``compute``.

    Frame ``i`` is complete at ``(i + 1) * F``; the model starts on it when it has arrived
    and the previous step is done; ``lag`` is how long after its arrival the output was
    ready. The session *kept up* when every output was ready within one frame (before the
    next frame arrived), i.e. a live system would never have fallen behind.
    ``rtf``: total compute / audio duration."""
    done = 0.0
    worst = 0.0
    for i, c in enumerate(compute):
        arrive = (i + 1) * frame_seconds
        done = max(done, arrive) + c
        worst = max(worst, done - arrive)
    dur = len(compute) * frame_seconds
    return {
        "frames": len(compute),
        "frame_seconds": frame_seconds,
        "compute_seconds": round(sum(compute), 6),
        "rtf": round(sum(compute) / dur, 6) if dur else None,
        "max_step_ratio": round(max(compute) / frame_seconds, 6) if compute else None,
        "max_lag_seconds": round(worst, 6),
        "kept_up": worst <= frame_seconds,
    }


def drive(model: SpeechLM, request: ConverseRequest) -> ConverseResult:
    """Run one session of ``model`` on ``request.user`` (already at the model's rate)."""
    n = frame_samples(model)
    rate = int(model.sample_rate or 0)
    user = request.user
    key = request.key or "converse"
    if user.sample_rate != rate:
        raise PluginError(
            f"converse session {key!r}: user audio at {user.sample_rate} Hz, model at {rate} Hz"
        )
    total = user.samples.size
    frames = -(-total // n)
    padded = np.zeros(frames * n, dtype=np.float32)
    padded[:total] = user.samples
    out = np.zeros((frames + 1) * n, dtype=np.float32)  # frame 0 is silence (see module doc)
    compute: list[float] = []
    info = SessionInfo(key=key, seed=int(request.seed), sample_rate=rate, frame_samples=n)
    try:
        session = model.open_session(info)
    except Exception as e:
        if isinstance(e, SlmEvalError) and f"session {key!r}" in str(e):
            raise type(e)(str(e)) from e
        raise PluginError(
            f"converse session {key!r}: open_session raised {type(e).__name__}: {e}"
        ) from e
    try:
        for i in range(frames):
            chunk = padded[i * n : (i + 1) * n].copy()
            chunk.setflags(write=False)  # the model gets this frame, and only this frame
            t0 = time.perf_counter()
            try:
                got = session.step(chunk)
            except Exception as e:
                where = f"converse session {key!r}, frame {i} ({i * n / rate:.2f} s)"
                if isinstance(e, SlmEvalError) and f"session {key!r}" in str(e):
                    raise type(e)(str(e)) from e  # the plugin's own error already says where
                raise PluginError(f"{where}: the model raised {type(e).__name__}: {e}") from e
            compute.append(time.perf_counter() - t0)
            out[(i + 1) * n : (i + 2) * n] = _check_frame(got, n, key, i, rate)
    finally:
        close = getattr(session, "close", None)
        if close is not None:
            close()
    model_channel = Audio(out[:total].copy(), rate, f"{key}: model channel")
    return ConverseResult(model_channel, realtime_summary(compute, n / rate))


def _check_frame(got: Any, n: int, key: str, i: int, rate: int) -> np.ndarray:
    where = f"converse session {key!r}, frame {i} ({i * n / rate:.2f} s)"
    if not isinstance(got, np.ndarray):
        raise PluginError(f"{where}: step returned {type(got).__name__}; expected a numpy array")
    if got.ndim != 1 or got.size != n:
        raise PluginError(
            f"{where}: step returned shape {got.shape}; expected ({n},) "
            f"(one frame of {n / rate:.3f} s at {rate} Hz)"
        )
    if got.dtype.kind != "f":
        raise PluginError(f"{where}: step returned {got.dtype} samples; expected float32")
    if not np.all(np.isfinite(got)):
        raise PluginError(f"{where}: step returned NaN or infinite samples")
    return got.astype(np.float32, copy=False)
