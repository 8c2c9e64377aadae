"""``length-baseline``: the length-only rule as a model, for every results table.

A minimal-pair benchmark is confounded by length when "prefer the shorter candidate"
beats chance: any model whose log-probability falls with length (a sum over more
tokens) then gets that advantage for free. This plugin is that rule and nothing else:
the log-probability of a file is minus its duration, over one token, so

- ``acc,nll_sum`` and ``acc,nll_mean`` are the same number: how often the correct
  candidate is the shorter file (ties count half, as in the scoring rule);
- on a length-balanced benchmark it scores 0.5; a model should be read against it.

``--model_args unit=seconds`` (default) or ``unit=samples`` (at the file's own rate;
the two give the same decisions unless candidates differ in sample rate). Audio is
scored at its own rate (``sample_rate = None``): resampling would change the sample
counts by rounding only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from speechlm_eval.errors import ConfigError
from speechlm_eval.model import LoglikelihoodRequest, LoglikelihoodResult, SpeechLM
from speechlm_eval.options import Opt, Spec

__all__ = ["LengthBaseline"]

UNITS = ("seconds", "samples")


def _unit(value: str) -> str:
    # A check rather than ``choices``: keeps the message this model always gave ("unit:
    # expected one of ..."), which users and tests match on.
    if value not in UNITS:
        raise ValueError(f"expected one of {', '.join(UNITS)}, got {value!r}")
    return value


OPTIONS = Spec(
    {"unit": Opt(str, "seconds", check=_unit, doc="what the log-probability counts")},
    noun="model argument",
    quote=False,
    usage="unit=seconds|samples",
)


class LengthBaseline(SpeechLM):
    """logprob = -duration (seconds, or samples), num_tokens = 1: prefers the shorter file."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"loglikelihood"})
    sample_rate = None  # any rate; no resampling

    def __init__(self, device: str | None = None, **kwargs: Any) -> None:
        # ``device`` is accepted (the harness' --device) and unused: nothing is computed on one.
        opts = OPTIONS.parse("length-baseline", kwargs)
        super().__init__(device=device, **opts)
        self.unit: str = opts["unit"]

    def identity(self) -> dict[str, Any]:
        return {
            "class": "LengthBaseline",
            "version": 1,
            "rule": f"logprob = -duration in {self.unit}; num_tokens = 1 "
            "(prefers the shorter file)",
            "unit": self.unit,
        }

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for r in requests:
            if r.audio is None:
                raise ConfigError(
                    f"length-baseline scores audio only; request {r.key!r} has text and no audio"
                )
            n = r.audio.samples.shape[0]
            length = float(n) if self.unit == "samples" else n / r.audio.sample_rate
            out.append(LoglikelihoodResult(logprob=-length, num_tokens=1))
        return out
