"""portal sessions kept on the server, so that logging out ends every copy of the cookie

Revision ID: d2a8f0c5e913
Revises: c4d9e7f1a2b3
Create Date: 2026-11-27 16:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "d2a8f0c5e913"
down_revision = "c4d9e7f1a2b3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_sessions_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_sessions_user_id"))
    op.drop_table("portal_sessions")
