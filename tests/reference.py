"""One way to check a metric against its reference: the same cases through both, compared.

Every new metric gets a reference test written the same way: the harness' implementation
(``metric``) and an independent formulation -- the library or official implementation it
follows (jiwer, the ZeroSpeech scripts' pandas groupby), or a plain-Python re-derivation of
the rule -- run on the same hand-written or random cases::

    from reference import assert_matches_reference

    assert_matches_reference(
        lambda case: WERScorer(opts).score(*case).metrics,     # name -> Metric
        lambda case: {"wer": jiwer.wer(...), "cer": jiwer.cer(...)},
        cases,
        rtol=1e-12,
    )

Both functions take one case and return a number, a :class:`~speechlm_eval.metrics.Metric`
(its value is compared) or a mapping name -> either; the reference's names must be a
subset of the metric's (a report has more metrics than one library function computes), and
``keys`` narrows the comparison further. ``exact=True`` demands bit-identical values.
:func:`assert_order_invariant` checks the other half of the contract: an aggregate does not
depend on the order of its samples (shards of a dataset aggregate together).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from speechlm_eval.metrics import Metric, SampleScore


def _numbers(result: Any) -> dict[str, float | None]:
    """A result as name -> number (a bare number or Metric is named '')."""
    if isinstance(result, Mapping):
        return {str(k): _number(v) for k, v in result.items()}
    return {"": _number(result)}


def _number(x: Any) -> float | None:
    if isinstance(x, Metric):
        return x.value
    return None if x is None else float(x)


def _close(a: float | None, b: float | None, rtol: float, atol: float, exact: bool) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b if exact else math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def assert_matches_reference(
    metric: Callable[[Any], Any],
    reference: Callable[[Any], Any],
    cases: Iterable[Any],
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    exact: bool = False,
    keys: Sequence[str] | None = None,
) -> int:
    """Assert ``metric(case)`` equals ``reference(case)`` for every case, within ``rtol`` /
    ``atol`` (or exactly); NaN equals NaN, None equals None. Returns the number of values
    compared; an empty list of cases is a failure (a test that compares nothing)."""
    compared = 0
    for i, case in enumerate(cases):
        got, want = _numbers(metric(case)), _numbers(reference(case))
        names = list(keys) if keys is not None else list(want)
        missing = [k for k in names if k not in got or k not in want]
        assert not missing, f"case {i}: {missing} not computed by both (metric: {sorted(got)})"
        for k in names:
            assert _close(got[k], want[k], rtol, atol, exact), (
                f"case {i}, {k or 'value'}: metric {got[k]!r} != reference {want[k]!r}"
            )
            compared += 1
    assert compared, "no value was compared"
    return compared


def assert_order_invariant(
    aggregate: Callable[[list[SampleScore]], Any],
    samples: Sequence[SampleScore],
    *,
    shuffles: int = 3,
    seed: int = 0,
    rtol: float = 1e-12,
    atol: float = 1e-15,
    stderr: bool = True,
) -> None:
    """``aggregate`` gives the same metrics (and, with ``stderr``, standard errors) for
    shuffled samples. A seeded bootstrap's standard error depends on the order of the units
    it resamples (reproducible for one order), so it is compared with ``stderr=False``."""

    def table(report: Any) -> dict[str, tuple[float | None, float | None]]:
        return {k: (m.value, m.stderr) for k, m in report.metrics.items()}

    base = table(aggregate(list(samples)))
    rng = random.Random(seed)
    for r in range(shuffles):
        perm = list(samples)
        rng.shuffle(perm)
        got = table(aggregate(perm))
        assert got.keys() == base.keys(), f"shuffle {r}: metrics {sorted(got)} != {sorted(base)}"
        for k, (v, se) in base.items():
            pairs = [(got[k][0], v), (got[k][1], se)] if stderr else [(got[k][0], v)]
            for a, b in pairs:
                assert _close(a, b, rtol, atol, exact=False), f"shuffle {r}, {k}: {a!r} != {b!r}"
