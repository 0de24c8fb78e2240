"""difficulty (the learned chance that a small tier falls short), per-class tier success and the rule's
reason, on every decision

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions') as batch:
        batch.add_column(sa.Column('difficulty', sa.Float(), nullable=True))
        batch.add_column(sa.Column('tier_success', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('decisions') as batch:
        batch.drop_column('reason')
        batch.drop_column('tier_success')
        batch.drop_column('difficulty')
