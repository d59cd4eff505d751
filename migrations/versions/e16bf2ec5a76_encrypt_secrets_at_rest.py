"""Secrets at rest: encrypt the secret settings stored in clear (drafts and deployment revisions)

Revision ID: e16bf2ec5a76
Revises: b7c3e1a2d4f5
Create Date: 2026-11-27 13:00:00.000000

The key is this node's (GATEHOUSE_SECRET_KEY or the instance key file); the check value it
stores makes nodes with another key refuse to start. Downgrade decrypts them again.
"""

import sqlalchemy as sa
from alembic import op
from flask import current_app

from gateway_runtime import registry
from gateway_runtime.at_rest import CHECK_TABLE
from gateway_runtime.definition.secrets import map_secrets
from gateway_runtime.plans import map_plan_secret

# revision identifiers, used by Alembic.
revision = "e16bf2ec5a76"
down_revision = "b7c3e1a2d4f5"
branch_labels = None
depends_on = None

# (table, column, connector lookup, settings part): the draft columns that hold connector settings
SETTINGS_COLUMNS = (
    ("entrypoints", "configuration", registry.entrypoint, "configuration"),
    ("endpoint_groups", "shared_configuration", registry.endpoint, "shared"),
    ("endpoints", "configuration", registry.endpoint, "configuration"),
    ("endpoints", "shared_configuration_override", registry.endpoint, "shared"),
)


def _rewrite(change):
    """Apply change() to every stored secret, draft and deployed (connector settings, plans' secrets)."""
    bind = op.get_bind()
    for name, column, spec_of, part in SETTINGS_COLUMNS:
        table = sa.table(name, sa.column("id", sa.Integer), sa.column("type", sa.String), sa.column(column, sa.JSON))
        for row_id, type_name, value in bind.execute(sa.select(table.c.id, table.c.type, table.c[column])).all():
            spec = spec_of(type_name)
            if spec is not None and value is not None:
                _update(bind, table, row_id, column, value, getattr(spec, part).map_secrets(value, change))
    plans = sa.table("plans", sa.column("pk", sa.Integer), sa.column("extra", sa.JSON))
    for pk, extra in bind.execute(sa.select(plans.c.pk, plans.c.extra)).all():
        changed = map_plan_secret(extra or {}, change)
        if changed != extra:
            bind.execute(plans.update().where(plans.c.pk == pk).values(extra=changed))
    deployments = sa.table("deployments", sa.column("id", sa.Integer), sa.column("definition", sa.JSON))
    for row_id, definition in bind.execute(sa.select(deployments.c.id, deployments.c.definition)).all():
        _update(bind, deployments, row_id, "definition", definition, map_secrets(definition, change))


def _update(bind, table, row_id, column, before, after):
    if after != before:
        bind.execute(table.update().where(table.c.id == row_id).values({column: after}))


def upgrade():
    op.create_table(
        CHECK_TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    cipher = current_app.extensions["gatehouse_cipher"]
    _rewrite(cipher.encrypt)
    cipher.check_key(op.get_bind())


def downgrade():
    _rewrite(current_app.extensions["gatehouse_cipher"].decrypt)
    op.drop_table(CHECK_TABLE)
