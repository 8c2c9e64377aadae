"""Is a likelihood-task score above chance? Exact binomial tests on per-item outcomes.

``python -m speechlm_eval.significance SAMPLES.jsonl ...`` reads the per-sample files that
``slm-eval run --log_samples`` writes for likelihood tasks (``samples_<task>_<time>.jsonl``)
and prints, per task and scoring variant, the items won, lost and tied, the accuracy, and the
two-sided exact binomial test of wins against losses at chance 1/k (k candidates per item;
ties are dropped, as a tie is no evidence either way), with ``scipy.stats.binomtest``.

It also prints the *count cue*: how often the positive candidate has fewer tokens than every
foil (a summed log-probability rewards that for free; compare ``length-baseline``).

Two tests are printed. Per item: every row counts. Per unit: rows sharing a ``doc_id`` (in
sWUGGY and sBLIMP, one pair spoken by several voices, which the headline averages first) are
one unit, won when its mean score is above chance and lost when below (a sign test); that is
the honest one where the voices of a pair are not independent evidence. Where every row has
its own ``doc_id`` (sSC, tSC, SALMon) the two are the same.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

SAMPLES_NAME = re.compile(r"samples_(?P<task>.+)_\d{4}-\d\d-\d\dT[\d.-]+\.jsonl$")


@dataclass(frozen=True)
class PairTest:
    """Outcome counts of one task and variant, and the exact binomial test against chance."""

    task: str
    variant: str
    items: int
    wins: int
    losses: int
    ties: int
    chance: float
    accuracy: float  # ties counted as the harness counts them (shared point)
    p_value: float  # two-sided, wins vs losses at ``chance``; 1.0 when no item is decided
    units: int  # distinct doc_ids
    unit_wins: int  # units whose mean score is above chance
    unit_losses: int  # ... below chance
    unit_p_value: float


def binomial_p(wins: int, losses: int, chance: float) -> float:
    """Two-sided exact binomial test of ``wins`` out of ``wins + losses`` at ``chance``."""
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, chance, alternative="two-sided").pvalue)


def pair_test(task: str, rows: Sequence[dict[str, Any]], variant: str) -> PairTest:
    """Test the per-item scores ``rows[i]['score,<variant>']`` (1 win, 0 loss, else a tie)."""
    key = f"score,{variant}"
    ks = {len(r["candidates"]) for r in rows}
    if len(ks) != 1:
        raise ConfigError(f"task {task!r}: items have different numbers of candidates {ks}")
    (k,) = ks
    scores = [float(r[key]) for r in rows]
    wins = sum(s == 1.0 for s in scores)
    losses = sum(s == 0.0 for s in scores)
    by_unit: dict[str, list[float]] = {}
    for r, sc in zip(rows, scores, strict=True):
        by_unit.setdefault(str(r["doc_id"]), []).append(sc)
    means = [sum(v) / len(v) for v in by_unit.values()]
    unit_wins = sum(m > 1.0 / k for m in means)
    unit_losses = sum(m < 1.0 / k for m in means)
    return PairTest(
        task=task,
        variant=variant,
        items=len(scores),
        wins=wins,
        losses=losses,
        ties=len(scores) - wins - losses,
        chance=1.0 / k,
        accuracy=sum(scores) / len(scores),
        p_value=binomial_p(wins, losses, 1.0 / k),
        units=len(means),
        unit_wins=unit_wins,
        unit_losses=unit_losses,
        # A unit's mean above 1/k is not a win with probability 1/k under chance when it
        # averages several items (k = 2: symmetric, so 1/2); for k > 2 only per-item holds.
        unit_p_value=binomial_p(unit_wins, unit_losses, 0.5) if k == 2 else float("nan"),
    )


def count_cue(rows: Iterable[dict[str, Any]]) -> float:
    """Share of items whose positive (candidate 0) has fewer tokens than every foil."""
    rows = list(rows)
    fewer = sum(r["num_tokens"][0] < min(r["num_tokens"][1:]) for r in rows)
    return fewer / len(rows)


def read_samples(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The task name (from the file name) and the rows of a likelihood samples file."""
    m = SAMPLES_NAME.search(path.name)
    if not m:
        raise ConfigError(f"{path}: not a samples file (expected samples_<task>_<time>.jsonl)")
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict) or "candidates" not in row:
                        raise ConfigError(
                            f"{path}, line {n}: not a likelihood sample (no 'candidates')"
                        )
                    rows.append(row)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read samples ({e})") from None
    if not rows:
        raise ConfigError(f"{path}: no samples")
    return m["task"], rows


def report(paths: Sequence[Path]) -> str:
    """A Markdown table: one row per task and scoring variant."""
    lines = [
        "| task | variant | items | wins | losses | ties | acc | p (items) | units "
        "| unit wins | unit losses | p (units) | count cue |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in paths:
        task, rows = read_samples(path)
        variants = sorted(k.split(",", 1)[1] for k in rows[0] if k.startswith("score,"))
        cue = count_cue(rows)
        for v in variants:
            t = pair_test(task, rows, v)
            lines.append(
                f"| {task} | {v} | {t.items} | {t.wins} | {t.losses} | {t.ties} "
                f"| {t.accuracy:.3f} | {t.p_value:.2g} | {t.units} | {t.unit_wins} "
                f"| {t.unit_losses} | {t.unit_p_value:.2g} | {cue:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m speechlm_eval.significance",
        description="exact binomial tests of likelihood-task samples against chance",
    )
    ap.add_argument("samples", nargs="+", type=Path, help="samples_<task>_<time>.jsonl files")
    a = ap.parse_args(argv)
    try:
        print(report(a.samples))
    except ConfigError as e:
        print(f"significance: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
