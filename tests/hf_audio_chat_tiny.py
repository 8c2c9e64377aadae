"""Shared pieces of the ``hf-audio-chat`` family tests: test clips, a tiny tekken.json
(mistral-common's tokenizer file) written from scratch, and the weight scaling that makes a
tiny random model's answers depend visibly on its audio. Nothing is downloaded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch

from speechlm_eval.audio import Audio

SR = 16000
INSTRUCTION = "What is said in the audio?"


def noise(seconds: float, seed: int) -> Audio:
    """White noise (std 0.1) of ``seconds`` at 16 kHz."""
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)


def tone(seconds: float, hz: float) -> Audio:
    """A sine of ``hz`` (amplitude 0.3) of ``seconds`` at 16 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    return Audio((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), SR)


CLIPS = {
    "noise1s": noise(1.0, 1),
    "tone07": tone(0.7, 440.0),
    "noise03": noise(0.3, 2),
    "tone12": tone(1.2, 1500.0),
}


def widen_weights(model: torch.nn.Module, std: float = 0.5) -> None:
    """Redraw every matrix with a large std: the default init (0.02) gives near-uniform
    next-token distributions in which the audio barely moves the argmax."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, std)


# --- a tiny tekken.json ---------------------------------------------------------------------

# Special tokens at the ranks of Mistral's tekken files (``[AUDIO]`` = 24 is also what
# ``VoxtralProcessor`` assumes); the 256 byte tokens follow, with no merges.
TEKKEN_SPECIAL = [
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "[TOOL_CALLS]",
    "[IMG]",
    "<pad>",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[PREFIX]",
    "[MIDDLE]",
    "[SUFFIX]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
    "[ARGS]",
    "[CALL_ID]",
    "<SPECIAL_22>",
    "<SPECIAL_23>",
    "[AUDIO]",
    "[BEGIN_AUDIO]",
    "[TRANSCRIBE]",
]
TEKKEN_NUM_SPECIAL = 32
# tiktoken's split pattern of the tekken files (letters, digits, punctuation, spaces).
TEKKEN_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def write_tekken(path: Path, version: str = "v7") -> int:
    """A byte-level tekken.json with Voxtral's audio settings (16 kHz, 12.5 Hz tokens, 30-s
    chunks, 128 mel bins, hop 160) in ``path``; returns the vocabulary size."""
    special = [
        {"rank": i, "token_str": s, "is_control": True} for i, s in enumerate(TEKKEN_SPECIAL)
    ]
    vocab = [
        {"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None}
        for i in range(256)
    ]
    size = TEKKEN_NUM_SPECIAL + len(vocab)
    data = {
        "config": {
            "pattern": TEKKEN_PATTERN,
            "num_vocab_tokens": len(vocab),
            "default_vocab_size": size,
            "default_num_special_tokens": TEKKEN_NUM_SPECIAL,
            "version": version,
        },
        "vocab": vocab,
        "special_tokens": special,
        "version": 1,
        "type": "Tekken",
        "audio": {
            "sampling_rate": SR,
            "frame_rate": 12.5,
            "chunk_length_s": 30.0,
            "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
        },
    }
    (path / "tekken.json").write_text(json.dumps(data), encoding="utf-8")
    return size
