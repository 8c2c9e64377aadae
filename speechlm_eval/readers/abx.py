"""Libri-light / ZeroSpeech ABX layouts: an ``.item`` file and the audio it points into.

Layouts found (``root`` is the task's data folder):

- Libri-light ``ABX_data``-style and ZeroSpeech 2021 ``phonetic``: ``<name>.item`` with the
  audio in the folder ``<name>/`` beside it (``dev-clean.item`` + ``dev-clean/**/*.flac``
  or ``*.wav``, nested folders allowed, e.g. LibriSpeech's ``<speaker>/<chapter>/``);
- the built-in subset (``abx/dev``): ``dev.item`` and the wavs in the same folder.

Options: ``item`` -- the item file (a name or a list of names tried in order, relative to
``root``; default: the only ``*.item`` file in ``root``); ``audio`` -- the audio folder
relative to ``root`` (default: ``<item stem>/`` if it exists, else ``root``);
``extensions`` (default ``[".wav", ".flac"]``).

Every file named by the item file must exist exactly once (by stem) under the audio
folder; audio files the item file does not name are ignored. Every item must lie inside
its file (durations from the audio headers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import soundfile as sf

from ..abx.items import ABXDataset, check_against_durations, first_appearance_ids, read_item_file
from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import names, read_options, reader_spec

DEFAULT_EXTENSIONS = (".wav", ".flac")


OPTIONS = reader_spec(
    {
        "item": Opt(object, None, check=names, expect="a string or a list of strings"),
        "audio": Opt(str, None, doc="audio folder relative to the data folder"),
        "extensions": Opt(
            object, list(DEFAULT_EXTENSIONS), check=names, expect="a string or a list of strings"
        ),
    }
)


def _item_file(root: Path, options: dict[str, Any]) -> Path:
    if options["item"] is not None:
        for name in options["item"]:
            if (root / name).is_file():
                return root / name
        raise DataError(f"{root}: no item file {' or '.join(options['item'])}")
    found = sorted(root.glob("*.item"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{root}: no .item file (expected a Libri-light/ZeroSpeech ABX item file such as "
            f"dev-clean.item)"
        )
    raise DataError(
        f"{root}: several item files ({', '.join(p.name for p in found)}); choose one with the "
        f"reader option 'item'"
    )


def _audio_dir(root: Path, item: Path, options: dict[str, Any]) -> Path:
    if options["audio"] is not None:
        d = root / options["audio"]
        if not d.is_dir():
            raise DataError(f"{root}: audio folder {d} (option 'audio') not found")
        return d
    beside = root / item.stem
    return beside if beside.is_dir() else root


def read_abx_item(root: Path, options: dict[str, Any]) -> ABXDataset:
    """Read an ABX layout: item file, audio files by stem, durations; see the module doc."""
    root = Path(root)
    options = read_options("abx_item", OPTIONS, options)
    item_path = _item_file(root, options)
    items = read_item_file(item_path)
    audio_dir = _audio_dir(root, item_path, options)
    exts = tuple(e.lower() for e in options["extensions"])
    wanted = dict.fromkeys(it.file for it in items)
    files: dict[str, Path] = {}
    for p in sorted(audio_dir.rglob("*")):
        if p.suffix.lower() not in exts or p.stem not in wanted or not p.is_file():
            continue
        if p.stem in files:
            raise DataError(f"{audio_dir}: two audio files for {p.stem!r}: {files[p.stem]} and {p}")
        files[p.stem] = p
    lines = {}
    for it in items:
        lines.setdefault(it.file, it.line)
    missing = [s for s in wanted if s not in files]
    if missing:
        raise DataError(
            f"{item_path}: line {lines[missing[0]]}: file {missing[0]!r} not found under "
            f"{audio_dir} (looked for {' / '.join(missing[0] + e for e in exts)}); "
            f"{len(missing)} file(s) of the item file are missing"
        )
    durations: dict[str, float] = {}
    for stem, p in files.items():
        try:
            info = sf.info(str(p))
        except Exception as e:  # soundfile raises RuntimeError/LibsndfileError subclasses
            raise DataError(f"{p}: cannot read audio header ({e})") from None
        durations[stem] = info.frames / info.samplerate
    check_against_durations(items, durations, item_path)
    contexts, phones, speakers = first_appearance_ids(items)
    ordered = {s: files[s] for s in wanted}
    identity = {
        "reader": "abx_item",
        "root": str(root.resolve()),
        "manifest": str(item_path.relative_to(root)),
        "manifest_sha256": sha256_file(item_path),
        "audio_dir": str(audio_dir.relative_to(root)) if audio_dir != root else ".",
        "n_files": len(ordered),
        "n_items": len(items),
        "n_speakers": len(speakers),
        "n_phones": len(phones),
        "n_contexts": len(contexts),
    }
    return ABXDataset(root, ordered, items, identity, item_path, durations)
