"""What every likelihood-choice scorer shares: the item rule and the report type."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dataset import ChoiceItem
from ..errors import ConfigError


@dataclass
class Metric:
    value: float
    stderr: float | None  # closed-form standard error of a mean; None when n < 2
    n: int
    higher_is_better: bool = True


@dataclass
class ScoreReport:
    metrics: dict[str, Metric]
    per_item: list[dict[str, Any]] = field(default_factory=list)


def choice_score(values: Sequence[float]) -> float:
    """1 when the positive (index 0) is strictly above every foil, 0 when some foil is above it.

    On a tie at the top the point is shared among the tied candidates (0.5 for a
    pair), which is the ZeroSpeech 2021 / SALMon / slamkit rule for pairs.
    """
    pos, foils = values[0], values[1:]
    best_foil = max(foils)
    if pos > best_foil:
        return 1.0
    if pos < best_foil:
        return 0.0
    return 1.0 / (1 + sum(1 for f in foils if f == pos))


def mean_metric(values: Sequence[float] | np.ndarray, higher_is_better: bool = True) -> Metric:
    """Mean with its closed-form standard error (sample std, ddof=1, over sqrt(n))."""
    a = np.asarray(values, dtype=np.float64)
    n = int(a.size)
    if n == 0:
        return Metric(math.nan, None, 0, higher_is_better)
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return Metric(float(a.mean()), se, n, higher_is_better)


def item_scores(items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> list[float]:
    return [choice_score([scores[s] for s in it.candidates]) for it in items]


def no_options(scorer: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """For scorers that take no options: a misspelt option is an error, not silently ignored."""
    opts = dict(options or {})
    if opts:
        raise ConfigError(
            f"scorer {scorer!r} takes no scoring options, got {sorted(opts)} "
            "(check the task YAML's scoring.options)"
        )
    return opts
