"""What produced a result: package versions, git revision, platform."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "speechlm-eval",
    "torch",
    "transformers",
    "numpy",
    "scipy",
    "pandas",
    "soundfile",
    "pyyaml",
)


@cache
def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in (*TRACKED_PACKAGES, *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


@cache
def git_hash() -> str | None:
    """Commit of the harness source (``-dirty`` appended when it has local changes)."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def platform_info() -> dict[str, str]:
    return {"platform": platform.platform(), "machine": platform.machine(), "argv0": sys.argv[0]}


# Classes whose code is the harness' interface, not a plugin's: a plugin's code identity is its
# own source, so that editing the harness' base classes does not invalidate every cached output.
_INTERFACE_MODULES = frozenset({"builtins", "abc", "typing", "speechlm_eval.model"})


def _source_files(cls: type) -> list[Path]:
    """The source files a plugin class's outputs depend on, by a rule that needs no import
    tracing: for each class of its MRO (the harness' interface classes excepted), the folder of
    the module that defines it, recursively, when that module is in a package; the module's
    own file when it is a top-level module."""
    files: set[Path] = set()
    for klass in cls.__mro__:
        modname = klass.__module__
        if modname in _INTERFACE_MODULES:
            continue
        mod = sys.modules.get(modname)
        file = getattr(mod, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if "." in modname or path.name == "__init__.py":
            files.update(p for p in path.parent.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.add(path)
    return sorted(files)


@cache
def _top_level_distributions() -> dict[str, list[str]]:
    return packages_distributions()


@cache
def code_identity(cls: type, distribution: tuple[str, str | None] | None = None) -> dict[str, Any]:
    """What identifies the code of a plugin class (model or judge): part of every cache key.

    ``distribution``: the (name, version) of the installed package that registered it (the
    entry point's distribution); without it, the distribution that provides the class's
    top-level package, when one does. ``sources_sha256`` hashes the relative names and bytes
    of :func:`_source_files`, so an edited plugin is a new identity even when its version was
    not bumped (an editable install, a file on PYTHONPATH).
    """
    files = _source_files(cls)
    h = hashlib.sha256()
    # Names relative to the files' common folder: the same code installed elsewhere hashes alike.
    root = Path(os.path.commonpath([p.parent for p in files])) if files else None
    for p in files:
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    if distribution is None:
        top = cls.__module__.split(".")[0]
        dists = _top_level_distributions().get(top, [])
        if dists:
            distribution = (dists[0], _version_or_none(dists[0]))
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "distribution": distribution[0] if distribution else None,
        "distribution_version": distribution[1] if distribution else None,
        "sources_sha256": h.hexdigest() if files else None,
        "source_files": len(files),
    }


def _version_or_none(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
