"""Reading measured results files and the reported-numbers file into flat score records.

Measured: this harness's results files and lm-evaluation-harness-style files from elsewhere
(``results.<task>.<metric>,<filter>`` with ``<metric>_stderr,<filter>``). Reported: the
literature's numbers in ``reported.yaml`` with their sources. Everything becomes a list of
:class:`Score` (one number) and :class:`Entry` (one leaderboard row).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import read_yaml
from ..errors import ConfigError, DataError
from ..results import load_results
from .families import (
    CAPABILITY_FAMILY,
    FAMILIES,
    config_family,
    guess_higher_is_better,
    is_percent,
    rule_family,
)

MEASURED, REPORTED = "measured", "reported"
UNSTATED = "unstated"  # scoring (filter) of a reported number whose source does not say
# Dataset ids: where a number's data came from. Built-in data is a different dataset from the
# official benchmark, so the two never share a column.
OFFICIAL, UNSPECIFIED = "official", "unspecified"


def dataset_label(dataset: str) -> str:
    if dataset.startswith("builtin"):
        rest = dataset[len("builtin") :].lstrip("-")
        return f"built-in ({rest})" if rest else "built-in"
    return {UNSPECIFIED: "source not recorded"}.get(dataset, dataset)


@dataclass(frozen=True)
class Score:
    """One number: a metric of a task on a dataset, for one leaderboard row."""

    entry: str  # Entry.key
    task: str
    dataset: str  # "official", "builtin-small", "unspecified", ...
    metric: str  # "acc", "acc_freq_oov", ...
    filter: str  # "nll_sum", "nll_mean", "none", "unstated", ...
    value: float
    stderr: float | None
    higher_is_better: bool
    primary: bool  # the task's headline metric for this row
    family: str
    origin: str  # results file (relative to the output folder) or reported source id
    date: float = 0.0  # the results file's date (newest wins on conflicts)
    limited: bool = False  # run with --limit: not comparable
    data_hash: str = ""  # content hash of the data, as the results file records it


@dataclass
class Entry:
    """A leaderboard row: a measured model (any number of results files) or a reported one."""

    key: str
    label: str
    kind: str  # MEASURED | REPORTED
    model: str
    params: float | None = None
    origins: list[str] = field(default_factory=list)  # files or source ids
    note: str = ""
    scoring_note: str = ""
    order: int = 0  # reported: position in reported.yaml
    skipped: dict[str, str] = field(default_factory=dict)  # task -> short reason


@dataclass(frozen=True)
class Source:
    """Where reported numbers were read (reported.yaml ``sources``)."""

    id: str
    title: str
    section: str
    repo: str = ""
    path: str = ""
    commit: str = ""
    url: str = ""
    scoring: str = UNSTATED
    scoring_note: str = ""
    dataset: str = OFFICIAL
    scale: str = "percent"


@dataclass(frozen=True)
class Curve:
    """GSLM's PPX-VERT curve of one row on one task: ``scoring.<task>.tradeoff.points`` of a
    results file (one point per sampling temperature), and the oracle point (the reference
    utterances through the same judges: ``ppx_mean,oracle`` and ``vert,oracle``)."""

    entry: str
    task: str
    dataset: str
    origin: str
    points: tuple[tuple[float, float, float], ...]  # (temperature, ppx, vert), file order
    oracle: tuple[float, float] | None  # (ppx, vert)


@dataclass
class Loaded:
    """Everything read from the inputs."""

    scores: list[Score] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # origin -> file facts
    # reported.yaml `models:`: facts about measured models (size, note) the files do not hold
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_labels: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    # (entry, task, origin) -> the judges a measured number depends on ("asr: ..., text_lm: ...")
    judges: dict[tuple[str, str, str], str] = field(default_factory=dict)
    task_notes: dict[str, str] = field(default_factory=dict)  # reported.yaml tasks.<t>.note


# --- helpers --------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBtT]?)\s*$")
_MULT = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_params(value: Any, where: str) -> float | None:
    """``358M``, ``1.3B``, ``7e9`` or a number -> parameter count."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where}: params must be a number or like '1.3B', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _SIZE.match(str(value))
    if m:
        return float(m.group(1)) * _MULT[m.group(2).lower()]
    try:
        return float(str(value))
    except ValueError:
        raise ConfigError(
            f"{where}: params must be a number or like '358M' / '1.3B', got {value!r}"
        ) from None


def _short_skip(reason: Any) -> str:
    """'skipped (no data: long path list)' -> 'no data'; keeps outputs machine-independent."""
    text = str(reason)
    m = re.match(r"^\s*skipped\s*\(([^:)]*)", text)
    return (m.group(1) if m else text.split(":")[0]).strip() or "skipped"


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    return None


def _identity_hash(data: dict[str, Any]) -> str:
    """What distinguishes two models that share a name: weights identity, else arguments."""
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    ident: Any = cfg.get("model_identity")
    if ident is None:  # lm-evaluation-harness files
        ident = {k: cfg.get(k) for k in ("model", "model_args", "model_sha")}
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _date(data: dict[str, Any]) -> float:
    d = data.get("date")
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return float(d)
    if isinstance(d, str):
        try:
            return float(d)
        except ValueError:
            try:
                return datetime.fromisoformat(d).timestamp()
            except ValueError:
                return 0.0
    return 0.0


def _model_name(data: dict[str, Any], where: str) -> str:
    name = data.get("model_name")
    cfg = data.get("config")
    if not (isinstance(name, str) and name) and isinstance(cfg, dict):
        name = cfg.get("model")
    if not (isinstance(name, str) and name):
        raise DataError(f"{where}: no model name (expected 'model_name' or 'config.model')")
    return name


def _params_from_file(data: dict[str, Any]) -> float | None:
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    # lm-evaluation-harness records model_num_parameters (-1 when unknown).
    for v in (
        cfg.get("model_num_parameters"),
        (cfg.get("model_identity") or {}).get("n_parameters")
        if isinstance(cfg.get("model_identity"), dict)
        else None,
    ):
        n = _num(v)
        if n is not None and n > 0:
            return n
    return None


def _dataset_of(data: dict[str, Any], task: str, assume_source: str | None) -> tuple[str, str]:
    """(dataset id, content hash) of a task's data as the results file records it."""
    ds = (data.get("datasets") or {}).get(task) if isinstance(data.get("datasets"), dict) else None
    src = ds.get("source") if isinstance(ds, dict) else None
    if src == "builtin":
        b = ds.get("builtin") if isinstance(ds.get("builtin"), dict) else {}
        size = b.get("size")
        return (f"builtin-{size}" if size else "builtin"), str(b.get("content_sha256") or "")
    if src == OFFICIAL:
        return OFFICIAL, str(ds.get("manifest_sha256") or ds.get("listing_sha256") or "")
    if isinstance(src, str) and src:
        return src, ""
    return (assume_source or UNSPECIFIED), ""


def _judges_text(judges: Any) -> str:
    """What the judges of a task were, in a few words: ``asr: whisper-tiny.en (CTranslate2);
    mos: dnsmos (speechmos 0.0.1.1)``: the model's name (and format) as the results file records
    it, else the judge's name with its package and version."""
    if not isinstance(judges, dict):
        return ""
    bits = []
    for role, rec in sorted(judges.items()):
        if not isinstance(rec, dict):
            continue
        model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
        name = model.get("name") or model.get("text_lm")
        if isinstance(name, str) and name:
            fmt = model.get("format")
            text = f"{name} [{fmt}]" if isinstance(fmt, str) and fmt else name
        else:
            pkg = " ".join(str(rec[k]) for k in ("package", "version") if rec.get(k))
            text = str(rec.get("judge") or "?") + (f" ({pkg})" if pkg else "")
        bits.append(f"{role}: {text}")
    return "; ".join(bits)


def _curve_points(tradeoff: Any, where: str) -> tuple[tuple[float, float, float], ...]:
    """``tradeoff.points`` ([{temperature, ppx, vert}]) as (temperature, ppx, vert) tuples;
    points with a missing or non-finite coordinate are left out (nothing to draw)."""
    pts = tradeoff.get("points") if isinstance(tradeoff, dict) else None
    if pts is None:
        return ()
    if not isinstance(pts, list):
        raise DataError(f"{where}: tradeoff.points must be a list of {{temperature, ppx, vert}}")
    out = []
    for i, p in enumerate(pts):
        if not isinstance(p, dict):
            raise DataError(f"{where}: tradeoff.points[{i}] must be a mapping")
        xyz = tuple(_num(p.get(k)) for k in ("temperature", "ppx", "vert"))
        if all(v is not None and math.isfinite(v) for v in xyz):
            out.append(xyz)
    return tuple(out)  # type: ignore[return-value]


def resolve_family(
    task: str, config: Any, families: dict[str, str], known: dict[str, str] | None = None
) -> str:
    fam = (
        families.get(task)
        or config_family(config)
        or (known or {}).get(task)
        or rule_family(task)
        or (CAPABILITY_FAMILY.get(config.get("capability")) if isinstance(config, dict) else None)
        or "other"
    )
    if fam not in FAMILIES:
        raise ConfigError(
            f"task {task!r}: unknown family {fam!r}; expected one of {list(FAMILIES)}"
        )
    return fam


# --- measured results files -----------------------------------------------------------------


def find_results(paths: list[str]) -> list[Path]:
    """Files as given; folders are searched for ``results_*.json`` (both harnesses' names)."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.rglob("results_*.json"))
            if not found:
                raise DataError(f"{path}: folder holds no results_*.json file")
            out.extend(found)
        else:
            out.append(path)
    if not out:
        raise ConfigError("leaderboard: no results files given")
    # A file named twice (a folder and a glob, say) is read once.
    return list({p.resolve(): p for p in out}.values())


def origin_name(path: Path, out: Path) -> str:
    """A file's name as shown in the tables: relative to the output folder, POSIX style."""
    try:
        rel = os.path.relpath(path.resolve(), out.resolve())
    except ValueError:  # other drive (Windows)
        rel = str(path)
    return Path(rel).as_posix()


def load_measured(
    paths: list[Path],
    out: Path,
    loaded: Loaded,
    *,
    metrics: dict[str, str],
    families: dict[str, str],
    params: dict[str, Any],
    assume_source: str | None,
) -> None:
    """Read results files into ``loaded`` (scores + one entry per distinct model)."""
    by_name: dict[str, set[str]] = {}
    parsed: list[tuple[Path, dict[str, Any], str, str]] = []
    for path in paths:
        data = load_results(path)
        where = str(path)
        name = _model_name(data, where)
        ident = _identity_hash(data)
        by_name.setdefault(name, set()).add(ident)
        parsed.append((path, data, name, ident))
    for path, data, name, ident in parsed:
        where = str(path)
        origin = origin_name(path, out)
        key = f"{MEASURED}:{name}:{ident[:12]}"
        label = name if len(by_name[name]) == 1 else f"{name} ({ident[:6]})"
        entry = loaded.entries.get(key)
        if entry is None:
            entry = loaded.entries[key] = Entry(key=key, label=label, kind=MEASURED, model=name)
        entry.origins.append(origin)
        p = params.get(label, params.get(name))
        entry.params = (
            (parse_params(p, f"--params {name}") if p is not None else None)
            or entry.params
            or _params_from_file(data)
        )
        cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
        limited = cfg.get("limit") is not None
        date = _date(data)
        loaded.files[origin] = {
            "model": label,
            "date": date,
            "limit": cfg.get("limit"),
            "git_hash": data.get("git_hash"),
            "version": data.get("speechlm_eval_version") or data.get("lm_eval_version"),
        }
        if isinstance(data.get("skipped"), dict):
            for task, reason in data["skipped"].items():
                entry.skipped.setdefault(str(task), _short_skip(reason))
        hib_all = (
            data.get("higher_is_better") if isinstance(data.get("higher_is_better"), dict) else {}
        )
        scoring = data.get("scoring") if isinstance(data.get("scoring"), dict) else {}
        configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
        judges = data.get("judges") if isinstance(data.get("judges"), dict) else {}
        for task, res in data["results"].items():
            if not isinstance(res, dict):
                raise DataError(f"{where}: results.{task} must be a mapping of metrics")
            dataset, data_hash = _dataset_of(data, task, assume_source)
            family = resolve_family(task, configs.get(task), families)
            values: dict[tuple[str, str], float] = {}
            stderrs: dict[tuple[str, str], float | None] = {}
            order: list[tuple[str, str]] = []
            for k, v in res.items():
                if "," not in k:
                    continue  # alias, name, sample_len...: not metrics
                mname, filt = k.split(",", 1)
                is_se = mname.endswith("_stderr")
                if v is None or v == "N/A":  # lm-eval writes N/A for a stderr it did not compute
                    if is_se:
                        stderrs[(mname[: -len("_stderr")], filt)] = None
                        continue
                    raise DataError(f"{where}: results.{task}.{k} has no value ({v!r})")
                x = _num(v)
                if x is None:
                    raise DataError(f"{where}: results.{task}.{k} must be a number, got {v!r}")
                if is_se:
                    stderrs[(mname[: -len("_stderr")], filt)] = x
                else:
                    values[(mname, filt)] = x
                    order.append((mname, filt))
            if not order:
                raise DataError(f"{where}: results.{task} holds no '<metric>,<filter>' number")
            primary = _primary(task, order, metrics, scoring.get(task), where)
            hib = hib_all.get(task) if isinstance(hib_all.get(task), dict) else {}
            jt = _judges_text(judges.get(task))
            if jt:
                loaded.judges[(key, task, origin)] = jt
            sc = scoring.get(task) if isinstance(scoring.get(task), dict) else {}
            points = _curve_points(sc.get("tradeoff"), f"{where}: scoring.{task}")
            if points:
                o_ppx, o_vert = values.get(("ppx_mean", "oracle")), values.get(("vert", "oracle"))
                loaded.curves.append(
                    Curve(
                        entry=key,
                        task=task,
                        dataset=dataset,
                        origin=origin,
                        points=points,
                        oracle=(o_ppx, o_vert)
                        if o_ppx is not None and o_vert is not None
                        else None,
                    )
                )
            for mname, filt in order:
                h = hib.get(mname)
                se = stderrs.get((mname, filt))
                loaded.scores.append(
                    Score(
                        entry=key,
                        task=task,
                        dataset=dataset,
                        metric=mname,
                        filter=filt,
                        value=values[(mname, filt)],
                        stderr=se if se is None or math.isfinite(se) else None,
                        higher_is_better=bool(h)
                        if isinstance(h, bool)
                        else guess_higher_is_better(mname),
                        primary=(mname, filt) == primary,
                        family=family,
                        origin=origin,
                        date=date,
                        limited=limited,
                        data_hash=data_hash,
                    )
                )


def _primary(
    task: str,
    order: list[tuple[str, str]],
    metrics: dict[str, str],
    scoring: Any,
    where: str,
) -> tuple[str, str]:
    """The headline metric: --metric override, ``scoring.<task>.primary_metric`` (else the task's
    ``scoring.<task>.options.primary``), else the first metric in the file
    (lm-evaluation-harness has no notion of a headline metric)."""
    want = metrics.get(task)
    if want is None and isinstance(scoring, dict):
        want = scoring.get("primary_metric")
        if want is None and isinstance(scoring.get("options"), dict):
            want = scoring["options"].get("primary")
    if want:
        m, _, f = str(want).partition(",")
        if (m, f) in order:
            return (m, f)
        if task in metrics:
            have = ", ".join(f"{a},{b}" for a, b in order)
            raise ConfigError(f"--metric {task}={want}: {where} has no such metric (has: {have})")
    return order[0]


# --- reported numbers -----------------------------------------------------------------------

_SOURCE_KEYS = {"title", "section", "repo", "path", "commit", "url", "scale", "scoring"}
_SOURCE_KEYS |= {"scoring_note", "dataset", "note"}
_ENTRY_KEYS = {"model", "source", "scores", "params", "variant", "label", "scoring"}
_ENTRY_KEYS |= {"scoring_note", "note"}
_TASK_KEYS = {"label", "family", "higher_is_better", "metric", "note"}
_SCORINGS = ("nll_sum", "nll_mean", UNSTATED)


def _keys(where: str, d: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(d)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")
    return d


def _str(where: str, d: dict[str, Any], key: str, default: str = "") -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}: field '{key}' must be a string, got {v!r}")
    return v


def load_reported(path: Path, loaded: Loaded, families: dict[str, str]) -> None:
    """Read ``reported.yaml`` (format in its header) into ``loaded``."""
    data = read_yaml(path)
    _keys(
        str(path),
        data,
        {"version", "tasks", "models", "sources", "entries"},
        {"sources", "entries"},
    )
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: 'models' must be a mapping model name -> {{params, note}}")
    for name, info in models.items():
        w = f"{path}: models.{name}"
        _keys(w, info, {"params", "note"}, set())
        loaded.models[str(name)] = {
            "params": parse_params(info.get("params"), f"{w}: params"),
            "note": " ".join(_str(w, info, "note").split()),
        }
    tasks = data.get("tasks") or {}
    if not isinstance(tasks, dict):
        raise ConfigError(f"{path}: 'tasks' must be a mapping")
    tinfo: dict[str, dict[str, Any]] = {}
    known_fam: dict[str, str] = {}
    for t, info in tasks.items():
        w = f"{path}: tasks.{t}"
        _keys(w, info, _TASK_KEYS, set())
        tinfo[str(t)] = info
        if "family" in info:
            known_fam[str(t)] = _str(w, info, "family")
        if "label" in info:
            loaded.task_labels[str(t)] = _str(w, info, "label")
        if "note" in info:
            loaded.task_notes[str(t)] = " ".join(_str(w, info, "note").split())
        if "higher_is_better" in info and not isinstance(info["higher_is_better"], bool):
            raise ConfigError(f"{w}: field 'higher_is_better' must be true/false")
    sources = data["sources"]
    if not isinstance(sources, dict) or not sources:
        raise ConfigError(f"{path}: 'sources' must be a non-empty mapping of source ids")
    for sid, s in sources.items():
        w = f"{path}: sources.{sid}"
        _keys(w, s, _SOURCE_KEYS, {"title", "section", "scale"})
        scale = _str(w, s, "scale")
        if scale not in ("percent", "fraction"):
            raise ConfigError(f"{w}: field 'scale' must be 'percent' or 'fraction', got {scale!r}")
        scoring = _str(w, s, "scoring", UNSTATED)
        if scoring not in _SCORINGS:
            raise ConfigError(f"{w}: field 'scoring' must be one of {list(_SCORINGS)}")
        loaded.sources[str(sid)] = Source(
            id=str(sid),
            title=_str(w, s, "title"),
            section=_str(w, s, "section"),
            repo=_str(w, s, "repo"),
            path=_str(w, s, "path"),
            commit=_str(w, s, "commit"),
            url=_str(w, s, "url"),
            scoring=scoring,
            scoring_note=" ".join(_str(w, s, "scoring_note").split()),
            dataset=_str(w, s, "dataset", OFFICIAL),
            scale=scale,
        )
    entries = data["entries"]
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'entries' must be a list")
    for i, e in enumerate(entries):
        w = f"{path}: entries[{i}]"
        _keys(w, e, _ENTRY_KEYS, {"model", "source", "scores"})
        sid = _str(w, e, "source")
        if sid not in loaded.sources:
            raise ConfigError(f"{w}: source {sid!r} is not defined under 'sources'")
        src = loaded.sources[sid]
        model = _str(w, e, "model")
        variant = _str(w, e, "variant")
        label = _str(w, e, "label") or (f"{model} ({variant})" if variant else model)
        scoring = _str(w, e, "scoring", src.scoring)
        if scoring not in _SCORINGS:
            raise ConfigError(f"{w}: field 'scoring' must be one of {list(_SCORINGS)}")
        key = f"{REPORTED}:{sid}:{label}"
        if key in loaded.entries:
            raise ConfigError(f"{w}: {label!r} from source {sid!r} is listed twice")
        loaded.entries[key] = Entry(
            key=key,
            label=label,
            kind=REPORTED,
            model=model,
            params=parse_params(e.get("params"), f"{w}: params"),
            origins=[sid],
            note=" ".join(_str(w, e, "note").split()),
            scoring_note=" ".join(_str(w, e, "scoring_note").split()) or src.scoring_note,
            order=i,
        )
        scores = e["scores"]
        if not isinstance(scores, dict) or not scores:
            raise ConfigError(f"{w}: 'scores' must be a non-empty mapping task -> number")
        for task, val in scores.items():
            task = str(task)
            info = tinfo.get(task, {})
            default_metric = info.get("metric", "acc")
            per_metric = val if isinstance(val, dict) else {default_metric: val}
            fam = resolve_family(task, None, families, known_fam)
            for j, (metric, v) in enumerate(per_metric.items()):
                x = _num(v)
                if x is None:
                    raise ConfigError(f"{w}: scores.{task}.{metric} must be a number, got {v!r}")
                if is_percent(str(metric)) and src.scale == "percent":
                    # Back to the unit of results files (proportions); %.12g drops the binary
                    # noise of the division so the CSV shows 0.542, not 0.5420000000000001.
                    x = float(f"{x / 100:.12g}")
                # A task's declared direction is its headline metric's; others are guessed.
                hib = info.get("higher_is_better") if metric == default_metric else None
                loaded.scores.append(
                    Score(
                        entry=key,
                        task=task,
                        dataset=src.dataset,
                        metric=str(metric),
                        filter=scoring if fam == "likelihood" else "",
                        value=x,
                        stderr=None,
                        higher_is_better=hib
                        if isinstance(hib, bool)
                        else guess_higher_is_better(str(metric)),
                        primary=j == 0,
                        family=fam,
                        origin=sid,
                    )
                )


def utc_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d") if ts else ""
