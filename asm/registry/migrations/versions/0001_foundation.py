"""foundation: synth, parameter, preset, fixture_log

Revision ID: 0001
Revises: 
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('fixture_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('synth',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('plugin_id', sa.String(length=64), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('faust', 'vst2', 'vst3')", name='synth_kind'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('parameter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('synth_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('minimum', sa.Float(), nullable=False),
    sa.Column('maximum', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('scale', sa.String(length=10), nullable=False),
    sa.Column('default', sa.Float(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('choices', sa.JSON(), nullable=True),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('locked_value', sa.Float(), nullable=True),
    sa.CheckConstraint("kind IN ('continuous', 'stepped', 'categorical', 'boolean')", name='parameter_kind'),
    sa.CheckConstraint('"default" >= 0 AND "default" <= 1', name='parameter_default_range'),
    sa.CheckConstraint('NOT locked OR (locked_value IS NOT NULL AND locked_value >= 0 AND locked_value <= 1)', name='parameter_lock_value'),
    sa.ForeignKeyConstraint(['synth_id'], ['synth.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('synth_id', 'index', name='parameter_synth_index')
    )
    with op.batch_alter_table('parameter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parameter_synth_id'), ['synth_id'], unique=False)

    op.create_table('preset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('synth_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=True),
    sa.Column('source_format', sa.String(length=20), nullable=True),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("origin IN ('factory', 'user', 'random', 'matched')", name='preset_origin'),
    sa.ForeignKeyConstraint(['synth_id'], ['synth.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('synth_id', 'content_hash', name='preset_synth_hash')
    )
    with op.batch_alter_table('preset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_preset_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_preset_synth_id'), ['synth_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('preset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_preset_synth_id'))
        batch_op.drop_index(batch_op.f('ix_preset_name'))

    op.drop_table('preset')
    with op.batch_alter_table('parameter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parameter_synth_id'))

    op.drop_table('parameter')
    op.drop_table('synth')
    op.drop_table('fixture_log')
    
