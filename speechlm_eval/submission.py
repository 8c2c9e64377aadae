"""Scoring externally produced per-file scores (ZeroSpeech 2021 submission files).

Format, as the ZR2021 evaluation reads it: one ``<file stem> <score>`` per line,
space separated, no header, higher = more probable; every file of the dataset
exactly once and no other file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .config import TaskConfig
from .data_sources import DataOptions, read_task_data
from .dataset import ChoiceDataset
from .errors import ConfigError, DataError
from .pipelines.base import metric_entries
from .scorers.base import ChoiceItemScorer, load_scorer


def read_scores(path: Path) -> dict[str, float]:
    """``<file stem> <score>`` per line -> ``{stem: score}``; every malformed line is an error."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a scores file ('<file> <score>' lines)")
    if not path.is_file():
        raise DataError(f"{path}: scores file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); expected '<file> <score>' lines"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the scores file is empty; expected one '<file> <score>' per line")
    out: dict[str, float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}: line {n}: expected '<file> <score>', got {line!r}")
        stem, val = parts
        try:
            x = float(val)
        except ValueError:
            raise DataError(f"{path}: line {n}: score {val!r} is not a number") from None
        if not math.isfinite(x):
            raise DataError(f"{path}: line {n}: score {val!r} is not finite")
        if stem in out:
            raise DataError(f"{path}: line {n}: file {stem!r} is scored twice")
        out[stem] = x
    return out


def check_coverage(path: Path, ds: ChoiceDataset, scores: dict[str, float]) -> None:
    """Every file of the dataset scored exactly once, and nothing else."""
    missing = sorted(set(ds.files) - set(scores))
    extra = sorted(set(scores) - set(ds.files))
    if missing:
        raise DataError(
            f"{path}: no score for {len(missing)} file(s) of the dataset, e.g. {missing[0]!r}"
            + _extension_hint(extra, set(ds.files))
        )
    if extra:
        raise DataError(f"{path}: {len(extra)} file(s) not in the dataset, e.g. {extra[0]!r}")


def _extension_hint(extra: list[str], files: set[str]) -> str:
    """A hint when the names are the dataset's stems plus an extension (a common slip)."""
    for name in extra:
        stem, dot, _ = name.rpartition(".")
        if dot and stem in files:
            return f" (names are file stems without extension: {stem!r}, not {name!r})"
    return ""


def score_submission(
    cfg: TaskConfig,
    scores_path: Path,
    data: DataOptions,
    frame_rate: float | None = None,
) -> dict[str, Any]:
    """Results entry for a task from a submission (filter name ``external``).

    Likelihood tasks: a file of per-file scores. ``encode`` (ABX) tasks: a folder of
    per-file features (ZeroSpeech layout) at ``frame_rate`` frames per second.
    """
    ds = read_task_data(cfg, data)
    if cfg.capability == "encode":
        if frame_rate is None or not frame_rate > 0:
            raise ConfigError(f"--frame_rate: task {cfg.task!r} scores features; give their rate")
        from .abx import score_feature_dir

        report = score_feature_dir(ds, scores_path, frame_rate, dict(cfg.scoring.options))
    elif cfg.capability == "loglikelihood":
        scores = read_scores(scores_path)
        check_coverage(scores_path, ds, scores)
        report = load_scorer(cfg, ChoiceItemScorer).score(ds.items, scores)
    else:
        raise ConfigError(
            f"task {cfg.task!r} ({cfg.capability}) cannot be scored from a submission"
        )
    entry, hib = metric_entries(report, "external")
    return {
        "results": {cfg.task: {"alias": cfg.task, **entry}},
        "higher_is_better": {cfg.task: hib},
        "versions": {cfg.task: cfg.version},
        "task_hashes": {cfg.task: cfg.hash()},
        "configs": {cfg.task: cfg.as_dict()},
        "n-samples": {cfg.task: {"original": len(ds.doc_ids()), "effective": len(ds.doc_ids())}},
        "datasets": {cfg.task: ds.identity},
        "scoring": {cfg.task: {"scorer": cfg.scoring.scorer, "scores_file": str(scores_path)}},
        "config": {"data": data.record()},
    }
