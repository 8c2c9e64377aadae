"""Assemble the leaderboard: rows (models), columns (task x dataset, grouped by family), cells.

A column is one task on one dataset: built-in data and the official benchmark are different
datasets and never share a column. A cell holds the row's headline metric for that task; a few
tasks show another metric in a column of its own beside it (``EXTRA_COLUMNS``: slamkit's
Auto-BLEU beside GenPPL, from the same generations); the other metrics (subgroups, the other
scoring variant, other temperatures, the oracle) stay in the CSV and the HTML details.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

from ..errors import ConfigError
from .data import (
    MEASURED,
    OFFICIAL,
    UNSPECIFIED,
    UNSTATED,
    Curve,
    Entry,
    Loaded,
    Score,
    Source,
    dataset_label,
)
from .families import FAMILIES, extra_columns, is_percent, task_label, task_rank

# Families whose numbers depend on judges (ASR, text LM, MOS, speaker, pitch models) recorded in
# the results files: the notes name them, since numbers from other judges are not comparable.
JUDGED_FAMILIES = ("generation", "paralinguistic")


@dataclass(frozen=True)
class Column:
    key: str  # "<task>@<dataset>"
    family: str
    task: str
    dataset: str
    label: str
    dataset_label: str
    metric: str  # the headline metric most rows use (an extra column: its metric)
    # the scoring variant / sampling temperature most measured rows use ("nll_sum", "t=0.8");
    # "" when there is none to tell apart ("none", or only reported rows)
    filter: str
    higher_is_better: bool
    percent: bool
    position: int = 0  # 0: the task's headline; 1, 2, ...: extra columns beside it


@dataclass(frozen=True)
class Cell:
    status: str  # "value" | "skipped" | "missing"
    score: Score | None = None
    reason: str = ""  # skipped: why
    tags: tuple[str, ...] = ()  # differences from the column's default (scoring, metric, limit)


MISSING = Cell("missing")


@dataclass
class Leaderboard:
    title: str
    entries: list[Entry]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    scores: list[Score]
    sources: dict[str, Source]
    files: dict[str, dict]
    task_labels: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)  # PPX-VERT curves (kept results files)

    def cell(self, entry: Entry, col: Column) -> Cell:
        return self.cells.get((entry.key, col.key), MISSING)

    def families(self) -> list[str]:
        present = {c.family for c in self.columns}
        return [f for f in FAMILIES if f in present]

    def columns_of(self, family: str) -> list[Column]:
        return [c for c in self.columns if c.family == family]

    def rows_of(self, family: str) -> list[Entry]:
        """Rows with at least one number or skip mark in the family (others are left out)."""
        cols = self.columns_of(family)
        return [e for e in self.entries if any(self.cell(e, c).status != "missing" for c in cols)]

    def entry(self, key: str) -> Entry:
        return next(e for e in self.entries if e.key == key)


SHORT_FILTER = {"nll_sum": "sum", "nll_mean": "mean", UNSTATED: "n.s."}


def _dataset_rank(ds: str) -> tuple[int, str]:
    if ds == OFFICIAL:
        return (0, ds)
    if ds.startswith("builtin"):
        return (1, ds)
    if ds == UNSPECIFIED:
        return (3, ds)
    return (2, ds)


def _most_common(values: list[str]) -> str:
    if not values:
        return ""
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, n in counts.items() if n == best)[0]


def _dedupe(scores: list[Score], notes: list[str]) -> list[Score]:
    """One results file per (row, task, dataset): the newest; older ones are named in the notes."""
    best: dict[tuple[str, str, str], tuple[float, str]] = {}
    for s in scores:
        k = (s.entry, s.task, s.dataset)
        cand = (s.date, s.origin)
        if k not in best or cand > best[k]:
            best[k] = cand
    superseded: set[tuple[str, str, str]] = set()
    kept = []
    for s in scores:
        winner = best[(s.entry, s.task, s.dataset)]
        if (s.date, s.origin) == winner:
            kept.append(s)
        else:
            superseded.add((s.origin, s.task, winner[1]))
    for origin, task, newer in sorted(superseded):
        notes.append(f"`{origin}`: {task} superseded by the newer `{newer}`.")
    return kept


def _split_by_data_hash(scores: list[Score], notes: list[str]) -> list[Score]:
    """Built-in data differs by generator version, seed and size: different content hashes of
    one built-in subset are different datasets, so they get separate columns."""
    hashes: dict[tuple[str, str], set[str]] = {}
    for s in scores:
        if s.data_hash:
            hashes.setdefault((s.task, s.dataset), set()).add(s.data_hash)
    out = []
    for s in scores:
        hs = hashes.get((s.task, s.dataset), set())
        if len(hs) > 1 and s.dataset.startswith("builtin") and s.data_hash:
            s = replace(s, dataset=f"{s.dataset}@{s.data_hash[:8]}")
        out.append(s)
    for (task, ds), hs in sorted(hashes.items()):
        if len(hs) > 1:
            what = (
                "split into one column per content hash"
                if ds.startswith("builtin")
                else ("shown in one column: check that every run used the same copy")
            )
            notes.append(
                f"{task} on {dataset_label(ds)} data: {len(hs)} different data hashes "
                f"({', '.join(h[:8] for h in sorted(hs))}); {what}."
            )
    return out


def build(loaded: Loaded, title: str = "Leaderboard", sort_by: str | None = None) -> Leaderboard:
    """Turn loaded scores into ordered rows, columns and cells."""
    notes = list(loaded.notes)
    scores = _split_by_data_hash(_dedupe(loaded.scores, notes), notes)
    fam_rank = {f: i for i, f in enumerate(FAMILIES)}

    # Columns from the headline numbers.
    by_col: dict[tuple[str, str], list[Score]] = {}
    for s in scores:
        if s.primary:
            by_col.setdefault((s.task, s.dataset), []).append(s)
    columns: list[Column] = []
    for (task, ds), ss in by_col.items():
        measured = [s for s in ss if s.entry.startswith(MEASURED + ":")]
        pref = measured or ss
        family = _most_common([s.family for s in pref])
        metric = _most_common([s.metric for s in pref])
        known = [s.filter for s in ss if s.filter and s.filter != UNSTATED]
        filt = _most_common([s.filter for s in measured if s.filter]) or _most_common(known)
        if family != "likelihood" and filt == "none":
            filt = ""  # nothing to tell apart (lm-eval's filter of a plain metric)
        hib = Counter(s.higher_is_better for s in pref).most_common(1)[0][0]
        columns.append(
            Column(
                key=f"{task}@{ds}",
                family=family,
                task=task,
                dataset=ds,
                label=loaded.task_labels.get(task, task_label(task)),
                dataset_label=dataset_label(ds),
                metric=metric,
                filter=filt,
                higher_is_better=hib,
                percent=is_percent(metric),
            )
        )
    extra = _extra_scores(scores, columns)
    for col in list(columns):
        for pos, (metric, label) in enumerate(extra_columns(col.task), 1):
            ss = extra.get((col.key, metric), [])
            if not ss:
                continue
            pref = [s for s in ss if s.entry.startswith(MEASURED + ":")] or ss
            columns.append(
                replace(
                    col,
                    key=f"{col.key}#{metric}",
                    label=label,
                    metric=metric,
                    higher_is_better=Counter(s.higher_is_better for s in pref).most_common(1)[0][0],
                    percent=is_percent(metric),
                    position=pos,
                )
            )
    columns.sort(
        key=lambda c: (
            fam_rank[c.family],
            task_rank(c.task),
            _dataset_rank(c.dataset),
            c.position,
        )
    )
    colmap = {c.key: c for c in columns}

    cells: dict[tuple[str, str], Cell] = {}
    placed = [(s, colmap[f"{s.task}@{s.dataset}"]) for s in scores if s.primary]
    placed += [
        (s, colmap[f"{key}#{metric}"])
        for (key, metric), ss in extra.items()
        if f"{key}#{metric}" in colmap
        for s in ss
    ]
    for s, col in placed:
        tags = []
        if s.metric != col.metric:
            tags.append(s.metric)
        if (col.family == "likelihood" or col.filter) and s.filter and s.filter != col.filter:
            tags.append(SHORT_FILTER.get(s.filter, s.filter))
        if s.limited:
            tags.append("limit")
        cells[(s.entry, col.key)] = Cell("value", s, tags=tuple(tags))

    entries = list(loaded.entries.values())
    no_column: list[str] = []
    for e in entries:
        for task, reason in sorted(e.skipped.items()):
            cols = [c for c in columns if c.task == task]
            if not cols:
                no_column.append(f"{e.label}: {task} ({reason})")
            for c in cols:
                cells.setdefault((e.key, c.key), Cell("skipped", reason=reason))
    if no_column:
        notes.append("Skipped, with no number from any row: " + "; ".join(no_column) + ".")

    # Curves of the results files kept above, under the dataset their scores ended up in.
    kept = {(s.entry, s.task, s.origin): s.dataset for s in scores}
    curves = [
        replace(c, dataset=kept[(c.entry, c.task, c.origin)])
        for c in loaded.curves
        if (c.entry, c.task, c.origin) in kept
    ]
    notes += _judge_notes(loaded, scores, columns)

    entries = _order(entries, columns, cells, sort_by)
    pos = {e.key: i for i, e in enumerate(entries)}
    # Within a task, metrics keep the results file's order (sWUGGY's bands stay oov, 1-5, ...).
    order = {id(s): i for i, s in enumerate(scores)}
    scores.sort(
        key=lambda s: (
            pos[s.entry],
            fam_rank[s.family],
            task_rank(s.task),
            _dataset_rank(s.dataset),
            not s.primary,
            order[id(s)],
        )
    )
    return Leaderboard(
        title=title,
        entries=entries,
        columns=columns,
        cells=cells,
        scores=scores,
        sources=loaded.sources,
        files=loaded.files,
        task_labels=loaded.task_labels,
        notes=notes,
        curves=curves,
    )


def _extra_scores(scores: list[Score], columns: list[Column]) -> dict[tuple[str, str], list[Score]]:
    """(headline column key, extra metric) -> the rows' numbers of that metric, each under the
    same filter (temperature) as the row's own headline number."""
    index = {(s.entry, s.task, s.dataset, s.metric, s.filter): s for s in scores}
    keys = {c.key for c in columns}
    out: dict[tuple[str, str], list[Score]] = {}
    for p in scores:
        key = f"{p.task}@{p.dataset}"
        if not p.primary or key not in keys:
            continue
        for metric, _ in extra_columns(p.task):
            s = index.get((p.entry, p.task, p.dataset, metric, p.filter))
            if s is not None and metric != p.metric:
                out.setdefault((key, metric), []).append(s)
    return out


def _judge_notes(loaded: Loaded, scores: list[Score], columns: list[Column]) -> list[str]:
    """Which judges the measured generation / paralinguistic numbers come from, and what the
    reported file says about its sources' judges: numbers judged by other models (another ASR,
    another text LM for GenPPL and PPX) are not comparable."""
    labels = {e.key: e.label for e in loaded.entries.values()}
    tasks = [c for c in columns if c.family in JUDGED_FAMILIES and c.position == 0]
    by_task: dict[str, dict[str, set[str]]] = {}
    for s in scores:
        jt = loaded.judges.get((s.entry, s.task, s.origin))
        if jt and s.primary:
            by_task.setdefault(s.task, {}).setdefault(jt, set()).add(labels[s.entry])
    notes = []
    seen: set[str] = set()
    for col in tasks:
        if col.task in seen:
            continue
        seen.add(col.task)
        for jt, models in sorted(by_task.get(col.task, {}).items()):
            notes.append(
                f"{col.label} ({col.task}): measured rows {', '.join(sorted(models))} judged "
                f"by {jt}."
            )
        if col.task in loaded.task_notes:
            notes.append(f"{col.label} ({col.task}): {loaded.task_notes[col.task]}")
    return notes


def _order(
    entries: list[Entry],
    columns: list[Column],
    cells: dict[tuple[str, str], Cell],
    sort_by: str | None,
) -> list[Entry]:
    """Measured rows by name, then reported rows in reported.yaml's order; with ``sort_by``
    (``task`` or ``task@dataset``) by that column, best first, rows without a number last."""
    base = sorted(
        entries,
        key=lambda e: (
            e.kind != MEASURED,
            e.label.casefold() if e.kind == MEASURED else "",
            e.order,
        ),
    )
    if not sort_by:
        return base
    task, _, ds = sort_by.partition("@")
    match = [
        c for c in columns if c.task == task and (not ds or c.dataset == ds) and c.position == 0
    ]
    if not match:
        have = ", ".join(c.key for c in columns)
        raise ConfigError(f"--sort_by {sort_by}: no such column; columns: {have}")
    col = match[0]

    def key(e: Entry) -> tuple[int, float]:
        cell = cells.get((e.key, col.key))
        if cell is None or cell.score is None or math.isnan(cell.score.value):
            return (1, 0.0)
        v = cell.score.value
        return (0, -v if col.higher_is_better else v)

    return sorted(base, key=key)  # stable: ties keep the base order
