"""datasets: dataset, dataset_shard

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('synth_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('shard_size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('code_version', sa.String(length=80), nullable=False),
    sa.Column('free_signature', sa.String(length=16), nullable=False),
    sa.Column('lock_signature', sa.String(length=16), nullable=False),
    sa.Column('free_parameters', sa.JSON(), nullable=False),
    sa.Column('split_counts', sa.JSON(), nullable=False),
    sa.Column('rejections', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("mode IN ('mono', 'poly')", name='dataset_mode'),
    sa.CheckConstraint("status IN ('generating', 'complete')", name='dataset_status'),
    sa.CheckConstraint('size > 0', name='dataset_size'),
    sa.ForeignKeyConstraint(['synth_id'], ['synth.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_synth_id'), ['synth_id'], unique=False)

    op.create_table('dataset_shard',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('file', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('n_notes', sa.Integer(), nullable=False),
    sa.Column('rejections', sa.JSON(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('count > 0', name='dataset_shard_count'),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id', 'index', name='dataset_shard_index')
    )
    with op.batch_alter_table('dataset_shard', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_shard_dataset_id'), ['dataset_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dataset_shard', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_shard_dataset_id'))

    op.drop_table('dataset_shard')
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_synth_id'))

    op.drop_table('dataset')
