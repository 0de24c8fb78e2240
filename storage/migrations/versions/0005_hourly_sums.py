"""hourly sums of the decisions (per outcome, and latency bins per tier) and their watermark; an
index for the review queue (confidence, newest first)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decision_hours',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('policy_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('policy_version', sa.Integer(), nullable=True),
    sa.Column('task', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('routed_tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('fallbacks', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('paid_baseline_usd', sa.Float(), nullable=False),
    sa.Column('baseline_cost_usd', sa.Float(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_decision_hours_hour', 'decision_hours', ['hour'], unique=False)
    op.create_table('latency_hours',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('policy_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('bin', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_latency_hours_hour', 'latency_hours', ['hour'], unique=False)
    op.create_index('ix_decisions_confidence', 'decisions', ['confidence', sa.text('created_at DESC')], unique=False)
    op.create_table('rollup_watermark',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sealed_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    # The hours already logged are summed by the decision logs' background seal, a day of them per
    # transaction: a long history never holds up the start (readers use the decisions meanwhile).


def downgrade() -> None:
    op.drop_table('rollup_watermark')
    op.drop_index('ix_decisions_confidence', table_name='decisions')
    op.drop_index('ix_latency_hours_hour', table_name='latency_hours')
    op.drop_table('latency_hours')
    op.drop_index('ix_decision_hours_hour', table_name='decision_hours')
    op.drop_table('decision_hours')
