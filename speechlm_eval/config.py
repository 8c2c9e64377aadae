"""Task and group configurations (YAML), parsed strictly.

A task file holds one task; a group file lists tasks. Unknown keys and wrong
types are errors naming the file and the field, because a misspelt option that
is silently ignored gives wrong numbers that look right.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .model import CAPABILITIES

NLL_VARIANTS = ("sum", "mean")
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictSafeLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing a key written twice in one mapping.

    PyYAML keeps the last value of a duplicated key silently, so ``version: 1`` followed
    later by ``version: 2`` would be read without a word. Merge keys (``<<``) may still be
    overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice (first on line {first[key] + 1})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A parser error as one phrase with the file position (PyYAML's text spans lines)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        m = e.problem_mark
        context = f" ({e.context})" if e.context else ""
        return f"line {m.line + 1}, column {m.column + 1}: {e.problem}{context}"
    return str(e)


@dataclass(frozen=True)
class DatasetConfig:
    """Where a task's data comes from and how to read it."""

    reader: str
    subdirs: tuple[str, ...]  # looked up under each data root, first match wins
    sample_rate: int | None = None
    builtin: str | None = None  # subset of the built-in suite that provides this layout
    official_only: bool = False  # no built-in substitute can be made honestly
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringConfig:
    scorer: str
    nll: str = "mean"  # default variant: which one is the task's headline metric
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskConfig:
    task: str
    version: int
    capability: str
    dataset: DatasetConfig
    scoring: ScoringConfig
    description: str = ""
    source_file: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dataset"]["subdirs"] = list(self.dataset.subdirs)
        d.pop("source_file")
        return d

    def hash(self) -> str:
        """SHA-256 of the canonical config: changes whenever anything that affects scores does."""
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class GroupConfig:
    group: str
    tasks: tuple[str, ...]
    version: int
    description: str = ""
    aggregate: str = "none"  # "none" | "mean" (unweighted mean of subtask headline metrics)
    source_file: str = ""


# --- strict parsing helpers ------------------------------------------------------------------


def _check_keys(where: str, d: dict[str, Any], required: set[str], optional: set[str]) -> None:
    unknown = set(d) - required - optional
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed keys: {allowed}")
    missing = required - set(d)
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {sorted(missing)}")


def _typed(where: str, key: str, value: Any, types: type | tuple[type, ...], what: str) -> Any:
    # bool is an int subclass: reject it where an int is expected.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ConfigError(f"{where}: field '{key}' must be {what}, got {value!r}")
    return value


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _str_list(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: field '{key}' must be a string or a non-empty list of strings")
    return tuple(value)


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a YAML mapping with a safe loader (never arbitrary objects)."""
    try:
        # CSafeLoader is libyaml's safe loader (10x faster, same safety as yaml.safe_load):
        # tags such as !!python/object are refused, never constructed.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictSafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML at {_yaml_problem(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); expected a YAML file"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at top level")
    return data


def parse_task(data: dict[str, Any], where: str) -> TaskConfig:
    """Validate a task mapping (from YAML) into a :class:`TaskConfig`."""
    _check_keys(
        where, data, {"task", "version", "capability", "dataset", "scoring"}, {"description"}
    )
    name = _typed(where, "task", data["task"], str, "a string")
    version = _typed(where, "version", data["version"], int, "an integer")
    cap = _typed(where, "capability", data["capability"], str, "a string")
    if cap not in CAPABILITIES:
        raise ConfigError(
            f"{where}: field 'capability' must be one of {list(CAPABILITIES)}, got {cap!r}"
        )

    ds = _typed(where, "dataset", data["dataset"], dict, "a mapping")
    dw = f"{where}: dataset"
    _check_keys(
        dw, ds, {"reader", "subdirs"}, {"sample_rate", "builtin", "official_only", "options"}
    )
    rate = ds.get("sample_rate")
    if rate is not None:
        _typed(dw, "sample_rate", rate, int, "an integer (Hz)")
    dataset = DatasetConfig(
        reader=_typed(dw, "reader", ds["reader"], str, "a string"),
        subdirs=_str_list(dw, "subdirs", ds["subdirs"]),
        sample_rate=rate,
        builtin=_typed(dw, "builtin", ds.get("builtin"), (str, type(None)), "a string"),
        official_only=_typed(
            dw, "official_only", ds.get("official_only", False), bool, "true/false"
        ),
        options=_typed(dw, "options", ds.get("options", {}) or {}, dict, "a mapping"),
    )

    sc = _typed(where, "scoring", data["scoring"], dict, "a mapping")
    sw = f"{where}: scoring"
    _check_keys(sw, sc, {"scorer"}, {"nll", "options"})
    nll = _typed(sw, "nll", sc.get("nll", "mean"), str, "'sum' or 'mean'")
    if nll not in NLL_VARIANTS:
        raise ConfigError(f"{sw}: field 'nll' must be 'sum' or 'mean', got {nll!r}")
    scoring = ScoringConfig(
        scorer=_typed(sw, "scorer", sc["scorer"], str, "a string"),
        nll=nll,
        options=_typed(sw, "options", sc.get("options", {}) or {}, dict, "a mapping"),
    )
    desc = _typed(where, "description", data.get("description", ""), str, "a string")
    return TaskConfig(name, version, cap, dataset, scoring, desc, where)


def parse_group(data: dict[str, Any], where: str) -> GroupConfig:
    """Validate a group mapping (from YAML) into a :class:`GroupConfig`."""
    _check_keys(where, data, {"group", "tasks", "version"}, {"description", "aggregate"})
    agg = _typed(where, "aggregate", data.get("aggregate", "none"), str, "'none' or 'mean'")
    if agg not in ("none", "mean"):
        raise ConfigError(f"{where}: field 'aggregate' must be 'none' or 'mean', got {agg!r}")
    return GroupConfig(
        group=_typed(where, "group", data["group"], str, "a string"),
        tasks=_str_list(where, "tasks", data["tasks"]),
        version=_typed(where, "version", data["version"], int, "an integer"),
        description=_typed(where, "description", data.get("description", ""), str, "a string"),
        aggregate=agg,
        source_file=where,
    )


def load_config_file(path: Path) -> TaskConfig | GroupConfig:
    """Parse one YAML file as a task (has ``task:``) or a group (has ``group:``)."""
    data = read_yaml(path)
    if "task" in data:
        return parse_task(data, str(path))
    if "group" in data:
        return parse_group(data, str(path))
    raise ConfigError(f"{path}: expected a 'task:' or a 'group:' key at top level")
