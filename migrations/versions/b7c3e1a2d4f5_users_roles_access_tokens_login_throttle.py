"""users: roles, disabled flag, personal access tokens, login throttle; APIs get an owner

Revision ID: b7c3e1a2d4f5
Revises: 9edb4a9cffe7
Create Date: 2026-11-28 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "b7c3e1a2d4f5"
down_revision = "9edb4a9cffe7"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=20), nullable=False, server_default="viewer"))
        batch_op.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(
            sa.Column("created_at", sa.DateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP"))
        )
    # Before roles there was only the first-start admin: it keeps every right it had.
    op.execute("UPDATE users SET role = 'admin'")

    with op.batch_alter_table("apis", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_apis_owner_id"), ["owner_id"], unique=False)
        batch_op.create_foreign_key("fk_apis_owner_id_users", "users", ["owner_id"], ["id"], ondelete="SET NULL")
    # ...and so it created every API there is.
    op.execute("UPDATE apis SET owner_id = (SELECT min(id) FROM users)")

    op.create_table(
        "access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade():
    op.drop_table("login_throttle")
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_tokens_user_id"))
    op.drop_table("access_tokens")
    with op.batch_alter_table("apis", schema=None) as batch_op:
        batch_op.drop_constraint("fk_apis_owner_id_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_apis_owner_id"))
        batch_op.drop_column("owner_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("created_at")
        batch_op.drop_column("disabled")
        batch_op.drop_column("role")
