"""``evaluate``: tasks x model -> results dict (and files). The only place that sequences a run."""

from __future__ import annotations

import inspect
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from . import __version__, distributed, registry
from .cache import BlobStore, ResultCache
from .config import JudgeBinding, TaskConfig
from .data_sources import DataOptions, read_task_data
from .errors import ConfigError, DataError, DataNotFoundError, PluginError
from .execute import BatchSizer, ExecStats, model_code, model_key
from .judges.base import judge_record
from .judges.roles import (
    bindings_for,
    check_overrides,
    load_bound,
    parse_judge_flags,
    required_roles,
)
from .model import SpeechLM
from .options import parse_pairs
from .pipelines import TaskContext, pipeline_for, skip_reason
from .provenance import git_hash, package_versions
from .results import (
    RunResult,
    TaskResult,
    atomic_write_text,
    dumps,
    sanitize_model_name,
    timestamp,
    to_results_dict,
    write_audio,
    write_jsonl,
)
from .tasks import TaskIndex, load_index


def default_cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("speechlm-eval")) / "requests.sqlite"


class _JudgeUnavailable(Exception):
    """A task's bound judge cannot serve (e.g. no endpoint configured): the task is skipped."""


@dataclass
class RunOptions:
    """What ``slm-eval run`` takes; names and meanings follow lm-evaluation-harness."""

    tasks: str = "all"
    data_dir: str | None = None
    data_source: str = "auto"  # auto | official | builtin (see data_sources.DataOptions)
    output_path: str | None = None
    limit: float | None = None
    batch_size: int | str = 1
    max_batch_size: int | None = None
    seed: int = 0
    log_samples: bool = False
    device: str | None = None
    use_cache: str | None = None  # path of the SQLite cache; None = default location
    no_cache: bool = False
    include_path: list[str] = field(default_factory=list)
    build_missing: bool = False  # build missing built-in data instead of failing
    judges: list[str] = field(default_factory=list)  # --judge ROLE=JUDGE[,k=v...] flags


def parse_model_args(spec: str | None) -> dict[str, str]:
    """``k1=v1,k2=v2`` -> dict (values stay strings; the plugin parses them)."""
    return parse_pairs(spec or "", "--model_args", sep=",")


def load_model(name: str, args: dict[str, Any], device: str | None = None) -> SpeechLM:
    """Instantiate a registered model plugin with its arguments (and the device, if any).

    ``device`` reaches the plugin as the keyword ``device`` when its ``__init__`` takes one (a
    ``device`` parameter or ``**kwargs``); a plugin that takes none chooses its own device, and
    asking it for one is an error rather than a device recorded but never used. A plugin that
    rejects its arguments (``ConfigError``, ``ValueError``, ``TypeError`` in ``__init__``) is
    reported as one line naming the model.
    """
    cls = registry.get("models", name)
    if not (isinstance(cls, type) and issubclass(cls, SpeechLM)):
        raise PluginError(f"model plugin {name!r} is not a subclass of speechlm_eval.SpeechLM")
    kwargs = dict(args)
    if device is not None:
        if not _takes_keyword(cls, "device"):
            raise ConfigError(
                f"--device: model {name!r} takes no device argument (its __init__ has no "
                "'device' parameter nor **kwargs); run it without --device"
            )
        kwargs["device"] = device
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"model {name!r}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model {name!r}: invalid --model_args ({e})") from None


def _takes_keyword(cls: type, key: str) -> bool:
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return True
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == key and p.kind is not p.POSITIONAL_ONLY)
        for p in params
    )


def _limit_docs(limit: float | None, n_docs: int) -> int | None:
    if limit is None:
        return None
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    return int(limit) if limit >= 1 else max(1, int(np.ceil(limit * n_docs)))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    # Seed torch only if a plugin uses it (it is then imported); importing it here costs seconds.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


class Evaluation:
    """One ``slm-eval run``: a model, a task list, options; produces the results dict."""

    def __init__(
        self,
        model: SpeechLM,
        model_name: str,
        model_args: dict[str, Any],
        opts: RunOptions,
        index: TaskIndex | None = None,
        data: DataOptions | None = None,
        bindings: dict[str, dict[str, JudgeBinding]] | None = None,
    ) -> None:
        self.model, self.model_name, self.model_args, self.opts = (
            model,
            model_name,
            model_args,
            opts,
        )
        self.index = index or load_index(opts.include_path)
        self.data = data or DataOptions.from_environment(opts.data_dir, opts.data_source)
        # role -> judge binding of every selected task (checked, as prepare() does first)
        self.bindings = bindings or bind_judges(self.index, opts.tasks, opts.judges)
        self.ts = timestamp()
        cache_path = None if opts.no_cache else (opts.use_cache or default_cache_path())
        self.cache = ResultCache(cache_path)
        self.blobs = BlobStore.beside(cache_path)
        self.cache_path = cache_path
        self.sizer = BatchSizer(opts.batch_size, opts.max_batch_size)
        self.results_path: Path | None = None  # set once the results file is written
        self.result: RunResult | None = None  # the typed results, once run
        self.mkey = model_key(model_name, model)

    def run(self) -> dict[str, Any]:
        """Run every selected task; write the files (``--output_path``); return the results."""
        t0, start = time.perf_counter(), datetime.now(timezone.utc)
        names = self.index.expand(self.opts.tasks)
        explicit = {t.strip() for t in self.opts.tasks.split(",")} & set(self.index.tasks)
        run = RunResult()
        for name in names:
            cfg = self.index.tasks[name]
            if cfg.capability not in self.model.capabilities:
                run.skipped[name] = f"skipped (model lacks {cfg.capability})"
                continue
            if (why := skip_reason(cfg, self.model)) is not None:  # e.g. a continue direction
                run.skipped[name] = why
                continue
            if cfg.capability == "loglikelihood" and "audio" not in self.model.likelihood_of:
                # Today's likelihood tasks score speech sequences; a model that scores only
                # text (e.g. answers given audio) cannot serve them: skipped, never an error.
                kinds = ", ".join(sorted(self.model.likelihood_of))
                run.skipped[name] = f"skipped (model scores {kinds}, not audio sequences)"
                continue
            try:
                run.tasks[name] = self._run_task(cfg)
            except _JudgeUnavailable as e:  # e.g. an LLM judge with no endpoint configured
                run.skipped[name] = f"skipped ({e})"
                print(f"speechlm-eval: warning: {name}: {run.skipped[name]}", file=sys.stderr)
            except DataNotFoundError as e:
                # A task named on the command line must have data; one that came in through a
                # group or 'all' is reported as skipped (never scored as zero), loudly.
                if name in explicit:
                    raise
                run.skipped[name] = f"skipped (no data: {e})"
                print(f"speechlm-eval: warning: {e}", file=sys.stderr)
        for g in self.index.groups.values():
            subs = [t for t in self.index.expand(g.group) if t in names]
            if subs:
                run.group_subtasks[g.group] = subs
        run.header = self._header()
        run.times = {
            "date": start.timestamp(),
            "start_time": start.isoformat(),
            "end_time": datetime.now(timezone.utc).isoformat(),
            "total_evaluation_time_seconds": str(round(time.perf_counter() - t0, 3)),
        }
        if self.sizer.auto:  # the size 'auto' settled on (run-dependent: depends on free memory)
            run.runtime["auto_batch_size"] = self.sizer.size
        self.cache.close()
        self.blobs.close()  # a --no_cache run's temporary folder (no-op with a cache)
        dist = distributed.current()
        run.runtime["world_size"] = dist.world_size
        self.result = run
        res = to_results_dict(run)
        if self.opts.output_path and dist.is_main:  # every rank holds the same results
            self._write(res, run.samples())
        return res

    def _run_task(self, cfg: TaskConfig) -> TaskResult:
        name = cfg.task
        tt = time.perf_counter()
        stats = ExecStats()
        pipeline = pipeline_for(cfg.capability, name)
        _seed_everything(self.opts.seed)
        full = read_task_data(cfg, self.data, self.opts.build_missing)
        # Judges load once the task's data is found (a task without data loads nothing); one
        # that says it cannot serve (available is False) skips the task with its reason.
        judges = load_bound(self.bindings[name])
        for role, judge in judges.items():
            if getattr(judge, "available", True) is False:
                why = getattr(judge, "unavailable_reason", "") or "unavailable"
                raise _JudgeUnavailable(f"judge {role!r}: {why}")
        n_orig = len(full.doc_ids())
        ds = full.limited(_limit_docs(self.opts.limit, n_orig))
        ctx = TaskContext(
            cfg=cfg,
            dataset=ds,
            model=self.model,
            model_key=self.mkey,
            cache=self.cache,
            blobs=self.blobs,
            sizer=self.sizer,
            stats=stats,
            seed=self.opts.seed,
            log_samples=self.opts.log_samples,
            judges=judges,
        )
        out = pipeline(ctx)
        judges = {role: judge_record(j) for role, j in ctx.judges.items()}
        return TaskResult(
            task=name,
            metrics=out.entry,
            higher_is_better=out.higher_is_better,
            config=cfg.as_dict(),
            version=cfg.version,
            task_hash=cfg.hash(),
            n_samples={"original": n_orig, "effective": len(ds.doc_ids())},
            dataset=full.identity,
            scoring=out.scoring,
            judges=judges,
            audio={
                "dataset_sample_rate": cfg.dataset.sample_rate,
                "model_sample_rate": self.model.sample_rate,
                "resampled": stats.resampled,
                "resampler": "scipy.signal.resample_poly" if stats.resampled else None,
            },
            samples=out.samples,
            kept_audio=out.kept_audio,
            runtime={
                "timing": round(time.perf_counter() - tt, 3),
                "cache": {
                    "hits": stats.cache_hits,
                    "computed": stats.computed,
                    "model_calls": stats.model_calls,
                    "batch_sizes": sorted(set(stats.batch_sizes), reverse=True),
                },
            },
        )

    def _header(self) -> dict[str, Any]:
        o = self.opts
        return {
            "config": {
                "model": self.model_name,
                "model_args": self.model_args,
                "model_identity": self.model.identity(),
                "model_code": model_code(self.model_name, self.model),
                "batch_size": o.batch_size,
                "max_batch_size": o.max_batch_size,
                "device": o.device,
                "dtype": self.model.dtype,
                "limit": o.limit,
                "random_seed": o.seed,
                "numpy_seed": o.seed,
                "torch_seed": o.seed,
                "use_cache": str(self.cache_path) if self.cache_path else None,
                "data": self.data.record(),
            },
            "model_name": self.model_name,
            "model_name_sanitized": sanitize_model_name(self.model_name),
            "git_hash": git_hash(),
            "speechlm_eval_version": __version__,
            "packages": dict(package_versions()),
        }

    def _write(self, res: dict[str, Any], samples: dict[str, list[dict[str, Any]]]) -> None:
        out = Path(self.opts.output_path) / sanitize_model_name(self.model_name)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"--output_path: cannot create {out} ({e.strerror})") from None
        if self.opts.log_samples:
            for task, rows in samples.items():
                write_jsonl(out / f"samples_{task}_{self.ts}.jsonl", rows)
            for task in self.result.tasks.values() if self.result else ():
                write_audio(out / "audio", task.kept_audio)  # what the samples rows refer to
        path = out / f"results_{self.ts}.json"
        atomic_write_text(path, dumps(res))  # last: its presence means the run completed
        self.results_path = path


def prepare(
    model_name: str,
    model_args: dict[str, Any] | str | None,
    opts: RunOptions,
    model: SpeechLM | None = None,
) -> Evaluation:
    """Check the options, load the model and return the :class:`Evaluation` to ``run()``."""
    args = (
        parse_model_args(model_args)
        if isinstance(model_args, str) or model_args is None
        else dict(model_args)
    )
    if "device" in args:  # the device is a harness option; --model_args device=... is an alias
        given = str(args.pop("device"))
        if opts.device not in (None, given):
            raise ConfigError(f"--model_args device={given} contradicts --device {opts.device}")
        opts = replace(opts, device=given)
    # Everything that can be checked without the model is, before it loads: task names, data
    # locations, judge roles.
    index = load_index(opts.include_path)
    index.expand(opts.tasks)  # unknown task names first
    data = DataOptions.from_environment(opts.data_dir, opts.data_source)
    bindings = bind_judges(index, opts.tasks, opts.judges)
    dist = distributed.init_from_env(opts.device)
    if model is None:
        device = opts.device
        if device and dist.enabled and device == "cuda":  # one GPU per local rank (torchrun)
            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
        model = load_model(model_name, args, device)
    return Evaluation(model, model_name, args, opts, index, data, bindings)


def bind_judges(
    index: TaskIndex, tasks: str, flags: list[str]
) -> dict[str, dict[str, JudgeBinding]]:
    """The judge bindings (role -> judge) of every task ``tasks`` selects, with the ``--judge``
    flags applied: a role a task's scorer needs but the task does not bind, or a flag for a role
    no selected task plays, is an error (unknown task names too)."""
    overrides = parse_judge_flags(flags)
    cfgs = [index.tasks[n] for n in index.expand(tasks)]
    check_overrides(overrides, cfgs)
    return {
        cfg.task: bindings_for(
            cfg, required_roles(registry.get("scorers", cfg.scoring.scorer)), overrides
        )
        for cfg in cfgs
    }


def evaluate(
    model_name: str,
    model_args: dict[str, Any] | str | None,
    opts: RunOptions,
    model: SpeechLM | None = None,
) -> dict[str, Any]:
    """Python API: evaluate a registered model (or a ready ``model`` object) on ``opts.tasks``."""
    return prepare(model_name, model_args, opts, model).run()
