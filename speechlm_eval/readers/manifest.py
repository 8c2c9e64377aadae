"""Generic choice manifest (JSONL or CSV) with audio paths relative to the manifest.

JSONL: one object per line, ``{"id": ..., "correct": "a.wav", "incorrect": "b.wav" | [...], ...}``.
CSV: columns ``id``, ``correct``, ``incorrect`` (more foils: ``incorrect_2``, ``incorrect_3``, ...).
Other fields are kept as item metadata (e.g. ``voice``, ``type``). Paths may not
leave the folder that holds the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dataset import ChoiceDataset, ChoiceItem
from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import non_empty, read_options, reader_spec
from ._table import read_jsonl, read_table

OPTIONS = reader_spec(
    {"file": Opt(str, "manifest.jsonl", check=non_empty, expect="a file name", doc="JSONL or CSV")}
)


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        for n, row in read_jsonl(path):
            row["_line"] = n
            rows.append(row)
        return rows
    if path.suffix == ".csv":
        df = read_table(path, "manifest CSV file")
        rows = df.to_dict("records")
        for n, row in enumerate(rows, 2):
            foils = [row.pop(c) for c in list(row) if c.startswith("incorrect_") and row[c]]
            row["incorrect"] = [row["incorrect"], *foils] if "incorrect" in row else foils
            row["_line"] = n
        return rows
    raise DataError(f"{path}: manifest must be .jsonl or .csv")


def _resolve(base: Path, rel: Any, where: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise DataError(f"{where}: audio path must be a non-empty string, got {rel!r}")
    p = (base / rel).resolve()
    if not p.is_relative_to(base.resolve()):
        raise DataError(f"{where}: audio path {rel!r} escapes the data folder {base}")
    if not p.is_file():
        if not p.exists():
            raise DataError(f"{where}: audio file {p} does not exist")
        raise DataError(f"{where}: audio path {rel!r} is not a file ({p} is a directory?)")
    return p


def read_manifest(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """Read ``root/<options.file>`` (default ``manifest.jsonl``)."""
    path = root / read_options("manifest", OPTIONS, options)["file"]
    rows = _rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    files: dict[str, Path] = {}
    items: list[ChoiceItem] = []
    seen_ids: set[str] = set()
    for row in rows:
        where = f"{path}: line {row.pop('_line')}"
        for key in ("id", "correct", "incorrect"):
            if key not in row or row[key] in ("", None, []):
                raise DataError(f"{where}: missing field '{key}'")
        raw_id = row.pop("id")
        # str() of a list or mapping would make an id nobody wrote; bool is an int subclass.
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise DataError(f"{where}: field 'id' must be a string or an integer, got {raw_id!r}")
        doc = str(raw_id)
        if doc in seen_ids:
            raise DataError(f"{where}: duplicated id {doc!r}")
        seen_ids.add(doc)
        foils = row.pop("incorrect")
        foils = foils if isinstance(foils, list) else [foils]
        stems = []
        for rel in [row.pop("correct"), *foils]:
            p = _resolve(root, rel, where)
            stem = p.relative_to(root.resolve()).with_suffix("").as_posix()
            files[stem] = p
            stems.append(stem)
        if len(set(stems)) != len(stems):
            raise DataError(f"{where}: the same audio file is listed twice in one item")
        items.append(ChoiceItem(doc, tuple(stems), {k: v for k, v in row.items()}))
    ident = {
        "reader": "manifest",
        "root": str(root.resolve()),
        "manifest": path.name,
        "manifest_sha256": sha256_file(path),
        "n_files": len(files),
        "n_items": len(items),
    }
    return ChoiceDataset(root, files, items, ident)
