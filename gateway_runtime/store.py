"""Database access shared by the portal and the runtime: URL handling and engine settings.

The runtime reads deployed revisions as plain JSON with a couple of SQL statements; it knows
nothing of the portal's ORM classes, only the table and column names below.
"""
import json
import os

from sqlalchemy import create_engine, event, text

SQLITE_BUSY_TIMEOUT_MS = 10_000


def database_url(instance_path):
    url = os.environ.get("GATEHOUSE_DATABASE_URL")
    if not url:
        os.makedirs(instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(os.path.abspath(instance_path), "gatehouse.db")
    return normalise_url(url)


def normalise_url(url):
    # psycopg 3 cooperates with gevent; SQLAlchemy would pick psycopg2 for a bare postgresql:// URL.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def engine_options(url):
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def install_sqlite_pragmas(engine):
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def make_engine(url):
    engine = create_engine(url, **engine_options(url))
    install_sqlite_pragmas(engine)
    return engine


def served_versions(connection):
    """{api_id: revision} for every started API that has a deployment."""
    rows = connection.execute(text(
        "SELECT id, deployed_revision FROM apis WHERE state = 'started' AND deployed_revision IS NOT NULL"))
    return {row[0]: row[1] for row in rows}


def load_revisions(connection, wanted):
    """Definitions (dicts) of the given {api_id: revision} pairs."""
    found = {}
    for api_id, revision in wanted.items():
        row = connection.execute(
            text("SELECT definition FROM deployments WHERE api_id = :a AND revision = :r"),
            {"a": api_id, "r": revision}).first()
        if row is not None:
            value = row[0]
            found[api_id] = json.loads(value) if isinstance(value, str) else value
    return found


def access_version(connection):
    return connection.execute(text("SELECT version FROM access_version WHERE id = 1")).scalar()


def access_tables(connection):
    """(plan statuses, live API keys, JWT subscribers): see gateway_runtime.access.Access."""
    statuses = {(api, plan): status for api, plan, status in
                connection.execute(text("SELECT api_id, id, status FROM plans"))}
    keys = {row[0]: tuple(row[1:]) for row in connection.execute(text(
        "SELECT k.key_hash, s.id, s.api_id, s.plan_id FROM api_keys k JOIN subscriptions s ON s.id = k.subscription_id"
        " WHERE k.revoked_at IS NULL AND s.status = 'ACCEPTED'"))}
    subscribers = {tuple(row[:3]): row[3] for row in connection.execute(text(
        "SELECT s.api_id, s.plan_id, a.client_id, s.id FROM subscriptions s"
        " JOIN applications a ON a.id = s.application_id WHERE s.status = 'ACCEPTED'"))}
    return statuses, keys, subscribers
