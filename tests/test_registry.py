"""The SQLite registry: created on first use, WAL, migrations in step with the models, persistence."""

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import run_cli_process

from asm.registry.db import engine, head_revision, session_scope
from asm.registry.models import Base
from asm.registry.synths import get_synth


def test_database_is_created_on_first_use_in_wal_mode(asm_home):
    with session_scope() as session:
        assert get_synth(session, "asm-sub").parameters
    db = asm_home / "asm.db"
    assert db.is_file()
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_build_exactly_the_models_schema():
    with engine().connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() == head_revision()
        assert compare_metadata(ctx, Base.metadata) == []


def test_locks_persist_across_processes_and_apply_in_a_new_one(asm_home, tmp_path):
    r = run_cli_process("lock", "asm-sub", "cutoff=0.25", "filter_type=highpass")
    assert r.returncode == 0, r.stderr
    r = run_cli_process("inspect-registry", "--synth", "asm-sub", "--json")
    data = __import__("json").loads(r.stdout)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["cutoff"]["locked"] and params["cutoff"]["locked_value"] == 0.25
    assert params["filter_type"]["locked_value"] == 1.0
    assert data["free_count"] == data["parameter_count"] - 2
    # a render in a new process uses the lock even when --set asks otherwise
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert run_cli_process("render", "--set", "cutoff=0.9", "--duration", "0.5", "--out", a).returncode == 0
    assert run_cli_process("unlock", "asm-sub", "--all").returncode == 0
    assert run_cli_process("render", "--set", "cutoff=0.25", "--set", "filter_type=highpass",
                           "--duration", "0.5", "--out", b).returncode == 0
    import soundfile as sf

    assert (sf.read(a)[0] == sf.read(b)[0]).all()


def test_inspect_registry_lists_synths_and_parameters(cli):
    r = cli("inspect-registry")
    assert r.code == 0 and "asm-sub" in r.out
    r = cli("inspect-registry", "--synth", "asm-sub", "--json")
    data = r.json()
    assert data["name"] == "asm-sub" and data["kind"] == "faust" and data["preset_count"] == 0
    assert [p["index"] for p in data["parameters"]] == list(range(30))
    assert {"index", "name", "kind", "locked", "locked_value"} <= set(data["parameters"][0])


def test_lock_unlock_cli(cli):
    assert cli("lock", "asm-sub", "osc1_wave=sine", "3=0.5").code == 0
    data = cli("inspect-registry", "--synth", "asm-sub", "--json").json()
    locked = {p["name"]: p["locked_value"] for p in data["parameters"] if p["locked"]}
    assert locked == {"osc1_wave": 1.0, "osc1_level": 0.5}
    assert cli("unlock", "asm-sub", "osc1_wave").code == 0
    data = cli("inspect-registry", "--synth", "asm-sub", "--json").json()
    assert [p["name"] for p in data["parameters"] if p["locked"]] == ["osc1_level"]


def _damage(db):
    """Overwrite the middle of the file (as a disk fault would)."""
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(size // 2 - 4096)
        fh.write(bytes(range(256)) * 32)


def _one_line(r, *words):
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert r.code == 2 and len(lines) == 1 and "Traceback" not in r.err, r.err
    assert all(w in r.err for w in words), r.err


def test_a_file_that_is_not_a_registry_is_named_in_one_line(cli, asm_home):
    asm_home.mkdir(parents=True)
    (asm_home / "asm.db").write_text("not a database at all\n" * 100)
    _one_line(cli("inspect-registry"), "is not an asm registry")
    other = sqlite3.connect(asm_home / "asm.db.other")
    other.execute("CREATE TABLE songs (title TEXT)")
    other.commit()
    other.close()
    (asm_home / "asm.db").unlink()
    (asm_home / "asm.db.other").rename(asm_home / "asm.db")
    _one_line(cli("lock", "asm-sub", "cutoff=0.5"), "is not an asm registry", "songs")
    assert [r[0] for r in sqlite3.connect(asm_home / "asm.db").execute("SELECT name FROM sqlite_master")] == ["songs"]


def test_a_damaged_registry_is_not_written_and_a_backup_restores_it(cli, asm_home, tmp_path):
    from asm.registry.db import dispose_engines

    assert cli("lock", "asm-sub", "cutoff=0.25").code == 0
    r = cli("backup", "--out", tmp_path / "good.db")
    assert r.code == 0 and (tmp_path / "good.db").is_file(), r.err
    assert cli("lock", "asm-sub", "cutoff=0.75").code == 0
    dispose_engines()
    db = asm_home / "asm.db"
    _damage(db)
    before = db.read_bytes()
    for args in (("lock", "asm-sub", "cutoff=0.5"), ("generate-dataset", "d", "--size", "4")):
        _one_line(cli(*args), "is damaged", "asm restore")
    assert db.read_bytes() == before  # nothing written into it
    r = cli("restore", tmp_path / "nothing.db")
    assert r.code == 2 and "backup not found" in r.err
    (tmp_path / "junk.db").write_bytes(b"junk" * 1000)
    _one_line(cli("restore", tmp_path / "junk.db"), "is not an asm registry")
    r = cli("restore", tmp_path / "good.db")
    assert r.code == 0, r.err
    saved = list((asm_home / "backups").glob("asm-*.db"))
    assert len(saved) == 1 and saved[0].read_bytes()[:100] == before[:100]  # the damaged one is kept
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    params = {p["name"]: p for p in cli("inspect-registry", "--synth", "asm-sub", "--json").json()["parameters"]}
    assert params["cutoff"]["locked_value"] == 0.25
    assert cli("lock", "asm-sub", "cutoff=0.5").code == 0


def test_the_integrity_check_is_skipped_for_an_unchanged_file_checked_within_a_minute(asm_home, monkeypatch):
    from asm.registry import db as dbmod

    with session_scope() as session:
        get_synth(session, "asm-sub")
    path = asm_home / "asm.db"
    calls = []
    real = dbmod.quick_check
    monkeypatch.setattr(dbmod, "quick_check", lambda p: calls.append(p) or real(p))
    t = __import__("time").time()
    dbmod.check_integrity(path, now=t)
    dbmod.check_integrity(path, now=t + 30)
    assert len(calls) <= 1
    dbmod.check_integrity(path, now=t + 3600)
    assert len(calls) >= 1
    n = len(calls)
    import os

    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # the file changed
    dbmod.check_integrity(path, now=t + 3601)
    assert len(calls) == n + 1


def test_a_read_only_data_directory_reads_and_refuses_writes_in_one_line(tmp_path):
    """Run as an unprivileged user (root may write anywhere, so chmod alone proves nothing)."""
    import json
    import os
    import shutil
    import stat
    import subprocess
    import sys
    import tempfile

    import pytest
    from conftest import ROOT

    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the CLI as an unprivileged user")
    home = Path(tempfile.mkdtemp(prefix="asm-ro-"))  # pytest's tmp_path is private to root
    try:
        env = {**os.environ, "ASM_DATA": str(home), "ASM_DB": f"sqlite:///{home / 'asm.db'}", "HOME": str(home)}
        r = subprocess.run([sys.executable, ROOT / "asm-cli.py", "lock", "asm-sub", "cutoff=0.25"], env=env,
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        for p in [home, *home.iterdir()]:
            p.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH if p.is_dir() else 0o644)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, ROOT / "asm-cli.py"]

        def as_nobody(*args):
            return subprocess.run([*nobody, *args], env=env, capture_output=True, text=True, cwd=ROOT)

        r = as_nobody("inspect-registry", "--synth", "asm-sub", "--json")
        assert r.returncode == 0, r.stderr
        params = {p["name"]: p for p in json.loads(r.stdout)["parameters"]}
        assert params["cutoff"]["locked_value"] == 0.25
        r = as_nobody("list-datasets")
        assert r.returncode == 0 and "no datasets yet" in r.stdout, r.stderr
        r = as_nobody("lock", "asm-sub", "cutoff=0.5")
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and f"data directory {home} is read-only" in r.stderr, r.stderr
        assert sorted(p.name for p in home.iterdir()) == ["asm.db", "asm.db.checked"]
    finally:
        shutil.rmtree(home, ignore_errors=True)
