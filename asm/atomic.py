"""Atomic file writes: a file under its final name is always whole (old or new, never half).

``atomic_path(path)`` yields a fresh temporary file beside ``path``; when the block ends cleanly the
file is flushed to disk (fsync) and renamed over ``path`` (``os.replace``), then the directory is
synced so the rename survives a crash. On any failure the temporary file is removed and ``path``
keeps its old content. The temporary file is created with mode 0o666 filtered by the umask, as
``open()`` would create the file (``tempfile.mkstemp`` would leave it 0600).

Temporary names start with ``TMP_PREFIX`` so that a directory left behind by a killed process can
be swept (dataset generation does).
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from asm.errors import AsmError

TMP_PREFIX = ".tmp-"


def _create_temp(path: Path) -> Path:
    for _ in range(100):
        tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some systems cannot open directories; the rename is still atomic
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s directory that becomes ``path`` when the block succeeds.

    For writers that take a file name (soundfile, matplotlib, torch). An ``OSError`` (disk full,
    directory missing or read-only) becomes one ``AsmError`` line; other errors pass through.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        tmp = _create_temp(path)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        tmp = None
        _fsync(path.parent if str(path.parent) else Path("."), directory=True)
    except OSError as exc:
        raise AsmError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """An open file (``"wb"`` or ``"w"``) that replaces ``path`` when the block succeeds."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', not {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding if mode == "w" else None) as fh:
            yield fh


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON text with a final newline."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_npy(path: str | Path, array) -> Path:
    """A numpy array in ``.npy`` format (``np.save`` to the exact name: no ``.npy`` is appended)."""
    import numpy as np

    with atomic_open(path, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    return Path(path)
