"""Data-parallel runs on torch.distributed (``torchrun`` / ``accelerate launch``).

Both launchers set ``RANK``, ``WORLD_SIZE`` (and ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``);
when ``WORLD_SIZE`` > 1 the run joins the process group, every rank takes every
``world_size``-th request of the longest-first order, and the per-request results are
gathered on every rank (scoring is cheap and identical everywhere); only rank 0 writes
files. Requests are cached by content, never by rank, so the shared SQLite cache is
independent of the world size: a run killed at 4 processes resumes at 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: items ``rank, rank + world, ...`` (balanced on a sorted list)."""
        return list(items[self.rank :: self.world_size])

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as td

        out: list[Any] = [None] * self.world_size
        td.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as td

            td.barrier()


_CURRENT = Dist()


def current() -> Dist:
    """The process's place in the run (rank 0 of 1 outside torchrun)."""
    return _CURRENT


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {v!r}") from None


def init_from_env(device: str | None = None) -> Dist:
    """Join the process group when launched by torchrun/accelerate with more than one process."""
    global _CURRENT
    world = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    if world <= 1:
        _CURRENT = Dist()
        return _CURRENT
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}")
    import torch
    import torch.distributed as td

    if not td.is_initialized():
        # gloo for CPU runs; NCCL only when this rank computes on a GPU.
        cuda = (device or "").startswith("cuda") and torch.cuda.is_available()
        if cuda:
            local = _env_int("LOCAL_RANK") or 0
            torch.cuda.set_device(local)
        td.init_process_group(backend="nccl" if cuda else "gloo")
    _CURRENT = Dist(rank=td.get_rank(), world_size=td.get_world_size())
    return _CURRENT


def shutdown() -> None:
    global _CURRENT
    if _CURRENT.enabled:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
    _CURRENT = Dist()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 does the body first (e.g. builds missing data), the others wait, then follow."""
    d = current()
    if not d.is_main:
        d.barrier()
    yield
    if d.is_main:
        d.barrier()
