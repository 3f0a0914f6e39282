"""The render worker process: open the synth once, then serve messages until told to stop.

Each worker publishes what it is doing in a small shared array (``SharedProgress``), so progress
costs no messages and the parent can pin a crash or a hang on one render. A worker exits the
moment its pool's process dies (even by ``kill -9``): it holds the read end of a pipe only that
process can write, watched by a thread, and asks the kernel to kill it with the forkserver.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import traceback
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from asm.errors import AsmError
from asm.midi.notes import Note
from asm.paths import data_dir
from asm.render.messages import (
    Failed,
    Fatal,
    Install,
    Ready,
    RenderBatch,
    Rendered,
    RunShard,
    ShardDone,
    Stop,
    Uninstall,
)

# slots of a worker's shared state array
JOB, POS, ATTEMPT, DONE, BEAT = range(5)
STATE_SLOTS = 5
# imported once by the forkserver, so every worker starts warm (names only: nothing is imported here)
PRELOAD = ["numpy", "torch", "dawdreamer", "asm.data.shardgen", "asm.synth.host", "asm.audio.features", "asm.audio.metrics"]


def mp_context():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class SharedProgress:
    """``Progress`` written into the worker's shared state array (no messages)."""

    def __init__(self, state):
        self.state = state

    def mark(self, position: int, attempt: int) -> None:
        st = self.state
        st[POS] = position
        st[ATTEMPT] = attempt
        st[BEAT] += 1

    def done(self, count: int) -> None:
        self.state[DONE] = count


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

    audio = synth.render(synth.space.defaults(), [Note(60, 100, 0.0, 0.1)], 0.2)
    logmel(np.stack([audio, audio]), synth.sample_rate, FeatureSettings())


def _redirect_output() -> None:
    """Send what a worker prints (Faust's "Steal release voice" notices, plugin chatter) to
    ``<data dir>/logs/render-workers.log`` instead of the terminal, where it would break the
    parent's progress bar. Workers report errors over their pipe, never by printing."""
    try:
        logs = data_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fd = os.open(logs / "render-workers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _render_batch(synth, msg: RenderBatch, reduce, progress: SharedProgress) -> list:
    batch = getattr(reduce, "reduce_batch", None)  # scores a whole chunk at once
    out = []
    for i, v in enumerate(msg.values):
        progress.mark(msg.offset + i, 0)
        notes = msg.notes[i] if msg.per_row else msg.notes
        audio = synth.render_free(v, notes, msg.duration) if msg.free else synth.render(v, notes, msg.duration)
        out.append(reduce(audio) if reduce is not None and batch is None else audio)
    if batch is not None:
        out = list(batch(out))
    return out


def worker_main(conn, alive, spec, state, forkserver_pid: int) -> None:
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
        conn.send(Fatal(f"cannot open synth {spec.name} in a worker: {msg}"))
        return
    progress = SharedProgress(state)
    installed: dict[int, Any] = {}
    conn.send(Ready(os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(msg, Stop):
            return
        if isinstance(msg, Install):
            installed[msg.token] = msg.obj
            continue
        if isinstance(msg, Uninstall):
            installed.pop(msg.token, None)
            continue
        job_id = msg.job_id
        state[JOB], state[DONE] = job_id, 0
        try:
            if isinstance(msg, RunShard):
                reply = ShardDone(job_id, installed[msg.token].run(synth, msg.job, progress))
            elif isinstance(msg, RenderBatch):
                reduce = installed.get(msg.token) if msg.token is not None else None
                reply = Rendered(job_id, _render_batch(synth, msg, reduce, progress))
            else:
                reply = Failed(job_id, False, f"unknown message {type(msg).__name__}")
        except AsmError as exc:
            reply = Failed(job_id, True, str(exc))
        except Exception:  # noqa: BLE001 - a bug: the parent shows the traceback
            reply = Failed(job_id, False, traceback.format_exc())
        state[JOB] = -1
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
