"""model_config: drop the CHECK on arch (architectures come from asm.models.architectures)

Revision ID: 0005
Revises: 0004

The list of architectures lives in code, one module each; a CHECK constraint repeated it, so
every new architecture needed a migration. SQLite cannot drop a constraint in place: batch mode
copies the table (rows and ids kept); ``env.py`` turns foreign keys off around the copy, since
``model.config_id`` points at this table.
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ARCHS_0004 = ('mlp', 'cnn', 'rescnn', 'lstm', 'transformer', 'flow', 'nn')


def upgrade() -> None:
    with op.batch_alter_table('model_config', schema=None) as batch_op:
        batch_op.drop_constraint('model_config_arch', type_='check')


def downgrade() -> None:
    names = ", ".join(f"'{a}'" for a in ARCHS_0004)
    with op.batch_alter_table('model_config', schema=None) as batch_op:
        batch_op.create_check_constraint('model_config_arch', f"arch IN ({names})")
