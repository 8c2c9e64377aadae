"""``slm-eval listen create|serve|export|analyze``: arguments and dispatch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .study import REFERENCE, TESTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the ``listen`` sub-commands on ``p``."""
    sub = p.add_subparsers(dest="listen_command", required=True)
    c = sub.add_parser("create", help="build a study folder from results files (--log_samples)")
    c.add_argument("--results", nargs="+", required=True, help="results JSON files, one a system")
    c.add_argument("--test", required=True, choices=list(TESTS))
    c.add_argument("--out", required=True, help="the study folder to create")
    c.add_argument("--items", type=int, default=None, help="items to test (seeded choice)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--task", default=None, help="which task's kept audio (when several)")
    c.add_argument("--reference_root", default=None, help="folder holding the original audio")
    c.add_argument(
        "--baseline", default=REFERENCE, help="CMOS: compare with this system (default: reference)"
    )
    c.add_argument(
        "--no_normalize", action="store_true", help="keep levels (default: RMS to -26 dBFS)"
    )

    s = sub.add_parser("serve", help="run the study in a browser")
    s.add_argument("study")
    s.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    s.add_argument("--port", type=int, default=8000)

    e = sub.add_parser("export", help="a self-contained page for offline or crowd use")
    e.add_argument("study")
    e.add_argument("--format", default="static", choices=["static"])
    e.add_argument("--raters", type=int, default=20, help="rater slots in the page (s01...)")
    e.add_argument("--out", default=None, help="HTML file (default: <study>/export/listen.html)")

    a = sub.add_parser("analyze", help="screening and statistics -> results files")
    a.add_argument("study")
    a.add_argument("--output_path", "-o", required=True, help="folder for the results files")
    a.add_argument(
        "--answers", nargs="*", default=[], help="extra answers files (from the static page)"
    )


def run_cli(a: argparse.Namespace) -> int:
    """Run one ``listen`` sub-command; 0 on success."""
    from .study import create_study, load_study

    if a.listen_command == "create":
        st = create_study(
            a.results,
            a.test,
            a.out,
            items=a.items,
            seed=a.seed,
            task=a.task,
            reference_root=a.reference_root,
            baseline=a.baseline,
            normalise=not a.no_normalize,
        )
        print(
            f"study {st.study_id}: {st.test}, {len(st.data['systems'])} systems, "
            f"{len(st.data['items'])} items, {len(st.trials)} trials per rater -> {st.root}"
        )
        return 0
    study = load_study(a.study)
    if a.listen_command == "serve":
        try:
            from .server import serve
        except ImportError as e:
            raise ConfigError(
                f"slm-eval listen serve needs aiohttp ({e}); pip install 'speechlm-eval[listen]'"
            ) from None

        serve(study, a.host, a.port)
        return 0
    if a.listen_command == "export":
        from .export import export_static

        path = export_static(study, Path(a.out) if a.out else None, a.raters)
        print(f"static page: {path} ({path.stat().st_size} bytes)")
        return 0
    from .analyze import analyze_study, format_report, write_results

    analysis = analyze_study(study, [Path(p) for p in a.answers])
    written = write_results(study, analysis, Path(a.output_path))
    print(format_report(analysis))
    for p in written:
        print(f"results: {p}")
    return 0
