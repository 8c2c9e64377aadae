"""Judges: model-backed evaluators, registered in the ``speechlm_eval.judges`` entry-point group.

Public API::

    from speechlm_eval.judges import load_judge

    asr = load_judge("faster-whisper")            # loaded once per process (name + options)
    texts = asr.transcribe(audios)                # list[Audio] -> list[str], batched
    texts = asr.transcribe(audios, cache=cache)   # through the run's ResultCache (resumable)
    vad = load_judge("silero-vad")
    segs = vad.segments(audios)                   # list[Audio] -> [[(start_s, end_s), ...]]
    lm = load_judge("text-lm")                    # or model="hf,pretrained=/local/dir"
    scores = lm.loglikelihood(texts)              # list[str] -> [(logprob_sum, n_tokens)]
    record = judge_record(asr)                    # identity (package, weights, options) + code

Every judge method runs through the harness' one executor (``speechlm_eval.execute``): longest
first, batched, cached by the judge's identity and code plus the input's content hash. Tasks
bind judges to roles (``judges: {asr: faster-whisper}``; ``--judge`` rebinds; ``slm-eval
judges`` lists them). Shipped: ``faster-whisper`` (default ASR: the packaged Whisper tiny.en),
``openai-whisper`` (any checkpoint on disk), ``transformers-asr`` (CTC or seq2seq folder),
``silero-vad`` (the packaged Silero VAD), ``text-lm`` (any lm-eval model; default: the packaged
character n-gram). Judges on other inputs than audio (text) go through
:func:`run_judge_requests`. ``speechlm_eval.judges.textlm`` needs lm-eval (the ``cascade``
extra), so it is imported on use, not here.
"""

from .base import (
    ASRJudge,
    FingerprintedRequest,
    Judge,
    JudgeRequest,
    clear_loaded,
    judge_code,
    judge_key,
    judge_names,
    judge_record,
    load_judge,
    path_sha256,
    run_judge,
    run_judge_requests,
    transcribe_cached,
)
from .roles import describe_judges, load_bound, parse_judge_flags

DEFAULT_ASR_JUDGE = "faster-whisper"

__all__ = [
    "DEFAULT_ASR_JUDGE",
    "ASRJudge",
    "FingerprintedRequest",
    "Judge",
    "JudgeRequest",
    "clear_loaded",
    "describe_judges",
    "judge_code",
    "judge_key",
    "judge_names",
    "judge_record",
    "load_bound",
    "load_judge",
    "parse_judge_flags",
    "path_sha256",
    "run_judge",
    "run_judge_requests",
    "transcribe_cached",
]
