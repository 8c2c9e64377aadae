"""The ``slm-eval`` command line. Flags follow lm-evaluation-harness where the concept is shared."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from . import __version__, distributed, registry
from .data_sources import SOURCES, DataOptions
from .errors import ConfigError, SlmEvalError
from .results import atomic_write_text, dumps, timestamp
from .runner import RunOptions, prepare
from .summary import format_summary
from .tasks import load_index


def _batch_size(s: str) -> int | str:
    if s == "auto":
        return "auto"
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {s!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


class _Parser(argparse.ArgumentParser):
    """Flag errors as one line, like every other input error (subparsers inherit this)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"slm-eval: error: {message}\n")


def _positive(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v!r}")
    return x


def _data_source_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data_source",
        default="auto",
        choices=list(SOURCES),
        help="auto (default): --data_dir / $SLM_EVAL_DATA when set, else the built-in suite; "
        "official: the configured locations only; builtin: the built-in suite only",
    )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="slm-eval", description="Evaluate speech language models.")
    p.add_argument("--version", action="version", version=f"speechlm-eval {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tasks", help="list tasks and groups")
    t.add_argument("--data_dir", default=None, help="show where data would be looked for")
    _data_source_argument(t)
    t.add_argument("--include_path", action="append", default=[], help="extra task YAML folder")

    sub.add_parser("models", help="list model plugins and their capabilities")
    sub.add_parser("judges", help="list judges: kind, input rate, what they need, offline default")

    r = sub.add_parser("run", help="evaluate a model on tasks")
    r.add_argument("--model", "-m", required=True, help="registered model plugin name")
    r.add_argument("--model_args", "-a", default="", help="k1=v1,k2=v2 passed to the plugin")
    r.add_argument("--tasks", "-t", default="all", help="comma-separated tasks/groups, or 'all'")
    r.add_argument(
        "--data_dir", default=None, help="root folder of the datasets ($SLM_EVAL_DATA too)"
    )
    _data_source_argument(r)
    r.add_argument("--output_path", "-o", default=None, help="folder for results files")
    r.add_argument(
        "--limit",
        "-L",
        type=_positive,
        default=None,
        help="first N docs per task (N < 1: that fraction); for testing only",
    )
    r.add_argument("--batch_size", "-b", type=_batch_size, default=1, help="N or 'auto'")
    r.add_argument("--max_batch_size", type=int, default=None, help="upper bound for 'auto'")
    r.add_argument("--seed", type=int, default=0, help="seed for python, numpy and torch")
    r.add_argument("--log_samples", "-s", action="store_true", help="write per-sample JSONL")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:0, ... (passed to the plugin)")
    r.add_argument(
        "--use_cache", default=None, help="SQLite request cache (default: user cache dir)"
    )
    r.add_argument(
        "--no_cache",
        action="store_true",
        help="neither read nor write the on-disk cache (a request repeated within the run "
        "is still computed once)",
    )
    r.add_argument("--include_path", action="append", default=[], help="extra task YAML folder")

    r.add_argument(
        "--judge",
        action="append",
        default=[],
        metavar="ROLE=JUDGE[,k=v...]",
        help="bind a judge role of the selected tasks to another judge, e.g. "
        "asr=openai-whisper,model=/w/large-v3.pt (repeatable; see slm-eval judges)",
    )
    r.add_argument(
        "--build_missing",
        action="store_true",
        help="build missing built-in data (slm-eval data build) instead of failing",
    )

    d = sub.add_parser("data", help="build or inspect the built-in benchmark suite")
    dsub = d.add_subparsers(dest="data_command", required=True)
    db = dsub.add_parser("build", help="synthesise the built-in suite (official layouts)")
    db.add_argument("--out", default=None, help="target folder (default: the user cache dir)")
    db.add_argument("--seed", type=int, default=0)
    db.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    db.add_argument("--subsets", default=None, help="comma-separated subsets (default: all)")
    db.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU cores)")
    di = dsub.add_parser("info", help="what a built suite holds")
    di.add_argument("dir", nargs="?", default=None)

    s = sub.add_parser("score", help="score a submission file of per-file scores")
    s.add_argument("--task", required=True)
    s.add_argument(
        "--scores",
        "--features",
        dest="scores",
        required=True,
        help="likelihood tasks: '<file> <score>' per line (ZR2021); ABX: folder of per-file "
        "features (.npy/.pt/.txt, ZeroSpeech layout)",
    )
    s.add_argument("--frame_rate", type=_positive, default=None, help="ABX features: frames/s")
    s.add_argument("--data_dir", default=None)
    _data_source_argument(s)
    s.add_argument("--output_path", "-o", default=None, help="write the results JSON here")
    s.add_argument("--include_path", action="append", default=[])

    from .compare import add_arguments as compare_arguments

    c = sub.add_parser("compare", help="regression gate: fail when NEW is worse than BASE")
    compare_arguments(c)

    from .leaderboard import add_arguments as leaderboard_arguments

    lb = sub.add_parser("leaderboard", help="Markdown, CSV and HTML leaderboard from results")
    leaderboard_arguments(lb)

    from .listen import add_arguments as listen_arguments

    ls = sub.add_parser("listen", help="human listening tests: create, serve, export, analyze")
    listen_arguments(ls)
    return p


def _cmd_tasks(a: argparse.Namespace) -> int:
    idx = load_index(a.include_path)
    data = DataOptions.from_environment(a.data_dir, a.data_source)
    if data.uses_builtin:
        from .builtin.build import default_root

        where = f"the built-in suite at {default_root()} (--data_source {data.source})"
    else:
        where = ", ".join(f"{p} ({src})" for src, p in data.configured())
    print(f"data: {where}\n")
    print(f"{'task':<28} {'ver':>3}  {'capability':<14} {'reader':<17} data sub-folder(s)")
    for name in sorted(idx.tasks):
        cfg = idx.tasks[name]
        note = "  [official data only]" if cfg.dataset.official_only else ""
        print(
            f"{name:<28} {cfg.version:>3}  {cfg.capability:<14} {cfg.dataset.reader:<17} "
            f"{' | '.join(cfg.dataset.subdirs)}{note}"
        )
    print()
    for name in sorted(idx.groups):
        g = idx.groups[name]
        print(f"group {name:<22} v{g.version}: {', '.join(g.tasks)}")
    print("group all: every task the model can serve")
    return 0


def _cmd_models(_: argparse.Namespace) -> int:
    for name in registry.names("models"):
        try:
            cls = registry.get("models", name)
            caps = ", ".join(sorted(getattr(cls, "capabilities", ()))) or "(none declared)"
            print(f"{name:<20} {caps}")
        except SlmEvalError as e:
            print(f"{name:<20} NOT LOADABLE: {e}")
    return 0


def _cmd_judges(_: argparse.Namespace) -> int:
    from .judges import describe_judges

    print(describe_judges())
    return 0


def _cmd_run(a: argparse.Namespace) -> int:
    opts = RunOptions(
        tasks=a.tasks,
        data_dir=a.data_dir,
        data_source=a.data_source,
        output_path=a.output_path,
        limit=a.limit,
        batch_size=a.batch_size,
        max_batch_size=a.max_batch_size,
        seed=a.seed,
        log_samples=a.log_samples,
        device=a.device,
        use_cache=a.use_cache,
        no_cache=a.no_cache,
        include_path=a.include_path,
        build_missing=a.build_missing,
        judges=a.judge,
    )
    try:
        ev = prepare(a.model, a.model_args, opts)
        res = ev.run()
        is_main = distributed.current().is_main
    finally:
        distributed.shutdown()
    if not is_main:  # rank 0 reports for the whole run
        return 0
    print(format_summary(res, ev.results_path))
    if not a.output_path:
        print("(no --output_path given: results were not written)", file=sys.stderr)
    return 0


def _cmd_score(a: argparse.Namespace) -> int:
    from .submission import score_submission

    idx = load_index(a.include_path)
    if a.task not in idx.tasks:
        raise ConfigError(f"--task: unknown task {a.task!r}")
    data = DataOptions.from_environment(a.data_dir, a.data_source)
    res = score_submission(idx.tasks[a.task], Path(a.scores), data, a.frame_rate)
    path = Path(a.output_path) / f"results_{timestamp()}.json" if a.output_path else None
    if path is not None:
        atomic_write_text(path, dumps(res))
    print(format_summary(res, path))
    return 0


def _cmd_data(a: argparse.Namespace) -> int:
    from .builtin import build as builtin

    if a.data_command == "info":
        print(builtin.info(Path(a.dir) if a.dir else None))
        return 0
    names = [s.strip() for s in a.subsets.split(",") if s.strip()] if a.subsets else None
    out = Path(a.out) if a.out else builtin.default_root()
    builtin.build(out, seed=a.seed, size=a.size, names=names, jobs=a.jobs)
    print(builtin.info(out))
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from .compare import run_cli

    return run_cli(a)  # 0, or 1 when a metric regressed


def _cmd_leaderboard(a: argparse.Namespace) -> int:
    from .leaderboard import run_cli

    return run_cli(a)  # 0, or 1 when --check finds stale files


def _cmd_listen(a: argparse.Namespace) -> int:
    from .listen import run_cli

    return run_cli(a)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cmd = {
        "tasks": _cmd_tasks,
        "models": _cmd_models,
        "judges": _cmd_judges,
        "run": _cmd_run,
        "score": _cmd_score,
        "data": _cmd_data,
        "compare": _cmd_compare,
        "leaderboard": _cmd_leaderboard,
        "listen": _cmd_listen,
    }[args.command]
    try:
        return cmd(args)
    except SlmEvalError as e:
        print(f"slm-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "slm-eval: interrupted; finished requests are cached and will not be recomputed",
            file=sys.stderr,
        )
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "slm-eval: internal error (a bug: please report it with the traceback above)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
