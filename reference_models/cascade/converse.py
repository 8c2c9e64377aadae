"""The cascade's streaming ``converse``: when it speaks, decided from past audio only.

A session (:class:`CascadeSession`) hears the user one frame at a time
(:data:`FRAME_SECONDS`) and runs Silero VAD's own streaming detector
(``silero_vad.VADIterator``, 512-sample windows at 16 kHz) on it:

- A user turn is speech with pauses shorter than ``gap`` inside it: the detector's
  ``min_silence_duration_ms`` is ``gap``, so it reports the end of a turn once the user has
  been silent for ``gap`` seconds — the moment a causal listener can know the turn ended.
- At that moment the cascade transcribes the turn (the audio it has heard since the turn's
  start), asks the text LM for an answer and starts speaking it in the next frame.
- If the user starts speaking while the cascade speaks (a barge-in), it stops ``yield_after``
  seconds after the detected onset (10 ms fade-out) and drops the rest of its answer; it
  answers the interrupting turn when that one ends, by the same rule.

Everything is a function of the audio heard so far, so the model channel is the same
whatever the harness' timing, and a session is deterministic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from speechlm_eval.audio import Audio, TwoChannelAudio
from speechlm_eval.model import ContinueRequest, SessionInfo

from .tts import SAMPLE_RATE

if TYPE_CHECKING:
    from .model import Cascade

FRAME_SECONDS = 0.08  # the cascade's streaming step (Moshi's frame length; any would do)
VAD_WINDOW = 512  # samples at 16 kHz: what Silero's streaming detector takes per call
SPEECH_PAD_MS = 30  # Silero's default padding of detected speech
FADE_SECONDS = 0.01  # fade-out where an answer is cut, against a click
TURN_SECONDS = 4.0  # dialogue continuation: the longest turn the text LM may write (in speech)


class ConversePolicy:
    """When the cascade speaks in a conversation (times in seconds; see the module doc)."""

    def __init__(self, gap: float = 0.5, yield_after: float = 0.3, threshold: float = 0.5):
        self.gap, self.yield_after, self.threshold = (
            float(gap),
            float(yield_after),
            float(threshold),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "streaming": True,
            "frame_seconds": FRAME_SECONDS,
            "turn_end_silence_s": self.gap,
            "answer_starts": "the frame after the turn end is detected",
            "yield_after_barge_in_s": self.yield_after,
            "vad": "silero-vad VADIterator (streaming), 512-sample windows at 16 kHz",
            "vad_threshold": self.threshold,
            "vad_speech_pad_ms": SPEECH_PAD_MS,
            "resume_after_interruption": False,
        }


class CascadeSession:
    """One streaming conversation of the cascade (see the module doc)."""

    def __init__(self, cascade: Cascade, info: SessionInfo) -> None:
        from silero_vad import VADIterator

        self.c = cascade
        self.key = info.key
        self.rate = info.sample_rate
        pol = cascade.policy
        self.vad = VADIterator(
            cascade.vad_model,
            threshold=pol.threshold,
            sampling_rate=self.rate,
            min_silence_duration_ms=round(pol.gap * 1000),
            speech_pad_ms=SPEECH_PAD_MS,
        )  # resets the shared model's state: sessions never leak into each other
        self.heard = np.zeros(0, dtype=np.float32)  # user audio not yet given to the VAD
        self.history = np.zeros(0, dtype=np.float32)  # the last second given to the VAD
        self.turn: list[np.ndarray] = []  # the current turn's audio (from its detected start)
        self.turn_start: int | None = None  # sample index of the current turn's start
        self.now = 0  # samples given to the VAD so far
        self.fed = 0  # samples the harness has given this session so far
        self.queue = np.zeros(0, dtype=np.float32)  # the answer still to be spoken
        self.stop_at: int | None = None  # where a barge-in cuts the answer (timeline samples)
        self.turns = 0

    def step(self, user: np.ndarray) -> np.ndarray:
        """Hear one frame, return the next frame of the cascade's channel."""
        self.heard = np.concatenate([self.heard, user])
        self.fed += user.size
        while self.heard.size >= VAD_WINDOW:
            window, self.heard = self.heard[:VAD_WINDOW], self.heard[VAD_WINDOW:]
            self._window(window)
        return self._speak(user.size)

    def _window(self, window: np.ndarray) -> None:
        import torch

        if self.turn_start is not None:
            self.turn.append(window)
        self.history = np.concatenate([self.history, window])[-self.rate :]
        event = self.vad(torch.from_numpy(window.copy()))
        self.now += VAD_WINDOW
        if not event:
            return
        if "start" in event:
            start = int(event["start"])
            if self.turn_start is None:
                # The detector dates the start a little in the past (its padding): the turn's
                # audio is taken from there, out of what was heard.
                self.turn_start = start
                self.turn = [self.history[-(self.now - start) :].copy()]
            if self.queue.size and self.stop_at is None:  # the user barges in
                self.stop_at = max(self.fed, start + round(self.c.policy.yield_after * self.rate))
        elif "end" in event and self.turn_start is not None:
            end = int(event["end"])
            audio = np.concatenate(self.turn)[: max(1, end - self.turn_start)]
            self.turn, self.turn_start = [], None
            self._answer(audio)

    def _answer(self, audio: np.ndarray) -> None:
        (text,) = self.c.transcribe([Audio(audio.astype(np.float32), self.rate, self.key)])
        answer = self.c._answer(text)
        speech = self.c.tts.say(answer, f"{self.key}#turn{self.turns}").samples
        self.turns += 1
        self.queue, self.stop_at = speech.astype(np.float32), None

    def _speak(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        take = min(n, self.queue.size)
        if self.stop_at is not None:
            # The frame returned now is played from ``fed`` on (the harness delays it one
            # frame); nothing of the answer is played at or after stop_at.
            take = min(take, max(0, self.stop_at - self.fed))
        if take:
            out[:take] = self.queue[:take]
        cut = self.stop_at is not None and take < min(n, self.queue.size)
        self.queue = self.queue[take:]
        if cut:
            fade = min(take, round(FADE_SECONDS * self.rate))
            if fade:
                out[take - fade : take] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            self.queue, self.stop_at = np.zeros(0, dtype=np.float32), None
        return out

    def close(self) -> None:
        self.vad.reset_states()


# --- dialogue->dialogue: the text cascade dGSLM compared with --------------------------------


def continue_dialogue(cascade: Cascade, req: ContinueRequest, j: int = 0) -> TwoChannelAudio:
    """Continue both channels of ``req.prompt_dialogue`` for ``req.max_seconds`` (offline).

    Each channel's speech (Silero VAD, pauses under ``gap`` merged) is transcribed; the
    transcripts, in time order, are the text prompt. The speaker who did not speak last
    takes the next turn: the text LM continues the text (at most ``TURN_SECONDS`` of speech
    per turn; the request's temperature, top-k/p; a seed per turn from the request's seed and
    the sample index ``j``), the TTS voice speaks it on that channel ``gap`` seconds after
    the last speech ends, and the speakers alternate until the continuation is full. No
    overlaps, no backchannels: a text cascade has no timing model, which is what dGSLM's
    cascade baseline shows.
    """
    from speechlm_eval.hashing import digest

    from .model import CHARS_PER_SECOND, textlm

    d = req.prompt_dialogue
    if d is None:
        raise ValueError(f"{req.key}: not a dialogue request")
    d = d.resample(SAMPLE_RATE)
    n_out = round(req.max_seconds * SAMPLE_RATE)
    gap = round(cascade.policy.gap * SAMPLE_RATE)
    turns = []
    for ch, x in (("a", d.a), ("b", d.b)):
        for s, e in cascade.speech_segments(x):
            turns.append((s, e, ch))
    turns.sort()
    heard = cascade.transcribe(
        [
            Audio(d.channel(ch).samples[s:e].copy(), SAMPLE_RATE, f"{req.key}:{ch}")
            for s, e, ch in turns
        ]
    )
    history = " ".join(t for t in heard if t).strip()
    last = max(turns, key=lambda t: t[1]) if turns else None
    speaker = "b" if last is not None and last[2] == "a" else "a"
    t = max(0, (last[1] - d.a.samples.size) if last is not None else 0) + gap
    out = {"a": np.zeros(n_out, np.float32), "b": np.zeros(n_out, np.float32)}
    k = 0
    while t < n_out and k < 16:
        left = min(TURN_SECONDS, (n_out - t) / SAMPLE_RATE)
        kw = textlm.gen_kwargs(
            max(1, math.ceil(left * CHARS_PER_SECOND)), req.temperature, req.top_k, req.top_p
        )
        seed = int(digest([req.seed, j, k])[:8], 16)
        (text,) = cascade._continuations(history, kw, seed, 1)
        text = text.strip()
        if not text:  # nothing to say: the other speaker goes on after a gap
            t += gap
            speaker = "a" if speaker == "b" else "b"
            k += 1
            continue
        speech = cascade.tts.say(text, f"{req.key}#dialogue{j}.{k}").samples
        piece = speech[: n_out - t]
        out[speaker][t : t + piece.size] = piece
        t += piece.size + gap
        history = f"{history} {text}".strip()
        speaker = "a" if speaker == "b" else "b"
        k += 1
    return TwoChannelAudio(
        Audio(out["a"], SAMPLE_RATE, f"{req.key}: continuation a"),
        Audio(out["b"], SAMPLE_RATE, f"{req.key}: continuation b"),
        f"{req.key}: dialogue continuation",
    )
