"""Task pipelines: for one capability, requests → model → scorer → metric entries.

The runner reads the data and records provenance; a pipeline does the middle of the
picture in DESIGN.md for its capability. A new capability is one module here plus its
entry in :data:`PIPELINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import registry
from ..config import TaskConfig
from ..errors import ConfigError, PluginError
from ..model import SpeechLM
from .base import TaskContext, TaskOutcome
from .continuation import run_continue
from .converse import run_converse
from .dialogue_continuation import run_dialogue_continue
from .encode import run_encode
from .likelihood import run_likelihood
from .prosody_streams import run_prosody_streams
from .respond import run_respond
from .resynthesize import run_resynthesize
from .stsp import continue_direction, run_stsp

Pipeline = Callable[[TaskContext], TaskOutcome]

# Several pipelines serve ``continue``: the task's scorer says which by what it scores
# (its ``inputs``); any other value goes to run_continue, whose scorer check names the problem.
CONTINUE_PIPELINES: dict[str, Pipeline] = {
    "continuations": run_continue,
    "sentiment_outputs": run_stsp,
    "prosody_streams": run_prosody_streams,
    "dialogue_continuations": run_dialogue_continue,
}

# Scorer inputs that need an extra of ``continue`` (``SpeechLM.continue_extras``).
CONTINUE_EXTRA_FOR_INPUTS: dict[str, str] = {"prosody_streams": "prosody_streams"}


def run_continue_task(ctx: TaskContext) -> TaskOutcome:
    """The ``continue`` pipeline for the task's scorer (see :data:`CONTINUE_PIPELINES`)."""
    inputs = getattr(registry.get("scorers", ctx.cfg.scoring.scorer), "inputs", None)
    return CONTINUE_PIPELINES.get(inputs, run_continue)(ctx)


PIPELINES: dict[str, Pipeline] = {
    "loglikelihood": run_likelihood,
    "encode": run_encode,
    "resynthesize": run_resynthesize,
    "continue": run_continue_task,
    "converse": run_converse,
    "respond": run_respond,
}


def skip_reason(cfg: TaskConfig, model: SpeechLM) -> str | None:
    """Why ``model`` cannot serve the task ``cfg`` beyond its capabilities, or None: a continue
    task whose direction (``generation.direction``, default speech->speech) the model does not
    declare in ``continue_modalities``, or whose scorer needs an extra of ``continue`` (e.g.
    ``prosody_streams``) the model does not declare in ``continue_extras``."""
    if cfg.capability != "continue":
        return None
    direction = continue_direction(cfg)
    have: Any = getattr(model, "continue_modalities", frozenset({"speech->speech"}))
    if direction not in have:
        return f"skipped (model lacks continue {direction})"
    try:
        inputs = getattr(registry.get("scorers", cfg.scoring.scorer), "inputs", None)
    except PluginError:  # reported when the task runs (its pipeline loads the scorer)
        return None
    extra = CONTINUE_EXTRA_FOR_INPUTS.get(inputs) if isinstance(inputs, str) else None
    if extra is not None and extra not in getattr(model, "continue_extras", frozenset()):
        return f"skipped (model lacks continue {extra})"
    return None


def pipeline_for(capability: str, task: str) -> Pipeline:
    """The pipeline that runs tasks of ``capability``; a clear error when there is none yet."""
    try:
        return PIPELINES[capability]
    except KeyError:
        raise ConfigError(
            f"task {task!r}: no pipeline runs capability {capability!r} yet "
            f"(available: {', '.join(sorted(PIPELINES))})"
        ) from None


__all__ = ["PIPELINES", "TaskContext", "TaskOutcome", "pipeline_for", "skip_reason"]
