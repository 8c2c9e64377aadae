"""Plots (matplotlib, SVG) where a picture reads better than a table.

- score vs model size, for every column with at least two rows of known size;
- per-subgroup bars (frequency bands of sWUGGY, sBLIMP types, ...) with stderr bars;
- GSLM's quality-diversity plot (PPX vs VERT over sampling temperatures), drawn from the
  curve points the results files record (``scoring.<task>.tradeoff.points``: one
  ``{temperature, ppx, vert}`` per temperature), one line per model, the oracle (the reference
  utterances through the same judges: ``ppx_mean,oracle`` / ``vert,oracle``) marked; for every
  task and dataset where a model has a curve of at least two temperatures.

SVGs are reproducible: a fixed ``svg.hashsalt``, no date, a fixed creator string. Each file
records a hash of the data it was drawn from (``data-sha256:`` in its description), which the
stale check compares, so a new matplotlib release that draws the same data differently does not
make the committed plots "stale".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .build import Column, Leaderboard
from .data import MEASURED, Score
from .families import is_percent

PLOT_VERSION = 1  # bump when the drawing code changes what a plot shows
MAX_PANELS = 6  # size plot: the first columns (family, then task order) with >= 2 sized rows
FINGERPRINT = re.compile(r"data-sha256:([0-9a-f]{64})")
_RC = {
    "svg.hashsalt": "speechlm-eval-leaderboard",
    # Text stays text (the browser renders it): smaller files and no glyph outlines that
    # depend on the font file installed.
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
}


@dataclass
class Plot:
    name: str  # file name under plots/
    caption: str
    data: dict[str, Any]  # everything the drawing depends on
    kind: str

    def fingerprint(self) -> str:
        blob = json.dumps(
            {"v": PLOT_VERSION, "kind": self.kind, "data": self.data}, sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)


def _scale(metric: str, x: float) -> float:
    return x * 100 if is_percent(metric) else x


def plan(board: Leaderboard) -> list[Plot]:
    """Which plots the data supports, with the data each one shows (no drawing yet)."""
    plots = _size_plot(board)
    plots += _subgroup_plots(board)
    plots += _quality_diversity_plots(board)
    return plots


def _size_plot(board: Leaderboard) -> list[Plot]:
    panels = []
    for col in board.columns:
        pts = []
        for e in board.entries:
            cell = board.cell(e, col)
            if e.params and cell.score is not None and not math.isnan(cell.score.value):
                pts.append([e.label, e.kind, e.params, _scale(col.metric, cell.score.value)])
        if len(pts) >= 2:
            panels.append(
                {"title": f"{col.label} ({col.dataset_label})", "y": _ylabel(col), "points": pts}
            )
    if not panels:
        return []
    return [
        Plot(
            "plots/score_vs_size.svg",
            "Headline score vs number of parameters (filled: measured; open: reported).",
            {"panels": panels[:MAX_PANELS]},
            "size",
        )
    ]


def _ylabel(col: Column) -> str:
    return col.metric + (" (%)" if col.percent else "")


def _subgroup_plots(board: Leaderboard) -> list[Plot]:
    out = []
    by_key: dict[tuple[str, str, str], list[Score]] = {}
    for s in board.scores:
        by_key.setdefault((s.entry, s.task, s.dataset), []).append(s)
    labels = {e.key: e.label for e in board.entries}
    for col in (c for c in board.columns if c.position == 0):
        series = []
        for e in board.entries:
            cell = board.cell(e, col)
            if cell.score is None:
                continue
            p = cell.score
            subs = [
                s
                for s in by_key.get((e.key, col.task, col.dataset), [])
                if s.filter == p.filter and s.metric.startswith(p.metric + "_")
            ]
            if len(subs) >= 2:
                series.append(
                    {
                        "label": labels[e.key],
                        "groups": [s.metric[len(p.metric) + 1 :] for s in subs],
                        "values": [_scale(s.metric, s.value) for s in subs],
                        "errors": [_scale(s.metric, s.stderr or 0.0) for s in subs],
                    }
                )
        if series:
            filt = f", {col.filter}" if col.filter else ""
            out.append(
                Plot(
                    f"plots/subgroups_{_safe(col.task)}_{_safe(col.dataset)}.svg",
                    f"{col.label} on {col.dataset_label} data by subgroup "
                    f"({col.metric}{filt}; bars: ± 1 stderr).",
                    {
                        "title": f"{col.label} ({col.dataset_label})",
                        "x": _ylabel(col),
                        "series": series,
                    },
                    "subgroups",
                )
            )
    return out


def quality_diversity_series(board: Leaderboard) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(task, dataset) -> one series per row (in row order) with its PPX-VERT curve points as
    the results file records them (temperatures in the file's order) and its oracle point."""
    rank = {e.key: i for i, e in enumerate(board.entries)}
    labels = {e.key: e.label for e in board.entries}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in sorted(board.curves, key=lambda c: (c.task, c.dataset, rank[c.entry])):
        out.setdefault((c.task, c.dataset), []).append(
            {
                "label": labels[c.entry],
                "temps": [p[0] for p in c.points],
                "ppx": [p[1] for p in c.points],
                "vert": [p[2] for p in c.points],
                "oracle": list(c.oracle) if c.oracle is not None else None,  # [ppx, vert]
            }
        )
    return out


def _quality_diversity_plots(board: Leaderboard) -> list[Plot]:
    out = []
    cols = {(c.task, c.dataset): c for c in board.columns if c.position == 0}
    for (task, ds), series in sorted(quality_diversity_series(board).items()):
        if not any(len(s["temps"]) >= 2 for s in series):
            continue  # single temperatures (genppl's T=0.8): a point each, no curve to compare
        col = cols.get((task, ds))
        label = col.label if col else task
        ds_label = col.dataset_label if col else ds
        out.append(
            Plot(
                f"plots/quality_diversity_{_safe(task)}_{_safe(ds)}.svg",
                f"{label} on {ds_label} data: GSLM's quality-diversity plot, PPX (text-LM "
                "perplexity of the transcripts, lower = more fluent) vs VERT (repetition, lower "
                "= more diverse) over sampling temperatures, one line per model, from the "
                "results files' curve points; star: the oracle (reference speech through the "
                "same judges).",
                {"title": f"{label} ({ds_label})", "series": series},
                "quality_diversity",
            )
        )
    return out


def render(plot: Plot) -> bytes:
    """Draw one plot as SVG bytes (reproducible)."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullFormatter
    except ImportError:
        raise ConfigError(
            "leaderboard plots need matplotlib: pip install 'speechlm-eval[leaderboard]' "
            "(or pass --no_plots)"
        ) from None
    # The object-oriented Figure API draws without pyplot, so no global backend is switched in
    # the caller's process (pyplot would pick an interactive backend on a desktop).
    with matplotlib.rc_context(_RC):
        fig = _draw(Figure, NullFormatter, plot)
        buf = io.BytesIO()
        fig.savefig(
            buf,
            format="svg",
            metadata={
                "Date": None,
                "Creator": "speechlm-eval leaderboard",
                "Description": f"data-sha256:{plot.fingerprint()}",
            },
        )
    return buf.getvalue()


def _draw(Figure: Any, NullFormatter: Any, plot: Plot) -> Any:
    d = plot.data
    if plot.kind == "size":
        n = len(d["panels"])
        ncol = min(3, n)
        nrow = math.ceil(n / ncol)
        # Fixed margins, not constrained layout: measuring every label costs seconds per figure.
        fig = Figure(figsize=(3.8 * ncol, 3.0 * nrow))
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.92, wspace=0.3, hspace=0.45)
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
        for ax, panel in zip(axes, d["panels"], strict=False):
            for kind, style in (
                (MEASURED, {"marker": "o", "facecolors": "C0", "edgecolors": "C0"}),
                ("reported", {"marker": "s", "facecolors": "none", "edgecolors": "C1"}),
            ):
                pts = [p for p in panel["points"] if (p[1] == MEASURED) == (kind == MEASURED)]
                if pts:
                    ax.scatter([p[2] for p in pts], [p[3] for p in pts], s=22, **style)
            for label, _, params, y in panel["points"]:
                ax.annotate(
                    label, (params, y), fontsize=6, xytext=(3, 2), textcoords="offset points"
                )
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(panel["title"], fontsize=8)
            ax.set_xlabel("parameters")
            ax.set_ylabel(panel["y"])
            ax.grid(True, alpha=0.3)
        for ax in axes[n:]:
            ax.set_visible(False)
        return fig
    if plot.kind == "subgroups":
        series = d["series"]
        groups = list(dict.fromkeys(g for s in series for g in s["groups"]))
        height = 0.8 / len(series)
        fig = Figure(
            figsize=(6.4, 0.9 + 0.28 * len(groups) * max(1, len(series) / 1.5)),
            layout="constrained",
        )
        ax = fig.subplots()
        for i, s in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * height
            ys = [groups.index(g) + offset for g in s["groups"]]
            ax.barh(
                ys,
                s["values"],
                height=height,
                xerr=s["errors"],
                label=s["label"],
                color=f"C{i % 10}",
                error_kw={"elinewidth": 0.8, "capsize": 2},
            )
        ax.set_yticks(range(len(groups)), groups)
        ax.invert_yaxis()
        ax.set_xlabel(d["x"])
        ax.set_title(d["title"], fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        return fig
    if plot.kind == "quality_diversity":
        fig = Figure(figsize=(5.2, 3.8))
        fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.92)
        ax = fig.subplots()
        oracle_labelled = False
        for i, s in enumerate(d["series"]):
            color = f"C{i % 10}"
            # Points in temperature order, so the line runs from cold to hot sampling.
            pts = sorted(zip(s["temps"], s["vert"], s["ppx"], strict=True))
            ax.plot(
                [p[1] for p in pts], [p[2] for p in pts], marker="o", color=color, label=s["label"]
            )
            for t, x, y in pts:
                ax.annotate(
                    f"T={t:g}", (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points"
                )
            if s["oracle"] is not None:
                ax.scatter(
                    [s["oracle"][1]],
                    [s["oracle"][0]],
                    marker="*",
                    s=90,
                    color=color,
                    edgecolors="black",
                    linewidths=0.5,
                    zorder=3,
                    label=None if oracle_labelled else "oracle (reference speech)",
                )
                oracle_labelled = True
        ax.set_xlabel("VERT (fraction; lower = less repetitive)")
        ax.set_ylabel("PPX (lower = more fluent)")
        ax.set_title(d["title"], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        return fig
    raise ValueError(f"unknown plot kind {plot.kind!r}")


def fingerprint_of(svg: bytes) -> str | None:
    """The data hash recorded in an SVG written by :func:`render`, or None."""
    m = FINGERPRINT.search(svg.decode("utf-8", "replace"))
    return m.group(1) if m else None
