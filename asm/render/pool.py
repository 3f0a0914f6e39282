"""The local render executor: a persistent pool of worker processes, each holding one opened synth.

``RenderPool(spec, workers)`` starts ``workers`` processes (forkserver: the heavy imports are paid
once, see ``asm.render.worker``) that each call ``open_synth(spec, isolate=False)`` once and then
serve two kinds of work:

* ``run_shards(work, jobs, on_result)``: jobs of a ``ShardWork`` (``asm.render.executor``), which
  is installed once in every worker and runs each job there; only a small result comes back.
* ``render(values, notes, duration, reduce=None)``: a batch of candidate presets played with the same
  notes (the search's population), split into contiguous chunks, one message per chunk. Returns, in
  order, the audio of each candidate or ``reduce(audio)`` computed in the worker. ``reduce`` (any
  picklable callable, e.g. an objective holding the target's features) is sent to each worker
  once and reused while the same object is passed again; one with a ``reduce_batch(audios)``
  method gets a worker's whole chunk at once instead (batched scoring).

A worker that dies (a plugin segfault) or stops making progress for ``stall_timeout`` seconds is
detected, reported through ``on_event``, killed and replaced, and its work is re-queued. A crash
during a render is pinned on that render: the candidate gets ``None`` in ``render``; in
``run_shards`` the work's ``crashed()`` accounts for it (a rejected preset) and decides the retry,
so a steady crash rate only slows the work. A job that keeps killing workers outside any render
fails with an ``AsmError`` instead of looping.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from asm.errors import AsmError
from asm.render import worker as _w
from asm.render.cores import resolve_workers
from asm.render.executor import ShardWork
from asm.render.messages import (
    Failed,
    Fatal,
    Install,
    JobReply,
    Ready,
    RenderBatch,
    RunShard,
    ShardDone,
    Stop,
    Uninstall,
)
from asm.render.queue import LazyQueue

log = logging.getLogger("asm.render")

MAX_UNPLACED_CRASHES = 5  # deaths of one job outside any render (features, writing) before giving up
MAX_AUTO_INSTALLED = 8  # reduce objects kept in the workers at once
DEFAULT_STALL_TIMEOUT = 300.0


def stall_timeout_for(render_seconds: float) -> float:
    """Seconds without progress after which a worker counts as hung, for renders of ``render_seconds``
    of audio: far more than a render takes (they run many times faster than real time, even on a
    loaded machine), far less than the flat 300 s a hanging plugin used to cost per render."""
    return max(60.0, 20.0 * float(render_seconds))


@dataclass
class _Task:
    kind: str  # shard | render
    payload: Any  # a shard job, or (values, notes, duration, free, offset, per_row)
    token: int | None = None
    crashes: int = 0  # deaths not pinned on a render


class _Worker:
    def __init__(self, pool: "RenderPool", wid: int):
        ctx = pool._ctx
        self.wid = wid
        self.state = ctx.RawArray("q", _w.STATE_SLOTS)
        self.state[_w.JOB] = -1
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        alive_r, self._alive_w = ctx.Pipe(duplex=False)  # never written: EOF tells the worker we died
        self.conn = parent_conn
        self.process = ctx.Process(
            target=_w.worker_main,
            args=(child_conn, alive_r, pool.spec, self.state, pool._forkserver_pid()),
            daemon=True,
            name=f"asm-render-{wid}",
        )
        self.process.start()
        child_conn.close()
        alive_r.close()
        self.task: _Task | None = None
        self.job_id = -1
        self.ready = False
        self.installed: set[int] = set()
        self.last_beat = -1
        self.last_change = time.monotonic()

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        try:
            self.process.kill()
        except Exception:  # noqa: BLE001
            pass
        self.process.join(timeout=5)
        for c in (self.conn, self._alive_w):
            try:
                c.close()
            except OSError:
                pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class RenderPool:
    """Persistent render workers for one synth spec. Use as a context manager, or call ``close()``."""

    def __init__(self, spec, workers: int | str | None = "auto", *, start_timeout: float = 180.0,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT, on_event: Callable[[str], None] | None = None):
        self.spec = spec
        self.size = resolve_workers(workers)
        self.start_timeout = start_timeout
        if not stall_timeout > 0:
            raise AsmError(f"the stall timeout must be positive, got {stall_timeout}")
        self.stall_timeout = float(stall_timeout)
        self.on_event = on_event or (lambda text: log.warning(text))
        self.events: list[str] = []
        self._ctx = _w.mp_context()
        self._installed: dict[int, Any] = {}  # token -> object (resent to replacement workers)
        self._tokens_by_id: dict[int, int] = {}
        self._auto: list[int] = []  # tokens of reduce objects installed by render(), oldest first
        self._next_token = 0
        self._next_job = 0
        self._closed = False
        self._spare: _Worker | None = None  # started at the first replacement, so the next one is instant
        self.workers: list[_Worker] = [_Worker(self, i) for i in range(self.size)]
        self._wait_ready(self.workers)

    # -- lifecycle ---------------------------------------------------------------------------
    def _forkserver_pid(self) -> int:
        # the forkserver forks our workers; it exits when this process dies, and takes them along
        server = forkserver._forkserver
        server.ensure_running()
        pid = getattr(server, "_forkserver_pid", None)
        return int(pid) if pid else os.getpid()

    def _wait_ready(self, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = [w for w in workers if not w.ready]
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise AsmError(f"render workers for {self.spec.name} did not start within {self.start_timeout:.0f} s")
            ready = wait([w.conn for w in pending] + [w.process.sentinel for w in pending], timeout=min(left, 1.0))
            for w in list(pending):
                if w.conn in ready or w.process.sentinel in ready:
                    try:
                        msg = w.conn.recv() if w.conn.poll() else None
                    except (EOFError, OSError):
                        msg = None
                    if isinstance(msg, Ready):
                        w.ready = True
                        pending.remove(w)
                    elif isinstance(msg, Fatal):
                        self.close()
                        raise AsmError(msg.text)
                    elif not w.alive():
                        code = w.process.exitcode
                        self.close()
                        raise AsmError(f"a render worker for {self.spec.name} {_exit_reason(code)} while opening the synth")
        for w in workers:
            for token in self._installed:
                self._install_on(w, token)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._spare is not None:
            self.workers.append(self._spare)  # stopped with the others
            self._spare = None
        for w in self.workers:
            try:
                if w.alive():
                    w.conn.send(Stop())
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 5
        for w in self.workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.alive():
                w.kill()
            for c in (w.conn, w._alive_w):
                try:
                    c.close()
                except OSError:
                    pass

    def __enter__(self) -> "RenderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- shared objects ------------------------------------------------------------------------
    def install(self, obj: Any) -> int:
        """Send ``obj`` once to every worker (and to replacements); returns its token."""
        token = self._tokens_by_id.get(id(obj))
        if token is not None and self._installed.get(token) is obj:
            return token
        token = self._next_token
        self._next_token += 1
        self._installed[token] = obj
        self._tokens_by_id[id(obj)] = token
        for w in self.workers:
            self._install_on(w, token)
        return token

    def _install_on(self, w: _Worker, token: int) -> None:
        if token in w.installed:
            return
        try:
            w.conn.send(Install(token, self._installed[token]))
            w.installed.add(token)
        except (BrokenPipeError, OSError):
            pass  # found dead by the dispatch loop

    def uninstall(self, token: int) -> None:
        """Forget an installed object here and in the workers."""
        obj = self._installed.pop(token, None)
        if obj is None:
            return
        self._tokens_by_id.pop(id(obj), None)
        if token in self._auto:
            self._auto.remove(token)
        for w in self.workers:
            if token in w.installed:
                w.installed.discard(token)
                try:
                    w.conn.send(Uninstall(token))
                except (BrokenPipeError, OSError):
                    pass

    # -- dispatch ------------------------------------------------------------------------------
    def _replace(self, w: _Worker, why: str) -> _Worker:
        self._event(f"render worker {w.wid} (pid {w.process.pid}) {why}; starting a replacement")
        w.kill()
        fresh = self._spare if self._spare is not None else _Worker(self, w.wid)
        fresh.wid = w.wid
        self._spare = None
        self.workers[self.workers.index(w)] = fresh
        self._wait_ready([fresh])
        # a plugin that crashed once may crash again: open the next replacement while this one works
        self._spare = _Worker(self, -1)
        return fresh

    def _event(self, text: str) -> None:
        self.events.append(text)
        self.on_event(text)

    def _send(self, w: _Worker, task: _Task) -> bool:
        job_id = self._next_job
        self._next_job += 1
        if task.kind == "shard":
            msg = RunShard(job_id, task.token, task.payload)
        else:
            values, notes, duration, free, offset, per_row = task.payload
            msg = RenderBatch(job_id, task.token, values, notes, duration, free, offset, per_row)
        w.state[_w.POS], w.state[_w.ATTEMPT], w.state[_w.DONE] = -1, 0, 0  # nothing stale to blame on a crash
        try:
            w.conn.send(msg)
        except (BrokenPipeError, OSError):
            return False
        w.task, w.job_id = task, job_id
        w.last_beat, w.last_change = -1, time.monotonic()
        return True

    def _dispatch(self, tasks: LazyQueue, on_done: Callable[[_Task, Any], None],
                  on_crash: Callable[[_Task, int, int, str], list[_Task]],
                  on_tick: Callable[[], None] | None = None, tick: float = 0.25) -> None:
        """Run ``tasks`` to completion on the workers, replacing any that die or stall."""
        if self._closed:
            raise AsmError("the render pool is closed")
        try:
            while tasks or any(w.task is not None for w in self.workers):
                for w in self.workers:
                    while w.task is None and tasks:
                        task = tasks.popleft()
                        if not self._send(w, task):
                            tasks.appendleft(task)
                            self._handle_death(w, tasks, on_crash)
                            break
                busy = [w for w in self.workers if w.task is not None]
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=tick)
                for w in busy:
                    if w.conn in ready:
                        try:
                            msg = w.conn.recv()
                        except (EOFError, OSError):
                            msg = None
                        if msg is not None:
                            task, result = self._handle_message(w, msg)
                            if task is not None:
                                if tasks:  # keep the worker busy while the result is handled here
                                    nxt = tasks.popleft()
                                    if not self._send(w, nxt):
                                        tasks.appendleft(nxt)
                                on_done(task, result)
                            continue
                    if (w.conn in ready or w.process.sentinel in ready) and w.task is not None and not w.alive():
                        self._handle_death(w, tasks, on_crash)
                now = time.monotonic()
                for w in self.workers:
                    if w.task is None:
                        continue
                    beat = w.state[_w.BEAT]
                    if beat != w.last_beat:
                        w.last_beat, w.last_change = beat, now
                    elif now - w.last_change > self.stall_timeout:
                        self._handle_death(w, tasks, on_crash, stalled=True)
                if on_tick is not None:
                    on_tick()
        except BaseException:
            # an error or Ctrl-C: workers may be mid-job; stop them so nothing keeps writing
            for w in self.workers:
                if w.task is not None:
                    w.kill()
            self.close()
            raise

    def _handle_message(self, w: _Worker, msg: JobReply) -> tuple[_Task | None, Any]:
        task = w.task
        if getattr(msg, "job_id", None) != w.job_id or task is None:
            return None, None  # a stale reply
        w.task, w.job_id = None, -1
        if isinstance(msg, Failed):
            if msg.user:
                raise AsmError(msg.text)
            raise RuntimeError(f"render worker failed:\n{msg.text}")
        return task, msg.result if isinstance(msg, ShardDone) else msg.out

    def _handle_death(self, w: _Worker, tasks: LazyQueue, on_crash, stalled: bool = False) -> None:
        task = w.task
        pos, attempt = int(w.state[_w.POS]), int(w.state[_w.ATTEMPT])
        if stalled:
            why = f"made no progress for {self.stall_timeout:.0f} s"
        else:
            w.process.join(timeout=5)
            why = _exit_reason(w.process.exitcode)
        w.task, w.job_id = None, -1
        if task is None:
            self._replace(w, why)
            return
        try:
            retry = on_crash(task, pos, attempt, why)  # may raise AsmError: the work gives up
        except BaseException:
            w.kill()
            raise
        for t in retry:
            if t.crashes > MAX_UNPLACED_CRASHES:
                w.kill()
                raise AsmError(f"render workers for {self.spec.name} died {t.crashes} times on the same job "
                               f"outside any render (last: {why}); giving up")
        self._replace(w, why)
        for t in reversed(retry):
            tasks.appendleft(t)

    # -- shards ----------------------------------------------------------------------------------
    def run_shards(self, work: ShardWork, jobs: Iterable, on_result: Callable[[Any], None],
                   on_tick: Callable[[int], None] | None = None) -> None:
        """Run ``jobs`` with ``work`` installed in every worker (``ShardExecutor``).

        ``on_result(result)`` runs in this process as each job completes (in completion order);
        ``on_tick(items_in_flight)`` runs a few times a second for progress display.
        """
        token = self.install(work)
        tasks = LazyQueue(_Task("shard", job, token) for job in jobs)

        def done(task: _Task, result) -> None:
            on_result(result)

        def crash(task: _Task, pos: int, attempt: int, why: str) -> list[_Task]:
            if pos >= 0:
                task.payload, text = work.crashed(task.payload, pos, attempt, why)
            else:
                task.crashes += 1
                text = f"a worker {why} outside any render (job {getattr(task.payload, 'index', '?')}); retrying it"
            self._event(text)
            return [task]

        def tick() -> None:
            if on_tick is not None:
                on_tick(sum(int(w.state[_w.DONE]) for w in self.workers if w.task is not None))

        try:
            self._dispatch(tasks, done, crash, tick)
        finally:
            if not self._closed:
                self.uninstall(token)

    # -- batches of candidates -----------------------------------------------------------------
    def render(self, values: np.ndarray, notes: Sequence, duration: float, *, reduce: Callable | None = None,
               free: bool = False, chunks_per_worker: int = 2, per_row_notes: bool = False) -> list:
        """Render every row of ``values`` with the same ``notes``; results in row order.

        ``values`` are full normalised vectors (``free=True``: free values only). Each result is the
        mono float32 audio, or ``reduce(audio)`` computed in the worker. A candidate that crashes or
        hangs its worker yields ``None`` (and an event); the others are still rendered.
        ``per_row_notes=True``: ``notes`` holds one note list per row (each example replays its own).
        """
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        n = len(values)
        if n == 0:
            return []
        token = None
        if reduce is not None:
            token = self.install(reduce)
            if token in self._auto:
                self._auto.remove(token)
            self._auto.append(token)
            while len(self._auto) > MAX_AUTO_INSTALLED:
                self.uninstall(self._auto[0])
        notes = [list(x) for x in notes] if per_row_notes else list(notes)
        if per_row_notes and len(notes) != n:
            raise ValueError(f"per_row_notes needs {n} note lists, got {len(notes)}")

        def notes_for(a: int, b: int):
            return notes[a:b] if per_row_notes else notes

        parts = max(1, min(n, self.size * chunks_per_worker))
        bounds = np.linspace(0, n, parts + 1).round().astype(int)
        tasks = LazyQueue([
            _Task("render", (values[a:b], notes_for(a, b), float(duration), free, int(a), per_row_notes), token)
            for a, b in zip(bounds[:-1], bounds[1:]) if b > a
        ])
        results: list = [None] * n

        def done(task: _Task, out: list) -> None:
            offset = task.payload[4]
            results[offset : offset + len(out)] = out

        def crash(task: _Task, pos: int, attempt: int, why: str) -> list[_Task]:
            vals, nts, dur, fr, offset, per_row = task.payload
            end = offset + len(vals)
            if not (offset <= pos < end):  # died outside a render: retry the whole chunk
                task.crashes += 1
                return [task]
            self._event(f"the synth crashed on candidate {pos} ({why}); its result is None")
            retry = []
            for a, b in ((offset, pos), (pos + 1, end)):
                if b > a:
                    retry.append(_Task("render", (values[a:b], notes_for(a, b), dur, fr, a, per_row), task.token,
                                       task.crashes))
            return retry

        self._dispatch(tasks, done, crash, tick=1.0)
        return results


