"""Alembic environment: migrations run on the engine asm hands over (see asm.registry.db).

SQLite alters a table by copying it (batch mode); with foreign keys on, dropping the old copy of
a table that others reference fails (or would cascade), so they are off while migrations run and
checked afterwards, as SQLite's own procedure for schema changes asks.
"""

from alembic import context

from asm.errors import AsmError
from asm.registry.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # outside any transaction, or SQLite ignores it
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise AsmError(f"a registry migration would break foreign keys ({broken[:3]}); nothing was changed")
    connection.commit()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
