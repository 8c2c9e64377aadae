"""Reader ``stereo_conversations``: a Fisher-style corpus of two-channel conversations.

Layout: stereo audio files under the root (option ``pattern``, default ``**/*.wav``; any
format libsndfile reads), one conversation per file, one speaker per channel (channel 0 =
``A``, 1 = ``B``, as Fisher's transcripts name them). Per-channel speech segments are
optional, looked for beside each audio file (or under option ``segments_dir``, same
relative path), first found wins:

- ``<stem>.json``: ``{"A": [[start, end], ...], "B": [[start, end], ...]}`` in seconds;
- ``<stem>.txt``: a Fisher (LDC) transcript: lines ``start end A: text`` (or ``B:``);
  blank lines and lines starting with ``#`` are skipped.

Each conversation is a :class:`~speechlm_eval.dataset.SessionItem` of kind
``conversation``, like the built-in ``dialogue/conversations`` (reader
``dialogue_conversations``): the ``user`` channel (option, default ``A``) is the stream
given to the model (``files[doc_id]``: an :class:`~speechlm_eval.audio.AudioRef` of that
channel), the other is the human reference (``reference``: the other channel's view);
``meta["ipus"] = {"user": [...], "other": [...]}`` when segments were found (transcript
segments are utterances, not VAD IPUs: the turn-taking code merges them at its
``min_silence``). ``doc_id`` = the file's path relative to the root, without suffix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..audio import AudioRef, audio_info
from ..dataset import SessionDataset, SessionItem, listing_hash
from ..errors import DataError
from ..options import Opt
from ._options import non_empty, read_options, reader_spec

CHANNELS = ("A", "B")
OPTIONS = reader_spec(
    {
        "pattern": Opt(str, "**/*.wav", check=non_empty, doc="glob of the stereo files"),
        "user": Opt(str, "A", choices=CHANNELS, doc="the channel streamed to the model"),
        "segments_dir": Opt(str, None, doc="folder of <stem>.json / <stem>.txt segments"),
    }
)
_FISHER_LINE = re.compile(r"^\s*(\S+)\s+(\S+)\s+([AB])\s*:(.*)$")


def _segments_json(path: Path) -> dict[str, list[list[float]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or set(data) != set(CHANNELS):
        raise DataError(f'{path}: expected {{"A": [[start, end], ...], "B": [...]}}')
    out = {}
    for ch in CHANNELS:
        segs = data[ch]
        if not isinstance(segs, list):
            raise DataError(f"{path}: channel {ch!r}: expected a list of [start, end]")
        out[ch] = [_span(s, f"{path}: channel {ch!r} segment {i}") for i, s in enumerate(segs)]
    return out


def _span(value: Any, where: str) -> list[float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        and all(math.isfinite(x) for x in value)
        and 0 <= value[0] <= value[1]
    )
    if not ok:
        raise DataError(
            f"{where}: expected [start, end] in seconds (0 <= start <= end), got {value!r}"
        )
    return [float(value[0]), float(value[1])]


def _segments_fisher(path: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {ch: [] for ch in CHANNELS}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _FISHER_LINE.match(line)
        if m is None:
            raise DataError(
                f"{path}: line {n}: expected 'start end A: text' or 'start end B: text'"
            )
        try:
            span = [float(m.group(1)), float(m.group(2))]
        except ValueError:
            raise DataError(f"{path}: line {n}: start and end must be numbers (seconds)") from None
        out[m.group(3)].append(_span(span, f"{path}: line {n}"))
    return out


def _segments(base: Path, rel: Path) -> dict[str, list[list[float]]] | None:
    for suffix, parse in ((".json", _segments_json), (".txt", _segments_fisher)):
        p = (base / rel).with_suffix(suffix)
        if p.is_file():
            return parse(p)
    return None


def read_stereo_conversations(root: Path, options: dict[str, Any]) -> SessionDataset:
    """Read a Fisher-style folder of stereo conversations (see the module docstring)."""
    o = read_options("stereo_conversations", OPTIONS, options)
    if not root.is_dir():
        raise DataError(f"{root}: conversation folder not found")
    paths = sorted(p for p in root.glob(o["pattern"]) if p.is_file())
    if not paths:
        raise DataError(f"{root}: no audio file matches the pattern {o['pattern']!r}")
    seg_base = root / o["segments_dir"] if o["segments_dir"] else root
    if o["segments_dir"] and not seg_base.is_dir():
        raise DataError(f"{seg_base}: segments folder (reader option 'segments_dir') not found")
    user = CHANNELS.index(o["user"])
    other = 1 - user
    files: dict[str, AudioRef] = {}
    items: list[SessionItem] = []
    n_annotated = 0
    for p in paths:
        info = audio_info(p, multichannel=True)
        if info.channels != 2:
            raise DataError(f"{p}: expected a two-channel (stereo) file, it has {info.channels}")
        rel = p.relative_to(root)
        doc = rel.with_suffix("").as_posix()
        meta: dict[str, Any] = {
            "id": doc,
            "user_channel": CHANNELS[user],
            "other_channel": CHANNELS[other],
            "duration": info.duration,
        }
        segs = _segments(seg_base, rel)
        if segs is not None:
            n_annotated += 1
            last = max((e for s in segs.values() for _, e in s), default=0.0)
            if last > info.duration + 0.01:
                raise DataError(
                    f"{p}: its segments end at {last} s, after the audio ({info.duration:.3f} s)"
                )
            meta["ipus"] = {"user": segs[CHANNELS[user]], "other": segs[CHANNELS[other]]}
        files[doc] = AudioRef(p, channel=user)
        items.append(SessionItem(doc, "conversation", meta, AudioRef(p, channel=other)))
    ident = {
        "reader": "stereo_conversations",
        "root": str(root.resolve()),
        "pattern": o["pattern"],
        "user_channel": o["user"],
        "n_items": len(items),
        "n_with_segments": n_annotated,
        "listing_sha256": listing_hash(root, paths),
    }
    return SessionDataset(root, files, items, ident)
