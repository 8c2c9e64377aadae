"""Executing requests against a model: longest first, in batches, through the cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .audio import Audio, audio_info, load_audio
from .cache import ResultCache
from .errors import PluginError
from .hashing import digest
from .model import LoglikelihoodRequest, LoglikelihoodResult, SpeechLM

DEFAULT_MAX_BATCH = 64


@dataclass
class ExecStats:
    """Run facts of one task's execution (cache hits vary between runs; the rest does not)."""

    computed: int = 0
    cache_hits: int = 0
    model_calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    resampled: dict[str, int] = field(default_factory=dict)  # "16000->24000": count


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


def model_key(plugin: str, model: SpeechLM) -> str:
    """Cache namespace of a model: plugin name + the model's own identity."""
    return digest({"plugin": plugin, "identity": model.identity()})


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
    infos = {s: audio_info(p, expected_rate) for s, p in files.items()}
    order = sorted(infos, key=lambda s: (-infos[s].frames / infos[s].sample_rate, s))
    target = model.sample_rate
    out: dict[str, dict[str, float]] = {}
    bar = tqdm(total=len(order), desc=desc, unit="file", dynamic_ncols=True)

    def one_batch(stems: list[str]) -> list[None]:
        audios: dict[str, Audio] = {}
        keys: dict[str, str] = {}
        for s in stems:
            a = load_audio(files[s], expected_rate, infos[s])
            keys[s] = digest([mkey, "loglikelihood", a.content_hash(), target])
            audios[s] = a
            if target is not None and a.sample_rate != target:
                # Counted for every file, cached or not, so the record does not vary by run.
                k = f"{a.sample_rate}->{target}"
                stats.resampled[k] = stats.resampled.get(k, 0) + 1
        hits = cache.get_many(keys.values())
        todo = [s for s in stems if keys[s] not in hits]
        for s in stems:
            if keys[s] in hits:
                out[s] = hits[keys[s]]
        stats.cache_hits += len(stems) - len(todo)
        if todo:
            reqs = [LoglikelihoodRequest(audio=_to_rate(audios[s], target), key=s) for s in todo]
            res = model.loglikelihood(reqs)
            stats.model_calls += 1
            stats.batch_sizes.append(len(reqs))
            new = {
                keys[s]: _check_result(r, s)
                for s, r in zip(todo, _check_len(res, reqs), strict=True)
            }
            cache.put_many(new)
            for s in todo:
                out[s] = new[keys[s]]
            stats.computed += len(todo)
        bar.update(len(stems))
        return [None] * len(stems)

    try:
        sizer.run(order, one_batch)
    finally:
        bar.close()
    return out


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
