"""DDSP timbre models and their checkpoints; runs of kind 'ddsp-train'

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

KINDS_0005 = "kind IN ('test-model', 'match', 'benchmark')"
KINDS_0006 = "kind IN ('test-model', 'match', 'benchmark', 'ddsp-train')"


def upgrade() -> None:
    op.create_table('ddsp_model',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sample_rate', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=20), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('train_settings', sa.JSON(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('feature_cache', sa.Text(), nullable=False),
    sa.Column('checkpoint', sa.Text(), nullable=False),
    sa.Column('steps_done', sa.Integer(), nullable=False),
    sa.Column('first_loss', sa.Float(), nullable=True),
    sa.Column('last_loss', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('code_version', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('training', 'complete', 'failed')", name='ddsp_model_status'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('ddsp_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=False),
    sa.Column('file', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['ddsp_model.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'step', name='ddsp_checkpoint_step')
    )
    with op.batch_alter_table('ddsp_checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ddsp_checkpoint_model_id'), ['model_id'], unique=False)
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_constraint('run_kind', type_='check')
        batch_op.create_check_constraint('run_kind', KINDS_0006)


def downgrade() -> None:
    op.execute("DELETE FROM run WHERE kind = 'ddsp-train'")
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_constraint('run_kind', type_='check')
        batch_op.create_check_constraint('run_kind', KINDS_0005)
    with op.batch_alter_table('ddsp_checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ddsp_checkpoint_model_id'))
    op.drop_table('ddsp_checkpoint')
    op.drop_table('ddsp_model')
