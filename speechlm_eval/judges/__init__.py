"""Judges: model-backed evaluators, registered in the ``speechlm_eval.judges`` entry-point group.

Public API::

    from speechlm_eval.judges import load_judge, transcribe_cached

    asr = load_judge("faster-whisper")            # loaded once per process (name + options)
    texts = asr.transcribe(audios)                # list[Audio] -> list[str], batched
    texts = transcribe_cached(asr, audios, cache)  # through the run's ResultCache
    record = asr.identity()                       # package, version, model SHA-256, options

ASR judges shipped here: ``faster-whisper`` (default: the packaged Whisper tiny.en),
``openai-whisper`` (any checkpoint on disk), ``transformers-asr`` (CTC or seq2seq folder).
"""

from .base import (
    ASRJudge,
    Judge,
    clear_loaded,
    judge_code,
    judge_key,
    judge_names,
    judge_record,
    load_judge,
    path_sha256,
    transcribe_cached,
)

DEFAULT_ASR_JUDGE = "faster-whisper"

__all__ = [
    "DEFAULT_ASR_JUDGE",
    "ASRJudge",
    "Judge",
    "clear_loaded",
    "judge_code",
    "judge_key",
    "judge_names",
    "judge_record",
    "load_judge",
    "path_sha256",
    "transcribe_cached",
]
