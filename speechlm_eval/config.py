"""Task and group configurations (YAML), parsed strictly.

A task file holds one task; a group file lists tasks. Unknown keys and wrong
types are errors naming the file and the field, because a misspelt option that
is silently ignored gives wrong numbers that look right.

A file may start from templates (``include: _common.yaml``, or a list): the templates'
mappings are deep-merged under the file's own keys before the strict parsing, so what is
validated, hashed and recorded is the resolved task. Files whose name starts with ``_`` are
templates, never tasks or groups (see :func:`is_template`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import ConfigError
from .model import CAPABILITIES

NLL_VARIANTS = ("sum", "mean")
INCLUDE_KEY = "include"
TEMPLATE_PREFIX = "_"  # a file named _*.yaml is a template: included, never indexed as a task
# Where each key of a merged mapping came from, for keys a template set and the file did not:
# key path (("dataset", "reader")) -> the template's path as shown in messages.
Origins = Mapping[tuple[str, ...], str]
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
class JudgeBinding:
    """The judge that plays a role in a task (``judges: {asr: faster-whisper}``), with options."""

    judge: str
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
    judges: dict[str, JudgeBinding] = field(default_factory=dict)  # role -> binding
    # What each request asks of the model (continue: prompt length, samples, temperatures ...),
    # read by the capability's pipeline, which checks the keys against its own Spec.
    generation: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dataset"]["subdirs"] = list(self.dataset.subdirs)
        d.pop("source_file")
        if not self.judges:  # tasks without judges keep the hash they had before roles existed
            d.pop("judges")
        if not self.generation:  # likewise for tasks that send no generation options
            d.pop("generation")
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


def _check_keys(
    where: str,
    d: dict[str, Any],
    required: set[str],
    optional: set[str],
    origins: Origins | None = None,
    path: tuple[str, ...] = (),
) -> None:
    unknown = set(d) - required - optional
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        # A key inherited from a template is not in the file the message names: say where it is.
        sources = sorted({origins[(*path, k)] for k in unknown if (*path, k) in (origins or {})})
        note = f" (from {', '.join(sources)})" if sources else ""
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}{note}; allowed keys: {allowed}"
        )
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


def parse_task(data: dict[str, Any], where: str, origins: Origins | None = None) -> TaskConfig:
    """Validate a task mapping (from YAML) into a :class:`TaskConfig`.

    ``origins`` (from :func:`read_with_includes`) lets an unknown key be traced to the template
    that set it."""
    _check_keys(
        where,
        data,
        {"task", "version", "capability", "dataset", "scoring"},
        {"description", "judges", "generation"},
        origins,
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
        dw,
        ds,
        {"reader", "subdirs"},
        {"sample_rate", "builtin", "official_only", "options"},
        origins,
        ("dataset",),
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
    _check_keys(sw, sc, {"scorer"}, {"nll", "options"}, origins, ("scoring",))
    nll = _typed(sw, "nll", sc.get("nll", "mean"), str, "'sum' or 'mean'")
    if nll not in NLL_VARIANTS:
        raise ConfigError(f"{sw}: field 'nll' must be 'sum' or 'mean', got {nll!r}")
    scoring = ScoringConfig(
        scorer=_typed(sw, "scorer", sc["scorer"], str, "a string"),
        nll=nll,
        options=_typed(sw, "options", sc.get("options", {}) or {}, dict, "a mapping"),
    )
    desc = _typed(where, "description", data.get("description", ""), str, "a string")
    judges = parse_judges(where, data.get("judges") or {})
    gen = _typed(where, "generation", data.get("generation", {}) or {}, dict, "a mapping")
    return TaskConfig(name, version, cap, dataset, scoring, desc, where, judges, gen)


def parse_judges(where: str, value: Any) -> dict[str, JudgeBinding]:
    """A task's ``judges:``: ``{role: judge-name}`` or ``{role: {judge: name, options: {}}}``.

    ``where`` names the task file in errors."""
    roles = _typed(where, "judges", value, dict, "a mapping of roles to judges")
    out: dict[str, JudgeBinding] = {}
    for role, spec in roles.items():
        if not isinstance(role, str) or not role.isidentifier():
            raise ConfigError(
                f"{where}: judges: role {role!r} must be a name such as asr or speaker"
            )
        if isinstance(spec, str):
            out[role] = JudgeBinding(spec)
            continue
        rw = f"{where}: judges: {role}"
        spec = _typed(rw, role, spec, dict, "a judge name or a mapping {judge, options}")
        _check_keys(rw, spec, {"judge"}, {"options"})
        out[role] = JudgeBinding(
            _typed(rw, "judge", spec["judge"], str, "a judge name"),
            _typed(rw, "options", spec.get("options", {}) or {}, dict, "a mapping"),
        )
    return out


def parse_group(data: dict[str, Any], where: str, origins: Origins | None = None) -> GroupConfig:
    """Validate a group mapping (from YAML) into a :class:`GroupConfig`."""
    _check_keys(where, data, {"group", "tasks", "version"}, {"description", "aggregate"}, origins)
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


# --- include: templates ----------------------------------------------------------------------


def is_template(path: Path) -> bool:
    """Whether a YAML file is a template (its name starts with ``_``): something tasks include,
    never a task or group of its own, so the task index skips it."""
    return path.name.startswith(TEMPLATE_PREFIX)


def _include_names(path: Path, data: dict[str, Any]) -> list[str]:
    value = data.get(INCLUDE_KEY)
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise ConfigError(
        f"{path}: field '{INCLUDE_KEY}' must be a file name or a non-empty list of file names, "
        f"got {value!r}"
    )


def _include_target(path: Path, name: str, root: Path) -> Path:
    """The file ``name`` (written in ``path``) refers to, checked to be a .yaml file inside
    ``root``. Returned as written (for messages); compare its ``resolve()``."""
    where = f"{path}: include {name!r}"
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute():
        raise ConfigError(f"{where}: must be a path relative to the including file's folder")
    if not name.endswith(".yaml"):
        # Only YAML templates: an include never reads some other file into a config.
        raise ConfigError(f"{where}: must name a .yaml file")
    target = path.parent / name
    # A task folder is self-contained (it is what a plugin ships as package data), so an
    # include may climb into a parent folder only as far as the folder the index read.
    # Checked on resolved paths: a symlink cannot lead out either.
    if not target.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"{where}: leaves the task folder {root}; a template must lie inside the folder "
            "of the tasks that include it"
        )
    if not target.is_file():
        raise ConfigError(f"{where}: file not found ({target})")
    return target


def _key_paths(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for k, v in d.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _key_paths(v, (*prefix, k))


def _has_path(d: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    for k in path[:-1]:
        d = d.get(k)  # type: ignore[assignment]
        if not isinstance(d, dict):
            return False
    return path[-1] in d


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge recursively, anything else in ``top`` replaces.

    Key order: ``top``'s keys first, then those only ``base`` has. The order of an options
    mapping is the order results files record it in (``configs.<task>``), and a task file's
    own keys stand first in it, as they did before the shared part moved into a template."""
    out: dict[str, Any] = {}
    for k, v in top.items():
        b = base.get(k)
        out[k] = _deep_merge(b, v) if isinstance(v, dict) and isinstance(b, dict) else v
    for k, v in base.items():
        out.setdefault(k, v)
    return out


def _overlay(
    base: dict[str, Any], base_origins: Origins, top: dict[str, Any], top_origins: Origins
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    merged = _deep_merge(base, top)
    origins = {
        p: f for p, f in base_origins.items() if not _has_path(top, p) and _has_path(merged, p)
    }
    origins.update(top_origins)
    return merged, origins


def _resolve_includes(
    path: Path, data: dict[str, Any], root: Path, chain: tuple[tuple[Path, str], ...]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    if INCLUDE_KEY not in data:
        return data, {}
    names = _include_names(path, data)
    own = {k: v for k, v in data.items() if k != INCLUDE_KEY}
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name in names:  # a later template wins over an earlier one
        target = _include_target(path, name, root)
        if any(target.resolve() == seen for seen, _ in chain):
            cycle = " -> ".join([shown for _, shown in chain] + [name])
            raise ConfigError(f"{chain[0][1]}: include cycle: {cycle}")
        try:
            tdata = read_yaml(target)
        except ConfigError as e:  # a template that is not a YAML mapping, or unreadable
            raise ConfigError(f"{path}: include {name!r}: {e}") from None
        tdata, torigins = _resolve_includes(target, tdata, root, (*chain, (target.resolve(), name)))
        mine = {p: str(target) for p in _key_paths(tdata) if p not in torigins}
        merged, origins = _overlay(merged, origins, tdata, {**torigins, **mine})
    return _overlay(merged, origins, own, {})


def read_with_includes(
    path: Path, root: Path | None = None
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Read a task/group YAML file with its ``include:`` templates merged in.

    ``include`` names a ``.yaml`` file (or a list of them, later ones winning) relative to the
    file's folder; templates may include templates. The file's own keys win: mappings merge
    recursively, lists and scalars replace. Includes may not leave ``root`` (the task folder;
    default: the file's own folder). Returns the merged mapping (without ``include``) and, for
    keys a template set, which template (:data:`Origins`)."""
    root = path.parent if root is None else root
    return _resolve_includes(path, read_yaml(path), root, ((path.resolve(), str(path)),))


def check_template(path: Path, root: Path | None = None) -> None:
    """Check a template found by the task index: a readable mapping whose includes resolve,
    with no ``task:`` or ``group:`` key (a task file named ``_*.yaml`` would otherwise be
    skipped without a word)."""
    data = read_yaml(path)
    for key in ("task", "group"):
        if key in data:
            raise ConfigError(
                f"{path}: has a '{key}:' key, but a file whose name starts with "
                f"'{TEMPLATE_PREFIX}' is a template (included by tasks, never a {key} itself); "
                f"rename it without the leading '{TEMPLATE_PREFIX}' to make it a {key}"
            )
    read_with_includes(path, root)


def load_config_file(path: Path, root: Path | None = None) -> TaskConfig | GroupConfig:
    """Parse one YAML file as a task (has ``task:``) or a group (has ``group:``).

    Its ``include:`` templates are merged in first (:func:`read_with_includes`; ``root`` is the
    folder includes may not leave), so the strict checks, the hash and the recorded config all
    see the resolved task."""
    data, origins = read_with_includes(path, root)
    try:
        if "task" in data:
            return parse_task(data, str(path), origins)
        if "group" in data:
            return parse_group(data, str(path), origins)
    except ConfigError as e:
        raise _traced(e, str(path), origins) from None
    raise ConfigError(f"{path}: expected a 'task:' or a 'group:' key at top level")


def _traced(e: ConfigError, where: str, origins: Origins) -> ConfigError:
    """A bad value a template set is reported under the task file (the one being parsed): add
    which template it is in. Field errors of this module read "<where>: [dataset: |scoring: ]
    field '<key>' ..."; unknown keys are traced by :func:`_check_keys` itself."""
    m = re.match(rf"{re.escape(where)}: (?:(dataset|scoring): )?field '([^']+)' ", str(e))
    if not m or not origins:
        return e
    path = (m[1], m[2]) if m[1] else (m[2],)
    return ConfigError(f"{e} (from {origins[path]})") if path in origins else e
