"""Webhook delivery: one loop per accepted push-plan subscription, run by exactly one gateway process.

Which process runs a subscription is decided by a lease row in the database (webhook_states):
a process takes a subscription whose lease is free or expired, renews its leases every tick and
delivers only while its lease is fresh, so a stopped process hands over at once (it frees its
leases) and a killed one within LEASE_S. A process holding no lease only reads: with no push
subscription nothing is written (a write would wait whenever another process locks a SQLite
file). Plain UPDATE ... WHERE and INSERT race the same way on SQLite and PostgreSQL: one process
wins each row. Lease times are the processes' wall clocks:
nodes sharing a database keep them in sync (NTP), as they must for anything else.

A loop POSTs each message to the callback; 2xx acknowledges it (a commit or an ack at the
endpoint, per qos); anything else is tried again per the subscription's retry policy, then sent
to the entrypoint's dead-letter endpoint, or, without one, the subscription is marked failed and
stops until someone resumes it. Each attempt is recorded (webhook_deliveries, the last LOG_KEEP
per subscription) for the portal; attempts and states are written in batches, once per tick.
"""
import base64
import ipaddress
import json
import logging
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

import gevent
import urllib3
from gevent.event import Event
from gevent.pool import Pool
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError, OperationalError

from .endpoints.http_proxy import outbound_proxy, pool_manager, ssl_context
from .entrypoints.webhook import NO_RETRY, SUBSCRIPTION
from .messages import EndpointError
from .outage import Outage
from .settings import SettingsError

log = logging.getLogger("gatehouse.webhook")

LEASE_S = 5.0         # a killed holder's subscriptions move to another process after this long
TICK_S = 0.5          # leases renewed, states and attempts written, commands read
LOG_KEEP = 100        # attempts kept per subscription
PENDING_KEEP = 10_000  # attempts kept in memory while the database cannot be written
SNIPPET = 200         # characters of a callback's answer kept in the log
BATCH = 64
RESUBSCRIBE_S = 2.0   # after the endpoint failed, before subscribing again
ALLOW_PRIVATE = "GATEHOUSE_WEBHOOK_ALLOW_PRIVATE"
# Not a message's to set: they describe the call itself.
NOT_FORWARDED = frozenset(("host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"))


class Refused(Exception):
    """A callback URL this gateway will not call."""


TOKEN_ENDPOINTS = "OAuth2 token endpoints"


def check_callback(url, what="callbacks"):
    """Raise Refused when the URL is not http(s) or its host resolves to loopback, link-local,
    private or otherwise non-public addresses (unless GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true), so
    that subscribers cannot make the gateway probe the network it runs in."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"'{url}' is not an http:// or https:// URL")
    if os.environ.get(ALLOW_PRIVATE, "").lower() == "true":
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"the host {parts.hostname} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        address = getattr(address, "ipv4_mapped", None) or address
        if not address.is_global or address.is_multicast:
            raise Refused(f"{parts.hostname} resolves to {address}, a loopback, link-local or private address: "
                          f"{what} must be public (the gateway's administrator may set {ALLOW_PRIVATE}=true)")


def delays(retry):
    """The waits before the 2nd, 3rd... attempts (as many as the policy allows)."""
    if retry.get("retryOption") == NO_RETRY:
        return []
    initial, ceiling = retry["initialDelaySeconds"], retry["maxDelaySeconds"]
    grow = (lambda n: initial * n) if retry["retryStrategy"] == "LINEAR" else (lambda n: initial * 2 ** (n - 1))
    return [min(grow(n), ceiling) for n in range(1, retry["maxAttempts"])]


class Caller:
    """Calls one subscription's callback: its pool, headers and credentials."""

    def __init__(self, entry, settings):
        self.url = settings["callbackUrl"]
        self.headers = {h["name"]: h["value"] for h in settings.get("headers", [])}
        self.auth = settings.get("auth") or {"type": "none"}
        ssl = settings.get("ssl") or {}
        context = ssl_context(ssl) if self.url.startswith("https") or self.auth["type"] == "oauth2" else None
        options = dict(num_pools=4, maxsize=entry.concurrency, block=True, retries=False,
                       timeout=urllib3.Timeout(connect=entry.connect_timeout, read=entry.read_timeout),
                       ssl_context=context,
                       **({"assert_hostname": False} if context is not None and not context.check_hostname else {}))
        self.pool = pool_manager(outbound_proxy(entry.config.get("proxy") or {}, self.url), options)
        self.token = None  # (OAuth2 access token, monotonic expiry)

    def post(self, message):
        """(status, answer snippet); raises EndpointError when the callback cannot be reached."""
        check_callback(self.url)  # again at each call: what a name resolves to may change
        headers = {name: ", ".join(values) for name, values in message.headers.items()
                   if name.lower() not in NOT_FORWARDED}
        headers.update(self.headers)
        headers.update(self._credentials())
        try:
            response = self.pool.urlopen("POST", self.url, body=message.content, headers=headers, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise EndpointError(f"the callback {urlsplit(self.url).netloc} cannot be reached: "
                                f"{getattr(exc, 'reason', None) or exc}") from None
        if response.status == 401:
            self.token = None  # the token may have been revoked: fetch a new one next time
        return response.status, response.data[:SNIPPET * 4].decode("utf-8", "replace")[:SNIPPET]

    def _credentials(self):
        kind = self.auth["type"]
        if kind == "basic":
            basic = self.auth["basic"]
            pair = base64.b64encode(f"{basic['username']}:{basic['password']}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        if kind == "token":
            return {"Authorization": f"Bearer {self.auth['token']['value']}"}
        if kind == "oauth2":
            if self.token is None or time.monotonic() >= self.token[1]:
                self.token = self._fetch_token(self.auth["oauth2"])
            return {"Authorization": f"Bearer {self.token[0]}"}
        return {}

    def _fetch_token(self, oauth2):
        """An access token by the client-credentials grant (RFC 6749, 4.4): client authentication
        by HTTP Basic, as the RFC asks servers to support."""
        check_callback(oauth2["endpoint"], TOKEN_ENDPOINTS)
        form = {"grant_type": "client_credentials"}
        if oauth2.get("scopes"):
            form["scope"] = " ".join(oauth2["scopes"])
        headers = urllib3.make_headers(basic_auth=f"{oauth2['clientId']}:{oauth2['clientSecret']}")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = self.pool.urlopen("POST", oauth2["endpoint"], body=urlencode(form), headers=headers,
                                         redirect=False)
            answer = json.loads(response.data)
            token = answer["access_token"]
        except (urllib3.exceptions.HTTPError, OSError, ValueError, KeyError, TypeError):
            raise EndpointError(f"no access token from {oauth2['endpoint']}") from None
        # Renewed a little before it expires, so that no call carries a token expiring on the way.
        lifetime = float(answer.get("expires_in") or 300) * 0.9
        return token, time.monotonic() + lifetime

    def close(self):
        self.pool.clear()


class Delivery:
    """The loop of one subscription, in its own greenlet."""

    def __init__(self, pusher, row, api, entry, settings):
        self.pusher = pusher
        self.id = row["id"]
        self.api = api
        self.entry = entry
        self.settings = settings
        self.fingerprint = row["fingerprint"]
        self.delays = delays(settings.get("retry") or {})
        self.wake = Event()      # "retry now", or a stop
        self.stopping = Event()
        self.state = None
        self.caller = None
        self.greenlet = gevent.spawn(self.run)

    def stop(self):
        self.stopping.set()
        self.wake.set()

    def note(self, state, detail):
        if (state, detail) != self.state:
            self.state = (state, detail)
            self.pusher.set_state(self.id, state, detail)

    @property
    def dead(self):
        return self.greenlet.dead

    def run(self):
        self.api.enter()  # its connectors stay open while the loop runs
        try:
            self.caller = Caller(self.entry, self.settings)
            while not self.stopping.is_set() and not self.api.stopping.is_set():
                try:
                    subscription = self.api.subscribe_push(self.id, self.entry.qos)
                except EndpointError as exc:
                    self.note("retrying", f"The endpoint failed: {exc}")
                    self.stopping.wait(RESUBSCRIBE_S)
                    continue
                try:
                    if not self.pump(subscription):
                        return
                finally:
                    self.api.unsubscribe(subscription)
        except Exception:
            log.exception("webhook delivery of subscription %s failed", self.id)
            self.note("failed", "Unexpected gateway error; the gateway log has the details.")
        finally:
            if self.caller is not None:
                self.caller.close()
            self.api.leave()

    def pump(self, subscription):
        """Deliver until the stream ends or fails (True: subscribe again) or the subscription fails."""
        pool = Pool(self.entry.concurrency)
        while not self.stopping.is_set():
            try:
                batch = subscription.next_batch(1.0, BATCH)
            except EndpointError as exc:
                self.note("retrying", f"The endpoint failed: {exc}")
                self.stopping.wait(RESUBSCRIBE_S)
                return True
            if batch is None:  # a finite stream (the mock's messageCount) ended, or the API retires
                self.stopping.wait()
                return False
            if not batch:
                continue
            settled = 0
            for ok in pool.imap(self.deliver, batch):  # in order, however many run at once
                if not ok:
                    break
                settled += 1
            if settled:
                subscription.acknowledge(batch[:settled])
            if settled < len(batch):
                return False
        return False

    def deliver(self, message):
        """True once the message is delivered or dead-lettered; False when the subscription fails or
        the loop must end (its lease was lost, its API retired, or the gateway stops)."""
        status, why = None, ""
        for attempt in range(1, len(self.delays) + 2):
            if attempt > 1:
                self.note("retrying", f"Message {message.id}: attempt {attempt - 1} got {why}")
                self.wake.clear()
                self.wake.wait(self.delays[attempt - 2])
            if not self.pusher.holds_lease(self):
                return False
            started = time.monotonic()
            try:
                status, snippet = self.caller.post(message)
            except (EndpointError, Refused) as exc:
                status, snippet = None, str(exc)
            latency = int((time.monotonic() - started) * 1000)
            ok = status is not None and 200 <= status < 300
            self.pusher.record(self.id, message.id, attempt, status, latency, "delivered" if ok else "failed", snippet)
            if ok:
                self.note("active", None)
                return True
            why = f"HTTP {status}" if status is not None else snippet
        return self.give_up(message, status, why, attempt)

    def give_up(self, message, status, why, attempts):
        interrupt = self.entry.interrupt_on_server_error if status is not None and status >= 500 \
            else self.entry.interrupt_on_exception if status is None else False
        if self.entry.dlq is not None and not interrupt:
            try:
                self.entry.dlq.publish(self.api.context_for(self.id, self.entry.qos), message)
            except EndpointError as exc:
                why = f"{why}; the dead-letter endpoint failed too: {exc}"
            else:
                self.pusher.record(self.id, message.id, attempts, status, 0, "dead-lettered",
                                   f"after {attempts} attempts ({why})")
                return True
        self.note("failed", f"Message {message.id} not delivered after {attempts} "
                  f"attempt{'s' if attempts > 1 else ''}: {why}")
        return False


class Pusher:
    """The delivery loops of one gateway process, and their leases."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.engine = gateway.engine
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.deliveries = {}   # subscription id -> Delivery
        self.fresh_until = {}  # subscription id -> monotonic time until which its lease is ours
        self.attempts = []     # rows for webhook_deliveries, written at the next tick
        self.states = {}       # subscription id -> (state, detail), written at the next tick
        self.holding = False   # whether the database may hold leases of ours without a loop
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
        self.attempts.append({"s": subscription_id, "m": message_id, "a": attempt, "st": status, "l": latency_ms,
                              "o": outcome, "d": snippet, "t": _utcnow(), "h": self.holder})

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
            if row is None or delivery.api is not api or delivery.fingerprint != row["fingerprint"] \
                    or delivery.dead:
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
            existing = {row[0] for row in c.execute(text("SELECT id FROM subscriptions WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": sorted({a["s"] for a in attempts})})}
            attempts = [a for a in attempts if a["s"] in existing]
        if attempts:
            c.execute(text("INSERT INTO webhook_deliveries (subscription_id, message_id, attempt, status, latency_ms,"
                           " outcome, detail, created_at, gateway) VALUES (:s, :m, :a, :st, :l, :o, :d, :t, :h)"), attempts)
            for sid in {a["s"] for a in attempts}:
                c.execute(text("DELETE FROM webhook_deliveries WHERE subscription_id = :s AND id <= ("
                               "SELECT id FROM webhook_deliveries WHERE subscription_id = :s ORDER BY id DESC"
                               f" LIMIT 1 OFFSET {LOG_KEEP})"), {"s": sid})
        for sid, (state, detail) in states.items():
            c.execute(text("UPDATE webhook_states SET state = :st, detail = :d, updated_at = :t"
                           " WHERE subscription_id = :s AND holder = :h"),
                      {"st": state, "d": detail, "t": _utcnow(), "s": sid, "h": self.holder})

    def _read(self, c):
        rows = c.execute(text(
            "SELECT s.id, s.api_id, s.plan_id, s.consumer_configuration, w.state, w.holder, w.lease_until, w.wake"
            " FROM subscriptions s LEFT JOIN webhook_states w ON w.subscription_id = s.id"
            " WHERE s.status = 'ACCEPTED' AND s.consumer_configuration IS NOT NULL")).all()
        found = []
        for sid, api_id, plan_id, stored, state, holder, lease_until, wake in rows:
            stored = json.loads(stored) if isinstance(stored, str) else stored
            if not isinstance(stored, dict):  # a JSON null written by an older row: no webhook settings
                continue
            configuration = SUBSCRIPTION.map_secrets(stored.get("entrypointConfiguration") or {},
                                                     self.gateway.cipher.decrypt)
            found.append({"id": sid, "api_id": api_id, "plan_id": plan_id, "configuration": configuration,
                          "fingerprint": json.dumps(stored, sort_keys=True), "state": state, "holder": holder,
                          "lease_until": lease_until, "wake": wake})
            if wake and sid in self.deliveries:
                c.execute(text("UPDATE webhook_states SET wake = 0 WHERE subscription_id = :s"), {"s": sid})
        return found

    def _renew(self, now, held):
        """Renew this process's leases; a loop whose lease another process took stops."""
        with self.engine.begin() as c:
            c.execute(text("UPDATE webhook_states SET lease_until = :u WHERE holder = :h"),
                      {"u": now + LEASE_S, "h": self.holder})
            ours = {row[0] for row in c.execute(text("SELECT subscription_id FROM webhook_states WHERE holder = :h"),
                                                {"h": self.holder})}
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
                    c.execute(text("INSERT INTO webhook_states (subscription_id, state, holder, lease_until, wake,"
                                   " updated_at) VALUES (:s, 'active', :h, :u, 0, :t)"), params)
                    return True
                taken = c.execute(text(
                    "UPDATE webhook_states SET holder = :h, lease_until = :u, wake = 0 WHERE subscription_id = :s"
                    " AND (holder IS NULL OR holder = :h OR lease_until < :now)"), params)
                return taken.rowcount == 1
        except IntegrityError:  # another process inserted it first: it holds it
            return False

    def _release(self, subscription_ids):
        if subscription_ids:
            with self.engine.begin() as c:
                for sid in subscription_ids:
                    c.execute(text("UPDATE webhook_states SET holder = NULL WHERE subscription_id = :s"
                                   " AND holder = :h"), {"s": sid, "h": self.holder})

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
    return datetime.now(timezone.utc).replace(tzinfo=None)
