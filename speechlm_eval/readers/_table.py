"""Shared checks for tabular gold files (CSV)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError


def read_csv(path: Path, required: list[str], may_be_blank: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV as strings: required columns present, non-blank (except ``may_be_blank``),
    unique ``filename``, ``correct`` in {0, 1}."""
    if not path.is_file():
        raise DataError(f"{path}: gold file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many parser error types
        raise DataError(f"{path}: cannot parse CSV ({e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected columns {required}, "
            f"found {list(df.columns)}"
        )
    if df.empty:
        raise DataError(f"{path}: no rows")
    for col in required:
        blank = df.index[df[col].str.strip() == ""]
        if len(blank) and col not in may_be_blank:
            raise DataError(f"{path}: row {blank[0] + 2}: empty value in column '{col}'")
    dup = df["filename"][df["filename"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: duplicated filename {dup.iloc[0]!r}")
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
            raise DataError(f"{gold}: lists {s!r} but {p} does not exist")
        files[s] = p
    return files
