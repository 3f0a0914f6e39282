"""models, search configs, runs and results

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('model_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('arch', sa.String(length=20), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("arch IN ('mlp', 'cnn', 'rescnn', 'lstm', 'transformer', 'flow', 'nn')", name='model_config_arch'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('search_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('model',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('synth_id', sa.Integer(), nullable=False),
    sa.Column('arch', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=20), nullable=False),
    sa.Column('train_settings', sa.JSON(), nullable=False),
    sa.Column('config_settings', sa.JSON(), nullable=False),
    sa.Column('feature_settings', sa.JSON(), nullable=False),
    sa.Column('sample_rate', sa.Integer(), nullable=False),
    sa.Column('free_signature', sa.String(length=16), nullable=False),
    sa.Column('lock_signature', sa.String(length=16), nullable=False),
    sa.Column('free_parameters', sa.JSON(), nullable=False),
    sa.Column('checkpoint', sa.Text(), nullable=False),
    sa.Column('epochs_done', sa.Integer(), nullable=False),
    sa.Column('best_epoch', sa.Integer(), nullable=True),
    sa.Column('best_val_loss', sa.Float(), nullable=True),
    sa.Column('baseline_val_loss', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('code_version', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('training', 'complete', 'failed')", name='model_status'),
    sa.ForeignKeyConstraint(['config_id'], ['model_config.id'], ),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.ForeignKeyConstraint(['synth_id'], ['synth.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_config_id'), ['config_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_synth_id'), ['synth_id'], unique=False)

    op.create_table('model_epoch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('train_loss', sa.Float(), nullable=False),
    sa.Column('val_loss', sa.Float(), nullable=False),
    sa.Column('lr', sa.Float(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('load_seconds', sa.Float(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'epoch', name='model_epoch_unique')
    )
    with op.batch_alter_table('model_epoch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_epoch_model_id'), ['model_id'], unique=False)

    op.create_table('run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('synth_id', sa.Integer(), nullable=True),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('report_path', sa.Text(), nullable=True),
    sa.Column('code_version', sa.String(length=80), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('test-model', 'match', 'benchmark')", name='run_kind'),
    sa.CheckConstraint("status IN ('running', 'complete', 'failed', 'interrupted')", name='run_status'),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ),
    sa.ForeignKeyConstraint(['synth_id'], ['synth.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_synth_id'), ['synth_id'], unique=False)

    op.create_table('result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=100), nullable=False),
    sa.Column('target_set', sa.String(length=40), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('example_index', sa.Integer(), nullable=True),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('preset_id', sa.Integer(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('param_mae', sa.Float(), nullable=True),
    sa.Column('param_accuracy', sa.Float(), nullable=True),
    sa.Column('renders', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=True),
    sa.Column('notes', sa.JSON(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ),
    sa.ForeignKeyConstraint(['preset_id'], ['preset.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_run_id'), ['run_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_run_id'))
        batch_op.drop_index(batch_op.f('ix_result_model_id'))

    op.drop_table('result')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_synth_id'))
        batch_op.drop_index(batch_op.f('ix_run_model_id'))
        batch_op.drop_index(batch_op.f('ix_run_dataset_id'))

    op.drop_table('run')
    with op.batch_alter_table('model_epoch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_epoch_model_id'))

    op.drop_table('model_epoch')
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_synth_id'))
        batch_op.drop_index(batch_op.f('ix_model_dataset_id'))
        batch_op.drop_index(batch_op.f('ix_model_config_id'))

    op.drop_table('model')
    op.drop_table('search_config')
    op.drop_table('model_config')

