"""Schema migrations keep what is stored: an old registry upgraded keeps every row and id."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError


@pytest.fixture
def registry_at_0004(asm_home):
    """A registry file built by the migrations up to 0004 (arch CHECK in place), with rows in it."""
    from alembic import command

    from asm.registry.db import _alembic_config, _sqlite_pragmas

    asm_home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{asm_home / 'asm.db'}"
    old = create_engine(url)
    event.listen(old, "connect", _sqlite_pragmas)  # foreign keys on, as asm opens it
    command.upgrade(_alembic_config(old), "0004")
    with old.begin() as conn:
        conn.execute(text("INSERT INTO synth (id, name, kind, path, version, settings, created_at, updated_at) "
                          "VALUES (1, 'asm-sub', 'faust', 'builtin:asm-sub', '1', '{}', '2026-01-01', '2026-01-01')"))
        conn.execute(text(
            "INSERT INTO dataset (id, name, synth_id, mode, size, shard_size, status, seed, settings, code_version, "
            "free_signature, lock_signature, free_parameters, split_counts, rejections, created_at) VALUES "
            "(1, 'd', 1, 'mono', 10, 10, 'complete', 0, '{}', 'x', 'f', 'l', '[]', '{}', '{}', '2026-01-01')"))
        for i, arch in enumerate(("cnn", "flow", "nn"), start=3):
            conn.execute(text("INSERT INTO model_config (id, name, arch, settings, description, created_at, "
                              "updated_at) VALUES (:id, :name, :arch, '{\"encoder\": {}}', 'old', '2026-01-01', "
                              "'2026-01-01')"), {"id": i, "name": f"{arch}-old", "arch": arch})
        conn.execute(text(
            "INSERT INTO model (id, name, config_id, dataset_id, synth_id, arch, status, seed, device, "
            "train_settings, config_settings, feature_settings, sample_rate, free_signature, lock_signature, "
            "free_parameters, checkpoint, epochs_done, seconds, code_version, created_at) VALUES "
            "(7, 'm', 4, 1, 1, 'flow', 'complete', 0, 'cpu', '{}', '{}', '{}', 16000, 'f', 'l', '[]', 'models/m', "
            "3, 1.5, 'x', '2026-01-01')"))
        with pytest.raises(IntegrityError):  # the old schema refuses an architecture it does not list
            with conn.begin_nested():
                conn.execute(text("INSERT INTO model_config (name, arch, settings, description, created_at, "
                                  "updated_at) VALUES ('x', 'tinylinear', '{}', '', '2026-01-01', '2026-01-01')"))
    old.dispose()
    return asm_home / "asm.db"


def test_upgrade_drops_the_arch_check_and_keeps_every_row(registry_at_0004):
    from asm.registry.db import engine, head_revision, session_scope
    from asm.registry.models import Model, ModelConfigRow

    before = sqlite3.connect(registry_at_0004).execute("SELECT * FROM model_config ORDER BY id").fetchall()
    with engine().connect() as conn:  # first use upgrades to head
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    db = sqlite3.connect(registry_at_0004)
    assert db.execute("SELECT * FROM model_config ORDER BY id").fetchall() == before
    assert "CHECK" not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'model_config'").fetchone()[0]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with session_scope() as session:
        model = session.get(Model, 7)
        assert model.config.name == "flow-old" and model.epochs_done == 3
        session.add(ModelConfigRow(name="new", arch="tinylinear", settings={}))  # no CHECK any more
    with session_scope() as session:
        assert session.query(ModelConfigRow).count() == 4
    # foreign keys are enforced again on the upgraded registry
    with pytest.raises(IntegrityError):
        with session_scope() as session:
            session.add(Model(name="orphan", config_id=99, dataset_id=1, synth_id=1, arch="cnn", seed=0,
                              sample_rate=16000, free_signature="f", lock_signature="l", free_parameters=[],
                              checkpoint="x"))
