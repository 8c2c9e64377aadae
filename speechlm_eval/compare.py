"""``slm-eval compare BASE NEW``: the regression gate.

Three rules:

- **paired** (default where both runs have per-sample files, ``--log_samples``): each task's
  headline metric is tested on the items the two runs share (exact sign / McNemar test for
  choice tasks, paired bootstrap for WER/CER; :mod:`speechlm_eval.paired`), one-sided at
  ``alpha``, Holm-adjusted across the tasks tested. A task fails on a significant
  regression only. Far more sensitive than the aggregate rule, since the item-to-item
  variance that dominates both stderrs cancels in a paired difference.
- **aggregate** (tasks without samples on both sides, ABX, or ``--aggregate``): a metric
  fails when it moves in its bad direction by more than
  ``max(tolerance, k * sqrt(se_base^2 + se_new^2))``.
- **exact** (``--exact``, for deterministic reference models): any difference in any metric
  value, or in any per-sample row where both runs have samples, fails.

A task or metric present in BASE but missing from NEW fails under every rule (a silently
dropped task is a regression).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import paired
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


# --- the paired gate -------------------------------------------------------------------------


@dataclass
class GateRow:
    """One line of the paired gate's table: a paired test, or an aggregate-rule metric."""

    task: str
    metric: str
    status: str  # ok | FAIL | missing | new | info (a paired test that does not gate)
    test: str = "-"  # "McNemar exact" | "sign test exact" | "paired bootstrap" | "aggregate"
    n: int | None = None  # paired units
    base: float | None = None
    new: float | None = None
    delta: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None  # one-sided, raw
    p_adj: float | None = None  # after the multiple-comparison rule
    note: str = ""


@dataclass(frozen=True)
class PairedOptions:
    """The statistical settings of the paired gate (flags of ``slm-eval compare``)."""

    alpha: float = paired.ALPHA
    multiple: str = "holm"
    resamples: int = paired.RESAMPLES
    seed: int = paired.SEED


def _primary(res: dict[str, Any], task: str) -> str | None:
    m = res.get("scoring", {}).get(task, {}).get("primary_metric")
    return m if isinstance(m, str) and "," in m else None


def _close(a: float, b: Any) -> bool:
    return isinstance(b, (int, float)) and math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)


def _paired_tests(
    task: str,
    base: dict[str, Any],
    new: dict[str, Any],
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    kind: str,
    primary: str,
    opts: PairedOptions,
    names: tuple[str, str],
) -> list[paired.PairedTest]:
    """The headline test first, then the task's other variant(s) (shown, not gated).

    Every value recomputed from the samples must equal the results file's: samples of
    another run (or another task version) must not be compared in its place.
    """
    name, _, filt = primary.partition(",")
    if kind == "choice":
        variants = base.get("scoring", {}).get(task, {}).get("variants") or [filt]
        metrics = [primary] + [f"{name},{v}" for v in variants if v != filt]
        metrics = [m for m in metrics if f"score,{m.partition(',')[2]}" in rows[0][0]]
    else:
        metrics = [primary] + [f"{u},{filt}" for u in ("wer", "cer") if u != name]
        metrics = [m for m in metrics if f"{m.partition(',')[0]}_errors" in rows[0][0]]
    metrics = [
        m for m in metrics if m in base["results"][task] and m in new["results"].get(task, {})
    ]
    out = []
    for metric in metrics:
        hib = _hib(base, task, metric)
        kw: dict[str, Any] = dict(
            higher_is_better=hib,
            alpha=opts.alpha,
            resamples=opts.resamples,
            seed=opts.seed,
            names=names,
        )
        if kind == "choice":
            # The headline averages per doc_id first (ZeroSpeech 2021) or over rows (plain
            # choice accuracy); the two agree when every doc_id has one row. Take the one
            # that reproduces both results files.
            _, b, n, count = paired.unit_scores(
                task, rows[0], rows[1], f"score,{metric.partition(',')[2]}", names
            )
            weighting = None
            for wname, w in (("unit", np.ones_like(count)), ("item", count)):
                vb, vn = float((w * b).sum() / w.sum()), float((w * n).sum() / w.sum())
                if _close(vb, base["results"][task][metric]) and _close(
                    vn, new["results"][task][metric]
                ):
                    weighting = wname
                    break
            if weighting is None:
                _not_reproduced(task, metric, base, new, names, b.mean(), n.mean())
            t = paired.choice_test(task, metric, rows[0], rows[1], weighting=weighting, **kw)
        else:
            t = paired.corpus_test(task, metric, rows[0], rows[1], **kw)
            if not (
                _close(t.base, base["results"][task][metric])
                and _close(t.new, new["results"][task][metric])
            ):
                _not_reproduced(task, metric, base, new, names, t.base, t.new)
        out.append(t)
    return out


def _not_reproduced(
    task: str,
    metric: str,
    base: dict[str, Any],
    new: dict[str, Any],
    names: tuple[str, str],
    vb: float,
    vn: float,
) -> None:
    rb, rn = base["results"][task][metric], new["results"][task][metric]
    which = names[0] if not _close(float(vb), rb) else names[1]
    raise DataError(
        f"{which}: the samples of {task} do not reproduce results.{task}.{metric} "
        f"(samples give {vb:.6g} / {vn:.6g}, results say {rb!r:.10} / {rn!r:.10}): "
        "not this run's samples"
    )


def _aggregate_rows(
    base: dict[str, Any], new: dict[str, Any], task: str, tol: Tolerances, why: str
) -> list[GateRow]:
    sub_b = {"results": {task: base["results"][task]}, **_hib_only(base, task)}
    sub_n = {"results": {task: new["results"][task]}} if task in new["results"] else {}
    rows = compare(sub_b, sub_n or {"results": {}}, tol)
    return [
        GateRow(
            r.task,
            r.metric,
            r.status,
            test="aggregate" if r.status != "missing" else "-",
            base=r.base,
            new=r.new,
            delta=r.delta,
            note=f"allowed {r.allowed:.4f}; {why}" if r.allowed is not None else why,
        )
        for r in rows
    ]


def _hib_only(res: dict[str, Any], task: str) -> dict[str, Any]:
    return {"higher_is_better": {task: res.get("higher_is_better", {}).get(task, {})}}


def _why_not_paired(
    task: str,
    base: dict[str, Any],
    new: dict[str, Any],
    samples: tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]],
) -> tuple[str | None, str]:
    """(kind of paired test, "") when ``task`` can be tested paired, else (None, reason)."""
    if task not in new["results"]:
        return None, "missing from NEW"
    has = [task in s for s in samples]
    if not all(has):
        side = "BASE and NEW" if not any(has) else ("BASE" if not has[0] else "NEW")
        return None, f"no samples in {side}"
    primary = _primary(base, task)
    if primary is None:
        return None, "no scoring.primary_metric"
    if primary not in new["results"][task]:
        return None, f"{primary} missing from NEW"
    kind = paired.kind_of(samples[0][task], primary)
    if kind is None or paired.kind_of(samples[1][task], primary) != kind:
        return None, "samples have no independent paired unit"
    return kind, ""


def compare_paired(
    base: dict[str, Any],
    new: dict[str, Any],
    base_samples: dict[str, list[dict[str, Any]]],
    new_samples: dict[str, list[dict[str, Any]]],
    tol: Tolerances,
    opts: PairedOptions | None = None,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> list[GateRow]:
    """The paired gate: tasks with samples on both sides are tested paired on their headline
    metric (one family, adjusted by ``opts.multiple``); the others use the aggregate rule.

    ``base_samples`` / ``new_samples``: the rows of each task's samples file, by task.
    """
    opts = opts or PairedOptions()
    check_results(base, names[0])
    check_results(new, names[1])
    out: list[GateRow] = []
    gated: list[tuple[GateRow, float]] = []  # headline rows and their raw p
    for task in sorted(base["results"]):
        kind, why = _why_not_paired(task, base, new, (base_samples, new_samples))
        if kind is None:
            out.extend(_aggregate_rows(base, new, task, tol, why))
            continue
        primary = _primary(base, task)
        assert primary is not None
        tests = _paired_tests(
            task,
            base,
            new,
            (base_samples[task], new_samples[task]),
            kind,
            primary,
            opts,
            names,
        )
        for i, t in enumerate(tests):
            row = GateRow(
                t.task,
                t.metric,
                "info",
                t.test,
                t.n,
                t.base,
                t.new,
                t.delta,
                t.ci,
                t.p,
                note=t.note,
            )
            out.append(row)
            if i == 0:
                gated.append((row, t.p))
        # A metric of BASE that NEW dropped still fails, as under the aggregate rule.
        for key, val in sorted(base["results"][task].items()):
            numeric = isinstance(val, (int, float)) and "_stderr," not in key and "," in key
            if numeric and not isinstance(new["results"][task].get(key), (int, float)):
                out.append(GateRow(task, key, "missing", base=float(val)))
    adjusted = paired.adjust([p for _, p in gated], opts.multiple)
    for (row, _), p_adj in zip(gated, adjusted, strict=True):
        row.p_adj = p_adj
        bad = -(row.delta or 0.0) if _hib(base, row.task, row.metric) else (row.delta or 0.0)
        # Fails on a significant one-sided test *and* a headline that moved the bad way (a
        # sign test ignores magnitudes: many small losses can outnumber a few large gains).
        row.status = "FAIL" if p_adj <= opts.alpha and bad > 0 else "ok"
    for task in sorted(set(new["results"]) - set(base["results"])):
        out.append(GateRow(task, "*", "new"))
    return out


def gate_failed(rows: list[GateRow]) -> bool:
    """Whether the paired gate fails: any FAIL or missing row."""
    return any(r.status in ("FAIL", "missing") for r in rows)


_RULES = {
    "holm": "Holm-Bonferroni step-down",
    "bonferroni": "Bonferroni",
    "none": "none (each test at alpha)",
}


def format_gate_table(rows: list[GateRow], opts: PairedOptions | None = None) -> str:
    """The paired gate's table, with the rule it applied underneath."""
    opts = opts or PairedOptions()

    def f(x: float | None, signed: bool = False) -> str:
        return "-" if x is None else (f"{x:+.4f}" if signed else f"{x:.4f}")

    def fp(x: float | None) -> str:
        return "-" if x is None else f"{x:.3g}"

    level = f"CI{round(100 * (1 - 2 * opts.alpha))}"
    head = (
        "task", "metric", "test", "n", "base", "new", "delta", level, "p", "p_adj", "status",
        "note",
    )  # fmt: skip
    body = [
        (
            r.task,
            r.metric,
            r.test,
            "-" if r.n is None else str(r.n),
            f(r.base),
            f(r.new),
            f(r.delta, True),
            "-" if r.ci is None else f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]",
            fp(r.p),
            fp(r.p_adj),
            r.status,
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]
    n_paired = sum(r.p_adj is not None for r in rows)
    n_fail = sum(r.status in ("FAIL", "missing") for r in rows)
    lines.append(
        f"{n_paired} tasks tested paired, {sum(r.test == 'aggregate' for r in rows)} metrics "
        f"by the aggregate rule, {n_fail} failed"
    )
    lines.append(
        f"paired rule: one-sided alpha = {opts.alpha:g} (only a significant regression fails, "
        f"and only with the headline moved the bad way); multiple comparisons: "
        f"{_RULES[opts.multiple]} over the {n_paired} headline test(s); {level}: two-sided "
        f"{1 - 2 * opts.alpha:.0%} paired percentile bootstrap over units "
        f"(B={opts.resamples}, seed {opts.seed}); 'info' rows are shown, not gated"
    )
    return "\n".join(lines)


# --- the exact gate --------------------------------------------------------------------------


def compare_exact(
    base: dict[str, Any],
    new: dict[str, Any],
    base_samples: dict[str, list[dict[str, Any]]] | None = None,
    new_samples: dict[str, list[dict[str, Any]]] | None = None,
    names: tuple[str, str] = ("BASE", "NEW"),
) -> list[Row]:
    """``--exact``: every metric value (stderrs included) must be identical, and every
    per-sample row where both sides have samples; for deterministic reference models."""
    check_results(base, names[0])
    check_results(new, names[1])
    bs, ns = base_samples or {}, new_samples or {}
    rows: list[Row] = []
    for task, bentry in sorted(base["results"].items()):
        nentry = new["results"].get(task)
        for key, bval in sorted(bentry.items()):
            if "," not in key or bval is None:
                continue
            if nentry is None or key not in nentry:
                rows.append(Row(task, key, _num(bval), None, None, 0.0, "missing"))
                continue
            nval = nentry[key]
            delta = (
                float(nval) - float(bval)
                if isinstance(nval, (int, float)) and isinstance(bval, (int, float))
                else None
            )
            status = "ok" if paired.same(bval, nval) else "FAIL"
            rows.append(Row(task, key, _num(bval), _num(nval), delta, 0.0, status))
        if task in bs and task in ns:
            k = paired.differing_rows(bs[task], ns[task])
            label = f"samples: {k} of {len(bs[task]) + len(ns[task])} rows differ"
            rows.append(Row(task, label, None, None, None, 0.0, "ok" if k == 0 else "FAIL"))
    for task in sorted(set(new["results"]) - set(base["results"])):
        rows.append(Row(task, "*", None, None, None, None, "new"))
    return rows


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _unit_interval(name: str) -> Any:
    def parse(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in (0, 0.5), got {v!r}") from None
        if not 0 < x < 0.5:
            raise argparse.ArgumentTypeError(f"expected a number in (0, 0.5), got {v!r}")
        return x

    parse.__name__ = name
    return parse


def _count(name: str) -> Any:
    def parse(v: str) -> int:
        try:
            x = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v!r}") from None
        if x < 0:
            raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v!r}")
        return x

    parse.__name__ = name
    return parse


def _load_samples(
    results_path: str, tasks: list[str], samples_dir: str | None
) -> dict[str, list[dict[str, Any]]]:
    found = paired.find_samples(results_path, tasks, samples_dir)
    return {t: paired.read_rows(p) for t, p in found.items()}


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
    c.add_argument(
        "--samples_base",
        default=None,
        metavar="DIR",
        help="folder of BASE's samples_<task>_<ts>.jsonl (default: beside BASE, same <ts>)",
    )
    c.add_argument(
        "--samples_new",
        default=None,
        metavar="DIR",
        help="folder of NEW's samples files (default: beside NEW, same <ts>)",
    )
    rule = c.add_mutually_exclusive_group()
    rule.add_argument(
        "--aggregate",
        action="store_true",
        help="ignore per-sample files: aggregate rule max(tolerance, k*combined stderr) only",
    )
    rule.add_argument(
        "--exact",
        action="store_true",
        help="any difference in any metric value or per-sample row fails (deterministic models)",
    )
    c.add_argument(
        "--alpha",
        type=_unit_interval("alpha"),
        default=paired.ALPHA,
        help=f"paired gate: one-sided significance level (default {paired.ALPHA})",
    )
    c.add_argument(
        "--multiple",
        choices=paired.MULTIPLE,
        default="holm",
        help="paired gate: multiple-comparison rule across tasks (default holm)",
    )
    c.add_argument(
        "--resamples",
        type=_count("resamples"),
        default=paired.RESAMPLES,
        help=f"paired bootstrap resamples (default {paired.RESAMPLES})",
    )
    c.add_argument(
        "--seed", type=int, default=paired.SEED, help="paired bootstrap seed (default 0)"
    )


def run_cli(a: argparse.Namespace) -> int:
    """``slm-eval compare``: print the table; 1 when anything failed, else 0."""
    tol = (
        Tolerances.from_file(a.tolerance_file, a.tolerance, a.k)
        if a.tolerance_file
        else Tolerances(
            default=0.01 if a.tolerance is None else a.tolerance, k=2.0 if a.k is None else a.k
        )
    )
    base, new = load_results(a.base), load_results(a.new)
    names = (a.base, a.new)
    samples: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    if not a.aggregate:
        tasks = sorted(set(base["results"]) & set(new["results"]))
        samples = (
            _load_samples(a.base, tasks, a.samples_base),
            _load_samples(a.new, tasks, a.samples_new),
        )
    if a.exact:
        rows = compare_exact(base, new, *samples, names=names)
        print(format_table(rows))
        n = sum(t in samples[1] for t in samples[0])
        print(f"exact rule: any difference fails; per-sample rows compared for {n} task(s)")
        return 1 if failed(rows) else 0
    if not any(t in samples[1] for t in samples[0]):
        rows = compare(base, new, tol, names=names)
        print(format_table(rows))
        if not a.aggregate:
            print("aggregate rule: no task has per-sample files on both sides (--log_samples)")
        return 1 if failed(rows) else 0
    opts = PairedOptions(a.alpha, a.multiple, a.resamples, a.seed)
    gate = compare_paired(base, new, *samples, tol, opts, names=names)
    print(format_gate_table(gate, opts))
    return 1 if gate_failed(gate) else 0
