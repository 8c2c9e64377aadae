"""The executor: typed requests to a model or a judge, longest first, in batches, through the
cache (:func:`execute`); and the jobs of the model capabilities."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import distributed, registry
from .audio import Audio, AudioRef, TwoChannelAudio
from .cache import BlobStore, ResultCache
from .errors import PluginError
from .hashing import digest, sha256_file
from .model import (
    ContinueRequest,
    ConverseRequest,
    ConverseResult,
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ProsodyStreams,
    ProsodyStreamsError,
    RespondRequest,
    RespondResult,
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
class Item:
    """One request to be made, lazily: ``make(conform)`` builds the typed request (loading its
    audio only then, so a run holds one batch of audio at a time) and passes every audio it
    puts into the request through ``conform``, which brings it to the worker's rate (explicitly,
    counted). ``cost`` orders the work longest first; ``label`` names the item in messages and
    breaks ties."""

    label: str
    cost: float
    make: Callable[[Callable[[Audio], Audio]], Any]


@dataclass(frozen=True)
class Job:
    """What one worker (a model's capability or a judge's method) does with typed requests.

    ``name``: the capability or method, part of the cache key; ``worker_key``: the model's or
    judge's identity digest (:func:`model_key`, ``judges.judge_key``); ``call``: the batched
    method (a list of requests in, a list of results out); ``sample_rate``: the rate its audio
    must have (``None``: any); ``store``: (cache key, request, result) -> JSON value for the
    cache, checking the result (may put arrays in the blob store under the key); ``load``: (cache
    key, JSON) -> the value callers get, or ``None`` when a blob is gone (then recomputed).
    """

    name: str
    worker_key: str
    call: Callable[[list[Any]], list[Any]]
    sample_rate: int | None = None
    store: Callable[[str, Any, Any], Any] = field(default=lambda _k, _req, res: res)
    load: Callable[[str, Any], Any] = field(default=lambda _k, v: v)


def request_key(job: Job, request: Any) -> str:
    """Cache key of a request: the worker's identity, the method and the request's fingerprint
    (content hashes and every option that changes the output, seeds included)."""
    return digest([job.worker_key, job.name, request.fingerprint()])


def execute(
    job: Job,
    items: Sequence[Item],
    *,
    cache: ResultCache,
    sizer: BatchSizer,
    stats: ExecStats,
    desc: str | None = None,
    shard: bool = True,
    unit: str = "file",
) -> list[Any]:
    """Run ``items`` through ``job``: longest first, in batches, through the cache.

    The one executor of the harness, for models and judges alike. Each request is keyed by
    :func:`request_key`; a key found in the cache (or already computed in this call) is not
    computed again, so identical requests cost one computation and a killed run resumes where
    it stopped (every batch is committed as it finishes). With ``shard`` and a distributed run,
    each rank takes every ``world_size``-th item of the longest-first order and every rank gets
    every value back. Returns the values in the order of ``items``.
    """
    dist = distributed.current()
    sharded = shard and dist.enabled
    order = sorted(range(len(items)), key=lambda i: (-items[i].cost, items[i].label, i))
    if sharded:
        order = dist.shard(order)
    local = ExecStats()  # this rank's counts; merged into ``stats`` at the end
    out: dict[int, Any] = {}
    memo: dict[str, Any] = {}  # values of this call by key: a repeated request is made once
    from_cache: set[str] = set()
    target = job.sample_rate

    def conform(a: Audio) -> Audio:
        if target is None or a.sample_rate == target:
            return a
        # Counted for every request, cached or not, so the record does not vary by run.
        k = f"{a.sample_rate}->{target}"
        local.resampled[k] = local.resampled.get(k, 0) + 1
        return a.resample(target)

    bar = None
    if desc is not None:
        label = desc if not sharded else f"{desc} [rank {dist.rank}]"
        bar = tqdm(total=len(order), desc=label, unit=unit, dynamic_ncols=True)

    def one_batch(idx: list[int]) -> list[None]:
        reqs = {i: items[i].make(conform) for i in idx}
        keys = {i: request_key(job, reqs[i]) for i in idx}
        first: dict[str, int] = {}
        for i in idx:
            first.setdefault(keys[i], i)
        fresh = [k for k in first if k not in memo]
        hits = cache.get_many(fresh)
        for k in fresh:
            if k in hits:
                value = job.load(k, hits[k])
                if value is not None:
                    memo[k] = value
                    from_cache.add(k)
        todo = [k for k in fresh if k not in memo]
        if todo:
            batch = [reqs[first[k]] for k in todo]
            res = _check_len(job.call(batch), batch)
            local.model_calls += 1
            local.batch_sizes.append(len(batch))
            new = {k: job.store(k, req, r) for k, req, r in zip(todo, batch, res, strict=True)}
            cache.put_many(new)  # after the blobs: a committed row always has its blob
            for k in todo:
                memo[k] = job.load(k, new[k])
            local.computed += len(todo)
        for i in idx:
            out[i] = memo[keys[i]]
            local.cache_hits += keys[i] in from_cache
        if bar is not None:
            bar.update(len(idx))
        return [None] * len(idx)

    try:
        sizer.run(order, one_batch)
    finally:
        if bar is not None:
            bar.close()
    if sharded:
        merged: dict[int, Any] = {}
        for part, st in dist.gather((out, local)):  # every rank gets every value
            merged.update(part)
            stats.merge(st)
        out = merged
    else:
        stats.merge(local)
    return [out[i] for i in range(len(items))]


@dataclass(frozen=True)
class Capability:
    """How one capability's requests are made from a dataset's files, sent, checked and cached.

    ``make``: (stem, audio at the model's rate) -> typed request; ``call``: the model's batched
    method; ``store`` / ``load``: as in :class:`Job`.
    """

    name: str
    make: Callable[[str, Audio], Any]
    call: Callable[[list[Any]], list[Any]]
    store: Callable[[str, Any, Any], Any]
    load: Callable[[str, Any], Any]
    # Harness code that shapes the outputs beyond the model's own (e.g. the converse driver,
    # which places the model's frames on the timeline): name -> SHA-256 of its source. It keys
    # the cached outputs, so they are recomputed when that code changes.
    harness_code: Mapping[str, str] = field(default_factory=dict)

    def job(self, model: SpeechLM, mkey: str) -> Job:
        """The job of this capability of ``model`` (cache namespace ``mkey``, its
        :func:`model_key`), keyed also by what the model says this method's outputs depend
        on beyond it (:meth:`SpeechLM.method_identity`; the same key when it says nothing)
        and by :attr:`harness_code` when there is any."""
        key = method_key(model, mkey, self.name)
        if self.harness_code:
            key = digest({"job": key, "harness_code": dict(self.harness_code)})
        return Job(self.name, key, self.call, model.sample_rate, self.store, self.load)


def method_key(model: SpeechLM, mkey: str, method: str) -> str:
    """``mkey``, or with the model's :meth:`~SpeechLM.method_identity` of ``method`` when it
    has one: a digest of both (so only that method's cached outputs change with it)."""
    get = getattr(model, "method_identity", None)  # a plugin need not subclass SpeechLM
    extra = get(method) if get is not None else {}
    if not extra:
        return mkey
    if not isinstance(extra, dict):
        raise PluginError(
            f"method_identity({method!r}) returned {type(extra).__name__}; expected a dict"
        )
    return digest({"model": mkey, "method": method, "depends_on": extra})


def run_requests(
    model: SpeechLM,
    mkey: str,
    files: Mapping[str, Path | AudioRef],
    cap: Capability,
    *,
    expected_rate: int | None,
    cache: ResultCache,
    sizer: BatchSizer,
    desc: str,
    stats: ExecStats,
    unit: str = "file",
) -> dict[str, Any]:
    """One request per audio file (or :class:`AudioRef` view of one) of a dataset, through
    :func:`execute`: ``stem -> value``. Headers are checked up front; samples are read batch by
    batch."""
    refs = {s: AudioRef.of(p, expected_rate) for s, p in files.items()}
    infos = {s: r.info() for s, r in refs.items()}

    def item(stem: str) -> Item:
        def make(conform: Callable[[Audio], Audio]) -> Any:
            return cap.make(stem, conform(refs[stem].load(infos[stem])))

        return Item(stem, refs[stem].seconds(infos[stem]), make)

    stems = list(files)
    values = execute(
        cap.job(model, mkey),
        [item(s) for s in stems],
        cache=cache,
        sizer=sizer,
        stats=stats,
        desc=desc,
        unit=unit,
    )
    return dict(zip(stems, values, strict=True))


def loglikelihood_capability(model: SpeechLM) -> Capability:
    return Capability(
        name="loglikelihood",
        make=lambda s, a: LoglikelihoodRequest(audio=a, key=s),
        call=model.loglikelihood,
        store=lambda _k, req, r: _check_result(r, req.key),
        load=lambda _k, v: v,
    )


def encode_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``encode``: frame features (or units) per file, kept as ``.npy`` blobs beside the cache."""

    def store(key: str, req: EncodeRequest, r: Any) -> dict[str, Any]:
        feats, rate = _check_encoded(r, req.key)
        blobs.put(key, feats)
        return {"frame_rate": rate, "shape": list(feats.shape)}

    def load(key: str, v: dict[str, Any]) -> tuple[np.ndarray, float] | None:
        feats = blobs.get(key)
        return None if feats is None else (feats, float(v["frame_rate"]))

    return Capability(
        "encode", lambda s, a: EncodeRequest(audio=a, key=s), model.encode, store, load
    )


def _keep_audio(blobs: BlobStore, key: str, a: Audio) -> int:
    """Put an output audio's samples in the blob store under ``key``; its rate goes in the row."""
    blobs.put(key, a.samples)
    return int(a.sample_rate)


def _kept_audio(blobs: BlobStore, key: str, rate: int, source: str) -> Audio | None:
    """The audio :func:`_keep_audio` put under ``key``, or ``None`` when its blob is gone."""
    x = blobs.get(key)
    return None if x is None else Audio(x, int(rate), source)


def resynthesize_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``resynthesize``: output audio per file, kept as ``.npy`` blobs beside the cache."""

    def store(key: str, req: ResynthesizeRequest, r: Any) -> dict[str, Any]:
        if not isinstance(r, Audio):
            raise PluginError(
                f"model returned {type(r).__name__} for {req.key!r} from resynthesize; "
                "expected speechlm_eval.Audio"
            )
        return {"sample_rate": _keep_audio(blobs, key, r)}

    def load(key: str, v: dict[str, Any]) -> Audio | None:
        return _kept_audio(blobs, key, v["sample_rate"], f"resynthesis:{key[:12]}")

    return Capability(
        "resynthesize",
        lambda s, a: ResynthesizeRequest(audio=a, key=s),
        model.resynthesize,
        store,
        load,
    )


def continue_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``continue``: ``num_samples`` sampled continuations per prompt, each kept as a blob
    (speech output) or in the cache row (text output: ``{"texts": [...]}``).

    The request's seed is in its fingerprint, so a resumed run gets the very samples of the
    killed one from the cache rather than new draws. A request whose direction the model does
    not declare in ``continue_modalities`` is refused before the model sees it.
    """

    def call(requests: list[ContinueRequest]) -> list[Any]:
        for req in requests:
            if req.direction not in model.continue_modalities:
                raise PluginError(
                    f"continue({req.key!r}): the model does not serve {req.direction} "
                    f"(its continue_modalities: {', '.join(sorted(model.continue_modalities))})"
                )
        return model.continue_(requests)

    def store(key: str, req: ContinueRequest, r: Any) -> dict[str, Any]:
        kind = {"text": "str", "dialogue": "speechlm_eval.TwoChannelAudio"}.get(
            req.output, "speechlm_eval.Audio"
        )
        if not isinstance(r, list) or len(r) != req.num_samples:
            n = len(r) if isinstance(r, list) else type(r).__name__
            raise PluginError(
                f"continue({req.key!r}): model returned {n} continuations; "
                f"expected a list of {req.num_samples} {kind}"
            )
        if req.output == "text":
            for i, t in enumerate(r):
                if not isinstance(t, str):
                    raise PluginError(
                        f"continue({req.key!r}): continuation {i} is {type(t).__name__}; "
                        "expected str (the request's output is text)"
                    )
            return {"texts": list(r)}
        if req.output == "dialogue":
            want = req.budget(1000.0, f"continue({req.key!r})")[2]  # ms: the exact length
            for i, d in enumerate(r):
                if not isinstance(d, TwoChannelAudio):
                    raise PluginError(
                        f"continue({req.key!r}): continuation {i} is {type(d).__name__}; "
                        "expected speechlm_eval.TwoChannelAudio"
                    )
                if abs(d.duration * 1000 - want) > 1000 / d.sample_rate + 1e-6:
                    raise PluginError(
                        f"continue({req.key!r}): continuation {i} lasts {d.duration:.3f} s; "
                        f"a dialogue continuation must last max_seconds ({want / 1000:g} s)"
                    )
            return {
                "dialogue_rates": [
                    [
                        _keep_audio(blobs, f"{key}.{i}.a", d.a),
                        _keep_audio(blobs, f"{key}.{i}.b", d.b),
                    ]
                    for i, d in enumerate(r)
                ]
            }
        rates = []
        for i, a in enumerate(r):
            if not isinstance(a, Audio):
                raise PluginError(
                    f"continue({req.key!r}): continuation {i} is {type(a).__name__}; "
                    "expected speechlm_eval.Audio"
                )
            rates.append(_keep_audio(blobs, f"{key}.{i}", a))
        return {"sample_rates": rates}

    def load(key: str, v: dict[str, Any]) -> list[Audio] | list[str] | None:
        if "texts" in v:
            return list(v["texts"])
        if "dialogue_rates" in v:
            dialogues = []
            for i, (ra, rb) in enumerate(v["dialogue_rates"]):
                a = _kept_audio(blobs, f"{key}.{i}.a", ra, f"dialogue:{key[:12]}.{i}.a")
                b = _kept_audio(blobs, f"{key}.{i}.b", rb, f"dialogue:{key[:12]}.{i}.b")
                if a is None or b is None:
                    return None
                dialogues.append(TwoChannelAudio(a, b, f"dialogue continuation {key[:12]}.{i}"))
            return dialogues
        out = []
        for i, rate in enumerate(v["sample_rates"]):
            a = _kept_audio(blobs, f"{key}.{i}", rate, f"continuation:{key[:12]}.{i}")
            if a is None:
                return None
            out.append(a)
        return out

    return Capability(
        "continue",
        lambda s, a: ContinueRequest(prompt=a, key=s),
        call,
        store,
        load,
    )


def _keep_streams(blobs: BlobStore, key: str, s: ProsodyStreams) -> dict[str, Any]:
    """Put one :class:`ProsodyStreams`' arrays in the blob store under ``key`` (a (3, n) float64
    array: units, durations, F0; exact for integers below 2**53); the rest goes in the row."""
    blobs.put(key, np.stack([s.units, s.durations, s.f0]).astype(np.float64))
    return s.meta()


def _kept_streams(blobs: BlobStore, key: str, meta: dict[str, Any]) -> ProsodyStreams | None:
    x = blobs.get(key)
    if x is None:
        return None
    edges = meta.get("f0_bin_edges")
    return ProsodyStreams(
        units=x[0],
        durations=x[1],
        f0=x[2],
        unit_frame_rate=float(meta["unit_frame_rate"]),
        f0_kind=meta["f0_kind"],
        f0_bin_edges=None if edges is None else tuple(edges),
        f0_source=meta["f0_source"],
    )


def _check_streams(s: Any, where: str) -> ProsodyStreams:
    if not isinstance(s, ProsodyStreams):
        raise PluginError(
            f"{where} is {type(s).__name__}; expected speechlm_eval.model.ProsodyStreams"
        )
    try:  # validated again: its arrays may have been changed in place since it was built
        ProsodyStreams(
            s.units,
            s.durations,
            s.f0,
            s.unit_frame_rate,
            s.f0_kind,
            s.f0_bin_edges,
            s.f0_source,
        )
    except ProsodyStreamsError as e:
        raise PluginError(f"{where}: malformed ProsodyStreams ({e})") from e
    return s


def _streams_call(method: str, keys: Sequence[str], fn: Callable[[], list[Any]]) -> list[Any]:
    """``fn()`` (the model's ``method`` on a batch of requests), a :class:`ProsodyStreams` it
    builds malformed (a ``ValueError`` from the model's side) reported as the model's fault: a
    PluginError naming the method and the batch's request keys."""
    try:
        return fn()
    except ProsodyStreamsError as e:
        shown = ", ".join(repr(k) for k in keys[:3])
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        which = f"request {shown}" if len(keys) == 1 else f"one of requests {shown}{more}"
        raise PluginError(
            f"{method} ({which}): the model built a malformed ProsodyStreams ({e})"
        ) from e


def _needs_extra(model: SpeechLM, extra: str, method: str) -> None:
    if extra not in getattr(model, "continue_extras", frozenset()):
        raise PluginError(f"{method}: the model does not declare {extra!r} in its continue_extras")


def continue_prosody_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``continue_prosody`` (the ``prosody_streams`` extra of ``continue``): the prosody
    streams of the ``num_samples`` continuations of each prompt, each kept as a blob.

    Cached under its own method name, so its rows never mix with ``continue``'s; the request is
    a :class:`ContinueRequest` as ``continue`` gets it, so equal requests describe the same
    samples (the model's contract). Speech->speech only.
    """

    def call(requests: list[ContinueRequest]) -> list[Any]:
        _needs_extra(model, "prosody_streams", "continue_prosody")
        for req in requests:
            if req.direction != "speech->speech":
                raise PluginError(
                    f"continue_prosody({req.key!r}): prosody streams are defined for "
                    f"speech->speech continuations, got {req.direction}"
                )
        keys = [r.key for r in requests]
        return _streams_call("continue_prosody", keys, lambda: model.continue_prosody(requests))

    def store(key: str, req: ContinueRequest, r: Any) -> dict[str, Any]:
        if not isinstance(r, list) or len(r) != req.num_samples:
            n = len(r) if isinstance(r, list) else type(r).__name__
            raise PluginError(
                f"continue_prosody({req.key!r}): model returned {n} results; expected a list "
                f"of {req.num_samples} ProsodyStreams"
            )
        rows = []
        for i, s in enumerate(r):
            s = _check_streams(s, f"continue_prosody({req.key!r}): sample {i}")
            rows.append(_keep_streams(blobs, f"{key}.{i}", s))
        return {"streams": rows}

    def load(key: str, v: dict[str, Any]) -> list[ProsodyStreams] | None:
        out = []
        for i, meta in enumerate(v["streams"]):
            s = _kept_streams(blobs, f"{key}.{i}", meta)
            if s is None:
                return None
            out.append(s)
        return out

    return Capability(
        "continue_prosody",
        lambda s, a: ContinueRequest(prompt=a, key=s),
        call,
        store,
        load,
    )


def prosody_streams_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``prosody_streams`` (the extra's analysis side): the model's streams of given speech
    (the reference utterances), one per file, kept as blobs. Requests are
    :class:`EncodeRequest` s (an audio and its key), cached under the method name
    ``prosody_streams``; the model's method receives the audios."""

    def call(requests: list[EncodeRequest]) -> list[Any]:
        _needs_extra(model, "prosody_streams", "prosody_streams")
        keys = [r.key for r in requests]
        audios = [r.audio for r in requests]
        return _streams_call("prosody_streams", keys, lambda: model.prosody_streams(audios))

    def store(key: str, req: EncodeRequest, r: Any) -> dict[str, Any]:
        s = _check_streams(r, f"prosody_streams({req.key!r})")
        return _keep_streams(blobs, key, s)

    def load(key: str, v: dict[str, Any]) -> ProsodyStreams | None:
        return _kept_streams(blobs, key, v)

    return Capability(
        "prosody_streams", lambda s, a: EncodeRequest(audio=a, key=s), call, store, load
    )


def respond_capability(model: SpeechLM, blobs: BlobStore) -> Capability:
    """``respond``: a text and/or an audio answer per instruction; the audio kept as a blob."""

    def store(key: str, req: RespondRequest, r: Any) -> dict[str, Any]:
        if not isinstance(r, RespondResult):
            raise PluginError(
                f"respond({req.key!r}): model returned {type(r).__name__}; "
                "expected speechlm_eval.RespondResult"
            )
        if r.text is None and r.audio is None:
            raise PluginError(f"respond({req.key!r}): the answer has neither text nor audio")
        if r.audio is not None and not isinstance(r.audio, Audio):
            raise PluginError(f"respond({req.key!r}): the answer's audio is not an Audio")
        rate = None if r.audio is None else _keep_audio(blobs, key, r.audio)
        return {"text": r.text, "sample_rate": rate}

    def load(key: str, v: dict[str, Any]) -> RespondResult | None:
        if v["sample_rate"] is None:
            return RespondResult(text=v["text"])
        a = _kept_audio(blobs, key, v["sample_rate"], f"response:{key[:12]}")
        return None if a is None else RespondResult(v["text"], a)

    return Capability(
        "respond",
        lambda s, a: RespondRequest(audio=a, key=s),
        model.respond,
        store,
        load,
    )


def converse_capability(model: SpeechLM, blobs: BlobStore, seed: int) -> Capability:
    """``converse``: one streaming session per user channel (:func:`streaming.drive`); the
    model channel kept as a blob, the session's wall-clock figures beside it. A session is
    computed whole or not at all, so a killed run never resumes from half a session."""
    from . import streaming
    from .streaming import drive

    def call(requests: list[ConverseRequest]) -> list[ConverseResult]:
        return [drive(model, r) for r in requests]

    def store(key: str, req: ConverseRequest, r: ConverseResult) -> dict[str, Any]:
        return {"sample_rate": _keep_audio(blobs, key, r.model), "realtime": r.realtime}

    def load(key: str, v: dict[str, Any]) -> ConverseResult | None:
        a = _kept_audio(blobs, key, v["sample_rate"], f"model channel:{key[:12]}")
        return None if a is None else ConverseResult(a, v["realtime"])

    return Capability(
        "converse",
        lambda s, a: ConverseRequest(user=a, key=s, seed=seed),
        call,
        store,
        load,
        harness_code={"speechlm_eval.streaming": sha256_file(streaming.__file__)},
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
