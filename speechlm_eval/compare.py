"""``slm-eval compare BASE NEW``: the regression gate.

A metric fails when it moves in its bad direction by more than
``max(tolerance, k * sqrt(se_base^2 + se_new^2))``: small moves inside the
noise of a finite test set pass, real regressions fail. A task or metric present
in BASE but missing from NEW fails too (a silently dropped task is a regression).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import read_yaml
from .errors import ConfigError, DataError
from .results import load_results


@dataclass
class Tolerances:
    default: float = 0.01
    k: float = 2.0
    per_key: dict[str, float] | None = None  # "task" or "task/metric,filter" -> tolerance

    def for_key(self, task: str, key: str) -> float:
        per = self.per_key or {}
        return per.get(f"{task}/{key}", per.get(task, self.default))

    @classmethod
    def from_file(
        cls, path: str | Path, default: float | None = None, k: float | None = None
    ) -> Tolerances:
        """Read a tolerance YAML (``default``, ``k``, ``tasks``); flags given override it."""
        p = Path(path)
        data = read_yaml(p)
        unknown = set(data) - {"default", "k", "tasks"}
        if unknown:
            raise ConfigError(f"{p}: unknown key(s) {sorted(unknown)}; allowed: default, k, tasks")
        per = data.get("tasks", {}) or {}
        if not isinstance(per, dict):
            raise ConfigError(
                f"{p}: 'tasks' must map task or task/metric names to numbers, got {per!r}"
            )
        return cls(
            default=_tolerance(p, "default", data.get("default", 0.01))
            if default is None
            else default,
            k=_tolerance(p, "k", data.get("k", 2.0)) if k is None else k,
            per_key={str(a): _tolerance(p, f"tasks: {a}", b) for a, b in per.items()},
        )


def _tolerance(path: Path, field: str, value: Any) -> float:
    """A finite number >= 0 (bool is refused: ``true`` is not a tolerance)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{path}: field '{field}' must be a number >= 0, got {value!r}")
    if value < 0:
        raise ConfigError(f"{path}: field '{field}' must be a number >= 0, got {value!r}")
    return float(value)


@dataclass
class Row:
    task: str
    metric: str
    base: float | None
    new: float | None
    delta: float | None
    allowed: float | None
    status: str  # ok | FAIL | missing | new


def _stderr(entry: dict[str, Any], key: str) -> float:
    name, _, filt = key.partition(",")
    se = entry.get(f"{name}_stderr,{filt}")
    return float(se) if isinstance(se, (int, float)) and math.isfinite(se) else 0.0


def _hib(res: dict[str, Any], task: str, key: str) -> bool:
    name = key.partition(",")[0]
    return bool(res.get("higher_is_better", {}).get(task, {}).get(name, True))


def check_results(res: dict[str, Any], name: str) -> None:
    """The parts of a results dict the gate reads must have the right shape.

    ``results`` maps tasks to mappings whose metric values (``<metric>,<filter>``) are numbers
    (``null`` or lm-evaluation-harness' ``"N/A"`` allowed for stderrs). ``name`` is the file.
    """
    results = res.get("results")
    if not isinstance(results, dict):
        raise DataError(f"{name}: not a results file (no 'results' mapping)")
    for task, entry in results.items():
        if not isinstance(entry, dict):
            raise DataError(
                f"{name}: results.{task} must be a mapping of metrics, got {entry!r:.60}"
            )
        for key, val in entry.items():
            if "," not in key or val is None:
                continue
            ok = isinstance(val, (int, float)) and not isinstance(val, bool)
            if not ok and not ("_stderr," in key and val == "N/A"):
                raise DataError(f"{name}: results.{task}.{key} must be a number, got {val!r:.60}")


def compare(
    base: dict[str, Any],
    new: dict[str, Any],
    tol: Tolerances,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> list[Row]:
    """Compare every numeric metric of ``base`` with ``new``.

    ``names``: how errors refer to the two inputs (pass the file paths).
    """
    check_results(base, names[0])
    check_results(new, names[1])
    rows: list[Row] = []
    for task, bentry in sorted(base["results"].items()):
        nentry = new["results"].get(task)
        for key, bval in sorted(bentry.items()):
            if "_stderr," in key or "," not in key or not isinstance(bval, (int, float)):
                continue
            if nentry is None or not isinstance(nentry.get(key), (int, float)):
                rows.append(Row(task, key, bval, None, None, None, "missing"))
                continue
            nval = float(nentry[key])
            delta = nval - float(bval)
            se = math.hypot(_stderr(bentry, key), _stderr(nentry, key))
            allowed = max(tol.for_key(task, key), tol.k * se)
            bad = -delta if _hib(base, task, key) else delta
            both_nan = math.isnan(nval) and math.isnan(float(bval))
            status = "FAIL" if (bad > allowed or (math.isnan(delta) and not both_nan)) else "ok"
            rows.append(Row(task, key, float(bval), nval, delta, allowed, status))
    for task in sorted(set(new["results"]) - set(base["results"])):
        rows.append(Row(task, "*", None, None, None, None, "new"))
    return rows


def failed(rows: list[Row]) -> bool:
    return any(r.status in ("FAIL", "missing") for r in rows)


def format_table(rows: list[Row]) -> str:
    def f(x: float | None, signed: bool = False) -> str:
        return "-" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}")

    head = ("task", "metric", "base", "new", "delta", "allowed", "status")
    body = [
        (r.task, r.metric, f(r.base), f(r.new), f(r.delta, True), f(r.allowed), r.status)
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
        for line in (head, *body)
    ]
    n_fail = sum(r.status in ("FAIL", "missing") for r in rows)
    lines.append(f"{len(rows)} metrics compared, {n_fail} failed")
    return "\n".join(lines)


def _non_negative(name: str) -> Any:
    def parse(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v!r}") from None
        if not x >= 0:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v!r}")
        return x

    parse.__name__ = name
    return parse


def add_arguments(c: argparse.ArgumentParser) -> None:
    """The flags of ``slm-eval compare``."""
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument(
        "--tolerance",
        type=_non_negative("tolerance"),
        default=None,
        help="absolute tolerance (default 0.01)",
    )
    c.add_argument(
        "--k", type=_non_negative("k"), default=None, help="stderr multiplier (default 2)"
    )
    c.add_argument("--tolerance_file", default=None, help="YAML: default, k, tasks: {name: tol}")


def run_cli(a: argparse.Namespace) -> int:
    """``slm-eval compare``: print the table; 1 when anything failed, else 0."""
    tol = (
        Tolerances.from_file(a.tolerance_file, a.tolerance, a.k)
        if a.tolerance_file
        else Tolerances(
            default=0.01 if a.tolerance is None else a.tolerance, k=2.0 if a.k is None else a.k
        )
    )
    rows = compare(load_results(a.base), load_results(a.new), tol, names=(a.base, a.new))
    print(format_table(rows))
    return 1 if failed(rows) else 0
