"""Readers of ``converse`` stimuli into :class:`~speechlm_eval.dataset.SessionDataset`.

- ``dialogue_conversations``: two-channel conversations, the built-in
  ``dialogue/conversations`` layout (``conversations.jsonl``: per conversation ``id``,
  ``files`` = ``{"A": "<id>_A.wav", "B": "<id>_B.wav"}``, exact ``ipus`` per channel, in
  seconds). Channel ``user`` (option, default ``A``) is streamed to the model; the other is
  the human reference. A Fisher-style corpus is the same layout (one mono file per
  channel); its IPUs are optional.
- ``dialogue_interactive``: the built-in ``dialogue/interactive`` layout
  (``interactive.jsonl``: ``id``, ``file``, ``not_addressed`` = {kind, start, end},
  ``addressed`` = {start, end}, in seconds).
- ``dialogue_fullduplex``: single-channel full-duplex stimuli, the built-in
  ``dialogue/fullduplex`` layout (``fullduplex.jsonl``: ``id``, ``file``, and the timings
  ``pauses``, ``turn_ends``, ``interruptions`` in seconds).

Paths may not leave the data folder; every row is checked and a bad one is one error naming
the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..dataset import SessionDataset, SessionItem
from ..errors import DataError
from ..hashing import sha256_file
from ..options import Opt
from ._options import non_empty, read_options, reader_spec
from ._table import read_jsonl
from .manifest import _resolve

CONV_OPTIONS = reader_spec(
    {
        "file": Opt(str, "conversations.jsonl", check=non_empty, expect="a file name"),
        "user": Opt(str, "A", check=non_empty, doc="the channel streamed to the model"),
    }
)
IA_OPTIONS = reader_spec(
    {"file": Opt(str, "interactive.jsonl", check=non_empty, expect="a file name")}
)
FD_OPTIONS = reader_spec(
    {"file": Opt(str, "fullduplex.jsonl", check=non_empty, expect="a file name")}
)


def _rows(path: Path, noun: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, id, row)`` of each line of the JSONL manifest ``path``, in order: ids checked
    to be non-empty and unique; no row at all is an error once the file is read (``noun``
    names what was expected). A generator, so each row is checked before the next is read."""
    seen: set[str] = set()
    for line, row in read_jsonl(path):
        where = f"{path}: line {line}"
        raw = row.get("id")
        if isinstance(raw, bool) or not isinstance(raw, (str, int)) or raw == "":
            raise DataError(f"{where}: field 'id' must be a non-empty string, got {raw!r}")
        doc = str(raw)
        if doc in seen:
            raise DataError(f"{where}: duplicated id {doc!r}")
        seen.add(doc)
        yield where, doc, row
    if not seen:
        raise DataError(f"{path}: no {noun}")


def _identity(reader: str, root: Path, path: Path, n: int) -> dict[str, Any]:
    return {
        "reader": reader,
        "root": str(root.resolve()),
        "manifest": path.name,
        "manifest_sha256": sha256_file(path),
        "n_items": n,
    }


def read_conversations(root: Path, options: dict[str, Any]) -> SessionDataset:
    """Two-channel conversations (see the module docstring)."""
    o = read_options("dialogue_conversations", CONV_OPTIONS, options)
    path = root / o["file"]
    files: dict[str, Path] = {}
    items: list[SessionItem] = []
    for where, doc, row in _rows(path, "conversations"):
        chans = row.get("files")
        if not isinstance(chans, dict) or len(chans) != 2:
            raise DataError(
                f"{where}: field 'files' must map the two channels to audio files, "
                f'e.g. {{"A": "x_A.wav", "B": "x_B.wav"}}; got {chans!r}'
            )
        if o["user"] not in chans:
            raise DataError(
                f"{where}: the user channel {o['user']!r} (reader option 'user') is not in "
                f"'files' (channels: {', '.join(map(str, chans))})"
            )
        other = next(c for c in chans if c != o["user"])
        ipus = row.get("ipus")
        meta: dict[str, Any] = {"id": doc, "user_channel": o["user"], "other_channel": other}
        if ipus is not None:
            if not isinstance(ipus, dict) or set(ipus) != set(chans):
                raise DataError(f"{where}: field 'ipus' must give the IPUs of both channels")
            meta["ipus"] = {"user": ipus[o["user"]], "other": ipus[other]}
        files[doc] = _resolve(root, chans[o["user"]], f"{where}: files.{o['user']}")
        ref = _resolve(root, chans[other], f"{where}: files.{other}")
        items.append(SessionItem(doc, "conversation", meta, ref))
    ident = _identity("dialogue_conversations", root, path, len(items))
    ident["user_channel"] = o["user"]
    return SessionDataset(root, files, items, ident)


def read_fullduplex(root: Path, options: dict[str, Any]) -> SessionDataset:
    """Full-duplex stimuli with planned pause, turn end and barge-in timings."""
    o = read_options("dialogue_fullduplex", FD_OPTIONS, options)
    path = root / o["file"]
    files: dict[str, Path] = {}
    items: list[SessionItem] = []
    for where, doc, row in _rows(path, "stimuli"):
        for key in ("pauses", "turn_ends", "interruptions"):
            if not isinstance(row.get(key), list):
                raise DataError(f"{where}: field {key!r} must be a list of timings")
        files[doc] = _resolve(root, row.get("file"), f"{where}: file")
        meta = {
            k: row[k] for k in ("id", "pauses", "turn_ends", "interruptions", "ipus") if k in row
        }
        items.append(SessionItem(doc, "fullduplex", meta))
    return SessionDataset(
        root, files, items, _identity("dialogue_fullduplex", root, path, len(items))
    )


def read_interactive(root: Path, options: dict[str, Any]) -> SessionDataset:
    """Interactive-period stimuli: speech not addressed to the system, then a request."""
    o = read_options("dialogue_interactive", IA_OPTIONS, options)
    path = root / o["file"]
    files: dict[str, Path] = {}
    items: list[SessionItem] = []
    for where, doc, row in _rows(path, "stimuli"):
        for key, need in (
            ("not_addressed", ("kind", "start", "end")),
            ("addressed", ("start", "end")),
        ):
            v = row.get(key)
            if not isinstance(v, dict) or any(k not in v for k in need):
                raise DataError(f"{where}: field {key!r} must be an object with {', '.join(need)}")
        files[doc] = _resolve(root, row.get("file"), f"{where}: file")
        meta = {k: row[k] for k in ("id", "not_addressed", "addressed", "duration")}
        items.append(SessionItem(doc, "interactive", meta))
    return SessionDataset(
        root, files, items, _identity("dialogue_interactive", root, path, len(items))
    )
