"""What every pipeline gets (the task's context) and gives back (metric entries and records)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..audio import Audio
from ..cache import BlobStore, ResultCache
from ..config import TaskConfig
from ..execute import BatchSizer, Capability, ExecStats, run_requests
from ..model import SpeechLM
from ..scorers.base import ScoreReport, load_scorer

S = TypeVar("S")


@dataclass
class TaskContext:
    """One task of one run: the model, its data (already limited), the caches, the options."""

    cfg: TaskConfig
    dataset: Any  # what the task's reader returned (ChoiceDataset, ABXDataset, ...)
    model: SpeechLM
    model_key: str
    cache: ResultCache
    blobs: BlobStore
    sizer: BatchSizer
    stats: ExecStats
    seed: int
    log_samples: bool
    judges: dict[str, Any] = field(default_factory=dict)  # role -> loaded judge (bound roles)

    @property
    def name(self) -> str:
        return self.cfg.task

    def scorer(self, kind: type[S]) -> S:
        """The task's registered scorer, built from its YAML options and checked to be a
        ``kind`` (``ChoiceItemScorer``, ``TranscriptScorer``, ``DatasetScorer`` of
        :mod:`speechlm_eval.scorers.base`); otherwise a ConfigError naming the task."""
        return load_scorer(self.cfg, kind)

    def run(self, capability: Capability) -> dict[str, Any]:
        """The model on every file of the dataset through the cached executor: ``stem -> value``."""
        return run_requests(
            self.model,
            self.model_key,
            self.dataset.files,
            capability,
            expected_rate=self.cfg.dataset.sample_rate,
            cache=self.cache,
            sizer=self.sizer,
            desc=self.name,
            stats=self.stats,
        )


@dataclass
class TaskOutcome:
    """Results entry (``metric,filter`` keys as lm-evaluation-harness writes them) and records."""

    entry: dict[str, Any]
    higher_is_better: dict[str, bool]
    scoring: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)  # rows: ``sample_records``
    # Output audio the samples rows refer to (``audio/<sha256>.wav``), by content hash; written
    # beside the samples files with --log_samples, for listening tests and sample viewers.
    kept_audio: Mapping[str, Audio] = field(default_factory=dict)


class SpilledAudio(Mapping[str, Audio]):
    """Output audio kept for ``--log_samples`` by content hash, held in the run's blob store
    rather than in memory (read back one at a time when the results are written), so a task
    with many outputs keeps memory flat. Identical audio is kept once."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._meta: dict[str, tuple[int, str]] = {}

    def add(self, audio: Audio) -> str:
        """Keep ``audio``; return its content hash (the key it is read back by)."""
        h = audio.content_hash()
        if h not in self._meta:
            self._blobs.put(f"kept-{h}", audio.samples)
            self._meta[h] = (int(audio.sample_rate), audio.source)
        return h

    def __getitem__(self, h: str) -> Audio:
        rate, source = self._meta[h]
        x = self._blobs.get(f"kept-{h}")
        if x is None:
            raise KeyError(f"kept audio {h} is gone from the blob store")
        return Audio(x, rate, source)

    def __iter__(self) -> Iterator[str]:
        return iter(self._meta)

    def __len__(self) -> int:
        return len(self._meta)


def keep_audio(rows: list[dict[str, Any]], audios: dict[str, Audio], field_name: str) -> dict:
    """Add ``field_name: "audio/<sha256>.wav"`` to each row (by its ``doc_id``) and return the
    audio by content hash: identical outputs are kept once."""
    kept: dict[str, Audio] = {}
    for row in rows:
        a = audios[row["doc_id"]]
        h = a.content_hash()
        kept[h] = a
        row[field_name] = f"audio/{h}.wav"
    return kept


def metric_entries(report: ScoreReport, filt: str) -> tuple[dict[str, Any], dict[str, bool]]:
    """``{metric,filter: value, metric_stderr,filter: se}`` as lm-evaluation-harness writes them."""
    entries: dict[str, Any] = {}
    hib: dict[str, bool] = {}
    for name, m in report.metrics.items():
        entries[f"{name},{filt}"] = m.value
        entries[f"{name}_stderr,{filt}"] = m.stderr if m.stderr is not None else "N/A"
        hib[name] = m.higher_is_better
    return entries, hib


def filtered_entries(report: Any) -> tuple[dict[str, Any], dict[str, bool], dict[str, Any]]:
    """A :class:`~speechlm_eval.scorers.base.FilteredReport` as results entries: every filter's
    metrics (:func:`metric_entries`), their directions, and the head of the task's scoring
    record: ``primary_metric`` (the report's ``info["primary"]`` when this run produced it),
    ``primary_missing`` when it did not (a headline is said missing, never silently dropped),
    then the rest of ``report.info``. Pipelines append their own keys after these."""
    entry: dict[str, Any] = {}
    hib: dict[str, bool] = {}
    for filt, metrics in report.by_filter.items():
        e, h = metric_entries(metrics, filt)
        entry.update(e)
        hib.update(h)
    info = dict(report.info)
    want = info.pop("primary", None)
    head: dict[str, Any] = {"primary_metric": want if want in entry else None}
    if want is not None and want not in entry:
        head["primary_missing"] = f"{want} is not among this run's metrics"
    return entry, hib, {**head, **info}
