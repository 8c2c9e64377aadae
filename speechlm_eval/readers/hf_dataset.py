"""Hugging Face datasets, read offline: a ``save_to_disk`` folder, parquet files, or the user's
HF cache of a hub dataset (Dynamic-SUPERB, VoiceBench, SALMon and others are distributed so).

Nothing is ever downloaded: every call into ``datasets`` runs with ``HF_DATASETS_OFFLINE=1``
and ``HF_HUB_OFFLINE=1`` in force (environment *and* the libraries' already-imported flags,
which they read at import time), so a dataset that is not on this machine is a
:class:`~speechlm_eval.errors.DataNotFoundError` saying where it was looked for and how to
provide it.

Audio is read as the stored file bytes (``datasets.Audio(decode=False)``) and decoded with
soundfile, not by ``datasets`` itself: its decoder needs torchcodec and FFmpeg, neither of
which a CPU-only install has (``shared/OFFLINE.md``), and this keeps decoding identical to
:func:`speechlm_eval.audio.load_audio` (float32, every frame checked). Rows are not decoded
up front: :class:`HFDataset` holds the light columns (id, text, label, metadata) and one
:class:`HFAudioRef` per row, which decodes that row's audio when loaded. The refs offer
``info()``, ``seconds(info)``, ``load(info)`` as :class:`~speechlm_eval.audio.AudioRef`
does, so the executor can order and batch them the same way.

Task YAML (``dataset.reader: hf_dataset``)::

    dataset:
      reader: hf_dataset
      subdirs: [voicebench-sd-qa]      # a save_to_disk or parquet folder under the data root
      options:
        split: test
        audio_column: audio
        text_column: prompt
        id_column: file
        sample_rate: 16000             # decode, then resample to this rate (counted)

or, for a dataset in the HF cache,
``hub_id: DynamicSuperb/SpeechTextMatching_LibriSpeech-TestClean`` (+ ``config``, ``revision``,
``cache_dir``); the located data folder is then not read.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio import Audio, AudioInfo
from ..errors import DataError, DataNotFoundError
from ..options import Opt
from ._options import non_empty, read_options, reader_spec

OPTIONS = reader_spec(
    {
        "path": Opt(
            str,
            ".",
            check=non_empty,
            expect="a path relative to the data folder",
            doc="save_to_disk folder, parquet folder or parquet file, under the data folder",
        ),
        "hub_id": Opt(
            str,
            None,
            check=non_empty,
            expect="a Hugging Face dataset id such as 'owner/name'",
            doc="read this hub dataset from the HF cache instead of 'path' (never downloaded)",
        ),
        "config": Opt(str, None, doc="dataset configuration (subset) name"),
        "split": Opt(str, "test", check=non_empty, expect="a split name"),
        "revision": Opt(str, None, doc="hub revision the cache must hold (hub_id only)"),
        "cache_dir": Opt(
            str, None, identity=False, doc="HF datasets cache (default: HF_DATASETS_CACHE)"
        ),
        "audio_column": Opt(str, "audio", check=non_empty, expect="a column name"),
        "text_column": Opt(str, None, doc="reference text / answer column"),
        "label_column": Opt(str, None, doc="class label column (ClassLabel ids become names)"),
        "id_column": Opt(str, None, doc="unique id column (default: the row number)"),
        "sample_rate": Opt(
            int, None, gt=0, doc="resample every row to this rate (null: keep the stored rate)"
        ),
        "downmix": Opt(
            str,
            "error",
            choices=("error", "mean"),
            doc="multichannel audio: 'error' (refuse) or 'mean' (average the channels)",
        ),
    }
)


# --- offline guard -------------------------------------------------------------------------------


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Force the HF libraries offline for the duration (environment and imported flags).

    ``datasets.config.HF_HUB_OFFLINE`` and ``huggingface_hub.constants.HF_HUB_OFFLINE`` are
    computed when those modules are first imported; setting the environment variables later
    would not reach them, so both are patched too, and everything is restored afterwards.
    """
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst

    env_keys = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    saved_env = {k: os.environ.get(k) for k in env_keys}
    saved = (dconfig.HF_HUB_OFFLINE, dconfig.HF_DATASETS_OFFLINE, hconst.HF_HUB_OFFLINE)
    os.environ.update(dict.fromkeys(env_keys, "1"))
    dconfig.HF_HUB_OFFLINE = dconfig.HF_DATASETS_OFFLINE = True
    hconst.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dconfig.HF_HUB_OFFLINE, dconfig.HF_DATASETS_OFFLINE, hconst.HF_HUB_OFFLINE = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- opening the dataset -------------------------------------------------------------------------


def _pick_split(obj: Any, split: str, where: str) -> Any:
    """``obj`` if it is one split, or its ``split`` (a DatasetDict); a clear error otherwise."""
    from datasets import DatasetDict

    if isinstance(obj, DatasetDict):
        if split not in obj:
            raise DataError(
                f"{where}: split {split!r} does not exist; the dataset has: "
                f"{', '.join(sorted(obj)) or 'no splits'}"
            )
        return obj[split]
    # A single saved Dataset carries the split it was made from (or none).
    if obj.split is not None and str(obj.split) != split:
        raise DataError(
            f"{where}: holds only the split {str(obj.split)!r}, the task asks for {split!r}"
        )
    return obj


def _split_error(e: Exception, split: str, where: str) -> DataError | None:
    """``datasets``' unknown-split error (a ValueError/KeyError whose text names the split)."""
    text = str(e)
    if "Unknown split" in text or ("split" in text.lower() and repr(split) in text):
        return DataError(f"{where}: split {split!r} does not exist ({text.splitlines()[0]})")
    return None


def _open_local(path: Path, opts: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import datasets

    where = str(path)
    if not path.exists():
        raise DataNotFoundError(
            f"{path}: not found; expected a folder written by Dataset.save_to_disk / "
            "DatasetDict.save_to_disk, a folder of parquet files, or a parquet file"
        )
    saved = path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json"))
    with offline():
        if saved:
            try:
                obj = datasets.load_from_disk(str(path))
            except Exception as e:  # corrupt or foreign folders raise many types
                raise DataError(f"{where}: cannot read the saved dataset ({e})") from None
            ds = _pick_split(obj, opts["split"], where)
            if opts["config"] is not None and opts["config"] != ds.info.config_name:
                raise DataError(
                    f"{where}: the saved dataset is configuration {ds.info.config_name!r}, the "
                    f"task asks for {opts['config']!r}"
                )
            return ds, {"format": "save_to_disk"}
        if path.is_file() and path.suffix == ".parquet":
            kwargs: dict[str, Any] = {"data_files": {opts["split"]: str(path)}}
            src = "parquet"
        elif path.is_dir() and any(path.rglob("*.parquet")):
            kwargs, src = {}, str(path)  # datasets maps file names (test-*.parquet) to splits
        else:
            raise DataError(
                f"{where}: neither a save_to_disk folder (state.json / dataset_dict.json) nor "
                "parquet data (*.parquet)"
            )
        try:
            ds = datasets.load_dataset(
                src,
                name=opts["config"],
                split=opts["split"],
                cache_dir=opts["cache_dir"],
                **kwargs,
            )
        except (ValueError, KeyError) as e:
            err = _split_error(e, opts["split"], where)
            if err:
                raise err from None
            raise DataError(f"{where}: cannot read the parquet dataset ({e})") from None
    return ds, {"format": "parquet"}


def _open_hub(opts: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import datasets
    import datasets.config as dconfig

    hub_id = opts["hub_id"]
    cache = opts["cache_dir"] or str(dconfig.HF_DATASETS_CACHE)
    with offline():
        try:
            ds = datasets.load_dataset(
                hub_id,
                name=opts["config"],
                split=opts["split"],
                revision=opts["revision"],
                cache_dir=opts["cache_dir"],
            )
        except (ValueError, KeyError) as e:
            err = _split_error(e, opts["split"], f"hub dataset {hub_id!r}")
            if err:
                raise err from None
            if "Couldn't find cache" in str(e):  # cached, but not this configuration
                raise DataNotFoundError(f"hub dataset {hub_id!r} in {cache}: {e}") from None
            raise DataError(
                f"hub dataset {hub_id!r}: cannot read it from the cache ({e})"
            ) from None
        except Exception as e:  # not cached: FileNotFoundError, ConnectionError, hub errors
            raise DataNotFoundError(
                f"hub dataset {hub_id!r} (config {opts['config']!r}, split {opts['split']!r}) is "
                f"not in the HF datasets cache {cache} and nothing is downloaded here "
                f"({type(e).__name__}: {str(e)[:200]}); provide it: on a machine with internet run "
                f"datasets.load_dataset({hub_id!r}, ...).save_to_disk(DIR) and point the task's "
                "'path' at DIR, or fill this cache (HF_DATASETS_CACHE / cache_dir)"
            ) from None
    files = [c["filename"] for c in ds.cache_files]
    # The cache path is <cache>/<owner>___<name>/<config>/<version>/<hash>/..., the hash being
    # the hub commit the data was downloaded at. Offline, datasets takes the most recent cached
    # copy whatever revision is asked for, so the request is checked here.
    resolved = Path(files[0]).parent.name if files else None
    rev = opts["revision"]
    if rev is not None and not (resolved and resolved.startswith(rev)):
        raise DataError(
            f"hub dataset {hub_id!r}: the cache {cache} holds revision {resolved!r}, the task "
            f"asks for {rev!r} (give the commit hash; branch and tag names cannot be "
            "resolved offline)"
        )
    return ds, {"format": "hub_cache", "cache_dir": cache, "cached_revision": resolved}


# --- audio ---------------------------------------------------------------------------------------


@dataclass
class DecodeStats:
    """What decoding did so far (rows are decoded lazily, so this grows as they are loaded)."""

    decoded: int = 0
    resampled: int = 0  # rows whose stored rate differed from ``sample_rate``
    downmixed: int = 0  # multichannel rows averaged to mono (downmix: mean)
    source_rates: dict[int, int] = field(default_factory=dict)  # stored rate -> rows
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """Plain-data form for results."""
        with self._lock:
            return {
                "decoded": self.decoded,
                "resampled": self.resampled,
                "downmixed": self.downmixed,
                "source_rates": {str(k): v for k, v in sorted(self.source_rates.items())},
            }


class _AudioColumn:
    """The audio column of one split, as stored bytes (``decode=False``), shared by the refs."""

    def __init__(
        self, ds: Any, column: str, where: str, rate: int | None, downmix: str, base: Path | None
    ) -> None:
        from datasets import Audio as HFAudio

        self.table = ds.select_columns([column]).cast_column(column, HFAudio(decode=False))
        self.column = column
        self.where = where
        self.rate = rate
        self.downmix = downmix
        self.base = base  # folder that relative audio paths are resolved against
        self.stats = DecodeStats()

    def _bytes(self, row: int) -> tuple[Any, str]:
        cell = self.table[row][self.column]
        label = f"{self.where} row {row}"
        if cell is None:
            raise DataError(f"{label}: column {self.column!r} is empty (no audio)")
        if cell.get("bytes"):
            return io.BytesIO(cell["bytes"]), label
        path = cell.get("path")
        if not path:
            raise DataError(f"{label}: column {self.column!r} holds neither bytes nor a path")
        p = Path(path)
        if not p.is_absolute() and self.base is not None:
            p = self.base / p
        if not p.is_file():
            raise DataError(
                f"{label}: the audio is not embedded and its file {p} does not exist "
                "(save the dataset with the audio embedded, e.g. to parquet)"
            )
        return str(p), f"{label} ({p})"

    def info(self, row: int) -> AudioInfo:
        src, label = self._bytes(row)
        try:
            i = sf.info(src)
        except Exception as e:
            raise DataError(f"{label}: cannot read audio ({e})") from None
        return AudioInfo(Path(label), int(i.samplerate), int(i.frames), int(i.channels), i.subtype)

    def load(self, row: int) -> Audio:
        src, label = self._bytes(row)
        try:
            data, sr = sf.read(src, dtype="float32", always_2d=True)
        except Exception as e:
            raise DataError(f"{label}: cannot decode audio ({e})") from None
        if data.shape[1] > 1:
            if self.downmix != "mean":
                raise DataError(
                    f"{label}: audio has {data.shape[1]} channels, expected mono (set the "
                    "reader option downmix: mean to average the channels)"
                )
            mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)
        else:
            mono = np.ascontiguousarray(data[:, 0])
        audio = Audio(mono, int(sr), label)
        out = audio.resample(self.rate) if self.rate else audio
        with self.stats._lock:
            self.stats.decoded += 1
            self.stats.resampled += out is not audio
            self.stats.downmixed += data.shape[1] > 1
            self.stats.source_rates[int(sr)] = self.stats.source_rates.get(int(sr), 0) + 1
        return out


@dataclass(frozen=True)
class HFAudioRef:
    """The audio of one row, decoded only when loaded (mono float32, at the task's rate).

    Same reading interface as :class:`~speechlm_eval.audio.AudioRef`: ``info()`` reads the
    stored header, ``seconds(info)`` is the length after resampling, ``load(info)`` decodes.
    """

    column: _AudioColumn = field(repr=False, compare=False)
    row: int

    def info(self) -> AudioInfo:
        """Header of the stored audio (rate, frames, channels) without decoding."""
        return self.column.info(self.row)

    def seconds(self, info: AudioInfo) -> float:
        return info.duration

    def load(self, info: AudioInfo | None = None) -> Audio:
        """Decode, downmix if allowed, resample to the task's rate (``info`` is not needed)."""
        return self.column.load(self.row)


@dataclass(frozen=True)
class HFRow:
    """One row's light columns; its audio is ``HFDataset.audio[id]``."""

    id: str
    index: int  # row number in the split
    text: str | None = None
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class HFDataset:
    """A split of a Hugging Face dataset: rows in dataset order, audio decoded lazily per row.

    ``files`` is empty (the audio is inside the dataset's Arrow/parquet files): use ``audio``
    (id -> :class:`HFAudioRef`) or :meth:`iter_audio`. ``identity`` records where it came
    from (source path or hub id, config, split, requested and cached revision, format),
    ``fingerprint`` (``Dataset._fingerprint`` of the split as read), the row count and the
    columns used; :attr:`stats` counts what decoding did (resampled and downmixed rows).
    """

    root: Path
    rows: list[HFRow]
    audio: dict[str, HFAudioRef]
    identity: dict[str, Any]
    stats: DecodeStats
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def items(self) -> list[HFRow]:
        return self.rows

    def doc_ids(self) -> list[str]:
        """Row ids in dataset order (one row is one doc for ``--limit``)."""
        return [r.id for r in self.rows]

    def limited(self, limit: int | None) -> HFDataset:
        """The first ``limit`` rows, as lm-evaluation-harness' ``--limit`` does."""
        if limit is None:
            return self
        rows = self.rows[:limit]
        return HFDataset(
            self.root, rows, {r.id: self.audio[r.id] for r in rows}, self.identity, self.stats
        )

    def iter_audio(self) -> Iterator[tuple[HFRow, Audio]]:
        """Rows with their decoded audio, one at a time (never all in memory)."""
        for r in self.rows:
            yield r, self.audio[r.id].load()


def _check_columns(ds: Any, opts: dict[str, Any], where: str) -> None:
    from datasets import Audio as HFAudio

    cols = list(ds.column_names)
    for key in ("audio_column", "text_column", "label_column", "id_column"):
        name = opts[key]
        if name is not None and name not in cols:
            raise DataError(
                f"{where}: no column {name!r} (option {key}); the columns are: {', '.join(cols)}"
            )
    feat = ds.features[opts["audio_column"]]
    if not isinstance(feat, HFAudio):
        raise DataError(
            f"{where}: column {opts['audio_column']!r} is not audio (its feature is {feat!r}); "
            "expected a datasets.Audio column"
        )


def _as_text(value: Any, what: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: {what} must be a string, got {type(value).__name__} {value!r}")
    return value


def read_hf_dataset(root: Path, options: dict[str, Any]) -> HFDataset:
    """Read one split of a Hugging Face dataset offline (see the module docstring)."""
    from datasets import Audio as HFAudio
    from datasets import ClassLabel

    opts = read_options("hf_dataset", OPTIONS, options)
    if opts["hub_id"] is not None:
        ds, source = _open_hub(opts)
        where = f"hub dataset {opts['hub_id']!r} split {opts['split']!r}"
        base = None
        source["hub_id"] = opts["hub_id"]
    else:
        if opts["revision"] is not None:
            raise DataError("hf_dataset reader: option 'revision' applies to hub_id only")
        path = (root / opts["path"]).resolve()
        ds, source = _open_local(path, opts)
        where = f"{path} split {opts['split']!r}"
        base = path if path.is_dir() else path.parent
        source["path"] = str(path)
    fingerprint = ds._fingerprint  # before any cast below changes it
    _check_columns(ds, opts, where)
    if len(ds) == 0:
        raise DataError(f"{where}: the split has no rows")

    label_feat = ds.features[opts["label_column"]] if opts["label_column"] else None
    light = [
        c for c in (opts["id_column"], opts["text_column"], opts["label_column"]) if c is not None
    ]
    # Other audio columns (audio2.. of multi-audio instances) are not metadata.
    meta_cols = [
        c for c in ds.column_names if c not in light and not isinstance(ds.features[c], HFAudio)
    ]
    column = _AudioColumn(
        ds, opts["audio_column"], where, opts["sample_rate"], opts["downmix"], base
    )
    rows: list[HFRow] = []
    audio: dict[str, HFAudioRef] = {}
    seen: dict[str, int] = {}
    # Light columns only: iterating them never touches the audio bytes.
    keep = list(dict.fromkeys(light + meta_cols))
    # A table of no columns iterates as no rows: an audio-only dataset gets empty records.
    records = ds.select_columns(keep) if keep else ({} for _ in range(len(ds)))
    for i, rec in enumerate(records):
        rwhere = f"{where} row {i}"
        if opts["id_column"]:
            raw = rec[opts["id_column"]]
            if raw is None or raw == "" or isinstance(raw, bool):
                raise DataError(f"{rwhere}: id column {opts['id_column']!r} is empty ({raw!r})")
            rid = str(raw)
        else:
            rid = f"{i:06d}"
        if rid in seen:
            raise DataError(f"{rwhere}: duplicated id {rid!r} (first at row {seen[rid]})")
        seen[rid] = i
        label = None
        if opts["label_column"]:
            value = rec[opts["label_column"]]
            if isinstance(label_feat, ClassLabel) and isinstance(value, int):
                label = label_feat.int2str(value)
            elif value is not None:
                label = str(value)
        text = _as_text(rec[opts["text_column"]], "text", rwhere) if opts["text_column"] else None
        rows.append(HFRow(rid, i, text, label, {c: rec[c] for c in meta_cols}))
        audio[rid] = HFAudioRef(column, i)

    identity = {
        "reader": "hf_dataset",
        **source,
        "config": opts["config"] or ds.info.config_name,
        "split": opts["split"],
        "revision": opts["revision"],
        "fingerprint": fingerprint,
        "n_rows": len(rows),
        "columns": {
            k: opts[k] for k in ("audio_column", "text_column", "label_column", "id_column")
        },
        "sample_rate": opts["sample_rate"],
        # The rate the dataset's Audio feature declares (datasets would resample to it when
        # decoding); the bytes are read at their own rate and resampled to sample_rate only.
        "feature_sample_rate": ds.features[opts["audio_column"]].sampling_rate,
        "downmix": opts["downmix"],
        "label_names": list(label_feat.names) if isinstance(label_feat, ClassLabel) else None,
    }
    return HFDataset(Path(source.get("path", root)), rows, audio, identity, column.stats)
