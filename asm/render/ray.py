"""Shard jobs on Ray actors (``pip install 'asm[ray]'``): the same ``ShardExecutor`` as ``RenderPool``.

Each actor opens the synth once. Actors return the encoded output (``shared_fs=False``); the caller
writes it, so the cluster needs no shared filesystem, and the shards are byte-identical to the
local executor's. Ray gives no shared memory to pin a crash on one render, so an actor's death is
counted against its job, which is retried a few times before generation stops.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from asm.errors import AsmError
from asm.render.cores import resolve_workers
from asm.render.executor import NoProgress, ShardWork
from asm.render.queue import LazyQueue
from asm.synth.host import open_synth

log = logging.getLogger("asm.render")

MAX_ACTOR_DEATHS_PER_JOB = 3


class RayExecutor:
    """Shard generation on Ray actors (one per worker, each with the synth open once)."""

    def __init__(self, spec, workers: int | str | None = "auto", address: str | None = None,
                 on_event: Callable[[str], None] | None = None):
        try:
            import ray
        except ImportError:
            raise AsmError("--executor ray needs Ray: pip install 'asm[ray]'") from None
        self.ray = ray
        self.spec = spec
        self.on_event = on_event or (lambda text: log.warning(text))
        self.events: list[str] = []
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, include_dashboard=False)
                else:
                    n = resolve_workers(workers)
                    ray.init(num_cpus=n, log_to_driver=False, include_dashboard=False)
            except Exception as exc:  # noqa: BLE001 - connection problems are the user's to fix
                raise AsmError(f"cannot start or join Ray{f' at {address}' if address else ''}: {exc}") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = cpus if workers in (None, "auto") else min(resolve_workers(workers), max(1, cpus))
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
        self.actors = [self._actor_cls.remote(spec) for _ in range(self.size)]

    def run_shards(self, work: ShardWork, jobs: Iterable, on_result: Callable[[Any], None],
                   on_tick: Callable[[int], None] | None = None) -> None:
        ray = self.ray
        work_ref = ray.put(work)
        queue = LazyQueue(jobs)
        inflight: dict = {}
        crashes: dict[int, int] = {}
        idle = list(range(len(self.actors)))
        while queue or inflight:
            while idle and queue:
                i = idle.pop()
                job = queue.popleft()
                inflight[self.actors[i].run.remote(work_ref, job)] = (i, job)
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in done:
                i, job = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if hasattr(exc, "cause") else None
                    if isinstance(cause, AsmError):
                        raise AsmError(str(cause)) from None
                    raise RuntimeError(f"Ray worker failed: {exc}") from None
                except ray.exceptions.RayActorError as exc:
                    key = id(job)
                    crashes[key] = crashes.get(key, 0) + 1
                    name = getattr(job, "index", "?")
                    text = f"Ray worker died on job {name} ({type(exc).__name__}); starting a replacement"
                    self.events.append(text)
                    self.on_event(text)
                    if crashes[key] > MAX_ACTOR_DEATHS_PER_JOB:
                        raise AsmError(f"Ray workers died {crashes[key]} times on job {name}; giving up")
                    self.actors[i] = self._actor_cls.remote(self.spec)
                    queue.appendleft(job)
                    idle.append(i)
                    continue
                idle.append(i)
                on_result(result)
            if on_tick is not None:
                on_tick(0)

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self._started:
            self.ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RayWorker:
    def __init__(self, spec):
        import torch

        torch.set_num_threads(1)

        self.synth = open_synth(spec, isolate=False)

    def run(self, work: ShardWork, job):
        return work.run(self.synth, job, NoProgress(), shared_fs=False)
