"""subscriptions' metadata, which flows read as #subscription.metadata

Revision ID: a7c4e2b9d1f0
Revises: f3b1c9d7e2a4
Create Date: 2026-12-07 23:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "a7c4e2b9d1f0"
down_revision = "f3b1c9d7e2a4"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metadata", sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("metadata")
