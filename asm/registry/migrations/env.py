"""Alembic environment: migrations run on the engine asm hands over (see asm.registry.db)."""

from alembic import context

from asm.registry.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
