"""The delivery loop of one push subscription: subscribes at the endpoint, POSTs each message to
the callback; 2xx acknowledges it (a commit or an ack at the endpoint, per qos); anything else is
tried again per the subscription's retry policy, then sent to the entrypoint's dead-letter
endpoint, or, without one, the subscription is marked failed and stops until someone resumes it.
It delivers only while its process holds the subscription's lease (leases.Pusher)."""

import logging
import time

import gevent
from gevent.event import Event
from gevent.pool import Pool

from ..entrypoints.webhook import NO_RETRY
from ..messages import EndpointError
from .caller import Caller, Refused

log = logging.getLogger("gatehouse.webhook")

BATCH = 64
RESUBSCRIBE_S = 2.0  # after the endpoint failed, before subscribing again


def delays(retry):
    """The waits before the 2nd, 3rd... attempts (as many as the policy allows)."""
    if retry.get("retryOption") == NO_RETRY:
        return []
    initial, ceiling = retry["initialDelaySeconds"], retry["maxDelaySeconds"]
    grow = (lambda n: initial * n) if retry["retryStrategy"] == "LINEAR" else (lambda n: initial * 2 ** (n - 1))
    return [min(grow(n), ceiling) for n in range(1, retry["maxAttempts"])]


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
        self.wake = Event()  # "retry now", or a stop
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
            # In order, however many run at once; one at a time needs no greenlet per message.
            deliveries = map(self.deliver, batch) if self.entry.concurrency == 1 else pool.imap(self.deliver, batch)
            for ok in deliveries:
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
        interrupt = (
            self.entry.interrupt_on_server_error
            if status is not None and status >= 500
            else self.entry.interrupt_on_exception
            if status is None
            else False
        )
        if self.entry.dlq is not None and not interrupt:
            try:
                self.entry.dlq.publish(self.api.context_for(self.id, self.entry.qos), message)
            except EndpointError as exc:
                why = f"{why}; the dead-letter endpoint failed too: {exc}"
            else:
                self.pusher.record(
                    self.id, message.id, attempts, status, 0, "dead-lettered", f"after {attempts} attempts ({why})"
                )
                return True
        self.note(
            "failed", f"Message {message.id} not delivered after {attempts} attempt{'s' if attempts > 1 else ''}: {why}"
        )
        return False
