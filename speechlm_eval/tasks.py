"""The task index: every task and group YAML reachable through ``speechlm_eval.tasks``.

An entry point in that group names a directory (a ``Path`` or ``str``), a YAML
file, or a callable returning either; every ``*.yaml`` below a directory is read,
templates (``_*.yaml``, included by tasks) only checked, not indexed. Includes may not
leave the directory the entry point (or ``--include_path``) names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .config import GroupConfig, TaskConfig, check_template, is_template, load_config_file
from .errors import ConfigError


@dataclass
class TaskIndex:
    tasks: dict[str, TaskConfig]
    groups: dict[str, GroupConfig]

    def expand(self, spec: str | Iterable[str]) -> list[str]:
        """Expand a comma-separated list of task/group names (``all`` = every task) to tasks."""
        names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        out: list[str] = []
        for name in names:
            if not name:
                continue
            for t in self._expand_one(name, ()):
                if t not in out:
                    out.append(t)
        if not out:
            raise ConfigError("--tasks: no task given")
        return out

    def _expand_one(self, name: str, seen: tuple[str, ...]) -> list[str]:
        if name == "all":
            return sorted(self.tasks)
        if name in self.tasks:
            return [name]
        if name in self.groups:
            if name in seen:
                raise ConfigError(f"group {name!r} includes itself ({' -> '.join((*seen, name))})")
            out: list[str] = []
            for sub in self.groups[name].tasks:
                out.extend(self._expand_one(sub, (*seen, name)))
            return out
        known = ", ".join(sorted(self.tasks) + sorted(self.groups))
        raise ConfigError(f"unknown task or group {name!r}; known: {known}, all")


def _yaml_files(obj: object, origin: str) -> list[tuple[Path, Path]]:
    """The YAML files an entry point (or ``--include_path``) names, each with its task folder
    (the folder named, or a named file's own folder): the bound of its includes."""
    if callable(obj):
        obj = obj()
    if isinstance(obj, (list, tuple)):
        return [p for o in obj for p in _yaml_files(o, origin)]
    if not isinstance(obj, (str, Path)):
        raise ConfigError(f"task plugin {origin!r} must give a path to YAML files, got {obj!r}")
    p = Path(obj)
    if p.is_dir():
        return [(f, p) for f in sorted(p.rglob("*.yaml"))]
    if p.is_file():
        return [(p, p.parent)]
    raise ConfigError(f"task plugin {origin!r}: {p} does not exist")


def load_index(extra_paths: Iterable[str | Path] = ()) -> TaskIndex:
    """Read every registered task/group YAML (plus ``extra_paths``, e.g. ``--include_path``)."""
    files: list[tuple[Path, Path]] = []
    for name, obj in registry.load_all("tasks").items():
        files.extend(_yaml_files(obj, name))
    for p in extra_paths:
        files.extend(_yaml_files(p, str(p)))
    # The same file reached twice (an --include_path given twice, or pointing into a plugin's
    # folder) is one definition, not a clash of two.
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, root in files:
        unique.setdefault(f.resolve(), (f, root))
    tasks: dict[str, TaskConfig] = {}
    groups: dict[str, GroupConfig] = {}
    for f, root in unique.values():
        if is_template(f):  # read through the tasks that include it; checked here all the same
            check_template(f, root)
            continue
        cfg = load_config_file(f, root)
        name = cfg.task if isinstance(cfg, TaskConfig) else cfg.group
        if name in tasks or name in groups or name == "all":
            other = tasks[name].source_file if name in tasks else groups.get(name, cfg).source_file
            raise ConfigError(f"{f}: name {name!r} is already defined in {other}")
        if isinstance(cfg, TaskConfig):
            tasks[name] = cfg
        else:
            groups[name] = cfg
    for g in groups.values():
        for sub in g.tasks:
            if sub not in tasks and sub not in groups:
                raise ConfigError(f"{g.source_file}: group {g.group!r} lists unknown task {sub!r}")
    _check_plugins(tasks)
    index = TaskIndex(tasks, groups)
    for g in groups.values():
        try:
            index.expand(g.group)
        except ConfigError as e:  # a cycle: name the file that closes it
            raise ConfigError(f"{g.source_file}: {e}") from None
    return index


def _check_plugins(tasks: dict[str, TaskConfig]) -> None:
    """Every task names a registered reader and scorer (a typo fails here, naming the file,
    rather than after the model has loaded). Whether the plugin imports is checked on use."""
    for kind, field, value in (
        ("readers", "dataset: field 'reader'", lambda c: c.dataset.reader),
        ("scorers", "scoring: field 'scorer'", lambda c: c.scoring.scorer),
    ):
        known = registry.names(kind)
        for cfg in tasks.values():
            if value(cfg) not in known:
                raise ConfigError(
                    f"{cfg.source_file}: {field}: unknown {kind[:-1]} {value(cfg)!r}; "
                    f"registered: {', '.join(known) or 'none'}"
                )
