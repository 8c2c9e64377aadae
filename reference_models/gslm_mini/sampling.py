"""Sampling unit continuations from gslm-mini's unit LM.

One sequence at a time with the LM's key/value cache, one ``torch.Generator`` per
sequence: a sample depends only on (prompt, options, seed, sample index), never on the
batch it came in or on how many samples were asked for.

The logits are filtered as Hugging Face ``generate`` does (its own warpers, same order:
temperature, top-k, top-p); the loop is written here only because ``generate`` samples
from the global RNG and cannot take a generator per sequence, and because gslm-mini stops
on a *duration* budget (seconds of speech), which ``generate`` cannot express.
Temperature 0 means greedy decoding (argmax).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from speechlm_eval.errors import ConfigError

__all__ = ["SampleOptions", "check_options", "sample", "sample_seed"]


@dataclass(frozen=True)
class SampleOptions:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None


def check_options(temperature: Any, top_k: Any, top_p: Any, where: str) -> SampleOptions:
    """Validated sampling options; a ConfigError names the field and the request."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: temperature must be a number >= 0, got {temperature!r}"
        ) from None
    if not math.isfinite(t) or t < 0:
        raise ConfigError(f"{where}: temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1
    ):
        raise ConfigError(f"{where}: top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None:
        try:
            p = float(top_p)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: top_p must be None or in (0, 1], got {top_p!r}") from None
        if not 0.0 < p <= 1.0:
            raise ConfigError(f"{where}: top_p must be None or in (0, 1], got {top_p!r}")
    return SampleOptions(
        t, None if top_k is None else int(top_k), None if top_p is None else float(top_p)
    )


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a request seeded ``seed`` (numpy's SeedSequence mixing)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


def _warpers(opts: SampleOptions) -> list[Any]:
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out: list[Any] = []
    if opts.temperature == 0.0:  # greedy: argmax, no warping
        return out
    if opts.temperature != 1.0:
        out.append(TemperatureLogitsWarper(opts.temperature))
    if opts.top_k is not None:
        out.append(TopKLogitsWarper(opts.top_k))
    if opts.top_p is not None and opts.top_p < 1.0:
        out.append(TopPLogitsWarper(opts.top_p))
    return out


@torch.inference_mode()
def sample(
    lm: torch.nn.Module,
    context: list[int],
    opts: SampleOptions,
    generator: torch.Generator,
    allowed: torch.Tensor,
    eos: int | None,
    max_tokens: int,
    stop: Callable[[int], bool],
) -> tuple[list[int], str]:
    """Sample tokens after ``context`` until ``eos``, ``stop(token)`` or ``max_tokens`` in all.

    ``allowed``: boolean mask over the vocabulary of tokens that may be drawn (units and
    ``eos``); ``eos`` is never drawn first, so a continuation has at least one token.
    ``stop`` is called with each drawn token (not ``eos``) and returns True when the
    budget is reached. Returns the drawn tokens (without ``eos``) and why sampling ended:
    ``"eos"``, ``"budget"`` or ``"context"``.
    """
    if not context:
        raise ValueError("sampling needs a non-empty context")
    if len(context) >= max_tokens:
        raise ValueError(f"context of {len(context)} tokens leaves no room in {max_tokens}")
    device = next(lm.parameters()).device
    warpers = _warpers(opts)
    # transformers >= 5 calls the key/value cache ``cache``; 4.x called it ``past_key_values``.
    cache_kw = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    ids = torch.tensor([context], dtype=torch.long, device=device)
    out = lm(input_ids=ids, use_cache=True)
    drawn: list[int] = []
    while True:
        logits = out.logits[0, -1].float().cpu().clone()
        logits[~allowed] = -math.inf
        if not drawn and eos is not None:
            logits[eos] = -math.inf
        if opts.temperature == 0.0:
            tok = int(torch.argmax(logits))
        else:
            scores = logits[None]
            for w in warpers:
                scores = w(None, scores)
            probs = torch.softmax(scores, dim=-1)
            tok = int(torch.multinomial(probs, 1, generator=generator)[0, 0])
        if eos is not None and tok == eos:
            return drawn, "eos"
        drawn.append(tok)
        if stop(tok):
            return drawn, "budget"
        if len(context) + len(drawn) >= max_tokens:
            return drawn, "context"
        nxt = torch.tensor([[tok]], dtype=torch.long, device=device)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        out = lm(input_ids=nxt, use_cache=True, **{cache_kw: cache})
