"""secrets typed into a failed form, kept on the server for the next try

Revision ID: f3b1c9d7e2a4
Revises: d2a8f0c5e913
Create Date: 2026-12-10 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "f3b1c9d7e2a4"
down_revision = "d2a8f0c5e913"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "kept_form_secrets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["portal_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kept_form_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kept_form_secrets_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_kept_form_secrets_created_at"), ["created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("kept_form_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kept_form_secrets_created_at"))
        batch_op.drop_index(batch_op.f("ix_kept_form_secrets_session_id"))
    op.drop_table("kept_form_secrets")
