"""Copies of the registry: ``backup`` and ``restore`` through SQLite's online backup API.

The backup API copies a consistent snapshot (WAL content included) while other connections may
be open, so a backup is never half a transaction. A restore first backs up the current registry,
then moves a checked copy into place; it refuses a file that is not an asm registry.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from asm import paths
from asm.atomic import atomic_path
from asm.errors import AsmError
from asm.registry import db


def registry_file() -> Path:
    """The registry's SQLite file (backups need one; other databases have their own tools)."""
    path = db.sqlite_file(paths.database_url())
    if path is None:
        raise AsmError(f"backup and restore need an SQLite registry file, not {paths.database_url()}")
    return path


def default_backup_path(db_path: Path) -> Path:
    """``backups/<name>-YYYYmmdd-HHMMSS.db`` beside the registry, never an existing file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = db_path.parent / "backups"
    out, n = folder / f"{db_path.stem}-{stamp}.db", 1
    while out.exists():
        out, n = folder / f"{db_path.stem}-{stamp}-{n}.db", n + 1
    return out


def _sqlite_copy(src: Path, target_file: Path) -> None:
    """SQLite's online backup of ``src`` into ``target_file``, as one self-contained file."""
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
        try:
            target = sqlite3.connect(target_file)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.DatabaseError as exc:
        raise AsmError(f"cannot copy the registry {src}: {exc}") from None


def _copy(src: Path, out: Path) -> None:
    """A consistent copy of ``src`` that appears under ``out`` only when complete."""
    with atomic_path(out) as tmp:
        _sqlite_copy(src, tmp)


def backup(out: Path | None = None, db_path: Path | None = None) -> Path:
    """Copy the registry to ``out`` (default: ``backups/`` beside it); returns the file written."""
    db_path = db_path or registry_file()
    if not db_path.is_file():
        raise AsmError(f"no registry at {db_path} to back up")
    out = out or default_backup_path(db_path)
    if out.exists() and out.resolve() == db_path.resolve():
        raise AsmError(f"{out} is the registry itself; choose another file")
    paths.ensure_dir(out.parent)
    _copy(db_path, out)
    return out


def check_backup(path: Path) -> str:
    """Raise unless ``path`` is a sound asm registry; returns its schema revision."""
    if not path.is_file():
        raise AsmError(f"backup not found: {path}")
    with path.open("rb") as fh:
        if fh.read(len(db.SQLITE_MAGIC)) != db.SQLITE_MAGIC:
            raise AsmError(f"{path} is not an asm registry (not an SQLite database)")
    problem = db.quick_check(path)
    if problem is not None:
        raise AsmError(f"{path} is damaged ({problem}); choose another backup")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"alembic_version", "synth", "parameter", "preset"} <= tables:
            raise AsmError(f"{path} is not an asm registry (it lacks asm's tables)")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise AsmError(f"{path} is not an asm registry ({exc})") from None
    finally:
        conn.close()
    if not row:
        raise AsmError(f"{path} is not an asm registry (no schema revision)")
    from alembic.script import ScriptDirectory

    try:
        ScriptDirectory(str(db.MIGRATIONS)).get_revision(row[0])
    except Exception:  # noqa: BLE001 - alembic raises several types for an unknown revision
        raise AsmError(f"{path} has schema revision {row[0]!r}, unknown to this asm (made by a newer version?)") from None
    return row[0]


def restore(path: Path, db_path: Path | None = None) -> Path | None:
    """Replace the registry with the backup ``path``; returns the backup made of the current one."""
    db_path = db_path or registry_file()
    check_backup(path)
    if path.resolve() == db_path.resolve():
        raise AsmError(f"{path} is the registry itself")
    saved = None
    if db_path.is_file() and db_path.stat().st_size:
        saved = default_backup_path(db_path)
        paths.ensure_dir(saved.parent)
        try:
            if db.quick_check(db_path) is not None:
                raise AsmError("damaged")  # SQLite's backup would rewrite what it can read: keep the bytes
            _copy(db_path, saved)
        except AsmError:  # a damaged registry: keep its bytes as they are
            shutil.copy2(db_path, saved)
            for suffix in ("-wal",):
                if Path(f"{db_path}{suffix}").exists():
                    shutil.copy2(f"{db_path}{suffix}", f"{saved}{suffix}")
    db.dispose_engines()
    with atomic_path(db_path) as staged:
        _sqlite_copy(path, staged)
        # The old WAL belongs to the old file (already saved above): remove it before the new file
        # is in place, or SQLite would replay it into the restored one.
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db.stamp_path(db_path).unlink(missing_ok=True)
    return saved
