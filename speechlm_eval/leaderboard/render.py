"""Writers: Markdown, CSV (pandas) and a static, self-contained HTML page (Jinja2).

Nothing here reads a clock: the same inputs give byte-identical files, so CI can regenerate the
committed tables and compare them.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, select_autoescape

from .build import SHORT_FILTER, Cell, Column, Leaderboard
from .data import MEASURED, REPORTED, Entry, Score, dataset_label, utc_date
from .families import FAMILIES, is_percent, percent_decimals

LEGEND = (
    "Each cell is the task's headline metric, ± one standard error where the results file has "
    "it; ↑ higher is better, ↓ lower is better. Units: a metric marked (%) is in percent — "
    "accuracies and error rates (acc, ABX, WER, CER: a WER of 0.848 shows as 84.8; wer_delta "
    "and cer_delta in percentage points) and the BLEU family (self-, auto-, continuation-BLEU: "
    "an Auto-BLEU of 0.0346 shows as 3.46, as slamkit prints it); other metrics are in their "
    "own units (GenPPL and PPX perplexities, VERT and the PPX-VERT area as fractions, MOS on "
    "its 1-5 scale, F0 errors in log-F0). "
    "*reported* rows are numbers from the literature, copied with their source (see Sources), "
    "not measured here. Built-in data and the official benchmark are different datasets and "
    "never share a column. — not evaluated; *skipped* the run skipped the task (reason given). "
    "Tags: [sum] / [mean] the number used another scoring than the column's (total vs per-token "
    "mean log-likelihood); [n.s.] the source does not state its scoring; [t=1] a sampled "
    "number at another temperature than the column's; [limit] a run with --limit (not "
    "comparable). Generation and paralinguistic numbers depend on the judges (ASR, text LM, "
    "...) named in the Notes. A table lists only the rows that have a number in it."
)

# The CSV keeps the results files' numbers unscaled, so a script reads them back exactly.
CSV_UNITS = (
    "its `value` and `stderr` as the results files record them: proportions (0.848) where the "
    "tables show % (84.8), other metrics in their own units."
)

CSV_COLUMNS = [
    "model",
    "kind",
    "params",
    "family",
    "task",
    "dataset",
    "metric",
    "filter",
    "value",
    "stderr",
    "higher_is_better",
    "primary",
    "status",
    "origin",
    "tags",
]


# --- number formatting ----------------------------------------------------------------------


def fmt_number(x: float, percent: bool, decimals: int = 1) -> str:
    if math.isnan(x):
        return "nan"
    if percent:
        return f"{x * 100:.{decimals}f}"
    a = abs(x)
    return f"{x:.1f}" if a >= 100 else f"{x:.2f}" if a >= 1 else f"{x:.3f}"


def fmt_params(n: float | None) -> str:
    if not n:
        return ""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def cell_parts(cell: Cell, col: Column) -> tuple[str, str, str]:
    """(value text, stderr text, tags text) of a cell."""
    if cell.status == "skipped":
        return ("skipped", "", f"({cell.reason})" if cell.reason else "")
    if cell.status != "value" or cell.score is None:
        return ("—", "", "")
    s = cell.score
    pct, dec = is_percent(s.metric), percent_decimals(s.metric)
    se = f"± {fmt_number(s.stderr, pct, dec)}" if s.stderr is not None else ""
    tags = " ".join(f"[{t}]" for t in cell.tags)
    return (fmt_number(s.value, pct, dec), se, tags)


def header(col: Column) -> tuple[str, str, str]:
    """(task label, dataset label, metric with unit, scoring and direction) of a column."""
    arrow = "↑" if col.higher_is_better else "↓"
    # The unit sits in every header so no cell depends on the caption to be read right.
    what = col.metric + (" (%)" if col.percent else "")
    what += f" [{SHORT_FILTER.get(col.filter, col.filter)}]" if col.filter else ""
    return (col.label, col.dataset_label, f"{what} {arrow}")


# --- sources (shared by Markdown and HTML) --------------------------------------------------


def source_ids(board: Leaderboard) -> dict[str, str]:
    """Short ids for citations: M1.. results files, S1.. reported sources, in row order."""
    ids: dict[str, str] = {}
    m = s = 0
    for e in board.entries:
        for o in e.origins:
            if o in ids:
                continue
            if e.kind == MEASURED:
                m += 1
                ids[o] = f"M{m}"
            else:
                s += 1
                ids[o] = f"S{s}"
    return ids


def source_lines(board: Leaderboard) -> list[tuple[str, str, str]]:
    """(id, text, url) per source, in id order."""
    ids = source_ids(board)
    out = []
    for origin, sid in ids.items():
        if origin in board.files:
            f = board.files[origin]
            bits = [f"results file `{origin}` ({f['model']}"]
            if f.get("date"):
                bits.append(f", evaluated {utc_date(f['date'])}")
            if f.get("version"):
                bits.append(f", harness {f['version']}")
            if f.get("git_hash"):
                bits.append(f", git {f['git_hash']}")
            if f.get("limit") is not None:
                bits.append(f", limit {f['limit']}: not comparable")
            out.append((sid, "".join(bits) + ")", ""))
        else:
            src = board.sources[origin]
            where = " ".join(
                x
                for x in (
                    src.repo,
                    f"`{src.path}`" if src.path else "",
                    f"@ {src.commit[:12]}" if src.commit else "",
                )
                if x
            )
            text = f"{src.title} — {where}; {src.section}."
            scoring = {
                "nll_sum": "total log-likelihood",
                "nll_mean": "per-token mean log-likelihood",
            }.get(src.scoring, "not stated")
            text += f" Scoring: {scoring}."
            if src.scoring_note:
                text += f" {src.scoring_note}"
            out.append((sid, text, src.url))
    return out


def row_notes(board: Leaderboard) -> list[tuple[str, str]]:
    """Per-row remarks (a note; for reported rows also scoring that differs from the source's)."""
    out = []
    for e in board.entries:
        bits = [e.note] if e.note else []
        src = board.sources.get(e.origins[0]) if e.kind == REPORTED else None
        if src is not None and e.scoring_note and e.scoring_note != src.scoring_note:
            bits.append(f"scoring: {e.scoring_note}")
        if bits:
            out.append((e.label, "; ".join(bits)))
    return out


# --- Markdown -------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    # A pipe table is a few lines; pandas.to_markdown would add the tabulate dependency for it.
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return lines


def _row_head(e: Entry, ids: dict[str, str]) -> list[str]:
    cite = ", ".join(ids[o] for o in e.origins)
    kind = "measured" if e.kind == MEASURED else "*reported*"
    return [e.label, f"{kind} [{cite}]", fmt_params(e.params) or "—"]


def _chunks(cols: list[Column], max_cols: int | None = None) -> list[list[Column]]:
    """Split a family's columns into narrower tables: never inside a task, a new table where the
    task group changes (``salmon_*``, ``abx_*``, ...) and, with ``max_cols``, where a table would
    get wider than that."""
    tasks: dict[str, list[Column]] = {}
    for c in cols:
        tasks.setdefault(c.task, []).append(c)
    chunks: list[list[Column]] = []
    group = None
    for task, tcols in tasks.items():
        g = task.split("_")[0] if "_" in task else ""
        if (
            not chunks
            or g != group
            or (max_cols is not None and len(chunks[-1]) + len(tcols) > max_cols)
        ):
            chunks.append([])
        chunks[-1].extend(tcols)
        group = g
    return chunks


def markdown(board: Leaderboard, plots: list[tuple[str, str]], max_cols: int = 8) -> str:
    """The whole leaderboard as GitHub-flavoured Markdown (tables, sources, notes, plots)."""
    ids = source_ids(board)
    lines = [
        f"# {board.title}",
        "",
        "<!-- Generated by `slm-eval leaderboard` from results files and reported.yaml; "
        "edit those, not this file. -->",
        "",
        LEGEND,
        "",
    ]
    for fam in board.families():
        lines += [f"## {FAMILIES[fam]}", ""]
        for chunk in _chunks(board.columns_of(fam), max_cols):
            rows = [
                e for e in board.entries if any(board.cell(e, c).status != "missing" for c in chunk)
            ]
            head = ["Model", "Type", "Params"] + ["<br>".join(header(c)) for c in chunk]
            body = []
            for e in rows:
                cells = []
                for c in chunk:
                    v, se, tags = cell_parts(board.cell(e, c), c)
                    cells.append(" ".join(x for x in (v, se, tags) if x))
                body.append(_row_head(e, ids) + cells)
            lines += [*_md_table(head, body, ["l", "l", "r"] + ["r"] * len(chunk)), ""]
    if plots:
        lines += ["## Plots", ""]
        for name, caption in plots:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["## Sources", ""]
    for sid, text, url in source_lines(board):
        lines.append(f"- **{sid}** {text}" + (f" <{url}>" if url else ""))
    rn = row_notes(board)
    if rn:
        lines += ["", "Row notes:", ""] + [f"- {label}: {text}" for label, text in rn]
    if board.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in board.notes]
    lines += [
        "",
        "Every metric (subgroups, both scoring variants) is in `leaderboard.csv`, " + CSV_UNITS,
        "",
    ]
    return "\n".join(lines)


# --- CSV ------------------------------------------------------------------------------------


def csv_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Every number, one row each (tidy), plus one row per skipped task."""
    entries = {e.key: e for e in board.entries}
    tags = {
        (cell.score.entry, cell.score.task, cell.score.dataset): " ".join(cell.tags)
        for cell in board.cells.values()
        if cell.score is not None and cell.score.primary  # not an extra column's copy
    }
    rows: list[dict[str, Any]] = []
    for s in board.scores:
        e = entries[s.entry]
        rows.append(_csv_row(e, s, tags.get((s.entry, s.task, s.dataset), "") if s.primary else ""))
    for e in board.entries:
        for task, reason in sorted(e.skipped.items()):
            if any(s.entry == e.key and s.task == task for s in board.scores):
                continue
            rows.append(
                {
                    **{k: "" for k in CSV_COLUMNS},
                    "model": e.label,
                    "kind": e.kind,
                    "params": e.params if e.params else "",
                    "task": task,
                    "status": f"skipped ({reason})",
                    "origin": ";".join(e.origins),
                }
            )
    return rows


def _csv_row(e: Entry, s: Score, tags: str) -> dict[str, Any]:
    return {
        "model": e.label,
        "kind": e.kind,
        "params": e.params if e.params else "",
        "family": s.family,
        "task": s.task,
        "dataset": s.dataset,
        "metric": s.metric,
        "filter": s.filter,
        "value": s.value,
        "stderr": "" if s.stderr is None else s.stderr,
        "higher_is_better": s.higher_is_better,
        "primary": s.primary,
        "status": "ok",
        "origin": s.origin,
        "tags": tags,
    }


def csv_text(board: Leaderboard) -> str:
    df = pd.DataFrame(csv_rows(board), columns=CSV_COLUMNS)
    # Python's float repr (pandas' default) is the shortest string that reads back exactly.
    return df.to_csv(index=False, lineterminator="\n")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a leaderboard CSV back (numbers as floats, blanks as NaN, the rest as text)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("value", "stderr", "params"):
        # Python's float() reads the repr written by csv_text back to the identical double.
        df[col] = df[col].map(lambda x: float(x) if x != "" else math.nan).astype(float)
    for col in ("higher_is_better", "primary"):
        df[col] = df[col].map({"True": True, "False": False, "": None})
    return df


# --- HTML -----------------------------------------------------------------------------------


def _template() -> str:
    # The page template ships as package data (page.html.j2 next to this module).
    return resources.files(__package__).joinpath("page.html.j2").read_text(encoding="utf-8")


def _sort_value(x: float | None) -> str:
    return "" if x is None or math.isnan(x) else repr(float(x))


def _html_table(
    board: Leaderboard, ids: dict[str, str], table_id: str, cols: list[Column]
) -> dict[str, Any]:
    """Header and rows of one HTML table: the given columns, the rows with something in them."""
    hcols = []
    for c in cols:
        label, ds, metric = header(c)
        hcols.append(
            {
                "key": c.key,
                "label": label,
                "dataset": ds,
                "metric": metric,
                "hib": c.higher_is_better,
                "title": f"{c.task} on {ds}: {c.metric}"
                + (
                    f", {'scoring' if c.family == 'likelihood' else 'filter'} {c.filter}"
                    if c.filter
                    else ""
                ),
            }
        )
    rows = []
    for e in board.entries:
        if all(board.cell(e, c).status == "missing" for c in cols):
            continue
        rcells = []
        for c in cols:
            cell = board.cell(e, c)
            v, se, tags = cell_parts(cell, c)
            title = ""
            if cell.score is not None:
                s = cell.score
                title = f"{s.metric},{s.filter}" if s.filter else s.metric
                title += f" from {s.origin}"
            elif cell.status == "skipped":
                v, tags, title = "skipped", "", f"skipped ({cell.reason})"
            rcells.append(
                {
                    "cls": "num" if cell.status == "value" else cell.status,
                    "sort": _sort_value(cell.score.value if cell.score else None),
                    "value": v,
                    "se": se,
                    "tags": tags,
                    "title": title,
                }
            )
        rows.append(
            {
                "kind": e.kind,
                "label": e.label,
                "cites": [ids[o] for o in e.origins],
                "params": fmt_params(e.params),
                "params_sort": _sort_value(e.params),
                "cells": rcells,
            }
        )
    return {"id": table_id, "columns": hcols, "rows": rows}


def html(board: Leaderboard, plots: list[tuple[str, str]]) -> str:
    """The static page: inline CSS and JS, plots referenced as files next to it."""
    ids = source_ids(board)
    fams = []
    for fam in board.families():
        # One table per task group (SALMon apart from sWUGGY..tSC, as in the Markdown): each
        # stays narrow enough to read, and scrolls sideways on its own with the model pinned.
        tables = [
            _html_table(board, ids, f"table-{fam}" + (f"-{i + 1}" if i else ""), cols)
            for i, cols in enumerate(_chunks(board.columns_of(fam)))
        ]
        fams.append({"id": fam, "title": FAMILIES[fam], "tables": tables})
    details = []
    by_task: dict[str, list[Score]] = {}
    for s in board.scores:
        by_task.setdefault(s.task, []).append(s)
    labels = {e.key: e for e in board.entries}
    seen = []
    for c in board.columns:
        if c.task in seen:
            continue
        seen.append(c.task)
        ss = by_task.get(c.task, [])
        if len(ss) <= len({(s.entry, s.dataset) for s in ss}):
            continue  # one number per row: the main table already shows everything
        details.append(
            {
                "label": f"{c.label} — every metric",
                "rows": [
                    {
                        "kind": labels[s.entry].kind,
                        "model": labels[s.entry].label,
                        "dataset": dataset_label(s.dataset),
                        "metric": s.metric + (" (%)" if is_percent(s.metric) else ""),
                        "filter": s.filter,
                        "value": fmt_number(
                            s.value, is_percent(s.metric), percent_decimals(s.metric)
                        ),
                        "sort": _sort_value(s.value),
                        "se": ""
                        if s.stderr is None
                        else fmt_number(s.stderr, is_percent(s.metric), percent_decimals(s.metric)),
                        "se_sort": _sort_value(s.stderr),
                    }
                    for s in ss
                ],
            }
        )
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_template()).render(
        title=board.title,
        legend=LEGEND.replace("*", ""),
        families=fams,
        plots=[{"src": p, "caption": cap} for p, cap in plots],
        details=details,
        sources=[
            {"id": i, "text": t.replace("`", ""), "url": u} for i, t, u in source_lines(board)
        ],
        row_notes=row_notes(board),
        notes=[n.replace("`", "") for n in board.notes],
        csv_units=CSV_UNITS.replace("`", ""),
    )
