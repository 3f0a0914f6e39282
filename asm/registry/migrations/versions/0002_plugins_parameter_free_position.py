"""plugins: parameter.free_position (the stored order of unlocked parameters)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('parameter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('free_position', sa.Integer(), nullable=True))
    # Existing registries: free parameters in ascending plugin index, per synth.
    op.execute(
        """
        UPDATE parameter SET free_position = (
            SELECT COUNT(*) FROM parameter AS p
            WHERE p.synth_id = parameter.synth_id AND NOT p.locked AND p."index" < parameter."index"
        ) WHERE NOT locked
        """
    )


def downgrade() -> None:
    with op.batch_alter_table('parameter', schema=None) as batch_op:
        batch_op.drop_column('free_position')
