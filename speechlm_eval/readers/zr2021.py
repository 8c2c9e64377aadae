"""ZeroSpeech 2021 lexical (sWUGGY) and syntactic (sBLIMP) layouts: ``*.wav`` + ``gold.csv``.

Facts from the official scoring code (zerospeech/zerospeech2021, ``lexical.py``
and ``syntactic.py``): lexical words and non-words are paired by (id, voice);
syntactic correct/incorrect sentences are paired by position, the k-th correct
row with the k-th incorrect row of ``gold.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..dataset import ChoiceDataset, ChoiceItem
from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import non_empty, read_options, reader_spec
from ._table import read_csv, wav_files


def _identity(reader: str, root: Path, gold: Path, n_files: int, n_items: int) -> dict[str, Any]:
    return {
        "reader": reader,
        "root": str(root.resolve()),
        "manifest": gold.name,
        "manifest_sha256": sha256_file(gold),
        "n_files": n_files,
        "n_items": n_items,
    }


OPTIONS = reader_spec(
    {"gold": Opt(str, "gold.csv", check=non_empty, expect="a file name", doc="the gold CSV")}
)


def _gold_path(reader: str, root: Path, options: dict[str, Any]) -> Path:
    """``root/<options.gold>`` (default ``gold.csv``); no other reader option exists."""
    return root / read_options(reader, OPTIONS, options)["gold"]


def _frequency(gold: Path, filename: str, text: str) -> int | None:
    """A word's corpus frequency: blank (unknown) or a finite number >= 0."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DataError(
            f"{gold}: file {filename!r}: frequency must be a number >= 0 (or blank), got {text!r}"
        )
    return int(value)


def read_lexical(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """ZR2021 ``lexical/{dev,test}``: one item per (id, voice) word/non-word pair."""
    gold = _gold_path("zr2021_lexical", root, options)
    # Non-words have no frequency and (in the official files) often no ``word`` text.
    df = read_csv(
        gold, ["filename", "id", "voice", "frequency", "word", "correct"], ("frequency", "word")
    )
    items: list[ChoiceItem] = []
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    for row in df.itertuples(index=False):
        key = (row.id, row.voice)
        if key not in pairs:
            pairs[key] = {}
            order.append(key)
        slot = "word" if row.correct == "1" else "nonword"
        if slot in pairs[key]:
            raise DataError(f"{gold}: id {row.id!r} voice {row.voice!r} has more than one {slot}")
        pairs[key][slot] = row
    for key in order:
        p = pairs[key]
        if "word" not in p or "nonword" not in p:
            missing = "word (correct=1)" if "word" not in p else "non-word (correct=0)"
            raise DataError(f"{gold}: id {key[0]!r} voice {key[1]!r} is unpaired: no {missing}")
        w, n = p["word"], p["nonword"]
        frequency = _frequency(gold, w.filename, w.frequency.strip())
        meta = {"voice": key[1], "word": w.word, "frequency": frequency}
        if "length" in df.columns:
            meta["length"] = w.length
        items.append(ChoiceItem(doc_id=key[0], candidates=(w.filename, n.filename), meta=meta))
    files = wav_files(root, list(df["filename"]), gold)
    return ChoiceDataset(
        root, files, items, _identity("zr2021_lexical", root, gold, len(files), len(items))
    )


def read_syntactic(root: Path, options: dict[str, Any]) -> ChoiceDataset:
    """ZR2021 ``syntactic/{dev,test}``: k-th correct row paired with k-th incorrect row."""
    gold = _gold_path("zr2021_syntactic", root, options)
    df = read_csv(gold, ["filename", "id", "voice", "type", "correct"])
    good = df[df["correct"] == "1"].reset_index(drop=True)
    bad = df[df["correct"] == "0"].reset_index(drop=True)
    if len(good) != len(bad):
        raise DataError(
            f"{gold}: unpaired rows: {len(good)} correct vs {len(bad)} incorrect sentences "
            "(pairs are formed by position, so the counts must match)"
        )
    has_sub = "subtype" in df.columns
    items: list[ChoiceItem] = []
    for g, b in zip(good.itertuples(index=False), bad.itertuples(index=False), strict=True):
        subtype = g.subtype if has_sub else ""
        meta = {"voice": g.voice, "type": g.type, "subtype": subtype}
        items.append(
            ChoiceItem(
                doc_id=f"{g.type}/{subtype}/{g.id}", candidates=(g.filename, b.filename), meta=meta
            )
        )
    files = wav_files(root, list(df["filename"]), gold)
    return ChoiceDataset(
        root, files, items, _identity("zr2021_syntactic", root, gold, len(files), len(items))
    )
