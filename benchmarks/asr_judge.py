#!/usr/bin/env python
"""ASR judge throughput: our batched ``faster-whisper`` judge vs faster-whisper's own
``BatchedInferencePipeline`` on the same utterances, in one process.

Usage::

    python benchmarks/asr_judge.py [--data DIR] [--split SUB] [--n N] [--batch-size B]
                                   [--beam-size K] [--repeats R] [--vad]

- Data: the built-in ``asr`` subset (LibriSpeech layout) under ``--data`` (default: the
  built-in suite's folder; build it with ``slm-eval data build --subsets asr``), read with
  the ``librispeech`` reader; the first ``N`` utterances (default 48) are decoded into
  memory before any clock starts.
- **ours**: ``load_judge("faster-whisper", batch_size=B, beam_size=K).transcribe(audios)``:
  utterances sorted longest first, ``B`` utterances per encoder call and per ``generate``
  call.
- **faster-whisper**: ``BatchedInferencePipeline(model).transcribe(audio, batch_size=B,
  beam_size=K, language="en", without_timestamps=True, vad_filter=False)`` on each
  utterance, on the *same* ``WhisperModel`` object (same weights, compute type and threads).
  That pipeline batches the 30 s chunks of one recording; a short utterance is one chunk.
  ``--vad`` turns its Silero VAD pre-pass on (its default; slower, same text here).
- Repeats alternate the order (ours first, then theirs first); medians are reported with
  the ratio ours / faster-whisper (goal: <= 1.0, ours not slower). The transcripts of both
  must be identical (checked; a benchmark of different outputs is worthless).

Exit code 0 whether or not the goal is met; prints GOAL MET / GOAL NOT MET.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from speechlm_eval.audio import load_audio
from speechlm_eval.builtin.build import default_root
from speechlm_eval.judges import load_judge
from speechlm_eval.readers.transcribed import read_librispeech


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="built-in suite folder")
    ap.add_argument(
        "--split",
        default="librispeech/dev-clean",
        help="LibriSpeech-layout folder under --data (continuation/dev-clean: 6-12 s stories)",
    )
    ap.add_argument("--n", type=int, default=48, help="utterances (default 48)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vad", action="store_true", help="baseline with its Silero VAD pre-pass")
    args = ap.parse_args()

    base = args.data or default_root()
    split = base / args.split
    if not split.is_dir():
        print(f"no ASR data in {split}; run: slm-eval data build --subsets asr", file=sys.stderr)
        return 2
    ds = read_librispeech(split, {}).limited(args.n)
    audios = [load_audio(ds.files[u], 16000) for u in ds.doc_ids()]
    seconds = sum(a.duration for a in audios)

    from faster_whisper import BatchedInferencePipeline

    judge = load_judge("faster-whisper", batch_size=args.batch_size, beam_size=args.beam_size)
    pipe = BatchedInferencePipeline(judge.model)

    def ours() -> list[str]:
        return judge.transcribe(audios)

    def theirs() -> list[str]:
        out = []
        for a in audios:
            segments, _ = pipe.transcribe(
                a.samples,
                batch_size=args.batch_size,
                beam_size=args.beam_size,
                language="en",
                without_timestamps=True,
                vad_filter=args.vad,
            )
            out.append(" ".join(" ".join(s.text.split()) for s in segments))
        return out

    def timed(fn):
        c0, t0 = time.process_time(), time.perf_counter()
        res = fn()
        return res, time.perf_counter() - t0, time.process_time() - c0

    # Warm-up (untimed): first-call costs of CTranslate2 and the tokenizer.
    judge.transcribe(audios[:2])
    theirs_texts = None
    walls: dict[str, list[float]] = {"ours": [], "theirs": []}
    cpus: dict[str, list[float]] = {"ours": [], "theirs": []}
    for r in range(args.repeats):
        order = [("ours", ours), ("theirs", theirs)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            texts, wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if name == "theirs":
                theirs_texts = texts
            else:
                ours_texts = texts
    same = ours_texts == theirs_texts
    mo, mt = statistics.median(walls["ours"]), statistics.median(walls["theirs"])
    co, ct = statistics.median(cpus["ours"]), statistics.median(cpus["theirs"])
    load = os.getloadavg()
    ncpu = os.cpu_count()
    print(f"machine: {platform.machine()}, {ncpu} cpus, load avg {load[0]:.2f} {load[1]:.2f}")
    print(
        f"data: {len(audios)} utterances, {seconds:.1f} s of audio ({split}); "
        f"batch {args.batch_size}, beam {args.beam_size}, "
        f"baseline VAD {'on' if args.vad else 'off'}"
    )
    print(f"{'':16}{'wall median':>12}{'wall min':>10}{'cpu median':>12}{'x realtime':>12}")
    for name, label in (("ours", "ours (judge)"), ("theirs", "faster-whisper")):
        m = statistics.median(walls[name])
        print(
            f"{label:16}{m:11.2f}s{min(walls[name]):9.2f}s"
            f"{statistics.median(cpus[name]):11.2f}s{seconds / m:11.1f}x"
        )
    print(f"ratio ours / faster-whisper: wall {mo / mt:.3f}, cpu {co / ct:.3f}")
    print(f"transcripts identical: {same}")
    if not same:
        diff = sum(a != b for a, b in zip(ours_texts, theirs_texts, strict=True))
        print(f"  {diff} of {len(audios)} differ")
    print("GOAL MET" if same and mo / mt <= 1.0 else "GOAL NOT MET")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
