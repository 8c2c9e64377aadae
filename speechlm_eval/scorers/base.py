"""The scorer contract: score each sample, then aggregate; the choice rule; per-sample rows.

A scorer is a class registered in the entry-point group ``speechlm_eval.scorers`` and built
as ``Scorer(options)`` from the task YAML's ``scoring.options`` (unknown options are a
:class:`ConfigError`). Its ``name`` is the registered name; ``inputs`` says what it scores
(``"choice_items"``, ``"transcripts"``, ``"dataset"``: one of the protocols below, checked
when a task is run, so a task pairing a scorer with the wrong capability is a one-line
error); ``roles`` (optional) names the judge roles its task must bind (``("asr",)``).

**Sample-level scorers** (``choice``, ``zr2021_lexical``, ``zr2021_syntactic``, ``wer``):

- ``score_sample(<one sample's inputs>) -> SampleScore`` -- deterministic, no state kept.
  ``values`` are sufficient statistics (an item's point; an utterance's edit errors and
  reference length), never a per-sample *rate* that would later be averaged.
- ``aggregate(samples: Sequence[SampleScore]) -> ScoreReport`` -- a function of the
  SampleScores alone (so shards scored apart aggregate together, and a report can be
  recomputed from a samples file), independent of their order up to float rounding, built
  with the helpers of :mod:`speechlm_eval.metrics` (mean, cluster_mean, grouped, ratio,
  bootstrap); ``per_item`` = :func:`sample_records` of the samples.
- ``score(<the dataset's inputs>) -> ScoreReport`` -- the composition
  ``aggregate([score_sample(x) for x in ...])``, kept for callers that score in one go
  (``slm-eval score``, tests, benchmarks).

The per-capability shapes the pipelines call are the protocols below:
:class:`ChoiceItemScorer` (likelihood choice) and :class:`TranscriptScorer` (resynthesis).
N samples per prompt are folded by :mod:`speechlm_eval.scorers.reducers` before
``aggregate``; answers are parsed by the filter chains of :mod:`speechlm_eval.scorers.extract`.

**Dataset-level scorers** (``abx``, :class:`DatasetScorer`): only ``score(dataset, outputs)``.
ABX has no per-sample unit: an error rate is defined per (context, phone pair, speaker) cell
over all its A/B/X triples, and the triples of a cell reuse the same files, so there is no
independent per-sample record to aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from ..dataset import ChoiceItem
from ..errors import ConfigError
from ..metrics import Metric, SampleScore, ScoreReport, mean

if TYPE_CHECKING:
    from ..audio import Audio
    from ..cache import ResultCache
    from ..config import TaskConfig
    from ..execute import ExecStats

__all__ = [
    "ChoiceItemScorer",
    "ContinuationScorer",
    "DatasetScorer",
    "Metric",
    "ProsodyStreamScorer",
    "SampleScore",
    "ScoreReport",
    "SentimentScorer",
    "TranscriptScorer",
    "choice_score",
    "item_scores",
    "load_scorer",
    "mean_metric",
    "no_options",
    "sample_records",
]


# --- the protocols the pipelines call -----------------------------------------------------------


@runtime_checkable
class ChoiceItemScorer(Protocol):
    """Likelihood-choice tasks (``loglikelihood`` pipeline, ``slm-eval score``).

    ``scores`` maps each candidate's file stem to its score (higher = more likely). Each
    SampleScore carries ``values["score"]``, the item's point (1, 0, or a shared tie), which
    the samples file records as ``score,<filter>``.
    """

    name: str
    inputs: str  # "choice_items"

    def score_sample(self, item: ChoiceItem, scores: Mapping[str, float]) -> SampleScore: ...

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport: ...

    def score(self, items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> ScoreReport: ...


@runtime_checkable
class TranscriptScorer(Protocol):
    """Transcripts against references (``resynthesize`` pipeline): utterance id -> text."""

    name: str
    inputs: str  # "transcripts"

    def score_sample(
        self, doc_id: str, reference: str, hypothesis: str, original: str | None = None
    ) -> SampleScore: ...

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport: ...

    def score(
        self,
        refs: Mapping[str, str],
        hyps: Mapping[str, str],
        original: Mapping[str, str] | None = None,
    ) -> ScoreReport: ...

    def score_audio(
        self,
        refs: Mapping[str, str],
        audios: Mapping[str, Audio],
        cache: ResultCache,
        judge: Any,
        original: Mapping[str, Audio] | None = None,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> ScoreReport: ...


@runtime_checkable
class ContinuationScorer(Protocol):
    """Sampled continuations (``continue`` pipeline): prompts, the judged audio of every
    continuation and the reference utterances, with the task's bound judges. Metrics come
    back per filter (``t=<temperature>``, ``oracle``, ``none``) as :class:`ScoreReport` s.

    The pipeline calls :meth:`judge` on a few prompts at a time (their audio is then
    dropped, so memory does not grow with the number of prompts) and :meth:`finish` once on
    every part; :meth:`score_continuations` is both in one call."""

    name: str
    inputs: str  # "continuations"

    def judge(
        self,
        prompts: Sequence[Any],
        judged: Sequence[Any],
        references: Mapping[str, Audio],
        prompt_audio: Mapping[str, Audio],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> Any: ...

    def finish(self, prompts: Sequence[Any], parts: Sequence[Any]) -> Any: ...

    def score_continuations(
        self,
        prompts: Sequence[Any],
        judged: Sequence[Any],
        references: Mapping[str, Audio],
        prompt_audio: Mapping[str, Audio],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> Any: ...


@runtime_checkable
class SentimentScorer(Protocol):
    """Judged labels of model outputs against each prompt's label (``continue`` pipeline of
    STSP, :mod:`speechlm_eval.pipelines.stsp`): one SampleScore per output; ``prediction``
    is the judge's label, None for an empty output (counted wrong, and reported)."""

    name: str
    inputs: str  # "sentiment_outputs"

    def score_sample(
        self,
        doc_id: str,
        label: str,
        prediction: str | None,
        meta: Mapping[str, Any] | None = None,
    ) -> SampleScore: ...

    def aggregate(self, samples: Sequence[SampleScore]) -> ScoreReport: ...


@runtime_checkable
class ProsodyStreamScorer(Protocol):
    """The prosody streams of sampled continuations (``continue`` pipeline of
    :mod:`speechlm_eval.pipelines.prosody_streams`, for models with the ``prosody_streams``
    extra): prompts, each sample's streams (``StreamSample`` s) and each prompt's whole
    reference utterance's streams. Metrics per filter, as :class:`ContinuationScorer`.
    ``model`` names the model in error messages (streams it gave that cannot be compared)."""

    name: str
    inputs: str  # "prosody_streams"

    def score_streams(
        self,
        prompts: Sequence[Any],
        samples: Sequence[Any],
        references: Mapping[str, Any],
        model: str = "the model",
    ) -> Any: ...


@dataclass
class FilteredReport:
    """Metrics per filter (``t=0.7``, ``oracle``, ``none``...), one row per scored output, and
    what the results record under ``scoring.<task>``: what multi-filter scorers return."""

    by_filter: dict[str, ScoreReport]
    per_item: list[dict[str, Any]]
    info: dict[str, Any]


@runtime_checkable
class SessionScorer(Protocol):
    """Streaming ``converse`` sessions (:mod:`speechlm_eval.pipelines.converse`): each
    :class:`~speechlm_eval.pipelines.converse.Session` has the dataset item (its timings),
    the user channel and the model channel on one timeline. As :class:`ContinuationScorer`,
    :meth:`judge` runs on a few sessions at a time (their audio is then dropped) and
    :meth:`finish` once on every part's rows, giving a :class:`FilteredReport`."""

    name: str
    inputs: str  # "sessions"

    def judge(
        self,
        sessions: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> Any: ...

    def finish(self, items: Sequence[Any], parts: Sequence[Any]) -> FilteredReport: ...


@runtime_checkable
class DialogueContinuationScorer(Protocol):
    """Two-channel continuations (:mod:`speechlm_eval.pipelines.dialogue_continuation`): per
    conversation the prompt, the model's continuation and the true continuation (each a
    :class:`~speechlm_eval.audio.TwoChannelAudio`), with the task's bound judges."""

    name: str
    inputs: str  # "dialogue_continuations"

    def score_dialogues(
        self,
        samples: Sequence[Any],
        judges: Mapping[str, Any],
        cache: ResultCache,
        stats: ExecStats | None = None,
        desc: str | None = None,
    ) -> FilteredReport: ...


@runtime_checkable
class DatasetScorer(Protocol):
    """Aggregate-only scorers (``encode`` pipeline: ABX): the whole dataset's outputs at once."""

    name: str
    inputs: str  # "dataset"

    def score(self, dataset: Any, outputs: Mapping[str, Any]) -> ScoreReport: ...


S = TypeVar("S")

# Each protocol's ``inputs`` value and what it means, for messages. Methods alone cannot
# tell the protocols apart at run time (``isinstance`` with a runtime-checkable protocol
# only checks that the names exist), so a scorer says what it scores.
_INPUTS: dict[type, tuple[str, str]] = {
    ChoiceItemScorer: (
        "choice_items",
        "likelihood-choice items (score_sample(item, scores), aggregate, score)",
    ),
    TranscriptScorer: (
        "transcripts",
        "transcripts (score_sample(doc_id, reference, hypothesis), aggregate, score_audio)",
    ),
    DatasetScorer: ("dataset", "a whole dataset's outputs (score(dataset, outputs))"),
    ContinuationScorer: (
        "continuations",
        "sampled continuations (judge(prompts, judged, references, ...) per part, then finish())",
    ),
    SentimentScorer: (
        "sentiment_outputs",
        "judged labels of outputs (score_sample(doc_id, label, prediction), aggregate)",
    ),
    ProsodyStreamScorer: (
        "prosody_streams",
        "prosody streams of continuations (score_streams(prompts, samples, references))",
    ),
    DialogueContinuationScorer: (
        "dialogue_continuations",
        "two-channel continuations (score_dialogues(samples, judges, ...))",
    ),
    SessionScorer: (
        "sessions",
        "streaming converse sessions (judge(sessions, judges, ...) per part, then finish())",
    ),
}


def load_scorer(cfg: TaskConfig, kind: type[S]) -> S:
    """The task's registered scorer built from its YAML options, checked to be a ``kind``
    (one of the protocols above: its methods, and ``inputs`` naming it): a task that pairs a
    scorer with a capability it cannot score is a one-line ConfigError, not an
    AttributeError deep in a pipeline."""
    from .. import registry

    name = cfg.scoring.scorer
    scorer = registry.get("scorers", name)(dict(cfg.scoring.options))
    inputs, what = _INPUTS[kind]
    if not isinstance(scorer, kind) or getattr(scorer, "inputs", None) != inputs:
        raise ConfigError(
            f"task {cfg.task!r} ({cfg.capability}): scorer {name!r} does not score {what} "
            f"(its inputs: {getattr(scorer, 'inputs', 'not declared')!r})"
        )
    return scorer


# --- per-sample rows ----------------------------------------------------------------------------


def sample_records(
    scores: Sequence[SampleScore] | Mapping[str, Sequence[SampleScore]],
    extra: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The samples file's rows: ``doc_id``, the ``meta`` fields, then the values.

    ``scores``: one list of SampleScores (values keyed by their names), or a mapping filter ->
    list, the lists aligned (the same samples scored under each filter, as the likelihood
    tasks' ``nll_sum``/``nll_mean``), giving one row per sample with values keyed
    ``name,filter`` (lm-evaluation-harness' ``metric,filter``). ``answer`` and
    ``explanation`` are written when set (``answer,filter`` ...). ``extra``: fields per row
    that are not the scorer's (the model's log-probabilities). Group keys are not written:
    they derive from the item's fields, which ``meta`` holds.
    """
    by_filter: dict[str | None, Sequence[SampleScore]] = (
        dict(scores) if isinstance(scores, Mapping) else {None: scores}
    )
    lists = list(by_filter.values())
    n = len(lists[0]) if lists else 0
    if any(len(x) != n for x in lists) or (extra is not None and len(extra) != n):
        raise ValueError("sample_records: the lists of samples are not aligned")
    rows: list[dict[str, Any]] = []
    for i in range(n):
        first = lists[0][i]
        row: dict[str, Any] = {"doc_id": first.doc_id, **first.meta}
        for filt, ss in by_filter.items():
            s = ss[i]
            if s.doc_id != first.doc_id:
                raise ValueError(f"sample_records: row {i}: {s.doc_id!r} != {first.doc_id!r}")
            fields: dict[str, Any] = dict(s.values)
            if s.answer is not None:
                fields["answer"] = s.answer
            if s.explanation is not None:
                fields["explanation"] = s.explanation
            for k, v in fields.items():
                key = k if filt is None else f"{k},{filt}"
                if key in row:  # a value must never silently replace a logged field
                    raise ValueError(f"sample_records: field {key!r} written twice")
                row[key] = v
        if extra is not None:
            for k, v in extra[i].items():
                if k in row:
                    raise ValueError(f"sample_records: field {k!r} written twice")
                row[k] = v
        rows.append(row)
    return rows


# --- the choice rule ----------------------------------------------------------------------------


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
    """Mean with its closed-form standard error (:func:`speechlm_eval.metrics.mean`)."""
    return mean(values, higher_is_better)


def item_scores(items: Sequence[ChoiceItem], scores: Mapping[str, float]) -> list[float]:
    """Each item's point under :func:`choice_score`."""
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
