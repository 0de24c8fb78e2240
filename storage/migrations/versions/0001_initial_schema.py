"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 13:26:39.802262
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('turn', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('stream', sa.Boolean(), nullable=False),
    sa.Column('policy_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('policy_version', sa.Integer(), nullable=True),
    sa.Column('task', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('task_probs', sa.JSON(), nullable=True),
    sa.Column('complexity', sa.Float(), nullable=True),
    sa.Column('complexity_dims', sa.JSON(), nullable=True),
    sa.Column('classifier_backend', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('pinned_tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('routed_tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.JSON(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('classify_ms', sa.Float(), nullable=True),
    sa.Column('route_ms', sa.Float(), nullable=True),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('total_ms', sa.Float(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('usage_estimated', sa.Boolean(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('baseline_tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('baseline_cost_usd', sa.Float(), nullable=True),
    sa.Column('prompt', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('prompt_chars', sa.Integer(), nullable=True),
    sa.Column('response', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_conversation', ['conversation_id', 'turn'], unique=False)
        batch_op.create_index('ix_decisions_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_decisions_policy_created', ['policy_name', 'created_at'], unique=False)

    op.create_table('policy_activations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('activated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('activated_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('policy_activations', schema=None) as batch_op:
        batch_op.create_index('ix_policy_activations_name', ['name', 'id'], unique=False)

    op.create_table('policy_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'version', name='uq_policy_versions_name_version')
    )
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('correct_task', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('correct_tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reviewer', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_decision', ['decision_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_decision')

    op.drop_table('reviews')
    op.drop_table('policy_versions')
    with op.batch_alter_table('policy_activations', schema=None) as batch_op:
        batch_op.drop_index('ix_policy_activations_name')

    op.drop_table('policy_activations')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_policy_created')
        batch_op.drop_index('ix_decisions_created_at')
        batch_op.drop_index('ix_decisions_conversation')

    op.drop_table('decisions')
