"""Judges bound to roles: a task names the roles its scorer needs (``judges: {asr: ...}``), the
command line can rebind them (``--judge asr=openai-whisper,model=/w/large-v3.pt``), and the
scorer receives the loaded judges — it never loads one itself. Results record each role's
judge under ``judges.<task>.<role>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import registry
from ..config import JudgeBinding, TaskConfig
from ..errors import ConfigError
from .base import Judge, load_judge


def parse_judge_flag(spec: str) -> tuple[str, JudgeBinding]:
    """``ROLE=JUDGE[,key=value...]`` (the ``--judge`` flag) -> (role, binding)."""
    head, _, rest = spec.partition(",")
    role, eq, name = head.partition("=")
    role, name = role.strip(), name.strip()
    if not eq or not role.isidentifier() or not name:
        raise ConfigError(
            f"--judge {spec!r}: expected ROLE=JUDGE[,key=value...], e.g. "
            "asr=openai-whisper,model=/w/large-v3.pt"
        )
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq or not k.strip():
            raise ConfigError(f"--judge {spec!r}: option {part!r} is not key=value")
        options[k.strip()] = v.strip()
    return role, JudgeBinding(name, options)


def parse_judge_flags(specs: Iterable[str]) -> dict[str, JudgeBinding]:
    """Every ``--judge`` flag; a role given twice is an error."""
    out: dict[str, JudgeBinding] = {}
    for spec in specs:
        role, binding = parse_judge_flag(spec)
        if role in out:
            raise ConfigError(f"--judge: role {role!r} is bound twice")
        out[role] = binding
    return out


def required_roles(scorer: Any) -> tuple[str, ...]:
    """The roles a scorer class (or instance) declares in ``roles``."""
    return tuple(getattr(scorer, "roles", ()) or ())


def bindings_for(
    cfg: TaskConfig, needed: Iterable[str], overrides: Mapping[str, JudgeBinding]
) -> dict[str, JudgeBinding]:
    """The task's bindings with the command line's overrides, checked against the roles its
    scorer needs (a missing role is an error naming the task file)."""
    bound = {**cfg.judges, **{r: b for r, b in overrides.items() if r in cfg.judges}}
    missing = [r for r in needed if r not in bound]
    if missing:
        raise ConfigError(
            f"{cfg.source_file or cfg.task}: scorer {cfg.scoring.scorer!r} needs judge role(s) "
            f"{missing}; add them under 'judges:' (e.g. judges: {{{missing[0]}: <judge>}})"
        )
    return bound


def check_overrides(overrides: Mapping[str, JudgeBinding], tasks: Iterable[TaskConfig]) -> None:
    """Every role given with ``--judge`` is played in at least one selected task."""
    used = {r for cfg in tasks for r in cfg.judges}
    unused = sorted(set(overrides) - used)
    if unused:
        raise ConfigError(
            f"--judge {unused[0]}=...: no selected task has a judge role {unused[0]!r} "
            f"(roles of the selected tasks: {', '.join(sorted(used)) or 'none'})"
        )


# The judge kind (a judge class's ``kind``) each role of the shipped scorers and pipelines
# calls methods of. A role not named here (a third-party scorer's) is not checked.
ROLE_KINDS: dict[str, str] = {
    "asr": "asr",
    "text_lm": "text_lm",
    "mos": "mos",
    "speaker": "speaker",
    "pitch": "pitch",
    "llm": "llm",
    "text_sentiment": "sentiment",
    "speech_sentiment": "sentiment",
    "vad": "vad",
}


def check_kind(role: str, judge: str) -> None:
    """``ConfigError`` when the judge registered as ``judge`` is not of the kind ``role``
    needs (:data:`ROLE_KINDS`), read from its class: nothing is loaded."""
    want = ROLE_KINDS.get(role)
    if want is None:
        return
    kind = getattr(registry.get("judges", judge), "kind", "") or ""
    if kind != want:
        raise ConfigError(
            f"judge role {role!r} needs a judge of kind {want!r}, but {judge!r} is of kind "
            f"{kind!r}; bind a {want} judge (slm-eval judges lists each judge's kind)"
        )


def load_bound(bindings: Mapping[str, JudgeBinding]) -> dict[str, Judge]:
    """Load (once per process, by :func:`load_judge`) the judge of every role, after checking
    that each is of the kind its role needs (:func:`check_kind`; before anything loads)."""
    for role, b in bindings.items():
        check_kind(role, b.judge)
    return {role: load_judge(b.judge, **dict(b.options)) for role, b in bindings.items()}


def describe_judges() -> str:
    """The ``slm-eval judges`` table: each registered judge's kind, input rate, what its
    inputs need, and where its weights come from when nothing is given (``offline``)."""
    rows = [("judge", "kind", "rate", "needs", "weights without options")]
    for name in registry.names("judges"):
        try:
            cls = registry.get("judges", name)
        except Exception as e:  # a broken plugin is listed, not fatal
            rows.append((name, "NOT LOADABLE", "", "", str(e)[:60]))
            continue
        rows.append(
            (
                name,
                getattr(cls, "kind", "") or "?",
                str(getattr(cls, "sample_rate", "") or "any"),
                ", ".join(getattr(cls, "needs", ()) or ("audio",)),
                getattr(cls, "offline_default", "") or "none: pass model=... (never downloaded)",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    )
