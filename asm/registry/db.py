"""Engine and sessions. The schema is brought to the newest migration on first use of a database.

Opening a registry for writing first makes sure it is one (an SQLite file with asm's schema) and is
not damaged (``PRAGMA quick_check``, at most once a minute for an unchanged file), so asm never
writes into a broken file. Read-only commands fall back to opening it with ``mode=ro`` when the
file or its data directory cannot be written. Every failure is one line naming the cause.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from asm import paths
from asm.errors import AsmError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"
CHECK_INTERVAL_S = 60.0  # an unchanged file is quick_checked at most this often


class RegistryReadOnly(AsmError):
    """The registry file or its data directory cannot be written."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def _reason(exc: BaseException) -> str:
    """The driver's message in one line (without SQLAlchemy's "Background on this error" link)."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _writable_dir(directory: Path) -> bool:
    """Whether a file can really be created in ``directory`` (``os.access`` says yes to root)."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".asm-probe-"):
            return True
    except OSError:
        return False


def registry_error(db_path: Path | None, exc: BaseException, url: str = "") -> AsmError:
    """The one-line error for a registry that cannot be opened or written, by cause."""
    reason = _reason(exc)
    low = reason.lower()
    where = str(db_path) if db_path else url
    if db_path is not None and ("readonly" in low or "read-only" in low or "unable to open" in low):
        directory = db_path.parent if str(db_path.parent) else Path(".")
        if directory.is_dir() and not _writable_dir(directory):
            return RegistryReadOnly(f"data directory {directory} is read-only: cannot write the registry "
                                    f"{db_path} (read-only commands such as inspect-registry still work)")
        if "readonly" in low or "read-only" in low:
            return RegistryReadOnly(f"the registry {db_path} is read-only: cannot write it ({reason})")
    if "not a database" in low:
        return AsmError(f"{where} is not an asm registry ({reason}); move it away or `asm restore` a backup")
    if "malformed" in low or "corrupt" in low:
        return AsmError(damaged_message(where, reason))
    return AsmError(f"registry database error ({where}): {reason} (disk full or database file damaged?)")


def damaged_message(where: str | Path, reason: str) -> str:
    return (f"the registry {where} is damaged ({reason}); asm will not write into it. Recover with "
            f"`asm restore BACKUP` (backups are made by `asm backup`), or salvage what is readable with "
            f"`sqlite3 {where} .recover | sqlite3 recovered.db`")


def check_registry_file(db_path: Path) -> None:
    """Refuse a file that is not an SQLite database (an empty or missing file becomes a new registry)."""
    try:
        with db_path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AsmError(f"cannot read registry {db_path}: {exc.strerror or exc}") from None
    if head and head != SQLITE_MAGIC:
        raise AsmError(f"{db_path} is not an asm registry (not an SQLite database); "
                       "move it away or `asm restore` a backup")


def quick_check(db_path: Path) -> str | None:
    """None when SQLite's ``PRAGMA quick_check`` finds the file sound, else its first complaint."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        damaged = any(w in text.lower() for w in ("malformed", "corrupt", "not a database"))
        return text if damaged else None  # cannot open here (read-only directory): judged on open
    problems = [" ".join(str(r[0]).split()) for r in rows if r and r[0] != "ok"]  # one line each
    return problems[0] if problems else None


def stamp_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".checked")


def check_integrity(db_path: Path, now: float | None = None) -> None:
    """Raise when the registry file is damaged. The last good check is recorded beside the db
    (file size and mtime with the time of the check): an unchanged file is checked again only after
    ``CHECK_INTERVAL_S``; a changed one is checked every time."""
    try:
        st = db_path.stat()
    except FileNotFoundError:
        return
    if st.st_size == 0:
        return
    now = time.time() if now is None else now
    key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    stamp = stamp_path(db_path)
    try:
        last = json.loads(stamp.read_text())
        if {k: last.get(k) for k in key} == key and 0 <= now - float(last["checked_at"]) < CHECK_INTERVAL_S:
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    problem = quick_check(db_path)
    if problem is not None:
        try:
            stamp.unlink(missing_ok=True)
        except OSError:
            pass
        raise AsmError(damaged_message(db_path, problem if "malformed" in problem else f"quick_check: {problem}"))
    try:
        stamp.write_text(json.dumps({**key, "checked_at": now}))
    except OSError:
        pass  # a read-only data directory: checked again next time


def _read_only_connect(db_path: Path):
    """``mode=ro``; a WAL database whose -shm cannot be created (read-only directory) is opened
    ``immutable``, which is safe there: nobody can write it either."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    return sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True, timeout=30, check_same_thread=False)


def _read_only_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_ENGINES: dict[tuple[str, bool], Engine] = {}


def engine_for(url: str, read_only: bool = False) -> Engine:
    """The engine for ``url``, made (and the registry checked and migrated) once per process."""
    if (url, read_only) not in _ENGINES:
        _ENGINES[url, read_only] = _open(url, read_only)
    return _ENGINES[url, read_only]


def _open(url: str, read_only: bool) -> Engine:
    db_path = sqlite_file(url)
    if read_only:
        if db_path is None or not db_path.is_file():
            raise AsmError(f"no registry at {db_path or url}")
        engine = create_engine("sqlite://", creator=lambda: _read_only_connect(db_path))
        event.listen(engine, "connect", _read_only_pragmas)
        _check_current(engine, db_path)
        return engine
    if db_path is not None:
        paths.ensure_dir(db_path.parent if str(db_path.parent) else Path("."))
        check_registry_file(db_path)
        check_integrity(db_path)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    _upgrade(engine, db_path)
    return engine


def dispose_engines() -> None:
    """Close every cached engine (after a restore replaced the file under them)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _state(engine: Engine) -> tuple[str | None, set[str]]:
    """(alembic revision, table names) of a database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), set(inspect(conn).get_table_names())


def _upgrade(engine: Engine, db_path: Path | None = None) -> None:
    """Apply pending migrations (no-op, and cheap, when the database is current)."""
    from alembic import command

    try:
        current, tables = _state(engine)
    except Exception as exc:  # not a database, unreadable file, bad URL
        raise registry_error(db_path, exc, str(engine.url)) from None
    if current is None and tables - {"alembic_version"}:
        raise AsmError(f"{db_path or engine.url} is not an asm registry (an SQLite database with other tables: "
                       f"{', '.join(sorted(tables)[:5])})")
    if current == head_revision():
        return
    try:
        command.upgrade(_alembic_config(engine), "head")
    except Exception as exc:  # noqa: BLE001 - a read-only or damaged file: one line
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            raise registry_error(db_path, exc, str(engine.url)) from None
        raise


def _check_current(engine: Engine, db_path: Path) -> None:
    try:
        current, tables = _state(engine)
    except Exception as exc:  # noqa: BLE001
        raise registry_error(db_path, exc) from None
    if current is None:
        raise AsmError(f"{db_path} is not an asm registry (no asm schema)")
    if current != head_revision():
        raise AsmError(f"the registry {db_path} needs a schema upgrade, which cannot be written here "
                       "(read-only); run asm once where it can write")


def engine(read_only: bool = False) -> Engine:
    return engine_for(paths.database_url(), read_only)


@contextmanager
def session_scope(read_only: bool = False) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error.

    ``read_only`` (commands that only read): when the registry cannot be written, it is opened with
    SQLite's ``mode=ro`` instead of failing; ``session.info["read_only"]`` tells code not to write.
    """
    try:
        bound = engine()
        ro = False
        db_path = sqlite_file(paths.database_url())
        if db_path is not None:
            check_integrity(db_path)  # cheap: a stat when checked within the last minute
    except RegistryReadOnly:
        if not read_only:
            raise
        bound, ro = engine(read_only=True), True
    session = sessionmaker(bind=bound, expire_on_commit=False)()
    session.info["read_only"] = ro
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
