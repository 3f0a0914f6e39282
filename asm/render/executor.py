"""The one interface of shard executors (the local ``RenderPool`` and the ``RayExecutor``) and of the
work they run, so the render layer runs jobs it knows nothing about.

A caller (dataset generation) hands an executor a ``ShardWork``: an object sent once to every
worker, whose ``run(synth, job, progress)`` does one job there and whose ``crashed(...)`` decides
what to retry when a job kills its worker. Jobs are small picklable values drawn lazily.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable


class Progress(Protocol):
    """Where a running job reports its position, so a crash or hang can be pinned on one render."""

    def mark(self, position: int, attempt: int) -> None:
        """About to render item ``position`` (its ``attempt``-th candidate); ``-1``: outside a render."""

    def done(self, count: int) -> None:
        """``count`` items of the job are finished (for progress display)."""


class NoProgress:
    def mark(self, position: int, attempt: int) -> None:
        pass

    def done(self, count: int) -> None:
        pass


@runtime_checkable
class ShardWork(Protocol):
    """What every job of one run shares; installed once in each worker."""

    def run(self, synth, job, progress: Progress, *, shared_fs: bool = True) -> Any:
        """Do ``job`` with the worker's open ``synth``; returns a small picklable result.
        ``shared_fs=False``: the worker may not see the caller's files, so the result carries its output."""

    def crashed(self, job, position: int, attempt: int, why: str) -> tuple[Any, str]:
        """``job`` killed its worker while rendering ``position`` (attempt ``attempt``). Returns the job
        to run again (with that render accounted for) and a line for the user; raises ``AsmError`` to give up."""


@runtime_checkable
class ShardExecutor(Protocol):
    """Runs ``ShardWork`` jobs on workers that each hold one opened synth."""

    size: int  # workers
    events: list[str]  # what went wrong and was recovered, in order

    def run_shards(self, work: ShardWork, jobs: Iterable, on_result: Callable[[Any], None],
                   on_tick: Callable[[int], None] | None = None) -> None:
        """Run ``jobs``; ``on_result`` runs here as each completes, ``on_tick(items_in_flight)`` a few times a second."""

    def close(self) -> None: ...

    def __enter__(self) -> "ShardExecutor": ...

    def __exit__(self, *exc) -> None: ...
