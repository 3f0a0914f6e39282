"""Exclusive per-directory locks between asm processes (dataset generation, model training).

An ``flock`` on a ``.lock`` file: the kernel releases it when the holder dies, even by ``kill -9``,
so a stale lock never blocks a resume. The holder writes who it is (pid, host, since when) into the
file, so a refused process can say who holds the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from asm import paths
from asm.errors import AsmError

LOCK_FILE = ".lock"


def holder_text(path: Path) -> str:
    """``pid 123 on host, since 2026-01-01 12:00:00 UTC`` from a lock file (``holder unknown`` when unreadable)."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
        return f"pid {int(info['pid'])} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


class DirectoryLock:
    """Held by one process at a time; ``busy`` is the refusal, completed with the holder's identity."""

    def __init__(self, directory: Path, busy: str):
        self.directory = Path(directory)
        self.busy = busy
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_FILE

    def __enter__(self) -> "DirectoryLock":
        paths.ensure_dir(self.directory)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise AsmError(f"cannot write in {self.directory}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AsmError(f"{self.busy} by another asm process ({holder_text(self.path)})") from None
        since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(directory: Path) -> bool:
    """Whether another process holds ``directory``'s lock (without taking it)."""
    path = Path(directory) / LOCK_FILE
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
