"""Instruction-following answers (capability ``respond``): parse each response with the task's
filter chains (:mod:`speechlm_eval.scorers.extract`), then score it.

Options (task YAML ``scoring.options``):

- ``filters``: the filter chains, one list for every item; or ``filters_by_subgroup``: a
  mapping ``subgroup -> chains`` (each subgroup declaring the *same* chain names, so
  ``acc,strict`` covers every item) for a dataset mixing answer formats (numbers, yes/no,
  choice letters). Exactly one of the two.
- ``metric``: ``acc`` (default; closed answers) or ``wer`` / ``cer`` (free text, e.g. ASR
  through ``respond``: the chain's answer is the hypothesis, scored by
  :class:`~speechlm_eval.scorers.wer.WERScorer` with ``normalizer``,
  ``bootstrap_resamples``, ``confidence_level``, ``seed``).
- ``primary_filter``: the chain of the headline metric (default: the first).
- ``by_subgroup`` (default true): ``acc_<subgroup>`` per item subgroup (acc only).

**Accuracy** (``acc``): 1 when the parsed answer is one of the item's acceptable answers (a
list in the gold file; compared as strings in the chain's canonical form), 0 otherwise;
an **unparsed answer counts 0** and is reported in ``parse_failure`` (the share of items
with no answer), over the same denominator: every item, never only the parsed ones (the
AIR-Bench ``fail_num`` rule shrinks it) and never a random letter (the VoiceBench rule).
A response with no text (a speech-only answer) is unparsed.

**Free text** (``wer``/``cer``): an unparsed response is the empty hypothesis (every
reference word deleted) and is counted in ``parse_failure`` too.

Metrics come back per chain: ``{chain: ScoreReport}``; the pipeline writes them as
``acc,<chain>``, ``parse_failure,<chain>`` (lm-evaluation-harness' ``metric,filter``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, DataError
from ..metrics import SampleScore, ScoreReport, grouped, mean
from ..options import Opt, Spec
from .base import sample_records
from .extract import FilterChain, parse_filters
from .wer import CI_METHODS, NORMALIZERS, WERScorer

METRICS = ("acc", "wer", "cer")

OPTIONS = Spec(
    {
        "filters": Opt(list, None, doc="filter chains for every item"),
        "filters_by_subgroup": Opt(dict, None, doc="subgroup -> filter chains"),
        "metric": Opt(str, "acc", choices=METRICS),
        "primary_filter": Opt(str, None, doc="default: the first chain"),
        "by_subgroup": Opt(bool, True, doc="acc per item subgroup"),
        "normalizer": Opt(str, "whisper_english", choices=NORMALIZERS, doc="wer/cer"),
        "bootstrap_resamples": Opt(int, 1000, ge=0, doc="wer/cer"),
        "confidence_level": Opt(float, 0.95, gt=0, lt=1, doc="wer/cer"),
        "ci_method": Opt(str, "percentile", choices=CI_METHODS, doc="wer/cer"),
        "seed": Opt(int, 0, ge=0, doc="wer/cer bootstrap seed"),
    },
    noun="key",
    strict=True,
)
WER_OPTIONS = ("normalizer", "bootstrap_resamples", "confidence_level", "ci_method", "seed")


class InstructionScorer:
    """Accuracy (or WER/CER) of parsed answers per filter chain, with the parse-failure rate."""

    name = "instruction"
    inputs = "responses"  # what it scores: text responses to instructions (respond pipeline)
    roles: tuple[str, ...] = ()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        where = "scoring options of the instruction scorer"
        self.options = OPTIONS.parse(where, options)
        o = self.options
        if (o["filters"] is None) == (o["filters_by_subgroup"] is None):
            raise ConfigError(f"{where}: give exactly one of 'filters' and 'filters_by_subgroup'")
        # subgroup (None: every item) -> chain name -> chain
        self.chains: dict[str | None, dict[str, FilterChain]] = {}
        if o["filters"] is not None:
            self.chains[None] = {
                c.name: c for c in parse_filters(o["filters"], f"{where}: filters")
            }
        else:
            by = o["filters_by_subgroup"]
            if not by:
                raise ConfigError(f"{where}: 'filters_by_subgroup' is empty")
            for g, spec in by.items():
                at = f"{where}: filters_by_subgroup.{g}"
                self.chains[str(g)] = {c.name: c for c in parse_filters(spec, at)}
            names = {g: list(cs) for g, cs in self.chains.items()}
            first_g, first = next(iter(names.items()))
            for g, ns in names.items():
                if ns != first:
                    raise ConfigError(
                        f"{where}: filters_by_subgroup.{g} names chains {ns}, but "
                        f"{first_g} names {first}; every subgroup must name the same chains"
                    )
        self.filter_names = list(next(iter(self.chains.values())))
        primary = o["primary_filter"] or self.filter_names[0]
        if primary not in self.filter_names:
            raise ConfigError(
                f"{where}: primary_filter {primary!r} is not one of the chains "
                f"({', '.join(self.filter_names)})"
            )
        self.primary = primary
        self.wer = (
            WERScorer({k: o[k] for k in WER_OPTIONS} | {"metric": o["metric"]})
            if o["metric"] != "acc"
            else None
        )

    def chain(self, name: str, subgroup: str | None) -> FilterChain:
        """The chain ``name`` for an item of ``subgroup``; a DataError for an item whose
        subgroup has no chains (filters_by_subgroup)."""
        if None in self.chains:
            return self.chains[None][name]
        if subgroup not in self.chains:
            raise DataError(
                f"instruction scorer: an item of subgroup {subgroup!r} has no filters "
                f"(filters_by_subgroup declares {', '.join(map(str, self.chains))})"
            )
        return self.chains[subgroup][name]

    def describe(self) -> dict[str, Any]:
        """The scoring record: chains as YAML would write them, the rules."""
        chains = {
            str(g) if g is not None else "all": [c.describe() for c in cs.values()]
            for g, cs in self.chains.items()
        }
        return {
            "scorer": self.name,
            "metric": self.options["metric"],
            "primary_metric": f"{self.options['metric']},{self.primary}",
            "filters": chains,
            "unparsed": "counted wrong (acc 0; wer: empty hypothesis) and reported as "
            "parse_failure; the denominator is every item",
        }

    # --- accuracy ------------------------------------------------------------------------------

    def score_sample(
        self,
        doc_id: str,
        response: str | None,
        answers: Sequence[str],
        chain: FilterChain,
        subgroup: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> SampleScore:
        """One response under one chain: ``acc`` 1/0 and ``parse_failure`` 1/0."""
        ex = chain.extract(response)
        return SampleScore(
            doc_id,
            {
                "acc": float(ex.answer is not None and ex.answer in answers),
                "parse_failure": float(ex.answer is None),
            },
            groups={"subgroup": subgroup},
            answer=ex.answer,
            explanation=ex.explanation,
            meta={"target": list(answers), **dict(meta or {})},
        )

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport:
        """``acc`` and ``parse_failure`` over every item (closed-form stderr), ``acc_<g>``
        per subgroup."""
        if not samples:
            raise DataError("instruction scorer: no responses to score")
        metrics = {
            "acc": mean([s.values["acc"] for s in samples]),
            "parse_failure": mean(
                [s.values["parse_failure"] for s in samples], higher_is_better=False
            ),
        }
        if self.options["by_subgroup"]:
            by = grouped(samples, "subgroup", lambda ss: mean([s.values["acc"] for s in ss]))
            metrics.update({f"acc_{g}": m for g, m in by.items()})
        info = {
            "n_items": len(samples),
            "n_parse_failures": int(sum(s.values["parse_failure"] for s in samples)),
        }
        return ScoreReport(metrics, sample_records(samples), info)

    # --- every chain -----------------------------------------------------------------------------

    def score_responses(
        self,
        responses: Mapping[str, str | None],
        answers: Mapping[str, Sequence[str]],
        subgroups: Mapping[str, str] | None = None,
        meta: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, tuple[list[SampleScore], ScoreReport]]:
        """Every item of ``answers`` (in its order) scored under every chain:
        ``{chain: (samples, report)}``."""
        ids = list(answers)
        missing = [d for d in ids if d not in responses]
        if missing:
            raise DataError(f"instruction scorer: no response for {missing[:5]}")
        groups = subgroups or {}
        out: dict[str, tuple[list[SampleScore], ScoreReport]] = {}
        for name in self.filter_names:
            if self.wer is None:
                samples = [
                    self.score_sample(
                        d,
                        responses[d],
                        answers[d],
                        self.chain(name, groups.get(d)),
                        groups.get(d),
                        (meta or {}).get(d),
                    )
                    for d in ids
                ]
                out[name] = (samples, self.aggregate(samples))
            else:
                out[name] = self._score_text(name, ids, responses, answers, groups, meta or {})
        return out

    def _score_text(
        self,
        name: str,
        ids: list[str],
        responses: Mapping[str, str | None],
        answers: Mapping[str, Sequence[str]],
        groups: Mapping[str, str],
        meta: Mapping[str, Mapping[str, Any]],
    ) -> tuple[list[SampleScore], ScoreReport]:
        """WER/CER of the parsed responses against the first answer (the reference)."""
        assert self.wer is not None
        extracted = {d: self.chain(name, groups.get(d)).extract(responses[d]) for d in ids}
        hyps = {d: extracted[d].answer or "" for d in ids}
        counted = self.wer.score_samples({d: answers[d][0] for d in ids}, hyps)
        samples = [
            SampleScore(
                s.doc_id,
                {**s.values, "parse_failure": float(extracted[s.doc_id].answer is None)},
                answer=extracted[s.doc_id].answer,
                explanation=extracted[s.doc_id].explanation,
                meta={**s.meta, **dict(meta.get(s.doc_id, {}))},
            )
            for s in counted
        ]
        report = self.wer.aggregate(samples)
        report.metrics["parse_failure"] = mean(
            [s.values["parse_failure"] for s in samples], higher_is_better=False
        )
        report.info = {
            "n_items": len(samples),
            "n_parse_failures": int(sum(s.values["parse_failure"] for s in samples)),
            "wer": report.info,
        }
        return samples, report
