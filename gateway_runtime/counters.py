"""Counters of the traffic-control policies (rate-limit, quota): requests counted per key in fixed
windows, shared by every process and node through Redis when GATEHOUSE_REDIS_URL is set, else in
this process's memory.

A window starts with the first request of its key and lasts the policy's period; a key whose
window has ended counts from zero again. In memory the table is bounded: ended windows are dropped
as it grows. On Redis, one script counts and reads the window's end in one round trip; while Redis
cannot be reached the process counts alone (logged once, tried again every second).
"""

import logging
import os
import time
from dataclasses import dataclass

from .definition.slots import without_password
from .outage import Outage

log = logging.getLogger("gatehouse.gateway")
REDIS_URL = "GATEHOUSE_REDIS_URL"
PREFIX = "gatehouse:count:"
RETRY_S = 1.0  # after Redis failed, requests count locally this long before Redis is tried again
# INCR, and the window's expiry set by the request that opened it: the count and the time left.
SCRIPT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
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


class RedisCounters:
    def __init__(self, url: str, local: LocalCounters) -> None:
        import redis  # only where Redis is used

        self.errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(SCRIPT)
        self.local = local
        self.outage = Outage(log, f"counting requests on Redis at {without_password(url)}")
        self.retry_at = 0.0

    def hit(self, key: str, period_s: float) -> Count:
        if self.retry_at and time.monotonic() < self.retry_at:
            return self.local.hit(key, period_s)
        try:
            used, left_ms = self.script(keys=[PREFIX + key], args=[max(1, int(period_s * 1000))])
        except self.errors as exc:
            self.outage.failed(exc)
            self.retry_at = time.monotonic() + RETRY_S
            return self.local.hit(key, period_s)
        self.retry_at = 0.0
        self.outage.recovered()
        return Count(int(used), int(time.time() * 1000 + max(int(left_ms), 0)))


def counters() -> LocalCounters | RedisCounters:
    """This process's counters, made at first use from GATEHOUSE_REDIS_URL."""
    global _COUNTERS
    if _COUNTERS is None:
        url = os.environ.get(REDIS_URL, "").strip()
        _COUNTERS = RedisCounters(url, LocalCounters()) if url else LocalCounters()
    return _COUNTERS


_COUNTERS: LocalCounters | RedisCounters | None = None
