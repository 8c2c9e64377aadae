"""Executing requests against a model: longest first, in batches, through the cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import distributed, registry
from .audio import Audio, audio_info, load_audio
from .cache import BlobStore, ResultCache
from .errors import PluginError
from .hashing import digest
from .model import (
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ResynthesizeRequest,
    SpeechLM,
)
from .provenance import code_identity

DEFAULT_MAX_BATCH = 64


@dataclass
class ExecStats:
    """Run facts of one task's execution (cache hits vary between runs; the rest does not)."""

    computed: int = 0
    cache_hits: int = 0
    model_calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    resampled: dict[str, int] = field(default_factory=dict)  # "16000->24000": count

    def merge(self, other: ExecStats) -> None:
        """Add another record (another rank's, or a sub-run's) into this one."""
        self.computed += other.computed
        self.cache_hits += other.cache_hits
        self.model_calls += other.model_calls
        self.batch_sizes.extend(other.batch_sizes)
        for k, v in other.resampled.items():
            self.resampled[k] = self.resampled.get(k, 0) + v


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    try:
        import torch

        if isinstance(e, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


class BatchSizer:
    """A fixed batch size, or ``auto``: start large and halve on out-of-memory."""

    def __init__(self, batch_size: int | str, max_batch_size: int | None = None) -> None:
        self.auto = batch_size == "auto"
        self.size = int(max_batch_size or DEFAULT_MAX_BATCH) if self.auto else int(batch_size)

    def run(self, items: list[Any], fn: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """Apply ``fn`` to ``items`` in chunks of the current size, backing off on OOM when auto."""
        out: list[Any] = []
        i = 0
        while i < len(items):
            chunk = items[i : i + self.size]
            try:
                out.extend(fn(chunk))
            except Exception as e:
                if not (self.auto and _is_oom(e) and self.size > 1):
                    raise
                self.size = max(1, self.size // 2)
                _free_accelerator_memory()
                continue
            i += len(chunk)
        return out


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def model_code(plugin: str, model: SpeechLM) -> dict[str, Any]:
    """The code identity of a model plugin (see :func:`provenance.code_identity`)."""
    registered = plugin in registry.names("models")
    dist = registry.distribution("models", plugin) if registered else None
    return code_identity(type(model), dist)


def model_key(plugin: str, model: SpeechLM) -> str:
    """Cache namespace of a model: plugin name, the model's own identity and its code identity.

    The code identity is added here rather than left to ``identity()``, so that a plugin that
    overrides ``identity()`` without it still never gets outputs of other code from the cache.
    """
    return digest(
        {"plugin": plugin, "identity": model.identity(), "code": model_code(plugin, model)}
    )


@dataclass(frozen=True)
class Capability:
    """How one capability's requests are made, sent, checked and cached.

    ``make``: (stem, audio at the model's rate) -> request; ``call``: the model's batched
    method; ``store``: (stem, result) -> JSON value for the cache (may put arrays in the
    blob store under ``key``); ``load``: JSON value (+ key) -> the value the scorer gets, or
    ``None`` when a blob is gone (then the request is recomputed).
    """

    name: str
    make: Callable[[str, Audio], Any]
    call: Callable[[list[Any]], list[Any]]
    store: Callable[[str, str, Any], Any]
    load: Callable[[str, Any], Any]
    options: tuple[Any, ...] = ()  # request options that change the result (part of the key)


def run_requests(
    model: SpeechLM,
    mkey: str,
    files: Mapping[str, Path],
    cap: Capability,
    *,
    expected_rate: int | None,
    cache: ResultCache,
    sizer: BatchSizer,
    desc: str,
    stats: ExecStats,
) -> dict[str, Any]:
    """One request per audio file, longest first, through the cache; returns ``stem -> value``."""
    dist = distributed.current()
    infos = {s: audio_info(p, expected_rate) for s, p in files.items()}
    order = sorted(infos, key=lambda s: (-infos[s].frames / infos[s].sample_rate, s))
    order = dist.shard(order)  # every world_size-th of the longest-first order
    target = model.sample_rate
    out: dict[str, Any] = {}
    local = ExecStats()  # this rank's counts; merged into ``stats`` at the end
    bar = tqdm(
        total=len(order),
        desc=desc if not dist.enabled else f"{desc} [rank {dist.rank}]",
        unit="file",
        dynamic_ncols=True,
    )

    def one_batch(stems: list[str]) -> list[None]:
        audios: dict[str, Audio] = {}
        keys: dict[str, str] = {}
        for s in stems:
            a = load_audio(files[s], expected_rate, infos[s])
            keys[s] = digest([mkey, cap.name, a.content_hash(), target, *cap.options])
            audios[s] = a
            if target is not None and a.sample_rate != target:
                # Counted for every file, cached or not, so the record does not vary by run.
                k = f"{a.sample_rate}->{target}"
                local.resampled[k] = local.resampled.get(k, 0) + 1
        hits = cache.get_many(keys.values())
        todo = []
        for s in stems:
            value = cap.load(keys[s], hits[keys[s]]) if keys[s] in hits else None
            if value is None:
                todo.append(s)
            else:
                out[s] = value
        local.cache_hits += len(stems) - len(todo)
        if todo:
            reqs = [cap.make(s, _to_rate(audios[s], target)) for s in todo]
            res = _check_len(cap.call(reqs), reqs)
            local.model_calls += 1
            local.batch_sizes.append(len(reqs))
            new = {keys[s]: cap.store(keys[s], s, r) for s, r in zip(todo, res, strict=True)}
            cache.put_many(new)  # after the blobs: a committed row always has its blob
            for s in todo:
                out[s] = cap.load(keys[s], new[keys[s]])
            local.computed += len(todo)
        bar.update(len(stems))
        return [None] * len(stems)

    try:
        sizer.run(order, one_batch)
    finally:
        bar.close()
    if not dist.enabled:
        stats.merge(local)
        return out
    merged: dict[str, Any] = {}
    for part, st in dist.gather((out, local)):  # every rank gets every result
        merged.update(part)
        stats.merge(st)
    return merged


def loglikelihood_capability(model: SpeechLM) -> Capability:
    return Capability(
        name="loglikelihood",
        make=lambda s, a: LoglikelihoodRequest(audio=a, key=s),
        call=model.loglikelihood,
        store=lambda _k, s, r: _check_result(r, s),
        load=lambda _k, v: v,
    )


def encode_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``encode``: frame features (or units) per file, kept as ``.npy`` blobs beside the cache."""

    def store(key: str, stem: str, r: Any) -> dict[str, Any]:
        feats, rate = _check_encoded(r, stem)
        blobs.put(key, feats)
        return {"frame_rate": rate, "shape": list(feats.shape)}

    def load(key: str, v: dict[str, Any]) -> tuple[np.ndarray, float] | None:
        feats = blobs.get(key)
        return None if feats is None else (feats, float(v["frame_rate"]))

    return Capability(
        "encode", lambda s, a: EncodeRequest(audio=a, key=s), model.encode, store, load
    )


def resynthesize_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``resynthesize``: output audio per file, kept as ``.npy`` blobs beside the cache."""

    def store(key: str, stem: str, r: Any) -> dict[str, Any]:
        if not isinstance(r, Audio):
            raise PluginError(
                f"model returned {type(r).__name__} for {stem!r} from resynthesize; "
                "expected speechlm_eval.Audio"
            )
        blobs.put(key, r.samples)
        return {"sample_rate": int(r.sample_rate)}

    def load(key: str, v: dict[str, Any]) -> Audio | None:
        x = blobs.get(key)
        return None if x is None else Audio(x, int(v["sample_rate"]), f"resynthesis:{key[:12]}")

    return Capability(
        "resynthesize",
        lambda s, a: ResynthesizeRequest(audio=a, key=s),
        model.resynthesize,
        store,
        load,
    )


def _check_encoded(r: Any, stem: str) -> tuple[np.ndarray, float]:
    if not isinstance(r, EncodeResult):
        raise PluginError(
            f"model returned {type(r).__name__} for {stem!r} from encode; "
            "expected speechlm_eval.EncodeResult"
        )
    f = np.asarray(r.features)
    if f.ndim not in (1, 2) or f.shape[0] == 0:
        raise PluginError(f"encode({stem!r}): expected (frames,) or (frames, dims), got {f.shape}")
    if f.dtype.kind == "f" and not np.all(np.isfinite(f)):
        raise PluginError(f"encode({stem!r}): features contain NaN or infinite values")
    rate = float(r.frame_rate)
    if not (np.isfinite(rate) and rate > 0):
        raise PluginError(f"encode({stem!r}): frame_rate must be a positive number, got {rate}")
    return f, rate


def run_loglikelihood(
    model: SpeechLM,
    mkey: str,
    files: Mapping[str, Path],
    *,
    expected_rate: int | None,
    cache: ResultCache,
    sizer: BatchSizer,
    desc: str,
    stats: ExecStats,
) -> dict[str, dict[str, float]]:
    """Log-likelihood of every file, longest first; returns ``stem -> {logprob, num_tokens}``."""
    return run_requests(
        model,
        mkey,
        files,
        loglikelihood_capability(model),
        expected_rate=expected_rate,
        cache=cache,
        sizer=sizer,
        desc=desc,
        stats=stats,
    )


def _to_rate(a: Audio, target: int | None) -> Audio:
    return a if target is None else a.resample(target)


def _check_len(res: Any, reqs: list[Any]) -> list[Any]:
    if not isinstance(res, list) or len(res) != len(reqs):
        n = len(res) if isinstance(res, list) else type(res).__name__
        raise PluginError(f"model returned {n} results for {len(reqs)} requests (expected a list)")
    return res


def _check_result(r: Any, stem: str) -> dict[str, float]:
    if not isinstance(r, LoglikelihoodResult):
        raise PluginError(
            f"model returned {type(r).__name__} for {stem!r}; "
            "expected speechlm_eval.LoglikelihoodResult"
        )
    return {"logprob": float(r.logprob), "num_tokens": int(r.num_tokens)}
