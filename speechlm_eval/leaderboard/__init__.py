"""``slm-eval leaderboard``: Markdown, CSV and a static HTML page (with plots) from results files.

Python API::

    from speechlm_eval.leaderboard import main, check_stale
    written = main(["results/"], "leaderboard/")          # -> list of written paths
    stale = check_stale(["results/"], "leaderboard/")      # -> [] when the files are fresh

Inputs: this harness's results files and lm-evaluation-harness-style files from elsewhere
(files, or folders searched for ``results_*.json``), plus the literature's numbers from
``reported.yaml`` (by default the one shipped with this package, next to this module).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..results import atomic_write_text
from .build import Leaderboard, build
from .data import MEASURED, Loaded, find_results, load_measured, load_reported
from .families import FAMILIES

OUTPUTS = ("leaderboard.md", "leaderboard.csv", "leaderboard.html")
PLOT_DIR = "plots"
# The literature's numbers ship as package data, so an installed harness shows them without a
# checkout; it is the one copy (the repository's leaderboard/ reads it from here too).
REPORTED_FILE = "reported.yaml"

__all__ = [
    "add_arguments",
    "build_board",
    "check_stale",
    "generate",
    "main",
    "reported_path",
    "run_cli",
]


@contextmanager
def reported_path(reported: str | Path | bool | None = None) -> Iterator[Path | None]:
    """The reported-numbers file to read: ``None``/``True`` the packaged one, a path that file,
    ``False`` none (yields None)."""
    if reported is False:
        yield None
    elif reported is None or reported is True:
        # as_file: a real path even when the package is imported from a zip.
        with resources.as_file(resources.files(__package__).joinpath(REPORTED_FILE)) as p:
            yield p
    else:
        p = Path(reported)
        if not p.is_file():
            raise ConfigError(f"--reported {p}: file not found")
        yield p


def build_board(
    paths: list[str],
    out: str | Path,
    *,
    reported: str | Path | bool | None = None,
    sort_by: str | None = None,
    metrics: dict[str, str] | None = None,
    families: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    assume_source: str | None = None,
    title: str = "Speech LM leaderboard",
) -> Leaderboard:
    """Read the inputs and assemble the leaderboard (nothing is written)."""
    out = Path(out)
    families = dict(families or {})
    for task, fam in families.items():
        if fam not in FAMILIES:
            raise ConfigError(f"--family {task}={fam}: family must be one of {list(FAMILIES)}")
    loaded = Loaded()
    load_measured(
        find_results(list(paths)),
        out,
        loaded,
        metrics=dict(metrics or {}),
        families=families,
        params=dict(params or {}),
        assume_source=assume_source,
    )
    with reported_path(reported) as rp:
        if rp is not None:
            load_reported(rp, loaded, families)
    given = dict(params or {})
    for e in loaded.entries.values():
        info = loaded.models.get(e.label) or loaded.models.get(e.model)
        if e.kind != MEASURED or not info:
            continue
        if info["params"] is not None and e.label not in given and e.model not in given:
            e.params = info["params"]  # declared beats what a file guesses; --params beats both
        e.note = info["note"]
    return build(loaded, title=title, sort_by=sort_by)


def generate(
    paths: list[str], out: str | Path, *, plots: bool = True, **options: Any
) -> dict[str, str]:
    """Every output file as text, keyed by its path relative to ``out``."""
    from . import render

    board = build_board(paths, out, **options)
    files: dict[str, str] = {}
    captions: list[tuple[str, str]] = []
    if plots:
        from .plots import plan
        from .plots import render as draw

        for p in plan(board):
            files[p.name] = draw(p).decode("utf-8")
            captions.append((p.name, p.caption))
    files["leaderboard.md"] = render.markdown(board, captions)
    files["leaderboard.html"] = render.html(board, captions)
    files["leaderboard.csv"] = render.csv_text(board)
    return files


def _ours(path: Path) -> bool:
    """An SVG this module wrote (it carries a data fingerprint)."""
    from .plots import fingerprint_of

    try:
        return fingerprint_of(path.read_bytes()) is not None
    except OSError:
        return False


def main(paths: list[str], out: str, **options: Any) -> list[Path]:
    """Write leaderboard.md / .csv / .html and plots/*.svg under ``out``; return the paths.

    Options: ``reported`` (path, or False for none; default the packaged ``reported.yaml``),
    ``sort_by`` (``task`` or ``task@dataset``), ``metrics`` ({task: "metric,filter"} headline
    override), ``families`` ({task: family}), ``params`` ({model: size}), ``assume_source``
    (dataset of tasks whose results file does not record one), ``plots`` (bool), ``title``.
    """
    outp = Path(out)
    files = generate(paths, outp, **options)
    written = []
    umask = os.umask(0)
    os.umask(umask)
    for name, text in sorted(files.items()):
        path = outp / name
        atomic_write_text(path, text)
        path.chmod(0o666 & ~umask)  # the temporary file's 0600 would hide the page from a server
        written.append(path)
    # Plots from an earlier run that the data no longer supports would mislead: remove them
    # (only SVGs this module wrote, recognised by their data fingerprint).
    plot_dir = outp / PLOT_DIR
    if plot_dir.is_dir():
        for old in sorted(plot_dir.glob("*.svg")):
            if f"{PLOT_DIR}/{old.name}" not in files and _ours(old):
                old.unlink()
    return written


def check_stale(paths: list[str], out: str, **options: Any) -> list[str]:
    """Names (relative to ``out``) of generated files that differ from a fresh generation.

    Tables (MD, CSV, HTML) must match byte for byte. Plots are compared by the hash of the data
    they show (recorded in each SVG), so another matplotlib version does not count as stale.
    Plots present in ``out`` that would no longer be generated are stale too.
    """
    from .plots import fingerprint_of

    outp = Path(out)
    fresh = generate(paths, outp, **options)
    stale = []
    for name, text in sorted(fresh.items()):
        path = outp / name
        if not path.is_file():
            stale.append(name)
        elif name.endswith(".svg"):
            if fingerprint_of(path.read_bytes()) != fingerprint_of(text.encode("utf-8")):
                stale.append(name)
        elif path.read_bytes() != text.encode("utf-8"):
            stale.append(name)
    plot_dir = outp / PLOT_DIR
    if plot_dir.is_dir():
        for old in sorted(plot_dir.glob("*.svg")):
            name = f"{PLOT_DIR}/{old.name}"
            if name not in fresh and _ours(old):
                stale.append(name)
    return sorted(stale)


# --- command line (wired into slm-eval by cli.py) -------------------------------------------


def _pairs(flag: str, items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise ConfigError(f"{flag}: expected KEY=VALUE, got {item!r}")
        out[k.strip()] = v.strip()
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``slm-eval leaderboard``."""
    p.add_argument("results", nargs="+", help="results JSON files or folders (results_*.json)")
    p.add_argument("--out", "-o", required=True, help="output folder (e.g. leaderboard/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--reported",
        default=None,
        help="reported-numbers YAML (default: the one shipped with speechlm_eval)",
    )
    g.add_argument("--no_reported", action="store_true", help="measured numbers only")
    p.add_argument("--sort_by", default=None, help="order rows by TASK or TASK@DATASET, best first")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="TASK=METRIC,FILTER",
        help="headline metric of a task (default: the results file's primary_metric)",
    )
    p.add_argument(
        "--family",
        action="append",
        default=[],
        metavar="TASK=FAMILY",
        help=f"table of a task; one of {', '.join(FAMILIES)}",
    )
    p.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="MODEL=SIZE",
        help="model size for the size plot, e.g. gslm-mini=3.2M",
    )
    p.add_argument(
        "--assume_source",
        default=None,
        help="dataset of tasks whose results file does not record one (e.g. official)",
    )
    p.add_argument("--no_plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument("--title", default="Speech LM leaderboard")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in OUT differ from a fresh generation",
    )


def run_cli(args: argparse.Namespace) -> int:
    """Run ``slm-eval leaderboard`` from parsed arguments; returns the exit code."""
    options: dict[str, Any] = {
        "reported": False if args.no_reported else args.reported,
        "sort_by": args.sort_by,
        "metrics": _pairs("--metric", args.metric),
        "families": _pairs("--family", args.family),
        "params": _pairs("--params", args.params),
        "assume_source": args.assume_source,
        "plots": not args.no_plots,
        "title": args.title,
    }
    if args.check:
        stale = check_stale(args.results, args.out, **options)
        for name in stale:
            print(f"stale: {Path(args.out) / name}")
        if stale:
            print(
                f"{len(stale)} leaderboard file(s) out of date; regenerate with: "
                f"slm-eval leaderboard {' '.join(args.results)} --out {args.out}"
            )
            return 1
        print(f"leaderboard in {args.out} is up to date")
        return 0
    for path in main(args.results, args.out, **options):
        print(path)
    return 0
