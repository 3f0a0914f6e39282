"""proxy_config and proxy tables (neural proxies, asm.proxy); run kind 'test-proxy'

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

KINDS_0007 = "kind IN ('test-model', 'match', 'benchmark', 'ddsp-train')"
KINDS_0008 = "kind IN ('test-model', 'match', 'benchmark', 'ddsp-train', 'test-proxy')"


def upgrade() -> None:
    op.create_table(
        'proxy_config',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('net', sa.String(length=20), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'proxy',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('config_id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('synth_id', sa.Integer(), nullable=False),
        sa.Column('net', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('device', sa.String(length=20), nullable=False),
        sa.Column('train_settings', sa.JSON(), nullable=False),
        sa.Column('config_settings', sa.JSON(), nullable=False),
        sa.Column('free_signature', sa.String(length=16), nullable=False),
        sa.Column('lock_signature', sa.String(length=16), nullable=False),
        sa.Column('free_parameters', sa.JSON(), nullable=False),
        sa.Column('checkpoint', sa.Text(), nullable=False),
        sa.Column('epochs_done', sa.Integer(), nullable=False),
        sa.Column('best_epoch', sa.Integer(), nullable=True),
        sa.Column('best_val_loss', sa.Float(), nullable=True),
        sa.Column('baseline_val_loss', sa.Float(), nullable=True),
        sa.Column('history', sa.JSON(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('code_version', sa.String(length=80), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('completed_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('training', 'complete', 'failed')", name='proxy_status'),
        sa.ForeignKeyConstraint(['config_id'], ['proxy_config.id']),
        sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id']),
        sa.ForeignKeyConstraint(['synth_id'], ['synth.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    for col in ('config_id', 'dataset_id', 'synth_id'):
        op.create_index(f'ix_proxy_{col}', 'proxy', [col])
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_constraint('run_kind', type_='check')
        batch_op.create_check_constraint('run_kind', KINDS_0008)


def downgrade() -> None:
    op.execute("DELETE FROM result WHERE run_id IN (SELECT id FROM run WHERE kind = 'test-proxy')")
    op.execute("DELETE FROM run WHERE kind = 'test-proxy'")
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_constraint('run_kind', type_='check')
        batch_op.create_check_constraint('run_kind', KINDS_0007)
    op.drop_table('proxy')
    op.drop_table('proxy_config')
