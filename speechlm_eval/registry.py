"""Plugin discovery through entry points.

Groups: ``speechlm_eval.models``, ``.tasks``, ``.scorers``, ``.readers``, ``.judges``.
Built-in scorers and readers register through the same groups (see
``pyproject.toml``), so there is one mechanism for ours and third-party code.

A plugin whose import fails is reported once on stderr with its name and the
error; the other plugins keep working. Asking for that plugin by name then
raises :class:`PluginError` with the same reason.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import PluginError

GROUPS = ("models", "tasks", "scorers", "readers", "judges")

_reported: set[tuple[str, str]] = set()


@cache
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin group {kind!r}")
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=f"speechlm_eval.{kind}"):
        # The first distribution on sys.path wins, as Python's own import does.
        found.setdefault(ep.name, ep)
    return found


def names(kind: str) -> list[str]:
    """Registered plugin names in a group, sorted."""
    return sorted(_entry_points(kind))


def _report(kind: str, name: str, err: BaseException) -> str:
    msg = (
        f"plugin {name!r} (group speechlm_eval.{kind}) failed to load: {type(err).__name__}: {err}"
    )
    if (kind, name) not in _reported:
        _reported.add((kind, name))
        print(f"speechlm-eval: warning: {msg}", file=sys.stderr)
    return msg


@cache
def _load(kind: str, name: str) -> Any:
    ep = _entry_points(kind)[name]
    return ep.load()


def get(kind: str, name: str) -> Any:
    """Load the object registered as ``name`` in group ``kind``."""
    eps = _entry_points(kind)
    if name not in eps:
        known = ", ".join(names(kind)) or "none"
        raise PluginError(f"unknown {kind[:-1]} {name!r}; registered: {known}")
    try:
        return _load(kind, name)
    except Exception as e:  # any import-time failure of third-party code
        raise PluginError(_report(kind, name, e)) from None


def distribution(kind: str, name: str) -> tuple[str, str | None] | None:
    """(name, version) of the installed distribution that registers plugin ``name``, if any."""
    ep = _entry_points(kind).get(name) if kind in GROUPS else None
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    return str(dist.metadata["Name"]), dist.version


def load_all(kind: str) -> dict[str, Any]:
    """Load every plugin of a group; broken ones are reported and left out."""
    out: dict[str, Any] = {}
    for name in names(kind):
        try:
            out[name] = _load(kind, name)
        except Exception as e:
            _report(kind, name, e)
    return out
