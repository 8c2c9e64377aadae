"""Reader ``fdbench``: Full-Duplex-Bench v1 and v1.5 stimuli, in the official layout.

Layout (``v1_v1.5/dataset/README.md`` of DanielLin94144/Full-Duplex-Bench): the task's
root is one subset folder holding one folder per sample, ``{ID}/input.wav`` (the user
stream the model hears) plus, by subset:

========================================  ======================  ==========================
subset (folder name, or option ``subset``) kind                    annotation read
========================================  ======================  ==========================
``candor_pause_handling``,                 ``pause_handling``      ``pause.json``
``synthetic_pause_handling``
``candor_turn_taking``                     ``turn_taking``         ``turn_taking.json``
``icc_backchannel``                        ``backchannel``         (``icc_gt_distribution.json``
                                                                   by option ``gt_distribution``)
``synthetic_user_interruption``            ``user_interruption``   ``interrupt.json``,
                                                                   ``context.wav``,
                                                                   ``interrupt.wav``
v1.5: ``user_interruption``,               ``overlap_<subset>``    ``metadata.json``,
``user_backchannel``, ``talking_to_other``,                        ``clean_input.wav``
``background_speech``
========================================  ======================  ==========================

Annotation formats: ``pause.json`` / ``turn_taking.json`` = ``[{"text": "[PAUSE]" |
"[TURN-TAKING]", "timestamp": [start, end]}, ...]``; ``interrupt.json`` = ``[{"context",
"interrupt", "timestamp": [start, end]}]``; ``metadata.json`` = ``{"context_text",
"current_turn_text", "timestamps": [overlap_start, overlap_end]}`` (seconds on
``input.wav``). ``transcription.json`` (v1, optional) is noted by path, not parsed.

Each stimulus becomes a :class:`~speechlm_eval.dataset.SessionItem`: ``doc_id`` = the sample
folder's name, ``kind`` as above, ``meta`` = ``subset``, ``version`` and the timestamps
(``pauses``: [[s, e], ...]; ``turn_end`` = the official scorer's ``turn_taking.json[0]
.timestamp[0]`` and ``turn_taking``; ``interrupt`` = [s, e], ``interrupt_end``, ``context``,
``interrupt_text``, ``context_audio``, ``interrupt_audio``; ``overlap`` = [s, e],
``context_text``, ``current_turn_text``, ``clean_input``; ``gt_distribution`` for
backchannel samples when the option names the file). A broken sample folder is one
:class:`DataError` naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..dataset import SessionDataset, SessionItem, listing_hash
from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import read_options, reader_spec

V1 = {
    "candor_pause_handling": ("pause_handling", "pause.json"),
    "synthetic_pause_handling": ("pause_handling", "pause.json"),
    "candor_turn_taking": ("turn_taking", "turn_taking.json"),
    "icc_backchannel": ("backchannel", None),
    "synthetic_user_interruption": ("user_interruption", "interrupt.json"),
}
V15 = ("user_interruption", "user_backchannel", "talking_to_other", "background_speech")
SUBSETS = (*V1, *V15)

OPTIONS = reader_spec(
    {
        "subset": Opt(str, None, choices=SUBSETS, doc="default: the root folder's name"),
        "version": Opt(str, None, choices=("v1", "v1.5"), doc="default: from the subset"),
        "gt_distribution": Opt(
            str, None, doc="icc_backchannel: icc_gt_distribution.json (relative to the root)"
        ),
    }
)


def _json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: required file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def _span(value: Any, where: str) -> list[float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        and all(math.isfinite(x) for x in value)
        and 0 <= value[0] <= value[1]
    )
    if not ok:
        raise DataError(
            f"{where}: expected [start, end] in seconds (0 <= start <= end), got {value!r}"
        )
    return [float(value[0]), float(value[1])]


def _events(path: Path) -> list[dict[str, Any]]:
    data = _json(path)
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) for e in data):
        raise DataError(f"{path}: expected a non-empty list of objects with a 'timestamp'")
    for i, e in enumerate(data):
        e["timestamp"] = _span(e.get("timestamp"), f"{path}: entry {i} 'timestamp'")
    return data


def _wav(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: required audio file not found")
    return path


def _subset(root: Path, o: dict[str, Any]) -> tuple[str, str]:
    subset = o["subset"] or root.name
    if subset not in SUBSETS:
        raise DataError(
            f"{root}: cannot tell the Full-Duplex-Bench subset from the folder name "
            f"{root.name!r}; give the reader option 'subset' (one of {', '.join(SUBSETS)})"
        )
    version = o["version"] or ("v1" if subset in V1 else "v1.5")
    if subset == "user_interruption" and version == "v1":
        raise DataError(
            f"{root}: 'user_interruption' is a v1.5 subset (v1: synthetic_user_interruption)"
        )
    if version == "v1" and subset not in V1:
        raise DataError(f"{root}: subset {subset!r} is not a v1 subset")
    return subset, version


def _sample_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: Full-Duplex-Bench subset folder not found")
    dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    if not dirs:
        raise DataError(f"{root}: no sample folders ({{ID}}/input.wav)")
    # Official IDs are integers: numeric order, then names.
    return sorted(dirs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def _gt(root: Path, rel: str | None) -> tuple[dict[str, Any] | None, Path | None]:
    if rel is None:
        return None, None
    path = (root / rel).resolve()
    data = _json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of sample id -> distribution")
    return data, path


def read_fdbench(root: Path, options: dict[str, Any]) -> SessionDataset:
    """Read one Full-Duplex-Bench subset folder (see the module docstring)."""
    o = read_options("fdbench", OPTIONS, options)
    subset, version = _subset(root, o)
    gt, gt_path = _gt(root, o["gt_distribution"])
    files: dict[str, Path] = {}
    items: list[SessionItem] = []
    listed: list[Path] = []
    for d in _sample_dirs(root):
        doc = d.name
        files[doc] = _wav(d / "input.wav")
        listed.append(files[doc])
        meta: dict[str, Any] = {"id": doc, "subset": subset, "version": version}
        if version == "v1":
            kind, ann = V1[subset]
            if ann is not None:
                listed.append(d / ann)
            if kind == "pause_handling":
                meta["pauses"] = [e["timestamp"] for e in _events(d / ann)]
            elif kind == "turn_taking":
                ev = _events(d / ann)
                meta["turn_taking"] = [e["timestamp"] for e in ev]
                meta["turn_end"] = ev[0]["timestamp"][0]  # what the official scorer uses
            elif kind == "user_interruption":
                ev = _events(d / ann)[0]
                for key in ("context", "interrupt"):
                    if not isinstance(ev.get(key), str):
                        raise DataError(f"{d / ann}: entry 0: field {key!r} must be a string")
                meta.update(
                    interrupt=ev["timestamp"],
                    interrupt_end=ev["timestamp"][1],
                    context=ev["context"],
                    interrupt_text=ev["interrupt"],
                    context_audio=str(_wav(d / "context.wav")),
                    interrupt_audio=str(_wav(d / "interrupt.wav")),
                )
            elif gt is not None:  # backchannel
                if doc not in gt:
                    raise DataError(f"{gt_path}: no ground-truth distribution for sample {doc!r}")
                meta["gt_distribution"] = gt[doc]
            if (d / "transcription.json").is_file():
                meta["transcription"] = str(d / "transcription.json")
        else:
            kind = f"overlap_{subset}"
            md_path = d / "metadata.json"
            listed.append(md_path)
            md = _json(md_path)
            if not isinstance(md, dict):
                raise DataError(f"{md_path}: expected an object with 'timestamps'")
            for key in ("context_text", "current_turn_text"):
                if key in md and not isinstance(md[key], str):
                    raise DataError(f"{md_path}: field {key!r} must be a string")
            meta.update(
                overlap=_span(md.get("timestamps"), f"{md_path}: 'timestamps'"),
                context_text=md.get("context_text", ""),
                current_turn_text=md.get("current_turn_text", ""),
                clean_input=str(_wav(d / "clean_input.wav")),
            )
        variants = {"clean": Path(meta["clean_input"])} if "clean_input" in meta else {}
        items.append(SessionItem(doc, kind, meta, variants=variants))
    ident: dict[str, Any] = {
        "reader": "fdbench",
        "root": str(root.resolve()),
        "subset": subset,
        "version": version,
        "n_items": len(items),
        "listing_sha256": listing_hash(root, listed),
    }
    if gt_path is not None:
        ident["gt_distribution_sha256"] = sha256_file(gt_path)
    return SessionDataset(root, files, items, ident)
