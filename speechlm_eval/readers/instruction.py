"""Instruction tasks (capability ``respond``): a JSONL manifest of questions and gold answers.

One JSON object a line (``file`` option, default ``instruction.jsonl``, in the task's folder)::

    {"id": "q1", "audio": "wav/q1.wav", "answer": "7", "subgroup": "arithmetic"}
    {"id": "q2", "text": "Is ice cold?", "answer": "yes"}
    {"id": "q3", "audio": "q3.wav", "choices": ["a table", "a horse"], "answer": "B"}

- ``id`` (string or integer, unique); ``audio`` (a path relative to the manifest's folder)
  and/or ``text`` (the question as text): at least one; the task's ``generation.input``
  says which the model is given;
- ``answer``: the gold answer, a non-empty string, or a list of acceptable answers (the
  first is the canonical one); with ``choices`` (a list of two or more strings) it is the
  letter of the right choice (``A`` for the first);
- ``subgroup`` (optional): a breakdown key; every other field is kept as metadata.

Option ``layout: air-bench`` reads AIR-Bench's foundation meta file instead (``file``, e.g.
``Foundation_meta.json``: a JSON list of ``{path, task_name, dataset_name, question,
choice_a, choice_b[, choice_c, choice_d], answer_gt, uniq_id}``, audio at
``<root>/<task_name>_<dataset_name>/<path>``; facts from OFA-Sys/AIR-Bench
``Inference_Foundation.py``): the question is the text, the choices are lettered A-D, the
gold answer is the letter of the choice equal to ``answer_gt`` (none or several equal: an
error naming the item), the subgroup is ``task_name``.

Option ``labels`` declares the closed answer set: a gold answer outside it is an error (so
a typo in the gold file cannot make an item unanswerable). Every problem is one DataError
naming the file, the line and the field; nothing is dropped silently.

:func:`as_instruction` also turns the transcribed corpora of
:mod:`speechlm_eval.readers.transcribed` (LibriSpeech, the built-in ``asr`` subset) into
instruction items whose answer is the transcript (ASR through ``respond``), and a Hugging
Face dataset read by :mod:`speechlm_eval.readers.hf_dataset` into items whose answer is its
``label_column`` and whose text is its ``text_column`` (Dynamic-SUPERB's ``instruction``
and ``label``: a task with ``input: audio+text`` and the template ``"{text}"`` sends each
row's own instruction).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import non_empty, read_options, reader_spec
from ._table import read_jsonl
from .hf_dataset import HFDataset
from .transcribed import TranscribedDataset

LETTERS = string.ascii_uppercase


def _labels(value: Any) -> list[str]:
    if not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
        raise ValueError("")
    return list(value)


OPTIONS = reader_spec(
    {
        "file": Opt(str, "instruction.jsonl", check=non_empty, expect="a file name"),
        "layout": Opt(str, "jsonl", choices=("jsonl", "air-bench")),
        "labels": Opt(
            list, None, check=_labels, expect="a non-empty list of strings", doc="answer set"
        ),
    }
)


@dataclass
class InstructionDataset:
    """Questions in manifest order: audio (where given), text (where given), gold answers."""

    root: Path
    # id -> audio (only the items that have audio): a path, or a lazily decoded reference
    # with info() / seconds(info) / load(info) (a Hugging Face dataset row's HFAudioRef)
    files: dict[str, Any]
    texts: dict[str, str | None]  # id -> the question as text (None: none given)
    answers: dict[str, tuple[str, ...]]  # id -> acceptable answers, canonical first
    identity: dict[str, Any]
    choices: dict[str, list[str]] = field(default_factory=dict)  # id -> choices (if any)
    subgroups: dict[str, str] = field(default_factory=dict)  # id -> breakdown key (if any)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # other fields
    where: dict[str, str] = field(default_factory=dict)  # id -> "file: line N"

    def doc_ids(self) -> list[str]:
        return list(self.answers)

    @property
    def items(self) -> list[str]:
        return self.doc_ids()

    def limited(self, limit: int | None) -> InstructionDataset:
        """The first ``limit`` questions (``--limit``)."""
        if limit is None:
            return self
        keep = self.doc_ids()[:limit]

        def sub(d: dict[str, Any]) -> dict[str, Any]:
            return {k: d[k] for k in keep if k in d}

        return InstructionDataset(
            self.root,
            sub(self.files),
            sub(self.texts),
            sub(self.answers),
            self.identity,
            sub(self.choices),
            sub(self.subgroups),
            sub(self.meta),
            sub(self.where),
        )


def _str(row: dict[str, Any], name: str, where: str, *, allow_int: bool = False) -> str:
    v = row.get(name)
    if allow_int and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: field {name!r} must be a non-empty string, got {v!r}")
    return v


def _audio(root: Path, rel: str, where: str) -> Path:
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()):
        raise DataError(f"{where}: field 'audio': {rel!r} leaves the folder {root}")
    if not p.is_file():
        raise DataError(f"{where}: field 'audio': audio file {p} does not exist")
    return p


def _answers(row: dict[str, Any], where: str) -> tuple[str, ...]:
    v = row.get("answer")
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(a, str) and a.strip() for a in vals):
        raise DataError(
            f"{where}: field 'answer' must be a non-empty string or a non-empty list of them, "
            f"got {v!r}"
        )
    return tuple(vals)


AIR_CHOICES = ("choice_a", "choice_b", "choice_c", "choice_d")


def air_bench_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """AIR-Bench foundation items as manifest rows (item index from 1 in place of a line)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of items (AIR-Bench Foundation_meta.json)")
    rows = []
    for n, it in enumerate(items, 1):
        where = f"{path}: item {n}"
        if not isinstance(it, dict):
            raise DataError(f"{where}: expected a JSON object")
        for k in ("path", "task_name", "dataset_name", "question", "answer_gt", "uniq_id"):
            if k not in it:
                raise DataError(f"{where}: field {k!r} is missing")
        choices = [it[k] for k in AIR_CHOICES if it.get(k) is not None]
        right = [LETTERS[i] for i, c in enumerate(choices) if c == it["answer_gt"]]
        if len(right) != 1:
            raise DataError(
                f"{where} (uniq_id {it['uniq_id']}): field 'answer_gt' {it['answer_gt']!r} "
                f"equals {len(right)} of the choices {choices}; expected exactly one"
            )
        rows.append(
            (
                n,
                {
                    "id": it["uniq_id"],
                    "audio": f"{it['task_name']}_{it['dataset_name']}/{it['path']}",
                    "text": it["question"],
                    "choices": choices,
                    "answer": right[0],
                    "subgroup": it["task_name"],
                    "dataset_name": it["dataset_name"],
                },
            )
        )
    return rows


def read_instruction(root: Path, options: dict[str, Any]) -> InstructionDataset:
    """Read an instruction manifest from ``root`` (see the module doc)."""
    o = read_options("instruction", OPTIONS, options)
    path = root / o["file"]
    if not path.is_file():
        raise DataError(f"{path}: the instruction manifest does not exist (option 'file')")
    unit = "item" if o["layout"] == "air-bench" else "line"
    if o["layout"] == "air-bench":
        rows = air_bench_rows(path)
    else:
        rows = read_jsonl(path, "instruction manifest")
    if not rows:
        raise DataError(f"{path}: the instruction manifest has no rows")
    labels = o["labels"]
    ds = InstructionDataset(root, {}, {}, {}, {})
    for n, row in rows:
        where = f"{path}: {unit} {n}"
        doc = _str(row, "id", where, allow_int=True)
        if doc in ds.answers:
            raise DataError(f"{where}: field 'id': {doc!r} repeats {ds.where[doc]}")
        if row.get("audio") is None and row.get("text") is None:
            raise DataError(f"{where}: neither 'audio' nor 'text' is given; one is needed")
        if row.get("audio") is not None:
            ds.files[doc] = _audio(root, _str(row, "audio", where), where)
        ds.texts[doc] = _str(row, "text", where) if row.get("text") is not None else None
        answers = _answers(row, where)
        if "choices" in row:
            ch = row["choices"]
            if not (
                isinstance(ch, list)
                and 2 <= len(ch) <= len(LETTERS)
                and all(isinstance(c, str) and c.strip() for c in ch)
            ):
                raise DataError(
                    f"{where}: field 'choices' must be a list of 2 to 26 non-empty strings"
                )
            allowed = LETTERS[: len(ch)]
            bad = [a for a in answers if a not in allowed]
            if bad:
                raise DataError(
                    f"{where}: field 'answer': {bad[0]!r} is not a choice letter "
                    f"({', '.join(allowed)})"
                )
            ds.choices[doc] = list(ch)
        if labels is not None:
            bad = [a for a in answers if a not in labels]
            if bad:
                raise DataError(
                    f"{where}: field 'answer': {bad[0]!r} is not one of the declared labels "
                    f"({', '.join(labels)}; dataset.options.labels)"
                )
        ds.answers[doc] = answers
        if "subgroup" in row:
            ds.subgroups[doc] = _str(row, "subgroup", where)
        skip = {"id", "audio", "text", "answer", "choices", "subgroup"}
        ds.meta[doc] = {k: v for k, v in row.items() if k not in skip}
        ds.where[doc] = f"{path.name}: {unit} {n}"
    ds.identity = {
        "reader": "instruction",
        "layout": o["layout"],
        "root": str(root.resolve()),
        "manifest": o["file"],
        "manifest_sha256": sha256_file(path),
        "n_items": len(ds.answers),
        "n_audio": len(ds.files),
        "n_choice_items": len(ds.choices),
        "subgroups": {
            g: list(ds.subgroups.values()).count(g) for g in sorted(set(ds.subgroups.values()))
        },
    }
    return ds


def as_instruction(ds: Any) -> InstructionDataset:
    """An instruction dataset as it is, or a transcribed corpus as instruction items (the
    audio is the input, the transcript the answer, the speaker kept as metadata)."""
    if isinstance(ds, InstructionDataset):
        return ds
    if isinstance(ds, TranscribedDataset):
        ids = ds.doc_ids()
        return InstructionDataset(
            ds.root,
            dict(ds.files),
            {d: None for d in ids},
            {d: (ds.texts[d],) for d in ids},
            ds.identity,
            meta={d: {"speaker": ds.speakers.get(d), **ds.meta.get(d, {})} for d in ids},
            where={d: d for d in ids},
        )
    if isinstance(ds, HFDataset):
        ids = ds.doc_ids()
        no_label = [r.id for r in ds.rows if r.label is None]
        if no_label:
            raise DataError(
                f"Hugging Face dataset {ds.identity.get('hub_id') or ds.root}: row "
                f"{no_label[0]!r} has no answer; set dataset.options.label_column to the "
                "column holding the gold answers"
            )
        return InstructionDataset(
            ds.root,
            {r.id: ds.audio[r.id] for r in ds.rows},
            {r.id: r.text for r in ds.rows},
            {r.id: (str(r.label),) for r in ds.rows},
            ds.identity,
            meta={r.id: dict(r.meta) for r in ds.rows},
            where={d: f"row {d}" for d in ids},
        )
    raise DataError(
        f"the respond pipeline reads instruction manifests (reader 'instruction') or "
        f"transcribed corpora (readers 'librispeech', 'transcribed_manifest') or Hugging Face "
        f"datasets (reader 'hf_dataset'), got "
        f"{type(ds).__name__}"
    )
