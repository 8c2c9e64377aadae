"""Folder layouts without a gold file: Spoken StoryCloze, slamkit-style pair folders, SALMon."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..audio import check_audio_path
from ..dataset import ChoiceDataset, ChoiceItem, listing_hash
from ..errors import DataError
from ..options import Opt
from ._options import non_empty, read_options, reader_spec


def _identity(reader: str, root: Path, paths: list[Path], n_items: int) -> dict[str, Any]:
    return {
        "reader": reader,
        "root": str(root.resolve()),
        "manifest": None,
        "listing_sha256": listing_hash(root, paths),
        "n_files": len(paths),
        "n_items": n_items,
    }


def _wavs(root: Path, recursive: bool) -> list[Path]:
    paths = sorted(root.rglob("*.wav") if recursive else root.glob("*.wav"))
    if not paths:
        raise DataError(f"{root}: no .wav files found")
    for p in paths:
        # A folder or a broken link named *.wav is part of the layout: never skip it silently.
        if not p.is_file():
            check_audio_path(p)
    return paths


PAIR_OPTIONS = reader_spec(
    {
        "separator": Opt(str, "_", check=non_empty, expect="a non-empty string"),
        "subfolder": Opt(bool, False, doc="look in sub-folders too"),
    }
)
SALMON_OPTIONS = reader_spec({})


def _stem(root: Path, p: Path) -> str:
    return p.relative_to(root).with_suffix("").as_posix()


def read_pair_folders(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """Files ``<index><sep><rest>.wav``, two per index, the positive first.

    Which file of a pair is the positive: when the rest of the name starts with
    ``correct`` / ``incorrect`` that label decides; otherwise the lexicographically
    first name, the convention slamkit's loader relies on (it sorts by index and
    reads consecutive files as positive, negative). ``subfolder: true`` looks in
    sub-folders too (sWUGGY/sBLIMP as slamkit lays them out).
    """
    return _read_pairs(root, options, "pair_folders")


def _read_pairs(root: Path, options: dict[str, Any], reader: str) -> ChoiceDataset:
    opts = read_options(reader, PAIR_OPTIONS, options)
    sep = opts["separator"]
    paths = _wavs(root, opts["subfolder"])
    groups: dict[int, list[Path]] = {}
    for p in paths:
        head = p.stem.split(sep, 1)[0]
        if not head.isdigit():
            raise DataError(
                f"{p}: expected a file name '<index>{sep}<rest>.wav' with an integer index"
            )
        groups.setdefault(int(head), []).append(p)
    items: list[ChoiceItem] = []
    for idx in sorted(groups):
        ps = groups[idx]
        if len(ps) != 2:
            names = ", ".join(p.name for p in ps)
            raise DataError(f"{root}: index {idx} has {len(ps)} file(s) ({names}); expected a pair")
        # A file labelled "incorrect" is the negative; otherwise name order decides.
        ps.sort(key=lambda p: (p.stem.split(sep, 1)[-1].lower().startswith("incorrect"), p.name))
        items.append(ChoiceItem(str(idx), tuple(_stem(root, p) for p in ps)))
    files = {_stem(root, p): p for p in paths}
    return ChoiceDataset(
        root,
        files,
        items,
        _identity(reader, root, paths, len(items)),
    )


def read_storycloze(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """sStoryCloze / tStoryCloze folder: ``<index>_correct*.wav`` and ``<index>_incorrect*.wav``."""
    return _read_pairs(root, options, "storycloze")


_SALMON = re.compile(r"^sample_(\d+)_(\d+)$")


def read_salmon(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """One SALMon part: ``sample_<idx>_<k>.wav``, k = 0 the positive, k >= 1 the negatives."""
    read_options("salmon", SALMON_OPTIONS, options)
    paths = _wavs(root, False)
    groups: dict[int, dict[int, Path]] = {}
    for p in paths:
        m = _SALMON.match(p.stem)
        if not m:
            raise DataError(f"{p}: expected a SALMon file name 'sample_<idx>_<k>.wav'")
        idx, k = int(m.group(1)), int(m.group(2))
        groups.setdefault(idx, {})[k] = p
    items: list[ChoiceItem] = []
    for idx in sorted(groups):
        ks = sorted(groups[idx])
        if ks != list(range(len(ks))) or len(ks) < 2:
            raise DataError(
                f"{root}: sample {idx} has candidates k={ks}; expected k = 0 (positive), 1, ... "
                "with at least one negative"
            )
        items.append(ChoiceItem(str(idx), tuple(groups[idx][k].stem for k in ks)))
    files = {p.stem: p for p in paths}
    return ChoiceDataset(root, files, items, _identity("salmon", root, paths, len(items)))
