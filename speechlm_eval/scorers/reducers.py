"""Reducers: N samples per prompt folded into one SampleScore before aggregation.

A task that samples a model several times per prompt (continuations at a temperature, with
seeds) scores each sample and then folds the SampleScores of one prompt with a reducer
named in its YAML: pGSLM's min-MAE over 20 continuations is ``min`` of each continuation's
MAE; ``mean`` is the expected score of one sample; ``max`` is best-of-N. The folded
samples are then aggregated as usual, so the stderr counts prompts, not samples.

Reducers are registered by name (:func:`register_reducer`); each maps the 1-D array of
one value over a prompt's samples to a number, with numpy doing the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics import SampleScore

Reducer = Callable[[np.ndarray], float]

REDUCERS: dict[str, Reducer] = {}


def register_reducer(name: str) -> Callable[[Reducer], Reducer]:
    """Register a reducer under ``name`` (a duplicate name is an error)."""

    def deco(fn: Reducer) -> Reducer:
        if name in REDUCERS:
            raise ValueError(f"reducer {name!r} is registered twice")
        REDUCERS[name] = fn
        return fn

    return deco


@register_reducer("mean")
def _mean(a: np.ndarray) -> float:
    return float(np.mean(a))


@register_reducer("min")
def _min(a: np.ndarray) -> float:
    return float(np.min(a))


@register_reducer("max")
def _max(a: np.ndarray) -> float:
    return float(np.max(a))


@register_reducer("median")
def _median(a: np.ndarray) -> float:
    return float(np.median(a))


def get_reducer(name: str) -> Reducer:
    """The reducer called ``name``; an unknown name is a one-line ConfigError."""
    try:
        return REDUCERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown reducer {name!r}; known: {', '.join(sorted(REDUCERS))}"
        ) from None


def _common(vals: list[str | None]) -> str | None:
    """The value all samples agree on, or None."""
    return vals[0] if len(set(vals)) == 1 else None


def reduce_samples(
    samples: Sequence[SampleScore],
    reducer: str | Reducer = "mean",
    key: Callable[[SampleScore], Hashable] | None = None,
) -> list[SampleScore]:
    """One SampleScore per prompt (``key``, default the doc_id), in first-appearance order.

    Every value is reduced on its own (``min`` of MAE and ``min`` of another value may come
    from different samples). ``answer`` and ``explanation`` are kept where all samples
    agree, else None; ``groups`` must agree (a prompt is in one group); ``meta`` is the
    first sample's plus ``num_samples``. Samples of one prompt must carry the same value
    names.
    """
    fn = get_reducer(reducer) if isinstance(reducer, str) else reducer
    keyf = key or (lambda s: s.doc_id)
    prompts: dict[Hashable, list[SampleScore]] = {}
    for s in samples:
        prompts.setdefault(keyf(s), []).append(s)
    out = []
    for k, group in prompts.items():
        names = list(group[0].values)
        if any(list(s.values) != names for s in group):
            raise DataError(f"reducing samples of {k!r}: they do not carry the same values")
        if any(s.groups != group[0].groups for s in group):
            raise DataError(f"reducing samples of {k!r}: their group keys differ")
        values = {v: fn(np.asarray([s.values[v] for s in group], dtype=np.float64)) for v in names}
        out.append(
            SampleScore(
                group[0].doc_id,
                values,
                groups=dict(group[0].groups),
                answer=_common([s.answer for s in group]),
                explanation=_common([s.explanation for s in group]),
                meta={**group[0].meta, "num_samples": len(group)},
            )
        )
    return out
