"""Idle pool: what a client's last subscription leaves behind (a Kafka consumer in its group, an MQTT connection in
its session), kept for that client's next subscription, so that a poll need not wait for a join or a CONNECT."""

import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import gevent

K = TypeVar("K")
V = TypeVar("V")


def unbroken(value: object) -> bool:
    return False


class IdlePool(Generic[K, V]):
    """Values by key, the newest taken first. A reaper looks every `every_s` and closes those idle longer than
    `idle_s`, and those `broken` says no one can use any more. Values leave the pool before they are closed:
    closing may wait on the network, and meanwhile the pool is taken from and added to."""

    def __init__(
        self, idle_s: float, every_s: float, close: Callable[[V], object], broken: Callable[[V], bool] = unbroken
    ) -> None:
        self.idle_s, self.every_s = idle_s, every_s
        self._close, self._broken = close, broken
        self.entries: dict[K, list[tuple[V, float]]] = {}  # key -> [(value, pooled at)], the newest last
        self.stopping = self.reaping = False
        self.reaper = gevent.spawn(self._reap)

    def put(self, key: K, value: V) -> None:
        self.entries.setdefault(key, []).append((value, time.monotonic()))

    def take(self, key: K) -> V | None:
        """The newest usable value pooled under `key`, no longer pooled; None when there is none."""
        pool = self.entries.get(key) or []
        found: V | None = None
        broken = []
        while pool and found is None:
            value, _ = pool.pop()
            if self._broken(value):
                broken.append(value)
            else:
                found = value
        if not pool:
            self.entries.pop(key, None)
        self._close_all(broken)
        return found

    def drop(self, which: Callable[[K], bool]) -> None:
        """Closes the values pooled under the keys `which` names."""
        keys = [key for key in self.entries if which(key)]
        self._close_all([value for key in keys for value, _ in self.entries.pop(key)])

    def _reap(self) -> None:
        while not self.stopping:
            gevent.sleep(self.every_s)
            now = time.monotonic()
            expired = []
            for key, pool in list(self.entries.items()):
                done = [entry for entry in pool if now - entry[1] > self.idle_s or self._broken(entry[0])]
                if len(done) == len(pool):
                    del self.entries[key]
                else:
                    pool[:] = [entry for entry in pool if entry not in done]
                expired += [value for value, _ in done]
            self.reaping = True
            try:
                self._close_all(expired)
            finally:
                self.reaping = False

    def _close_all(self, values: Iterable[V]) -> None:
        for value in values:
            self._close(value)

    def close(self) -> None:
        self.stopping = True
        if self.reaping:
            self.reaper.join()  # killed, it would leave the rest of what it is closing open
        else:
            self.reaper.kill()
        self.drop(lambda key: True)
