"""Build a listening-test study folder from evaluation results, and read it back.

A study folder holds ``study.json`` (what is tested, the stimuli and the trials), the audio
under ``audio/`` (16-bit PCM WAV, content-addressed) and, once raters answer, ``answers/``.
Stimuli are the audio outputs the runner kept with ``--log_samples`` (a samples row's
``*_audio`` field, ``audio/<sha256>.wav`` beside the results file), matched across systems by
the row's ``doc_id`` (and ``sample`` index where a task keeps several outputs per document).

Each rater gets every trial of the study, in an order seeded by the study seed and the rater id
(so a reload, or the analysis, rebuilds exactly what the rater saw); pair and MUSHRA trials
also randomise the position of the stimuli per rater. Controls are added per test type:
gold clips with a known answer and a trapping clip (P.808), a hidden reference and low-pass
anchors (BS.1534 MUSHRA).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .. import __version__
from ..errors import ConfigError, DataError
from ..results import atomic_write_text, load_results

TESTS = ("mos", "cmos", "smos", "mushra", "ab")
FORMAT = "slm-eval-listen-study"
FORMAT_VERSION = 1
REFERENCE = "reference"  # the system name of the original (input) audio
# BS.1534-3 anchors: a 3.5 kHz low-pass (low anchor) and a 7 kHz low-pass (mid anchor).
ANCHORS = {"anchor35": 3500.0, "anchor70": 7000.0}
MUSHRA_MAX_CONDITIONS = 12  # webMUSHRA's strict limit (hidden reference and anchors included)
TARGET_DBFS = -26.0  # P.808 level: every clip is RMS-normalised so loudness does not bias votes
RATER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")

# Scales. ACR (P.800 Annex B / P.808), CCR (P.808, -3..+3, "second compared to the first"),
# SMOS 1..5 (a convention in TTS papers), MUSHRA 0..100 with five labelled bands.
SCALES: dict[str, dict[str, Any]] = {
    "mos": {
        "min": 1,
        "max": 5,
        "labels": {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"},
        "question": "How would you rate the overall quality of this speech sample?",
    },
    "smos": {
        "min": 1,
        "max": 5,
        "labels": {
            5: "Absolutely the same speaker",
            4: "Likely the same speaker",
            3: "Not sure",
            2: "Likely a different speaker",
            1: "Absolutely a different speaker",
        },
        "question": "How similar is the voice of the sample to the voice of the reference?",
    },
    "cmos": {
        "min": -3,
        "max": 3,
        "labels": {
            3: "Much better",
            2: "Better",
            1: "Slightly better",
            0: "About the same",
            -1: "Slightly worse",
            -2: "Worse",
            -3: "Much worse",
        },
        "question": "How is the quality of the second sample compared to the first?",
    },
    "ab": {
        "min": 0,
        "max": 1,
        "labels": {0: "Sample A", 1: "Sample B"},
        "question": "Which sample sounds better?",
    },
    "mushra": {
        "min": 0,
        "max": 100,
        "labels": {100: "Excellent", 80: "Good", 60: "Fair", 40: "Poor", 20: "Bad"},
        "question": "Rate each sample against the reference (the hidden reference included).",
    },
}


@dataclass
class Study:
    """A loaded study folder: its manifest and where it lives."""

    root: Path
    data: dict[str, Any]

    @property
    def test(self) -> str:
        return str(self.data["test"])

    @property
    def study_id(self) -> str:
        return str(self.data["study_id"])

    @property
    def stimuli(self) -> dict[str, dict[str, Any]]:
        return self.data["stimuli"]

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.data["trials"]

    def trial(self, trial_id: str) -> dict[str, Any] | None:
        return self._trials_by_id().get(trial_id)

    def _trials_by_id(self) -> dict[str, dict[str, Any]]:
        cache = self.__dict__.get("_by_id")
        if cache is None:
            cache = self.__dict__["_by_id"] = {t["id"]: t for t in self.trials}
        return cache

    def audio_path(self, stim_id: str) -> Path | None:
        """The file of a registered stimulus, or None: nothing outside the manifest is served."""
        s = self.stimuli.get(stim_id)
        return None if s is None else self.root / s["file"]

    def plan(self, rater: str) -> list[dict[str, Any]]:
        """The trials as ``rater`` sees them; see :func:`rater_plan`."""
        return rater_plan(self.data, rater)


def load_study(root: str | Path) -> Study:
    """Read ``root/study.json``; a DataError names the file and what is wrong."""
    root = Path(root)
    path = root / "study.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: not a study folder (no study.json; run slm-eval listen create)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable study manifest ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path}: 'format' must be {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format_version {data.get('format_version')!r} unsupported")
    for key in ("test", "study_id", "stimuli", "trials", "seed", "systems"):
        if key not in data:
            raise DataError(f"{path}: missing field {key!r}")
    if data["test"] not in TESTS:
        raise DataError(f"{path}: test must be one of {', '.join(TESTS)}, got {data['test']!r}")
    return Study(root, data)


# --- per-rater plans -----------------------------------------------------------------------


def _rng(seed: int, *parts: str) -> random.Random:
    # A string seed: Python's Random hashes it with SHA-512, stable across runs and versions.
    return random.Random(":".join([str(seed), *parts]))


def rater_plan(study: dict[str, Any], rater: str) -> list[dict[str, Any]]:
    """The trials in the order ``rater`` gets them, each ``{"id", "stimuli", "reference",
    "prompt"}`` with the stimuli in the positions shown (pair order and MUSHRA condition order
    randomised per rater and trial). Deterministic in (study seed, study id, rater id)."""
    rng = _rng(int(study["seed"]), study["study_id"], rater)
    order = list(study["trials"])
    rng.shuffle(order)
    plan = []
    for t in order:
        stims = list(t["stimuli"])
        if len(stims) > 1:
            rng.shuffle(stims)
        plan.append(
            {
                "id": t["id"],
                "stimuli": stims,
                "reference": t.get("reference"),
                "prompt": t.get("prompt"),
            }
        )
    return plan


# --- reading the runs ----------------------------------------------------------------------


@dataclass
class _System:
    name: str
    results: Path
    results_sha256: str
    model_name: str
    rows: dict[str, dict[str, Any]]  # item key -> samples row
    dataset_root: str | None


def _samples_file(results: Path, task: str) -> Path:
    m = re.match(r"^results_(.+)\.json$", results.name)
    if m:
        p = results.with_name(f"samples_{task}_{m.group(1)}.jsonl")
        if p.is_file():
            return p
    found = sorted(results.parent.glob(f"samples_{task}_*.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{results}: no samples_{task}_*.jsonl beside it (run slm-eval run with --log_samples)"
        )
    raise DataError(f"{results}: several samples_{task}_*.jsonl beside it; keep one per folder")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not JSON ({e})") from None
        if not isinstance(row, dict) or "doc_id" not in row:
            raise DataError(f"{path}:{n}: a samples row must be an object with 'doc_id'")
        rows.append(row)
    return rows


def _audio_fields(row: dict[str, Any]) -> list[str]:
    return [
        k
        for k, v in row.items()
        if k.endswith("_audio") and isinstance(v, str) and v.startswith("audio/")
    ]


def _item_key(row: dict[str, Any]) -> str:
    return f"{row['doc_id']}#{row['sample']}" if "sample" in row else str(row["doc_id"])


def _pick_task(results: list[tuple[Path, dict[str, Any]]], task: str | None) -> str:
    if task is not None:
        for path, data in results:
            if task not in data["results"]:
                raise ConfigError(f"--task {task}: {path} has no results for it")
        return task
    common = set(results[0][1]["results"])
    for _, d in results[1:]:
        common &= set(d["results"])
    with_audio = []
    for t in sorted(common):
        try:
            rows = _read_rows(_samples_file(results[0][0], t))
        except DataError:
            continue
        if rows and _audio_fields(rows[0]):
            with_audio.append(t)
    if len(with_audio) == 1:
        return with_audio[0]
    if not with_audio:
        raise DataError(
            "no task common to the results files kept audio (run slm-eval run with --log_samples "
            "on a task that outputs audio: resynth_*, continuation_*, stsp_s2s)"
        )
    raise ConfigError(f"several tasks kept audio ({', '.join(with_audio)}); choose one with --task")


def _load_systems(paths: list[Path], task: str | None) -> tuple[str, str, list[_System]]:
    loaded = [(p, load_results(p)) for p in paths]
    task = _pick_task(loaded, task)
    systems: list[_System] = []
    names: dict[str, int] = {}
    field = None
    for path, data in loaded:
        rows = _read_rows(_samples_file(path, task))
        fields = _audio_fields(rows[0]) if rows else []
        if not fields:
            raise DataError(f"{path}: the samples of {task} reference no audio (--log_samples?)")
        if field is None:
            field = fields[0]
        elif field not in fields:
            raise DataError(f"{path}: samples of {task} have no {field!r} like the first file")
        model = str(data.get("model_name") or (data.get("config") or {}).get("model") or path.stem)
        n = names.get(model, 0)
        names[model] = n + 1
        name = model if n == 0 else f"{model}-{n + 1}"
        ds = (data.get("datasets") or {}).get(task) or {}
        by_item: dict[str, dict[str, Any]] = {}
        seen: dict[str, int] = {}
        for r in rows:
            key = _item_key(r)
            n_seen = seen.get(key, 0)
            seen[key] = n_seen + 1
            # Several outputs of one document without a 'sample' index: the k-th output of the
            # document matches the k-th output of the same document in the other runs.
            by_item[key if n_seen == 0 else f"{key}#{n_seen}"] = r
        systems.append(
            _System(
                name=name,
                results=path,
                results_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                model_name=model,
                rows=by_item,
                dataset_root=ds.get("root") if isinstance(ds, dict) else None,
            )
        )
    assert field is not None
    return task, field, systems


def _find_reference(roots: list[Path], doc_id: str) -> Path | None:
    for root in roots:
        if not root.is_dir():
            continue
        for suffix in _AUDIO_SUFFIXES:
            hits = sorted(root.rglob(f"{doc_id}{suffix}"))
            if hits:
                return hits[0]
    return None


# --- audio preparation ---------------------------------------------------------------------


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"{path}: not a readable audio file ({e})") from None
    if x.shape[0] == 0:
        raise DataError(f"{path}: audio is empty")
    return x.mean(axis=1), int(sr)


def _normalise(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x**2)))
    if rms > 0:
        x = x * (10 ** (TARGET_DBFS / 20) / rms)
    peak = float(np.max(np.abs(x)))
    return x * (0.99 / peak) if peak > 0.99 else x  # never clip: lower the level instead


def _lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    cutoff = min(cutoff, 0.45 * sr)  # a low-pass at or above Nyquist would be a no-op
    sos = butter(8, cutoff, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, x)


def degrade(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """A clearly bad version of a clip (gold 'Bad'): 1 kHz low-pass plus noise at 0 dB SNR."""
    y = _lowpass(x, sr, 1000.0)
    noise = np.random.default_rng(seed).standard_normal(y.size)
    p = float(np.mean(y**2)) or 1e-6
    return y + noise * np.sqrt(p / np.mean(noise**2))


def beeps(x: np.ndarray, sr: int, n: int) -> np.ndarray:
    """The trapping clip: the speech, a pause, then ``n`` 1 kHz beeps the rater must count
    (P.808 hides the instruction in the audio; counting beeps needs listening the same way)."""
    t = np.arange(int(0.15 * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 1000.0 * t) * np.hanning(t.size)
    gap = np.zeros(int(0.3 * sr))
    parts = [x, np.zeros(int(0.6 * sr))]
    for _ in range(n):
        parts += [tone, gap]
    return np.concatenate(parts)


class _AudioStore:
    """Writes normalised 16-bit PCM WAV files named by their content hash (kept once)."""

    def __init__(self, root: Path, normalise: bool) -> None:
        self.folder = root / "audio"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.normalise = normalise

    def put(self, x: np.ndarray, sr: int) -> str:
        y = _normalise(x) if self.normalise else np.clip(x, -1.0, 1.0)
        pcm = np.round(np.clip(y, -1.0, 1.0) * 32767).astype("<i2")
        h = hashlib.sha256(sr.to_bytes(4, "little") + pcm.tobytes()).hexdigest()
        path = self.folder / f"{h}.wav"
        if not path.exists():
            tmp = self.folder / f".{h}.tmp.wav"
            sf.write(str(tmp), pcm, sr, subtype="PCM_16")
            tmp.replace(path)
        return f"audio/{h}.wav"


# --- create ---------------------------------------------------------------------------------


def create_study(
    results: list[str | Path],
    test: str,
    out: str | Path,
    *,
    items: int | None = None,
    seed: int = 0,
    task: str | None = None,
    reference_root: str | Path | None = None,
    baseline: str = REFERENCE,
    normalise: bool = True,
) -> Study:
    """Build a study folder ``out`` from results files (see the module doc); returns it loaded.

    ``items``: that many items (a seeded choice among those every system has), default all.
    ``baseline``: CMOS compares every system with this one (``reference``: the original input
    audio). ``reference_root``: where the original audio lies when the results' dataset root
    has moved (searched for ``<doc_id>.<ext>``).
    """
    if test not in TESTS:
        raise ConfigError(f"--test must be one of {', '.join(TESTS)}, got {test!r}")
    if not results:
        raise ConfigError("--results: give at least one results file")
    out = Path(out)
    if (out / "study.json").exists():
        raise ConfigError(f"--out {out}: a study is already there; choose another folder")
    task, field, systems = _load_systems([Path(p) for p in results], task)
    if test == "ab" and len(systems) < 2:
        raise ConfigError("--test ab needs at least two results files (systems to compare)")
    if test == "mushra" and len(systems) + 3 > MUSHRA_MAX_CONDITIONS:
        raise ConfigError(
            f"--test mushra: at most {MUSHRA_MAX_CONDITIONS - 3} systems (the hidden reference "
            f"and two anchors make {len(systems) + 3} conditions, webMUSHRA's limit is 12)"
        )
    if test == "cmos" and baseline != REFERENCE and baseline not in {s.name for s in systems}:
        names = ", ".join([REFERENCE, *(s.name for s in systems)])
        raise ConfigError(f"--baseline {baseline!r}: not a system of the study (one of {names})")

    common = set(systems[0].rows)
    for s in systems[1:]:
        common &= set(s.rows)
    keys = sorted(common)
    if not keys:
        raise DataError(
            "the results files share no item (doc_id) in their samples; nothing to test"
        )
    rng = _rng(seed, "items")
    if items is not None:
        if items < 1:
            raise ConfigError("--items must be >= 1")
        keys = sorted(rng.sample(keys, min(items, len(keys))))

    needs_ref = test in ("smos", "mushra") or (test == "cmos" and baseline == REFERENCE)
    roots = [Path(reference_root)] if reference_root else []
    roots += [Path(s.dataset_root) for s in systems if s.dataset_root]
    refs: dict[str, Path] = {}
    for k in keys:
        doc = k.split("#", 1)[0]
        p = _find_reference(roots, doc)
        if p is not None:
            refs[k] = p
        elif needs_ref:
            where = ", ".join(str(r) for r in roots) or "(no dataset root recorded)"
            raise DataError(
                f"--test {test} needs the original audio of item {doc!r}: not found under "
                f"{where}; give --reference_root"
            )

    out.mkdir(parents=True, exist_ok=True)
    store = _AudioStore(out, normalise)
    stimuli: dict[str, dict[str, Any]] = {}

    def add(system: str, item: str, x: np.ndarray, sr: int, source: str) -> str:
        file = store.put(x, sr)
        # Opaque ids: nothing in the page tells a rater which system (or hidden reference) a
        # stimulus is; the file's hash makes them unguessable from the system names alone.
        sid = "s" + hashlib.sha256(f"{seed}|{system}|{item}|{file}".encode()).hexdigest()[:12]
        stimuli[sid] = {
            "file": file,
            "system": system,
            "item": item,
            "source": source,
            "sample_rate": sr,
        }
        return sid

    by_item: dict[str, dict[str, str]] = {}
    raw: dict[str, dict[str, tuple[np.ndarray, int]]] = {}
    for k in keys:
        by_item[k] = {}
        raw[k] = {}
        for s in systems:
            rel = s.rows[k][field]
            src = (s.results.parent / rel).resolve()
            x, sr = _read_mono(src)
            raw[k][s.name] = (x, sr)
            by_item[k][s.name] = add(s.name, k, x, sr, str(src))
        if k in refs:
            x, sr = _read_mono(refs[k])
            raw[k][REFERENCE] = (x, sr)
            by_item[k][REFERENCE] = add(REFERENCE, k, x, sr, str(refs[k]))

    trials: list[dict[str, Any]] = []

    def trial(kind: str, item: str, stims: list[str], **extra: Any) -> None:
        trials.append(
            {"id": f"t{len(trials) + 1:04d}", "kind": kind, "item": item, "stimuli": stims} | extra
        )

    names = [s.name for s in systems]
    first = keys[0]
    base_sys = REFERENCE if REFERENCE in raw[first] else names[0]
    base_x, base_sr = raw[first][base_sys]
    gold_bad = add("control:degraded", first, degrade(base_x, base_sr, seed), base_sr, "gold")
    n_beeps = _rng(seed, "trap").choice([2, 3, 4])
    trap_prompt = (
        "Attention check: listen to the end and select the option whose number equals the "
        "number of beeps you hear."
    )
    if test in ("mos", "smos"):
        for k in keys:
            for s in names:
                ref = by_item[k].get(REFERENCE) if test == "smos" else None
                trial("test", k, [by_item[k][s]], system=s, reference=ref)
        trap = add("control:trap", first, beeps(base_x, base_sr, n_beeps), base_sr, "trap")
        ref = by_item[first].get(REFERENCE) if test == "smos" else None
        trial("trap", first, [trap], reference=ref, prompt=trap_prompt, expect=[n_beeps, n_beeps])
        if test == "mos":
            trial("gold", first, [gold_bad], expect=[1, 2])  # P.808 gold: "Bad" within 1
        else:
            # The reference itself as the stimulus: the same speaker, 5 within 1.
            trial("gold", first, [by_item[first][REFERENCE]], reference=ref, expect=[4, 5])
    elif test == "cmos":
        for k in keys:
            for s in names:
                if s == baseline:
                    continue
                trial("test", k, [by_item[k][baseline], by_item[k][s]], system=s, baseline=baseline)
        base = by_item[first][baseline]
        # Gold pairs: a clip against itself (about the same, within 1) and against its
        # degraded version (the degraded one worse, sign-corrected score <= -1).
        trial("gold", first, [base, base], baseline=baseline, expect=[-1, 1])
        trial("gold", first, [base, gold_bad], baseline=baseline, expect=[-3, -1])
    elif test == "ab":
        for k in keys:
            for a, b in combinations(names, 2):
                trial("test", k, [by_item[k][a], by_item[k][b]], systems=[a, b])
        clean = by_item[first][base_sys]
        trial(
            "gold", first, [clean, gold_bad], systems=[base_sys, "control:degraded"], expect=clean
        )
    elif test == "mushra":
        for k in keys:
            x, sr = raw[k][REFERENCE]
            rates = {s: raw[k][s][1] for s in names}
            bad = [s for s, r in rates.items() if r != sr]
            if bad:
                raise DataError(
                    f"--test mushra: item {k!r}: {', '.join(bad)} at another sample rate than "
                    f"the reference ({sr} Hz); MUSHRA compares equal-rate stimuli"
                )
            conds = [by_item[k][s] for s in names]
            # The hidden reference: the reference's audio under an id of its own.
            conds.append(add("hidden_reference", k, x, sr, str(refs[k])))
            for anchor, fc in ANCHORS.items():
                conds.append(add(anchor, k, _lowpass(x, sr, fc), sr, f"low-pass {fc:g} Hz"))
            trial("test", k, conds, reference=by_item[k][REFERENCE])

    ident = hashlib.sha256(
        json.dumps([test, seed, stimuli, trials], sort_keys=True).encode()
    ).hexdigest()
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "study_id": ident[:16],
        "test": test,
        "seed": seed,
        "task": task,
        "audio_field": field,
        "baseline": baseline if test == "cmos" else None,
        "scale": SCALES[test],
        "normalised_dbfs": TARGET_DBFS if normalise else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "speechlm_eval_version": __version__,
        "systems": {
            s.name: {
                "model_name": s.model_name,
                "results_file": str(s.results),
                "results_sha256": s.results_sha256,
            }
            for s in systems
        },
        "items": keys,
        "stimuli": stimuli,
        "trials": trials,
    }
    atomic_write_text(out / "study.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
    return load_study(out)
