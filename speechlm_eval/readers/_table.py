"""Shared checks for tabular files (CSV gold files and manifests)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..audio import check_audio_path
from ..errors import DataError


def _first_long_row(path: Path, n_header: int) -> tuple[int, int] | None:
    """(line, fields) of the first row with more fields than the header (for the message)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if n > 1 and len(row) > n_header:
                return n, len(row)
    return None


def read_table(path: Path, what: str = "CSV file") -> pd.DataFrame:
    """Read a CSV strictly, every value a string: one clear error for each way it can be broken.

    pandas alone would accept some broken files silently: a row with more fields than the
    header turns the first column into the index and shifts every value one column left.
    """
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {what}")
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: cannot parse CSV: the file is empty (0 bytes), expected a {what} "
            "starting with a header line"
        )
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first name
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); expected a {what}"
        ) from None
    except Exception as e:  # pandas raises many parser error types
        raise DataError(f"{path}: cannot parse CSV ({e})") from None
    if not isinstance(df.index, pd.RangeIndex):
        long = _first_long_row(path, len(df.columns))
        where = f"line {long[0]} has {long[1]} fields" if long else "a row has more fields"
        raise DataError(
            f"{path}: {where}, the header has {len(df.columns)} ({', '.join(df.columns)})"
        )
    return df


def read_csv(path: Path, required: list[str], may_be_blank: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a gold CSV as strings: required columns present, non-blank (except ``may_be_blank``),
    unique ``filename``, ``correct`` in {0, 1}."""
    df = read_table(path, "gold CSV file")
    missing = [c for c in required if c not in df.columns]
    if missing:
        found = list(df.columns)
        hint = ""
        if len(found) == 1 and any(d in found[0] for d in (";", "\t", "|")):
            hint = " (the file does not look comma-separated)"
        raise DataError(
            f"{path}: missing column(s) {missing}; expected columns {required}, found {found}{hint}"
        )
    if df.empty:
        raise DataError(f"{path}: no rows")
    for col in required:
        blank = df.index[df[col].str.strip() == ""]
        if len(blank) and col not in may_be_blank:
            raise DataError(f"{path}: row {blank[0] + 2}: empty value in column '{col}'")
    dup = df["filename"][df["filename"].duplicated()]
    if len(dup):
        raise DataError(
            f"{path}: row {dup.index[0] + 2}: duplicated filename {dup.iloc[0]!r} "
            f"(first at row {int(df.index[df['filename'] == dup.iloc[0]][0]) + 2})"
        )
    bad = df.index[~df["correct"].isin(["0", "1"])]
    if len(bad):
        raise DataError(
            f"{path}: row {bad[0] + 2}: column 'correct' must be 0 or 1, "
            f"got {df['correct'][bad[0]]!r}"
        )
    return df


def wav_files(root: Path, stems: list[str], gold: Path) -> dict[str, Path]:
    """Map each stem to ``root/<stem>.wav``; every file named in the gold file must exist."""
    files: dict[str, Path] = {}
    for s in stems:
        p = root / f"{s}.wav"
        if not p.is_file():
            if not p.exists() and not p.is_symlink():
                raise DataError(f"{gold}: lists {s!r} but {p} does not exist")
            try:
                check_audio_path(p)  # says what is there instead: a folder, a broken link
            except DataError as e:
                raise DataError(f"{gold}: lists {s!r} but {e}") from None
        files[s] = p
    return files


def read_jsonl(path: Path, what: str = "manifest") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSON-lines file; a DataError naming
    the file and line for a missing file, a folder, non-UTF-8 bytes, invalid JSON or a line
    that is not an object. An empty file is an empty list (callers say whether it may be)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {what} file")
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); expected JSON lines"
        ) from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {n}: expected a JSON object")
        rows.append((n, row))
    return rows
