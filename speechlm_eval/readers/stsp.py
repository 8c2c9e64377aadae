"""STSP data (SPIRIT-LM's Speech-Text Sentiment Preservation): prompts with a sentiment label.

Two layouts, one reader (``read_stsp``, option ``layout``):

- ``spirit-lm``: SPIRIT-LM's ``stsp_data`` folder (``spiritlm/eval/README.md``). ``manifest``
  (default ``manifest/emov/emov.test.jsonl``) has one JSON object a line with ``id``,
  ``wav_path`` (relative to ``audio_root``, default ``data``), ``asr`` (the text prompt, as
  SPIRIT-LM's ``TextData`` reads it), and the label ``sentiment`` or, when absent, ``emotion``
  mapped by SPIRIT-LM's ``EMOTION_2_SENTIMENT``; other fields (``speaker``, ``split``,
  ``emotion``) are kept as metadata. Few-shot pools: ``few_shot_dir`` (default
  ``manifest/few_shot``) ``/{s2s,s2t,t2s,t2t}.jsonl`` with ``prompt``, ``generation``,
  ``sentiment`` (wav paths relative to ``audio_root``, or texts).
- ``builtin``: the built-in ``stsp`` subset: ``file`` (default ``stsp.jsonl``) beside the
  wavs with ``id``, ``file``, ``text``, ``label`` (and ``voice``, kept as the speaker).

``auto`` (default): ``builtin`` when the folder holds ``file``, else ``spirit-lm``.
Every row must be complete and its wav must exist; a label outside positive / negative /
neutral, an unknown emotion, a duplicate id or a path leaving its folder is a one-line
DataError naming file, line and field: a prompt is never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import non_empty, read_options, reader_spec
from ._table import read_jsonl as read_table_jsonl

LABELS = ("positive", "negative", "neutral")
# SPIRIT-LM spiritlm/eval/stsp/utils.py: a manifest's emotion -> its sentiment label.
EMOTION_2_SENTIMENT = {
    "happy": "positive",
    "amused": "positive",
    "angry": "negative",
    "sad": "negative",
    "default": "neutral",
    "neutral": "neutral",
}
# Few-shot pool file per direction (spiritlm/eval/stsp/few_shot_prompt.py).
POOL_FILES = {
    "speech->speech": "s2s.jsonl",
    "speech->text": "s2t.jsonl",
    "text->speech": "t2s.jsonl",
    "text->text": "t2t.jsonl",
}

OPTIONS = reader_spec(
    {
        "layout": Opt(str, "auto", choices=("auto", "spirit-lm", "builtin")),
        "manifest": Opt(str, "manifest/emov/emov.test.jsonl", check=non_empty, expect="a path"),
        "audio_root": Opt(str, "data", doc="spirit-lm: the folder wav_path is relative to"),
        "few_shot_dir": Opt(str, "manifest/few_shot", doc="spirit-lm: few-shot pools"),
        "file": Opt(str, "stsp.jsonl", check=non_empty, expect="a file name", doc="builtin"),
    }
)


@dataclass
class STSPDataset:
    """Prompts in manifest order: audio file, text (None when the row has none) and label."""

    root: Path
    files: dict[str, Path]  # id -> wav
    texts: dict[str, str | None]  # id -> text prompt
    labels: dict[str, str]  # id -> positive | negative | neutral
    identity: dict[str, Any]
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # other manifest fields
    where: dict[str, str] = field(default_factory=dict)  # id -> "file: line N" (messages)
    audio_root: Path | None = None  # where few-shot wav paths are relative to
    few_shot_dir: Path | None = None  # None: this layout has no few-shot pools

    def doc_ids(self) -> list[str]:
        return list(self.labels)

    @property
    def items(self) -> list[str]:
        return self.doc_ids()

    def limited(self, limit: int | None) -> STSPDataset:
        """The first ``limit`` prompts (``--limit``)."""
        if limit is None:
            return self
        keep = self.doc_ids()[:limit]
        return STSPDataset(
            self.root,
            {d: self.files[d] for d in keep},
            {d: self.texts[d] for d in keep},
            {d: self.labels[d] for d in keep},
            self.identity,
            {d: self.meta[d] for d in keep if d in self.meta},
            {d: self.where[d] for d in keep if d in self.where},
            self.audio_root,
            self.few_shot_dir,
        )


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; DataError naming file and line."""
    rows = read_table_jsonl(path, "STSP manifest")
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    return rows


def field_str(row: dict[str, Any], name: str, where: str, *, allow_int: bool = False) -> str:
    """A required non-empty string field (an integer too, for ids)."""
    v = row.get(name)
    if allow_int and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: field {name!r} must be a non-empty string, got {v!r}")
    return v


def audio_path(base: Path, rel: str, where: str, name: str) -> Path:
    """``base / rel``, inside ``base`` and an existing file."""
    p = (base / rel).resolve()
    if not p.is_relative_to(base.resolve()):
        raise DataError(f"{where}: field {name!r}: {rel!r} leaves the folder {base}")
    if not p.is_file():
        raise DataError(f"{where}: field {name!r}: audio file {p} does not exist")
    return p


def label_of(row: dict[str, Any], where: str, label_field: str) -> str:
    """``row[label_field]`` (spirit-lm: else ``EMOTION_2_SENTIMENT[row["emotion"]]``)."""
    if label_field in row or label_field != "sentiment":
        v = row.get(label_field)
        if v not in LABELS:
            raise DataError(
                f"{where}: field {label_field!r} must be one of {', '.join(LABELS)}, got {v!r}"
            )
        return v
    emo = row.get("emotion")
    if emo not in EMOTION_2_SENTIMENT:
        raise DataError(
            f"{where}: no field 'sentiment', and field 'emotion' must be one of "
            f"{', '.join(EMOTION_2_SENTIMENT)} (SPIRIT-LM's EMOTION_2_SENTIMENT), got {emo!r}"
        )
    return EMOTION_2_SENTIMENT[emo]


def read_stsp(root: Path, options: dict[str, Any]) -> STSPDataset:
    """Read STSP prompts from ``root`` in either layout (see the module doc)."""
    o = read_options("stsp", OPTIONS, options)
    layout = o["layout"]
    if layout == "auto":
        layout = "builtin" if (root / o["file"]).is_file() else "spirit-lm"
    if layout == "builtin":
        path, base, audio_field, text_field, label_field = (
            root / o["file"],
            root,
            "file",
            "text",
            "label",
        )
        speaker_field, few, audio_root = "voice", None, root
    else:
        path, base = root / o["manifest"], root / o["audio_root"]
        audio_field, text_field, label_field, speaker_field = "wav_path", "asr", "sentiment", None
        few, audio_root = root / o["few_shot_dir"], base
    files: dict[str, Path] = {}
    texts: dict[str, str | None] = {}
    labels: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    where_of: dict[str, str] = {}
    for n, row in read_jsonl(path):
        where = f"{path}: line {n}"
        doc = field_str(row, "id", where, allow_int=True)
        if doc in labels:
            raise DataError(f"{where}: field 'id': {doc!r} repeats {where_of[doc]}")
        files[doc] = audio_path(base, field_str(row, audio_field, where), where, audio_field)
        text = row.get(text_field)
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise DataError(f"{where}: field {text_field!r} must be a non-empty string")
        texts[doc] = text
        labels[doc] = label_of(row, where, label_field)
        skip = {"id", audio_field, text_field, label_field}
        meta[doc] = {k: v for k, v in row.items() if k not in skip}
        if speaker_field and speaker_field in row:
            meta[doc]["speaker"] = row[speaker_field]
        where_of[doc] = f"{path.name}: line {n}"
    counts = {lab: sum(v == lab for v in labels.values()) for lab in LABELS}
    identity = {
        "reader": "stsp",
        "layout": layout,
        "root": str(root.resolve()),
        "manifest": str(path.relative_to(root)),
        "manifest_sha256": sha256_file(path),
        "n_prompts": len(labels),
        "labels": counts,
    }
    return STSPDataset(root, files, texts, labels, identity, meta, where_of, audio_root, few)


@dataclass(frozen=True)
class FewShotExample:
    """One pool record: ``prompt`` / ``generation`` are texts or wav paths (resolved)."""

    prompt: str | Path
    generation: str | Path
    sentiment: str
    where: str


def read_few_shot_pool(ds: STSPDataset, direction: str) -> tuple[Path, list[FewShotExample]]:
    """The few-shot pool of ``direction`` (SPIRIT-LM's ``{prompt, generation, sentiment}``
    records; a speech side is a wav path relative to the audio root, checked to exist)."""
    if ds.few_shot_dir is None:
        raise DataError(
            f"{ds.root}: this STSP layout ({ds.identity.get('layout')}) has no few-shot pool; "
            "few_shot needs SPIRIT-LM's stsp_data (manifest/few_shot/*.jsonl)"
        )
    path = ds.few_shot_dir / POOL_FILES[direction]
    if not path.is_file():
        raise DataError(f"{path}: few-shot pool not found (needed by few_shot > 0)")
    src, out = direction.split("->")
    pool = []
    for n, row in read_jsonl(path):
        where = f"{path}: line {n}"
        sides: list[str | Path] = []
        for name, modality in (("prompt", src), ("generation", out)):
            v = field_str(row, name, where)
            assert ds.audio_root is not None
            sides.append(audio_path(ds.audio_root, v, where, name) if modality == "speech" else v)
        sentiment = row.get("sentiment")
        if sentiment not in LABELS:
            raise DataError(
                f"{where}: field 'sentiment' must be one of {', '.join(LABELS)}, got {sentiment!r}"
            )
        pool.append(FewShotExample(sides[0], sides[1], sentiment, where))
    return path, pool
