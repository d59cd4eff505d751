"""Counters of the traffic-control policies (rate-limit, quota, spike-arrest): requests counted per
key in fixed windows, shared by every process and node through Redis when GATEHOUSE_REDIS_URL is
set, else in this process's memory.

A window starts with the first request of its key and lasts the policy's period; a key whose
window has ended counts from zero again. In memory the table is bounded: ended windows are dropped
as it grows. On Redis, one script counts and reads the window's end in one round trip; while Redis
cannot be reached the process counts alone (logged once, tried again every second). A policy in
`async` mode counts here and adds its counts to Redis in the background, a round trip per
SYNC_S for all its keys, not one per request.
"""

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event

from .definition.slots import without_password
from .outage import Outage, one_line

log = logging.getLogger("gatehouse.gateway")
REDIS_URL = "GATEHOUSE_REDIS_URL"
PREFIX = "gatehouse:count:"
RETRY_S = 1.0  # after Redis failed, requests count locally this long before Redis is tried again
SYNC_S = 0.1  # how far behind Redis an async policy's counts may be
# INCRBY, and the window's expiry set by the requests that opened it: the count and the time left.
SCRIPT = """
local used = redis.call('INCRBY', KEYS[1], ARGV[2])
if used == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {used, redis.call('PTTL', KEYS[1])}
"""

KEPT = 100_000  # live keys kept before ended windows are swept


@dataclass(slots=True)
class Count:
    used: int  # requests counted in the window, this one included
    reset_ms: int  # when the window ends, in ms since the epoch


class LocalCounters:
    def __init__(self) -> None:
        self.windows: dict[str, list[float]] = {}  # key -> [window end (monotonic s), count, end (epoch ms)]

    def hit(self, key: str, period_s: float) -> Count:
        now = time.monotonic()
        window = self.windows.get(key)
        if window is None or window[0] <= now:
            if len(self.windows) >= KEPT:
                self.windows = {k: w for k, w in self.windows.items() if w[0] > now}
            window = self.windows[key] = [now + period_s, 0, (time.time() + period_s) * 1000]
        window[1] += 1
        return Count(int(window[1]), int(window[2]))


class Batch:
    """The hits that wait for one round trip to Redis; `answers` once it is back (None: it failed)."""

    __slots__ = ("answers", "done", "hits")

    def __init__(self) -> None:
        self.hits: list[tuple[str, float]] = []
        self.done = gevent.event.Event()
        self.answers: list[Count] | None = None


class RedisCounters:
    """Each hit is counted on Redis before the request goes on. Hits that come while a round trip is
    out wait for the next one and go in it together, the hits of one key as one INCRBY: a gateway
    under load makes one round trip per batch, not one per request."""

    def __init__(self, url: str, local: LocalCounters) -> None:
        import redis  # only where Redis is used

        self.errors = (redis.RedisError, OSError)
        self.no_script = redis.exceptions.NoScriptError
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(SCRIPT)
        self.local = local
        self.where = f"Redis at {without_password(url)}"
        self.outage = Outage(log, f"counting requests on {self.where}")
        self.retry_at = 0.0
        self.batch = Batch()
        self.sending = False

    def hit(self, key: str, period_s: float) -> Count:
        if self.retry_at and time.monotonic() < self.retry_at:
            return self.local.hit(key, period_s)
        batch = self.batch
        place = len(batch.hits)
        batch.hits.append((key, period_s))
        if self.sending:
            batch.done.wait()
        else:
            self._send()
        answers = batch.answers
        return answers[place] if answers is not None else self.local.hit(key, period_s)

    def _send(self) -> None:
        """Sends the waiting batch; the next one, filled meanwhile, goes from a greenlet of its own
        (this request has waited its turn)."""
        self.sending = True
        batch, self.batch = self.batch, Batch()
        try:
            batch.answers = self._count(batch.hits)
        finally:
            batch.done.set()
            self.sending = False
            if self.batch.hits:
                gevent.spawn(self._send_next)

    def _send_next(self) -> None:
        if not self.sending and self.batch.hits:
            self._send()

    def _count(self, hits: list[tuple[str, float]]) -> list[Count] | None:
        places: dict[tuple[str, float], list[int]] = {}
        for place, hit in enumerate(hits):
            places.setdefault(hit, []).append(place)
        totals = self.add([(key, period_s, len(where)) for (key, period_s), where in places.items()])
        if totals is None:
            return None
        answers = [Count(0, 0)] * len(hits)
        for where, (used, reset_ms) in zip(places.values(), totals, strict=True):
            for n, place in enumerate(where, 1):  # in the order the requests came
                answers[place] = Count(used - len(where) + n, reset_ms)
        return answers

    def add(self, counts: list[tuple[str, float, int]]) -> list[tuple[int, int]] | None:
        """Adds (key, period, requests) to the shared counts in one round trip: each key's total and
        window end; None while Redis cannot be reached."""
        if self.retry_at and time.monotonic() < self.retry_at:
            return None
        try:
            try:
                answers = self._pipelined(counts)
            except self.no_script:  # Redis restarted without its scripts: loaded again
                self.script.sha = self.client.script_load(SCRIPT)
                answers = self._pipelined(counts)
        except self.errors as exc:
            self._failed(exc)
            return None
        self._recovered()
        return [(int(used), _reset_ms(left_ms)) for used, left_ms in answers]

    def _pipelined(self, counts: list[tuple[str, float, int]]) -> list[Any]:
        # EVALSHA itself: a pipeline given the Script object asks SCRIPT EXISTS first, a round trip more.
        pipe = self.client.pipeline(transaction=False)
        for key, period_s, requests in counts:
            pipe.evalsha(self.script.sha, 1, PREFIX + key, _ms(period_s), requests)
        return pipe.execute()

    def _failed(self, exc: BaseException) -> None:
        self.outage.failed(exc)
        self.retry_at = time.monotonic() + RETRY_S

    def _recovered(self) -> None:
        self.retry_at = 0.0
        self.outage.recovered()

    def health(self) -> tuple[bool, str]:
        """Whether Redis answers now, and what that means for the counts."""
        try:
            self.client.ping()
        except self.errors as exc:
            return False, f"{self.where} cannot be reached ({one_line(exc)}): each process counts alone"
        return True, ""


class SyncedCounters:
    """The counts of `async` policies: this process's requests counted at once, added to Redis in the
    background; what other processes counted is seen at the next sync. While Redis is down the
    counts wait here and go on from what was last seen."""

    def __init__(self, shared: RedisCounters) -> None:
        self.shared = shared
        # key -> [window end (monotonic s), count last seen on Redis, end (epoch ms), not yet added, period]
        self.windows: dict[str, list[float]] = {}
        self.syncing: gevent.Greenlet | None = None

    def hit(self, key: str, period_s: float) -> Count:
        now = time.monotonic()
        window = self.windows.get(key)
        if window is None or window[0] <= now:
            if len(self.windows) >= KEPT:
                self.windows = {k: w for k, w in self.windows.items() if w[0] > now or w[3]}
            window = self.windows[key] = [now + period_s, 0, (time.time() + period_s) * 1000, 0, period_s]
        window[3] += 1
        if self.syncing is None:
            self.syncing = gevent.spawn_later(SYNC_S, self._sync)
        return Count(int(window[1] + window[3]), int(window[2]))

    def _sync(self) -> None:
        pending = [(key, window, int(window[3])) for key, window in self.windows.items() if window[3]]
        for _, window, requests in pending:
            window[3] -= requests  # what comes in during the round trip waits for the next sync
        answers = self.shared.add([(key, window[4], requests) for key, window, requests in pending])
        now = time.monotonic()
        for i, (_, window, requests) in enumerate(pending):
            if answers is None:
                window[3] += requests
                continue
            used, reset_ms = answers[i]
            window[1], window[2] = used, reset_ms
            window[0] = now + max(0.0, reset_ms / 1000 - time.time())
        self.syncing = None
        if answers is None and pending:
            self.syncing = gevent.spawn_later(RETRY_S, self._sync)


def _ms(period_s: float) -> int:
    return max(1, int(period_s * 1000))


def _reset_ms(left_ms: int) -> int:
    return int(time.time() * 1000 + max(int(left_ms), 0))


Counters = LocalCounters | RedisCounters | SyncedCounters


def counters(strict: bool = True) -> Counters:
    """This process's counters, made at first use from GATEHOUSE_REDIS_URL: `strict` ones check
    every request on Redis, the others (async policies) sync in the background."""
    if not _COUNTERS:
        url = os.environ.get(REDIS_URL, "").strip()
        local = LocalCounters()
        shared = RedisCounters(url, local) if url else None
        _COUNTERS[True] = shared or local
        _COUNTERS[False] = SyncedCounters(shared) if shared else local
    return _COUNTERS[strict]


_COUNTERS: dict[bool, Counters] = {}
