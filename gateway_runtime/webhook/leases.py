"""Webhook leases: which gateway process runs the delivery loop of each push subscription.

It is decided by a lease row in the database (webhook_states): a process takes a subscription
whose lease is free or expired, renews its leases every tick and delivers only while its lease is
fresh, so a stopped process hands over at once (it frees its leases) and a killed one within
LEASE_S. A process holding no lease only reads: with no push subscription nothing is written (a
write would wait whenever another process locks a SQLite file). Plain UPDATE ... WHERE and INSERT
race the same way on SQLite and PostgreSQL: one process wins each row. Lease times are the
processes' wall clocks: nodes sharing a database keep them in sync (NTP), as they must for
anything else.

Each attempt is recorded (webhook_deliveries, the last LOG_KEEP per subscription) for the portal;
attempts and states are written in batches, once per tick.
"""

import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime

import gevent
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError, OperationalError

from ..entrypoints.webhook import SUBSCRIPTION
from ..outage import Outage
from ..settings import SettingsError
from .delivery import Delivery

log = logging.getLogger("gatehouse.webhook")

LEASE_S = 5.0  # a killed holder's subscriptions move to another process after this long
TICK_S = 0.5  # leases renewed, states and attempts written, commands read
LOG_KEEP = 100  # attempts kept per subscription
PENDING_KEEP = 10_000  # attempts kept in memory while the database cannot be written


class Pusher:
    """The delivery loops of one gateway process, and their leases."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.engine = gateway.engine
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.deliveries = {}  # subscription id -> Delivery
        self.fresh_until = {}  # subscription id -> monotonic time until which its lease is ours
        self.attempts = []  # rows for webhook_deliveries, written at the next tick
        self.states = {}  # subscription id -> (state, detail), written at the next tick
        self.holding = False  # whether the database may hold leases of ours without a loop
        self.greenlet = None

    def start(self):
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        database = Outage(log, "reading and writing webhook leases")
        while True:
            try:
                self.tick()
            except OperationalError as exc:  # the database is down or locked: one line per outage
                database.failed(exc)
            except Exception:
                log.exception("webhook leases and logs could not be written; retrying")
            else:
                database.recovered()
            gevent.sleep(TICK_S)

    # ----- what delivery loops call -----
    def holds_lease(self, delivery):
        return not delivery.stopping.is_set() and time.monotonic() < self.fresh_until.get(delivery.id, 0)

    def set_state(self, subscription_id, state, detail):
        self.states[subscription_id] = (state, detail)

    def record(self, subscription_id, message_id, attempt, status, latency_ms, outcome, snippet):
        self.attempts.append(
            {
                "s": subscription_id,
                "m": message_id,
                "a": attempt,
                "st": status,
                "l": latency_ms,
                "o": outcome,
                "d": snippet,
                "t": _utcnow(),
                "h": self.holder,
            }
        )

    # ----- each tick -----
    def tick(self):
        attempts, self.attempts = self.attempts, []
        states, self.states = self.states, {}
        try:
            with self.engine.begin() as c:
                self._write(c, attempts, states)
                rows = self._read(c)
        except Exception:  # kept for the next tick, the newest PENDING_KEEP only (the database may stay away)
            self.attempts = (attempts + self.attempts)[-PENDING_KEEP:]
            self.states = {**states, **self.states}
            raise
        now = time.time()
        wanted = {}
        for row in rows:
            api = self.gateway.apis.get(row["api_id"])
            entry = api.webhook if api is not None and row["plan_id"] in api.push_plans else None
            if entry is not None and row["state"] != "failed":
                wanted[row["id"]] = (row, api, entry)
        for sid, delivery in list(self.deliveries.items()):
            row, api, _ = wanted.get(sid, (None, None, None))
            if row is None or delivery.api is not api or delivery.fingerprint != row["fingerprint"] or delivery.dead:
                delivery.stop()
                if delivery.dead and sid not in self.states:
                    del self.deliveries[sid]
        if self.deliveries or self.holding:  # else no write at all: a locked SQLite file holds nothing up
            self._renew(now, set(self.deliveries))
        for sid, (row, api, entry) in wanted.items():
            if sid in self.deliveries:
                if row["wake"]:
                    self.deliveries[sid].wake.set()
                continue
            if row["holder"] not in (None, self.holder) and (row["lease_until"] or 0) > now:
                continue
            try:
                settings = SUBSCRIPTION.with_defaults(row["configuration"])
            except SettingsError as exc:  # saved by an older version, say: the portal shows why
                log.warning("webhook subscription %s cannot be delivered: %s", sid, exc)
                continue
            if self._take(row, now):
                self.holding = True
                self.fresh_until[sid] = time.monotonic() + LEASE_S - TICK_S * 2
                self.deliveries[sid] = Delivery(self, row, api, entry, settings)

    def _write(self, c, attempts, states):
        if attempts:  # a subscription deleted meanwhile takes its attempts with it
            existing = {
                row[0]
                for row in c.execute(
                    text("SELECT id FROM subscriptions WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
                    {"ids": sorted({a["s"] for a in attempts})},
                )
            }
            attempts = [a for a in attempts if a["s"] in existing]
        if attempts:
            c.execute(
                text(
                    "INSERT INTO webhook_deliveries (subscription_id, message_id, attempt, status, latency_ms,"
                    " outcome, detail, created_at, gateway) VALUES (:s, :m, :a, :st, :l, :o, :d, :t, :h)"
                ),
                attempts,
            )
            for sid in {a["s"] for a in attempts}:
                c.execute(
                    text(
                        "DELETE FROM webhook_deliveries WHERE subscription_id = :s AND id <= ("
                        "SELECT id FROM webhook_deliveries WHERE subscription_id = :s ORDER BY id DESC"
                        f" LIMIT 1 OFFSET {LOG_KEEP})"
                    ),
                    {"s": sid},
                )
        for sid, (state, detail) in states.items():
            c.execute(
                text(
                    "UPDATE webhook_states SET state = :st, detail = :d, updated_at = :t"
                    " WHERE subscription_id = :s AND holder = :h"
                ),
                {"st": state, "d": detail, "t": _utcnow(), "s": sid, "h": self.holder},
            )

    def _read(self, c):
        rows = c.execute(
            text(
                "SELECT s.id, s.api_id, s.plan_id, s.consumer_configuration, w.state, w.holder, w.lease_until, w.wake"
                " FROM subscriptions s LEFT JOIN webhook_states w ON w.subscription_id = s.id"
                " WHERE s.status = 'ACCEPTED' AND s.consumer_configuration IS NOT NULL"
            )
        ).all()
        found = []
        for sid, api_id, plan_id, stored, state, holder, lease_until, wake in rows:
            stored = json.loads(stored) if isinstance(stored, str) else stored
            if not isinstance(stored, dict):  # a JSON null written by an older row: no webhook settings
                continue
            configuration = SUBSCRIPTION.map_secrets(
                stored.get("entrypointConfiguration") or {}, self.gateway.cipher.decrypt
            )
            found.append(
                {
                    "id": sid,
                    "api_id": api_id,
                    "plan_id": plan_id,
                    "configuration": configuration,
                    "fingerprint": json.dumps(stored, sort_keys=True),
                    "state": state,
                    "holder": holder,
                    "lease_until": lease_until,
                    "wake": wake,
                }
            )
            if wake and sid in self.deliveries:
                c.execute(text("UPDATE webhook_states SET wake = 0 WHERE subscription_id = :s"), {"s": sid})
        return found

    def _renew(self, now, held):
        """Renew this process's leases; a loop whose lease another process took stops."""
        with self.engine.begin() as c:
            c.execute(
                text("UPDATE webhook_states SET lease_until = :u WHERE holder = :h"),
                {"u": now + LEASE_S, "h": self.holder},
            )
            ours = {
                row[0]
                for row in c.execute(
                    text("SELECT subscription_id FROM webhook_states WHERE holder = :h"), {"h": self.holder}
                )
            }
        fresh = time.monotonic() + LEASE_S - TICK_S * 2
        for sid in held:
            if sid in ours:
                self.fresh_until[sid] = fresh
            else:
                self.fresh_until.pop(sid, None)
                self.deliveries[sid].stop()
        freed = ours - {sid for sid, d in self.deliveries.items() if not d.dead}
        self._release(freed)
        self.holding = ours != freed

    def _take(self, row, now):
        params = {"s": row["id"], "h": self.holder, "u": now + LEASE_S, "now": now, "t": _utcnow()}
        try:
            with self.engine.begin() as c:
                if row["state"] is None:
                    c.execute(
                        text(
                            "INSERT INTO webhook_states (subscription_id, state, holder, lease_until, wake,"
                            " updated_at) VALUES (:s, 'active', :h, :u, 0, :t)"
                        ),
                        params,
                    )
                    return True
                taken = c.execute(
                    text(
                        "UPDATE webhook_states SET holder = :h, lease_until = :u, wake = 0 WHERE subscription_id = :s"
                        " AND (holder IS NULL OR holder = :h OR lease_until < :now)"
                    ),
                    params,
                )
                return taken.rowcount == 1
        except IntegrityError:  # another process inserted it first: it holds it
            return False

    def _release(self, subscription_ids):
        if subscription_ids:
            with self.engine.begin() as c:
                for sid in subscription_ids:
                    c.execute(
                        text("UPDATE webhook_states SET holder = NULL WHERE subscription_id = :s AND holder = :h"),
                        {"s": sid, "h": self.holder},
                    )

    def stop(self, timeout=5):
        """Stop the loops, write what they did and free their leases for the other processes."""
        if self.greenlet is not None:
            self.greenlet.kill()
        for delivery in self.deliveries.values():
            delivery.stop()
        gevent.joinall([d.greenlet for d in self.deliveries.values()], timeout=timeout)
        if not (self.deliveries or self.holding or self.attempts or self.states):
            return
        try:
            with self.engine.begin() as c:
                self._write(c, self.attempts, self.states)
                c.execute(text("UPDATE webhook_states SET holder = NULL WHERE holder = :h"), {"h": self.holder})
        except Exception:
            log.exception("webhook leases could not be freed; other processes take them when they expire")


def _utcnow():
    return datetime.now(UTC).replace(tzinfo=None)
