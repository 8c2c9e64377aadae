"""Where a task's data comes from: the user's data locations or the built-in suite, never a mix.

The rule (README, "Where data is looked for"): a location the user configured (``--data_dir``,
``$SLM_EVAL_DATA``) must exist and be a folder, and when one is configured a task's data is
looked for there only. The built-in suite is read when no location is configured, or when the
user asks for it (``--data_source builtin``). A typo in a path is an error, never synthetic
numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import distributed, registry
from .config import TaskConfig
from .dataset import TaskData, locate
from .errors import ConfigError, DataError, DataNotFoundError, PluginError

DATA_ENV = "SLM_EVAL_DATA"
SOURCES = ("auto", "official", "builtin")


def _check_root(flag: str, path: Path) -> Path:
    if not path.exists():
        raise ConfigError(f"{flag}: {path} does not exist; expected the folder that holds the data")
    if not path.is_dir():
        raise ConfigError(
            f"{flag}: {path} is not a folder; expected the folder that holds the data"
        )
    return path


@dataclass(frozen=True)
class DataOptions:
    """The data options of one run: ``--data_dir``, ``$SLM_EVAL_DATA``, ``--data_source``.

    ``source``: ``auto`` (default) reads the configured locations when there are any and the
    built-in suite otherwise; ``official`` requires a configured location; ``builtin`` reads
    the built-in suite only (``$SLM_EVAL_BUILTIN`` or the user cache dir).
    """

    data_dir: str | None = None
    env: str | None = None  # $SLM_EVAL_DATA as read when the options were made
    source: str = "auto"

    @classmethod
    def from_environment(cls, data_dir: str | None = None, source: str = "auto") -> DataOptions:
        """Options from the flags and the current ``$SLM_EVAL_DATA``; validated (see check)."""
        opts = cls(data_dir or None, os.environ.get(DATA_ENV) or None, source)
        opts.check()
        return opts

    def env_entries(self) -> list[str]:
        return [p for p in (self.env or "").split(os.pathsep) if p]

    def configured(self) -> list[tuple[str, Path]]:
        """The configured roots in search order, each checked to be an existing folder."""
        roots: list[tuple[str, Path]] = []
        if self.data_dir:
            roots.append(("--data_dir", _check_root("--data_dir", Path(self.data_dir))))
        for p in self.env_entries():
            roots.append((f"${DATA_ENV}", _check_root(f"${DATA_ENV} entry", Path(p))))
        return roots

    def check(self) -> None:
        """Every configured location exists and is a folder; the source fits the locations."""
        if self.source not in SOURCES:
            raise ConfigError(f"--data_source: expected one of {', '.join(SOURCES)}")
        roots = self.configured()
        if self.source == "official" and not roots:
            raise ConfigError(
                "--data_source official: no data location configured; pass --data_dir DIR or "
                f"set ${DATA_ENV}"
            )
        if self.source == "builtin" and self.data_dir:
            raise ConfigError(
                "--data_source builtin reads the built-in suite ($SLM_EVAL_BUILTIN or the user "
                "cache dir); drop --data_dir, or use --data_source official to read --data_dir"
            )

    @property
    def uses_builtin(self) -> bool:
        """Whether tasks are read from the built-in suite (else from the configured roots)."""
        return self.source == "builtin" or (self.source == "auto" and not self.configured())

    def record(self) -> dict[str, Any]:
        """What the results record of the data options and the choice they led to."""
        from .builtin.build import default_root

        return {
            "data_dir": self.data_dir,
            DATA_ENV: self.env_entries(),
            "data_source": self.source,
            "used": "builtin" if self.uses_builtin else "configured",
            "builtin_root": str(default_root()) if self.uses_builtin else None,
        }


def locate_task_data(cfg: TaskConfig, data: DataOptions, build_missing: bool = False) -> Path:
    """The task's data folder under the configured roots, or else in the built-in suite."""
    if not data.uses_builtin:
        try:
            return locate(cfg.task, cfg.dataset.subdirs, data.configured())
        except DataNotFoundError as e:
            hint = (
                " (to use the built-in version instead: --data_source builtin)"
                if cfg.dataset.builtin
                else ""
            )
            raise DataNotFoundError(f"{e}{hint}") from None
    from .builtin import build as builtin

    sub = cfg.dataset.builtin
    broot = builtin.default_root()
    if not sub:
        raise DataNotFoundError(
            f"task {cfg.task!r}: official data only, there is no built-in version; pass "
            f"--data_dir DIR or set ${DATA_ENV} (sub-folders: {', '.join(cfg.dataset.subdirs)})"
        )

    def built() -> bool:  # the manifest is the only proof that a subset is complete
        return sub in builtin.read_manifest(broot).get("subsets", {})

    if not built():
        if not build_missing:
            raise DataNotFoundError(
                f"task {cfg.task!r}: the built-in suite at {broot} has no {sub!r} subset; "
                f"build it with: slm-eval data build --subsets {sub} (or pass --build_missing)"
            )
        with distributed.main_first():  # one rank builds, the others wait and then find it
            if distributed.current().is_main:
                builtin.build(broot, names=[sub])
    return locate(cfg.task, cfg.dataset.subdirs, [("built-in suite", broot)])


def read_task_data(cfg: TaskConfig, data: DataOptions, build_missing: bool = False) -> TaskData:
    """Locate and read a task's dataset with its registered reader; record where it came from."""
    from .builtin.build import find_builtin_root

    root = locate_task_data(cfg, data, build_missing)
    reader = registry.get("readers", cfg.dataset.reader)
    ds = reader(root, dict(cfg.dataset.options))
    if not isinstance(ds, TaskData):
        raise PluginError(
            f"reader {cfg.dataset.reader!r} returned {type(ds).__name__}; expected a dataset "
            "with root, files, identity, items, doc_ids() and limited() (speechlm_eval.dataset)"
        )
    if not ds.items:
        raise DataError(f"task {cfg.task!r}: {root} holds no items")
    found = find_builtin_root(root)
    entry = found[1].get("subsets", {}).get(cfg.dataset.builtin or "") if found else None
    if found and entry:
        ds.identity["source"] = "builtin"
        ds.identity["builtin"] = {
            "root": str(found[0].resolve()),
            "subset": cfg.dataset.builtin,
            "generator_version": found[1].get("generator_version"),
            **{k: entry[k] for k in ("version", "size", "seed", "content_sha256", "voices")},
        }
    else:
        ds.identity["source"] = "official"
    return ds


def describe_source(identity: dict[str, Any]) -> str:
    """One phrase for the console: ``official: <root>`` or ``built-in <size> (<root>)``."""
    if identity.get("source") == "builtin":
        b = identity.get("builtin") or {}
        return f"built-in {b.get('size', '?')} ({b.get('root', '?')})"
    return f"official: {identity.get('root', '?')}"
