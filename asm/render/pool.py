"""The render executor: a persistent pool of worker processes, each holding one opened synth.

``RenderPool(spec, workers)`` starts ``workers`` processes (forkserver: the heavy imports are paid
once) that each call ``open_synth(spec, isolate=False)`` once and then serve two kinds of work:

* ``run_shards(context, jobs, on_result)``: whole dataset shards, rendered, featurised and written
  inside the worker (``asm.data.shardgen``); only a small ``ShardResult`` comes back.
* ``render(values, notes, duration, reduce=None)``: a batch of candidate presets played with the same
  notes (the search's population), split into contiguous chunks, one message per chunk. Returns, in
  order, the audio of each candidate or ``reduce(audio)`` computed in the worker. ``reduce`` (any
  picklable callable, e.g. an objective holding the target's features) is sent to each worker
  once and reused while the same object is passed again; one with a ``reduce_batch(audios)``
  method gets a worker's whole chunk at once instead (batched scoring).

Each worker publishes what it is doing in shared memory (job, position, attempt, heartbeat), so
progress costs no messages and a worker that dies (a plugin segfault) or stops making progress for
``stall_timeout`` seconds is detected, reported through ``on_event``, killed and replaced, and its
work is re-queued: the crashing candidate gets ``None`` in ``render``; the crashing (slot, preset)
counts as a rejected preset in ``run_shards``. A job that keeps killing workers fails with an
``AsmError`` instead of looping. Workers exit the moment their pool's process dies (even by
``kill -9``): each holds the read end of a pipe only that process can write, watched by a thread.

``RayExecutor`` runs the same shard jobs on Ray actors (``pip install 'asm[ray]'``) and produces
byte-identical shards.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from asm.errors import AsmError

log = logging.getLogger("asm.render")

# shared state slots of one worker
_JOB, _POS, _ATTEMPT, _DONE, _BEAT = range(5)
PRELOAD = ["numpy", "torch", "dawdreamer", "librosa.filters", "asm.data.shardgen", "asm.synth.host", "asm.audio.features"]
MAX_CRASHES_PER_JOB = 16
MAX_AUTO_INSTALLED = 8  # reduce objects kept in the workers at once


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str | None) -> int:
    """``auto``/None -> the number of usable cores; otherwise a positive int."""
    if workers is None or (isinstance(workers, str) and workers.strip().lower() == "auto"):
        return cpu_count()
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise AsmError(f"--workers must be a positive number or 'auto', got {workers!r}") from None
    if n < 1:
        raise AsmError(f"--workers must be at least 1, got {n}")
    return n


def _context():
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


# ---------------------------------------------------------------------------------------------
# worker side
class _SharedProgress:
    def __init__(self, state):
        self.state = state

    def mark(self, position: int, attempt: int) -> None:
        st = self.state
        st[_POS] = position
        st[_ATTEMPT] = attempt
        st[_BEAT] += 1

    def done(self, count: int) -> None:
        self.state[_DONE] = count


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: the forkserver's exit kills us
    except Exception:  # not Linux: the pipe watch in _watch_parent still applies
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _watch_parent(alive) -> None:
    """Exit the moment the pool's process dies: ``alive``'s other end is held only by that process,
    so it becomes readable (EOF) exactly then. (The forkserver outlives it while any worker lives.)"""
    import threading

    def watch() -> None:
        try:
            wait([alive])
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="asm-parent-watch", daemon=True).start()


def _warm_up(synth) -> None:
    """One render and one default log-mel, so the first job does not pay for first-call set-up
    (plugin buffers, FFT plans, the mel filter bank)."""
    from asm.audio.features import FeatureSettings, logmel
    from asm.midi.notes import Note

    audio = synth.render(synth.space.defaults(), [Note(60, 100, 0.0, 0.1)], 0.2)
    logmel(np.stack([audio, audio]), synth.sample_rate, FeatureSettings())


def _redirect_output() -> None:
    """Send what a worker prints (Faust's "Steal release voice" notices, plugin chatter) to
    ``<data dir>/logs/render-workers.log`` instead of the terminal, where it would break the
    parent's progress bar. Workers report errors over their pipe, never by printing."""
    from asm.paths import data_dir

    try:
        logs = data_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fd = os.open(logs / "render-workers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _worker_main(conn, alive, spec, state, forkserver_pid: int) -> None:
    """A render worker: open the synth once, then serve messages until told to stop."""
    _die_with_parent(forkserver_pid)
    _watch_parent(alive)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent
    _redirect_output()
    try:
        import torch

        torch.set_num_threads(1)
        from asm.synth.host import open_synth

        synth = open_synth(spec, isolate=False)
        _warm_up(synth)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        msg = str(exc) if isinstance(exc, AsmError) else f"{type(exc).__name__}: {exc}"
        conn.send(("fatal", f"cannot open synth {spec.name} in a worker: {msg}"))
        return
    progress = _SharedProgress(state)
    installed: dict[int, Any] = {}
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "stop":
            return
        if kind == "install":
            installed[msg[1]] = msg[2]
            continue
        if kind == "uninstall":
            installed.pop(msg[1], None)
            continue
        job_id = msg[1]
        state[_JOB], state[_DONE] = job_id, 0
        try:
            if kind == "shard":
                from asm.data.shardgen import generate_shard

                result = generate_shard(synth, installed[msg[2]], msg[3], progress)
                reply = ("shard_done", job_id, result)
            elif kind == "render":
                _, _, token, values, notes, duration, free, offset, per_row = msg
                reduce = installed.get(token) if token is not None else None
                batch = getattr(reduce, "reduce_batch", None)  # scores a whole chunk at once
                out = []
                for i, v in enumerate(values):
                    progress.mark(offset + i, 0)
                    row_notes = notes[i] if per_row else notes
                    audio = (synth.render_free(v, row_notes, duration) if free
                             else synth.render(v, row_notes, duration))
                    out.append(reduce(audio) if reduce is not None and batch is None else audio)
                if batch is not None:
                    out = list(batch(out))
                reply = ("rendered", job_id, out)
            else:
                reply = ("error", job_id, False, f"unknown message {kind!r}")
        except AsmError as exc:
            reply = ("error", job_id, True, str(exc))
        except Exception:  # noqa: BLE001 - a bug: the parent shows the traceback
            reply = ("error", job_id, False, traceback.format_exc())
        state[_JOB] = -1
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


# ---------------------------------------------------------------------------------------------
# parent side
class _Queue:
    """Tasks handed out in order: retries first, then the next task drawn lazily from ``source``
    (so a huge dataset's jobs are built as workers free up, not all before the first one starts)."""

    def __init__(self, source: Iterable = ()):
        self.front: deque = deque()
        self.source = iter(source)

    def appendleft(self, task) -> None:
        self.front.appendleft(task)

    def popleft(self):
        if self.front:
            return self.front.popleft()
        return next(self.source)

    def __bool__(self) -> bool:
        if self.front:
            return True
        try:
            self.front.append(next(self.source))
        except StopIteration:
            return False
        return True


@dataclass
class _Task:
    kind: str  # shard | render
    payload: Any
    token: int | None = None
    crashes: int = 0
    meta: dict = field(default_factory=dict)


class _Worker:
    def __init__(self, pool: "RenderPool", wid: int):
        ctx = pool._ctx
        self.wid = wid
        self.state = ctx.RawArray("q", 5)
        self.state[_JOB] = -1
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        alive_r, self._alive_w = ctx.Pipe(duplex=False)  # never written: EOF tells the worker we died
        self.conn = parent_conn
        self.process = ctx.Process(
            target=_worker_main,
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
                 stall_timeout: float = 300.0, on_event: Callable[[str], None] | None = None):
        self.spec = spec
        self.size = resolve_workers(workers)
        self.start_timeout = start_timeout
        self.stall_timeout = stall_timeout
        self.on_event = on_event or (lambda text: log.warning(text))
        self.events: list[str] = []
        self._ctx = _context()
        self._installed: dict[int, Any] = {}  # token -> object (resent to replacement workers)
        self._tokens_by_id: dict[int, int] = {}
        self._auto: list[int] = []  # tokens of reduce objects installed by render(), oldest first
        self._next_token = 0
        self._next_job = 0
        self._closed = False
        self.workers: list[_Worker] = [_Worker(self, i) for i in range(self.size)]
        self._wait_ready(self.workers)

    # -- lifecycle ---------------------------------------------------------------------------
    def _forkserver_pid(self) -> int:
        from multiprocessing import forkserver

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
                    if msg and msg[0] == "ready":
                        w.ready = True
                        pending.remove(w)
                    elif msg and msg[0] == "fatal":
                        self.close()
                        raise AsmError(msg[1])
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
        for w in self.workers:
            try:
                if w.alive():
                    w.conn.send(("stop",))
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
            w.conn.send(("install", token, self._installed[token]))
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
                    w.conn.send(("uninstall", token))
                except (BrokenPipeError, OSError):
                    pass

    # -- dispatch ------------------------------------------------------------------------------
    def _replace(self, w: _Worker, why: str) -> _Worker:
        self._event(f"render worker {w.wid} (pid {w.process.pid}) {why}; starting a replacement")
        w.kill()
        fresh = _Worker(self, w.wid)
        self.workers[self.workers.index(w)] = fresh
        self._wait_ready([fresh])
        return fresh

    def _event(self, text: str) -> None:
        self.events.append(text)
        self.on_event(text)

    def _send(self, w: _Worker, task: _Task) -> bool:
        job_id = self._next_job
        self._next_job += 1
        if task.kind == "shard":
            msg = ("shard", job_id, task.token, task.payload)
        else:
            values, notes, duration, free, offset, per_row = task.payload
            msg = ("render", job_id, task.token, values, notes, duration, free, offset, per_row)
        w.state[_POS], w.state[_ATTEMPT], w.state[_DONE] = -1, 0, 0  # nothing stale to blame on a crash
        try:
            w.conn.send(msg)
        except (BrokenPipeError, OSError):
            return False
        w.task, w.job_id = task, job_id
        w.last_beat, w.last_change = -1, time.monotonic()
        return True

    def _dispatch(self, tasks: _Queue, on_done: Callable[[_Task, Any], None],
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
                    beat = w.state[_BEAT]
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

    def _handle_message(self, w: _Worker, msg) -> tuple[_Task | None, Any]:
        kind = msg[0]
        task = w.task
        if msg[1] != w.job_id or task is None:
            return None, None
        w.task, w.job_id = None, -1
        if kind == "error":
            _, _, user, text = msg
            if user:
                raise AsmError(text)
            raise RuntimeError(f"render worker failed:\n{text}")
        return task, msg[2]

    def _handle_death(self, w: _Worker, tasks: _Queue, on_crash, stalled: bool = False) -> None:
        task = w.task
        pos, attempt = int(w.state[_POS]), int(w.state[_ATTEMPT])
        if stalled:
            why = f"made no progress for {self.stall_timeout:.0f} s"
        else:
            w.process.join(timeout=5)
            why = _exit_reason(w.process.exitcode)
        w.task, w.job_id = None, -1
        if task is None:
            self._replace(w, why)
            return
        task.crashes += 1
        if task.crashes > MAX_CRASHES_PER_JOB:
            self._replace(w, why)
            raise AsmError(f"render workers for {self.spec.name} died {task.crashes} times on the same job "
                           f"(last: {why}); giving up")
        retry = on_crash(task, pos, attempt, why)
        self._replace(w, why)
        for t in reversed(retry):
            tasks.appendleft(t)

    # -- shards ----------------------------------------------------------------------------------
    def run_shards(self, context, jobs: Iterable, on_result: Callable[[Any], None],
                   on_tick: Callable[[int], None] | None = None) -> None:
        """Generate shard ``jobs`` (``asm.data.shardgen.ShardJob``) with ``context`` installed.

        ``on_result(ShardResult)`` runs in this process as each shard completes (in completion order);
        ``on_tick(examples_in_flight)`` runs a few times a second for progress display.
        """
        token = self.install(context)
        tasks = _Queue(_Task("shard", job, token) for job in jobs)

        def done(task: _Task, result) -> None:
            on_result(result)

        def crash(task: _Task, pos: int, attempt: int, why: str) -> list[_Task]:
            job = task.payload
            if pos >= 0:
                slot = job.start + pos
                self._event(f"the synth crashed on example {slot} (preset attempt {attempt}, {why}); "
                            "that preset counts as rejected and the shard is redone")
                task.payload = replace(job, crashed=job.crashed | {(slot, attempt)})
            else:
                self._event(f"a worker {why} while finishing shard {job.index}; retrying it")
            return [task]

        def tick() -> None:
            if on_tick is not None:
                on_tick(sum(int(w.state[_DONE]) for w in self.workers if w.task is not None))

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
        tasks = _Queue([
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


# ---------------------------------------------------------------------------------------------
class RayExecutor:
    """Shard generation on Ray actors (one per worker, each with the synth open once).

    Actors return the encoded shard bytes; the caller writes them, so the cluster needs no shared
    filesystem. The shards are byte-identical to the local executor's.
    """

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

    def run_shards(self, context, jobs: Iterable, on_result: Callable[[Any], None],
                   on_tick: Callable[[int], None] | None = None) -> None:
        ray = self.ray
        ctx_ref = ray.put(context)
        queue = _Queue(jobs)
        inflight: dict = {}
        crashes: dict[int, int] = {}
        idle = list(range(len(self.actors)))
        while queue or inflight:
            while idle and queue:
                i = idle.pop()
                job = queue.popleft()
                inflight[self.actors[i].generate.remote(ctx_ref, job)] = (i, job)
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
                    crashes[job.index] = crashes.get(job.index, 0) + 1
                    text = f"Ray worker died on shard {job.index} ({type(exc).__name__}); starting a replacement"
                    self.events.append(text)
                    self.on_event(text)
                    if crashes[job.index] > 3:
                        raise AsmError(f"Ray workers died {crashes[job.index]} times on shard {job.index}; giving up")
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
        from asm.synth.host import open_synth

        self.synth = open_synth(spec, isolate=False)

    def generate(self, context, job):
        from asm.data.shardgen import generate_shard

        return generate_shard(self.synth, context, job, write=False)
