"""Results files: lm-evaluation-harness layout plus what speech needs; written atomically."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DataError

# Keys that differ between two runs of the same evaluation (times, cache hits).
VOLATILE_KEYS = ("date", "start_time", "end_time", "total_evaluation_time_seconds", "runtime")


def sanitize_model_name(name: str) -> str:
    """Folder name for a model, the way lm-evaluation-harness sanitises it."""
    return re.sub(r'["<>:/|\\?*\[\]]+', "__", name)


def timestamp() -> str:
    return datetime.now().isoformat().replace(":", "-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_tmp(folder: Path) -> list[Path]:
    """Remove temporary files left by writers that were killed (their pid is in the name)."""
    removed = []
    for p in folder.glob(".*.tmp"):
        m = re.search(r"\.pid(\d+)\.", p.name)
        if m and not _pid_alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it and set it back
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written file.

    A writer killed between the two steps (SIGKILL cannot be caught) leaves a hidden
    ``.<name>.pid<N>.*.tmp``; the next write into the folder removes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_tmp(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp"
    )
    try:
        # mkstemp creates the file 0600; give it the mode open() would (0666 less the umask),
        # so results stay readable to teammates and CI artefact servers.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(
        path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    )


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=2, sort_keys=False, default=str) + "\n"


def strip_volatile(results: dict[str, Any]) -> dict[str, Any]:
    """The results without run-specific times and cache counters, for equality checks."""
    return {k: v for k, v in results.items() if k not in VOLATILE_KEYS}


def load_results(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: results file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not a readable JSON results file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise DataError(f"{p}: not a results file (no 'results' mapping)")
    return data


# --- typed results ---------------------------------------------------------------------------


@dataclass
class TaskResult:
    """Everything one task of a run produced, built once; :func:`to_results_dict` writes it.

    ``metrics``: lm-evaluation-harness keys (``<metric>,<filter>`` and ``<metric>_stderr,
    <filter>``); ``samples``: the per-sample records (``--log_samples``), kept out of the
    results file; ``runtime``: times and cache counters (differ between equal runs).
    """

    task: str
    metrics: dict[str, Any]
    higher_is_better: dict[str, bool]
    config: dict[str, Any]
    version: int
    task_hash: str
    n_samples: dict[str, int]  # {"original": docs in the data, "effective": docs scored}
    dataset: dict[str, Any]  # the reader's identity of the data, with its source
    scoring: dict[str, Any]
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> record
    audio: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)
    kept_audio: Mapping[str, Any] = field(default_factory=dict)  # sha256 -> Audio samples refer to


@dataclass
class RunResult:
    """A whole run (or a scored submission): its tasks, what was skipped and why, groups, and
    the header (config, model, versions); ``times`` are date/start/end/total, ``runtime`` the
    run-level volatile facts (world size, batch size 'auto' settled on)."""

    tasks: dict[str, TaskResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    group_subtasks: dict[str, list[str]] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    times: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)

    def samples(self) -> dict[str, list[dict[str, Any]]]:
        return {name: t.samples for name, t in self.tasks.items()}


def to_results_dict(run: RunResult) -> dict[str, Any]:
    """The one serialiser: a run in lm-evaluation-harness' results layout plus speech's keys
    (README "Results files"), in a fixed key order, so equal runs write equal files."""
    tasks = run.tasks.values()
    res: dict[str, Any] = {
        "results": {t.task: {"alias": t.task, **t.metrics} for t in tasks},
        "skipped": dict(run.skipped),
        "group_subtasks": dict(run.group_subtasks),
        "configs": {t.task: t.config for t in tasks},
        "versions": {t.task: t.version for t in tasks},
        "higher_is_better": {t.task: t.higher_is_better for t in tasks},
        "n-samples": {t.task: t.n_samples for t in tasks},
        "task_hashes": {t.task: t.task_hash for t in tasks},
        "datasets": {t.task: t.dataset for t in tasks},
        "scoring": {t.task: t.scoring for t in tasks},
        "judges": {t.task: t.judges for t in tasks if t.judges},
        "audio": {t.task: t.audio for t in tasks if t.audio is not None},
    }
    res.update(run.header)
    res.update(run.times)
    if run.times or run.runtime or any(t.runtime for t in tasks):
        runtime: dict[str, Any] = {
            "timings": {t.task: t.runtime["timing"] for t in tasks if "timing" in t.runtime},
            "cache": {t.task: t.runtime["cache"] for t in tasks if "cache" in t.runtime},
        }
        runtime.update(run.runtime)
        res["runtime"] = runtime
    return res


def write_audio(folder: Path, audios: Mapping[str, Any]) -> None:
    """Kept output audio, content-addressed: ``folder/<sha256>.wav`` (32-bit float WAV, the
    samples exactly), written atomically; a file already there is the same audio."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for h, a in audios.items():
        path = folder / f"{h}.wav"
        if path.exists():
            continue
        tmp = folder / f".{h}.pid{os.getpid()}.tmp.wav"
        sf.write(str(tmp), a.samples, int(a.sample_rate), subtype="FLOAT")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
