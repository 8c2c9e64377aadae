"""Task pipelines: for one capability, requests → model → scorer → metric entries.

The runner reads the data and records provenance; a pipeline does the middle of the
picture in DESIGN.md for its capability. A new capability is one module here plus its
entry in :data:`PIPELINES`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import TaskContext, TaskOutcome
from .continuation import run_continue
from .encode import run_encode
from .likelihood import run_likelihood
from .resynthesize import run_resynthesize

Pipeline = Callable[[TaskContext], TaskOutcome]

PIPELINES: dict[str, Pipeline] = {
    "loglikelihood": run_likelihood,
    "encode": run_encode,
    "resynthesize": run_resynthesize,
    "continue": run_continue,
}


def pipeline_for(capability: str, task: str) -> Pipeline:
    """The pipeline that runs tasks of ``capability``; a clear error when there is none yet."""
    try:
        return PIPELINES[capability]
    except KeyError:
        raise ConfigError(
            f"task {task!r}: no pipeline runs capability {capability!r} yet "
            f"(available: {', '.join(sorted(PIPELINES))})"
        ) from None


__all__ = ["PIPELINES", "TaskContext", "TaskOutcome", "pipeline_for"]
