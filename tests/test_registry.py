"""The SQLite registry: created on first use, WAL, migrations in step with the models, persistence."""

import sqlite3

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
