"""Readers for transcribed speech (ASR corpora): LibriSpeech layout and a generic manifest.

LibriSpeech (``read_librispeech``, also the layout of the built-in ``asr`` subset): under
the split folder, ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with lines
``<utterance-id> <TRANSCRIPT>`` and the audio ``<utterance-id>.flac`` (or ``.wav``) beside
it. Manifest (``read_transcribed_manifest``): JSONL lines ``{"id", "audio", "text", ...}``
(``speaker`` optional, other fields kept as metadata) or a CSV with those columns; audio
paths are relative to the manifest and may not leave its folder.

Every transcript line must have its audio and every audio file its transcript line; ids
are unique and transcripts non-empty. Anything else is a DataError naming file and line:
a sample is never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..dataset import listing_hash
from ..errors import DataError
from ..hashing import digest, sha256_file
from ..options import Opt
from ._options import names, non_empty, read_options, reader_spec
from ._table import read_jsonl

AUDIO_EXTS = (".flac", ".wav")


@dataclass
class TranscribedDataset:
    """Utterances with reference transcripts, in dataset order (sorted by id for LibriSpeech)."""

    root: Path
    files: dict[str, Path]  # utterance id -> audio path
    texts: dict[str, str]  # utterance id -> reference transcript (as written in the corpus)
    speakers: dict[str, str | None]  # utterance id -> speaker id (None when unknown)
    identity: dict[str, Any]  # reader, root, content hashes, counts
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra manifest fields

    def doc_ids(self) -> list[str]:
        """Utterance ids in dataset order (one utterance is one doc for --limit)."""
        return list(self.texts)

    @property
    def items(self) -> list[str]:
        """Same as :meth:`doc_ids` (lets generic code test ``if not ds.items``)."""
        return self.doc_ids()

    def limited(self, limit: int | None) -> TranscribedDataset:
        """The first ``limit`` utterances, as lm-evaluation-harness' --limit does."""
        if limit is None:
            return self
        keep = self.doc_ids()[:limit]
        return TranscribedDataset(
            self.root,
            {u: self.files[u] for u in keep},
            {u: self.texts[u] for u in keep},
            {u: self.speakers[u] for u in keep},
            self.identity,
            {u: self.meta[u] for u in keep if u in self.meta},
        )


# --- LibriSpeech -------------------------------------------------------------------------------


def _audio_for(folder: Path, utt: str, exts: tuple[str, ...]) -> Path | None:
    for ext in exts:
        p = folder / f"{utt}{ext}"
        if p.is_file():
            return p
    return None


LIBRISPEECH_OPTIONS = reader_spec(
    {
        "audio_ext": Opt(
            object,
            list(AUDIO_EXTS),
            check=names,
            expect="an extension or a list of extensions",
            doc="tried in order",
        )
    }
)
MANIFEST_OPTIONS = reader_spec(
    {
        "file": Opt(str, "transcripts.jsonl", check=non_empty, expect="a file name"),
        # Column names, for manifests written with other names (the built-in prosody
        # subset's prosody.jsonl: file, transcript, voice).
        "id_field": Opt(str, "id", check=non_empty, expect="a field name"),
        "audio_field": Opt(str, "audio", check=non_empty, expect="a field name"),
        "text_field": Opt(str, "text", check=non_empty, expect="a field name"),
        "speaker_field": Opt(str, "speaker", check=non_empty, expect="a field name"),
    }
)


def read_librispeech(root: Path, options: dict[str, Any]) -> TranscribedDataset:
    """Read a LibriSpeech split folder (e.g. ``LibriSpeech/test-clean``).

    Options: ``audio_ext`` (extension or list, tried in order; default ``.flac``, ``.wav``).
    """
    given = read_options("librispeech", LIBRISPEECH_OPTIONS, options)["audio_ext"]
    exts = tuple(e if e.startswith(".") else f".{e}" for e in given)
    trans = sorted(root.glob("*/*/*.trans.txt"))
    if not trans:
        raise DataError(
            f"{root}: no transcript files; expected LibriSpeech layout "
            "<speaker>/<chapter>/<speaker>-<chapter>.trans.txt"
        )
    rows: list[tuple[str, str, str, Path]] = []  # (utt, text, speaker, audio)
    where_id: dict[str, str] = {}
    for tf in trans:
        speaker = tf.parent.parent.name
        try:
            lines = tf.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{tf}: cannot read transcript file ({e})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{tf}: line {n}"
            parts = line.split(maxsplit=1)
            utt = parts[0]
            if len(parts) < 2 or not parts[1].strip():
                raise DataError(f"{where}: empty transcript for utterance {utt!r}")
            if utt in where_id:
                raise DataError(
                    f"{where}: duplicated utterance id {utt!r} (first at {where_id[utt]})"
                )
            where_id[utt] = where
            audio = _audio_for(tf.parent, utt, exts)
            if audio is None:
                tried = " or ".join(f"{utt}{e}" for e in exts)
                raise DataError(f"{where}: no audio file {tried} in {tf.parent}")
            rows.append((utt, " ".join(parts[1].split()), speaker, audio))
    used = {r[3].resolve() for r in rows}
    audio_files = sorted(p for e in exts for p in root.rglob(f"*{e}") if p.is_file())
    for p in audio_files:
        if p.resolve() not in used:
            stem = p.stem
            tf = p.parent / f"{p.parent.parent.name}-{p.parent.name}.trans.txt"
            hint = f"(expected a line '{stem} ...' in {tf})"
            if stem in where_id:
                hint = f"(id {stem!r} is already used by {where_id[stem]} for another file)"
            raise DataError(f"{p}: audio file has no transcript line {hint}")
    rows.sort(key=lambda r: r[0])
    ident = {
        "reader": "librispeech",
        "root": str(root.resolve()),
        "listing_sha256": listing_hash(root, [*trans, *audio_files]),
        "transcripts_sha256": digest(
            {tf.relative_to(root).as_posix(): sha256_file(tf) for tf in trans}
        ),
        "n_files": len(rows),
        "n_items": len(rows),
        "n_speakers": len({r[2] for r in rows}),
    }
    return TranscribedDataset(
        root,
        {u: a for u, _, _, a in rows},
        {u: t for u, t, _, _ in rows},
        {u: s for u, _, s, _ in rows},
        ident,
    )


# --- generic manifest ----------------------------------------------------------------------------


def _manifest_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if path.suffix == ".jsonl":
        return [(f"{path}: line {n}", row) for n, row in read_jsonl(path)]
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    if path.suffix == ".csv":
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as e:  # pandas raises several parser error types
            raise DataError(f"{path}: cannot parse CSV ({e})") from None
        return [(f"{path}: line {n}", r) for n, r in enumerate(df.to_dict("records"), 2)]
    raise DataError(f"{path}: manifest must be .jsonl or .csv")


def read_transcribed_manifest(root: Path, options: dict[str, Any]) -> TranscribedDataset:
    """Read ``root/<options.file>`` (default ``transcripts.jsonl``): ``id``, ``audio``, ``text``
    and an optional ``speaker`` per row (other names: ``id_field``, ``audio_field``,
    ``text_field``, ``speaker_field``); every other field is kept as the utterance's metadata."""
    opts = read_options("transcribed_manifest", MANIFEST_OPTIONS, options)
    path = root / opts["file"]
    f_id, f_audio, f_text, f_spk = (
        opts[k] for k in ("id_field", "audio_field", "text_field", "speaker_field")
    )
    rows = _manifest_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    base = root.resolve()
    files: dict[str, Path] = {}
    texts: dict[str, str] = {}
    speakers: dict[str, str | None] = {}
    meta: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    by_audio: dict[Path, str] = {}
    for where, row in rows:
        for key in (f_id, f_audio, f_text):
            if key not in row or row[key] in ("", None):
                raise DataError(f"{where}: missing field '{key}'")
        utt = str(row[f_id])
        if utt in seen:
            raise DataError(f"{where}: duplicated id {utt!r} (first at {seen[utt]})")
        seen[utt] = where
        text = row[f_text]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: empty transcript (field {f_text!r}) for id {utt!r}")
        rel = row[f_audio]
        if not isinstance(rel, str):
            raise DataError(f"{where}: field {f_audio!r} must be a path string, got {rel!r}")
        p = (base / rel).resolve()
        if not p.is_relative_to(base):
            raise DataError(f"{where}: audio path {rel!r} escapes the data folder {root}")
        if not p.is_file():
            raise DataError(f"{where}: audio file {p} does not exist")
        if p in by_audio:
            raise DataError(f"{where}: audio file {rel!r} is already listed by {by_audio[p]}")
        by_audio[p] = where
        files[utt] = p
        texts[utt] = " ".join(text.split())
        spk = row.get(f_spk)
        speakers[utt] = None if spk in (None, "") else str(spk)
        extra = {k: v for k, v in row.items() if k not in (f_id, f_audio, f_text, f_spk)}
        if extra:
            meta[utt] = extra
    ident = {
        "reader": "transcribed_manifest",
        "root": str(base),
        "manifest": path.name,
        "manifest_sha256": sha256_file(path),
        "n_files": len(files),
        "n_items": len(files),
        "n_speakers": len({s for s in speakers.values() if s is not None}),
    }
    return TranscribedDataset(root, files, texts, speakers, ident, meta)
