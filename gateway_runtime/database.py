"""Database access shared by the portal and the runtime: URL handling and engine settings.

The runtime reads deployed revisions as plain JSON with a couple of SQL statements; it knows
nothing of the portal's ORM classes, only the table and column names below.

SQLite under gevent: a sqlite3 call is a C call, and while SQLite waits for a lock another
process holds (up to its busy timeout) every greenlet of the process would wait with it: every
stream and request. So each call that may wait for a lock runs in a thread of a pool of its own
(sqlite3 lets go of the GIL while SQLite works or waits), and only the greenlet that made it
waits. Chosen over a zero busy timeout with cooperative retries: a statement that met a lock
cannot always be retried inside its transaction (a deferred one must start again from a newer
snapshot), and a whole transaction, a portal request say, cannot be replayed; in a thread,
SQLite waits as it always did, for every caller alike. Fetching rows never waits for a lock
(the statement's first step, in execute, took it), so it stays on the caller's greenlet. The pool
is not the hub's: gevent resolves host names in that one, and writers waiting for a lock must
not hold up the gateway's backend connections. PostgreSQL (psycopg 3) cooperates with gevent.
"""

import functools
import json
import os
import sqlite3

from gevent import get_hub, getcurrent, monkey
from gevent.threadpool import ThreadPool
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

SQLITE_BUSY_TIMEOUT_MS = 10_000
# At least as many as both engines' pools can open at once (2 x (5 + 10 overflow)), so that
# calls waiting for a lock never hold up one that need not wait. Threads start when needed.
SQLITE_THREADS = 32


def _off_hub(call, *args):
    if not monkey.is_module_patched("socket"):  # no greenlets to hold up: threads are real ones
        return call(*args)
    if getcurrent() is get_hub():  # the hub itself cannot wait for a thread
        return call(*args)
    failed, outcome = _threads().apply(_caught, (call, args))
    if failed:
        raise outcome
    return outcome


def _caught(call, args):  # raised in the pool, gevent would print each error with its traceback
    try:
        return False, call(*args)
    except Exception as exc:
        return True, exc


@functools.cache
def _threads():  # made by the hub that uses it (gevent starts it again in a forked child)
    return ThreadPool(SQLITE_THREADS)


class _Cursor(sqlite3.Cursor):
    def execute(self, *args):
        return _off_hub(super().execute, *args)

    def executemany(self, *args):
        return _off_hub(super().executemany, *args)

    def executescript(self, *args):
        return _off_hub(super().executescript, *args)


class _Connection(sqlite3.Connection):
    """A sqlite3 connection whose calls that may wait for a lock leave the gevent hub free."""

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, *args):
        return self.cursor().executescript(*args)

    def commit(self):
        if self.in_transaction:  # the pool's reset on every check-in: no thread for nothing
            _off_hub(super().commit)

    def rollback(self):
        if self.in_transaction:
            _off_hub(super().rollback)

    def close(self):  # may wait for a statement still running in a thread (its greenlet was killed)
        _off_hub(super().close)


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
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url):
    if url.startswith("sqlite"):
        return {
            "connect_args": {
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "check_same_thread": False,
                "factory": _Connection,
            }
        }
    return {"pool_pre_ping": True}


LOCKED_OUT = "Database busy: another process holds its lock; try again in a moment."


UNREACHABLE = (
    "The database cannot be reached right now; the gateway keeps serving the deployed APIs. "
    "Check that the database server is up, then try again."
)


def unavailable(exc):
    """What to tell a portal user when a request failed because the database could not serve it
    (SQLite's lock held by another process past the busy timeout, or the server unreachable),
    else None: an error of the code, not of the database."""
    if not isinstance(exc, OperationalError):
        return None
    if isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig):
        return LOCKED_OUT
    # psycopg gives errors of the connection itself no SQLSTATE; those of a statement have one
    if exc.connection_invalidated or getattr(exc.orig, "sqlstate", "") is None:
        return UNREACHABLE
    return None


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
    rows = connection.execute(
        text("SELECT id, deployed_revision FROM apis WHERE state = 'started' AND deployed_revision IS NOT NULL")
    )
    return {row[0]: row[1] for row in rows}


def load_revisions(connection, wanted):
    """Definitions (dicts) of the given {api_id: revision} pairs."""
    found = {}
    for api_id, revision in wanted.items():
        row = connection.execute(
            text("SELECT definition FROM deployments WHERE api_id = :a AND revision = :r"), {"a": api_id, "r": revision}
        ).first()
        if row is not None:
            value = row[0]
            found[api_id] = json.loads(value) if isinstance(value, str) else value
    return found


def access_version(connection):
    return connection.execute(text("SELECT version FROM access_version WHERE id = 1")).scalar()


def access_tables(connection):
    """(plan statuses, live API keys, JWT subscribers, subscriptions' metadata): see
    gateway_runtime.access.Access."""
    statuses = {
        (api, plan): status for api, plan, status in connection.execute(text("SELECT api_id, id, status FROM plans"))
    }
    keys = {
        row[0]: tuple(row[1:])
        for row in connection.execute(
            text(
                "SELECT k.key_hash, s.id, s.api_id, s.plan_id FROM api_keys k"
                " JOIN subscriptions s ON s.id = k.subscription_id WHERE k.revoked_at IS NULL AND s.status = 'ACCEPTED'"
            )
        )
    }
    subscribers = {
        tuple(row[:3]): row[3]
        for row in connection.execute(
            text(
                "SELECT s.api_id, s.plan_id, a.client_id, s.id FROM subscriptions s"
                " JOIN applications a ON a.id = s.application_id WHERE s.status = 'ACCEPTED'"
            )
        )
    }
    metadata = {
        subscription: value if isinstance(value, dict) else json.loads(value)
        for subscription, value in connection.execute(
            text("SELECT id, metadata FROM subscriptions WHERE status = 'ACCEPTED' AND metadata IS NOT NULL")
        )
    }
    return statuses, keys, subscribers, metadata
