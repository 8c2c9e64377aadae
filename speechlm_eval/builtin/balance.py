"""Duration balance of minimal pairs: the length-only rule must be at chance.

In a pair (correct, incorrect) spoken by several voices, the length-only rule "prefer
the shorter file" is right on a voice when the correct file is shorter, wrong when it
is longer, and half right on a tie (the scoring rule's tie). Its score on a pair is the
mean over voices (the ZR2021 scripts average voices first). A pair set is *balanced*
when the running sum of (score - 0.5) stays within ``SLACK`` of 0, so the rule scores
0.5 up to ``SLACK / pairs``.

The subsets choose pairs from over-generated candidates with ``Balance.fits``, from the
exact sample counts of the audio (``Voice.length``) and nothing else: no model is
consulted. This is a small hand-written selection rule; no library does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

SLACK = 0.5  # one pair may be undecided; two in a row must cancel


def side(correct: int, incorrect: int) -> float:
    """Length-only rule on one voice: 1 if the correct file is shorter, 0.5 on a tie, else 0."""
    return 1.0 if correct < incorrect else 0.5 if correct == incorrect else 0.0


def pair_score(correct: Sequence[int], incorrect: Sequence[int]) -> float:
    """Length-only rule on a pair: mean over voices of ``side``."""
    if len(correct) != len(incorrect) or not correct:
        raise ValueError("one length per voice for each member of the pair")
    return sum(side(c, i) for c, i in zip(correct, incorrect, strict=True)) / len(correct)


def mismatch(correct: Sequence[int], incorrect: Sequence[int]) -> float:
    """Largest relative duration difference over voices: |c - i| / min(c, i)."""
    return max(abs(c - i) / max(1, min(c, i)) for c, i in zip(correct, incorrect, strict=True))


@dataclass
class Balance:
    """Running imbalance sum(score - 0.5) of the pairs taken so far, per group and overall."""

    slack: float = SLACK
    total: float = 0.0
    groups: dict[str, float] = field(default_factory=dict)

    def fits(self, group: str, score: float) -> bool:
        """Taking a pair of this score keeps the group and the whole set within the slack."""
        d = score - 0.5
        eps = 1e-9  # scores are multiples of 1/(2 * voices): exact up to rounding
        return (
            abs(self.groups.get(group, 0.0) + d) <= self.slack + eps
            and abs(self.total + d) <= self.slack + eps
        )

    def add(self, group: str, score: float) -> None:
        d = score - 0.5
        self.groups[group] = self.groups.get(group, 0.0) + d
        self.total += d


def summary(scores: Sequence[float], mismatches: Sequence[float]) -> dict[str, float]:
    """What the dataset card reports: the rule's accuracy and the median relative mismatch."""
    n = len(scores)
    return {
        "pairs": n,
        "length_rule_accuracy": round(sum(scores) / n, 4) if n else 0.5,
        "median_relative_mismatch": round(median(mismatches), 4) if n else 0.0,
        "max_relative_mismatch": round(max(mismatches), 4) if n else 0.0,
    }


def balance_row(group: str, b: dict[str, float]) -> str:
    """One Markdown table row of a ``summary`` (for the dataset cards)."""
    return (
        f"| {group} | {b['pairs']} | {b['length_rule_accuracy']:.3f} | "
        f"{100 * b['median_relative_mismatch']:.1f}% | {100 * b['max_relative_mismatch']:.1f}% |"
    )
