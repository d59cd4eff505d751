"""One reconnect policy for every connector: the wait before each attempt, and when to give up. Each connector
gives its own numbers (and its users' settings, such as MQTT's reconnectAttempt)."""

import itertools
import time
from collections.abc import Callable, Iterator, Sequence

import gevent


def never() -> bool:
    return False


class Reconnect:
    """Attempts to open a lost connection again. The waits between them are `backoff` (its last value repeated);
    it gives up after `attempts` attempts, or once the connection has been down `give_up_after_s`; with neither,
    it goes on for ever."""

    __slots__ = ("backoff", "attempts", "give_up_after_s")

    def __init__(
        self, backoff: Sequence[float], attempts: int | None = None, give_up_after_s: float | None = None
    ) -> None:
        self.backoff = tuple(backoff)
        self.attempts = attempts
        self.give_up_after_s = give_up_after_s

    @classmethod
    def doubling(cls, first_s: float, most_s: float, attempts: int | None = None) -> "Reconnect":
        """Waits of first_s, twice that, and so on up to most_s."""
        waits = [first_s]
        while waits[-1] * 2 < most_s:
            waits.append(waits[-1] * 2)
        return cls((*waits, most_s), attempts)

    def wait(self, number: int) -> float:
        """Seconds of the wait before attempt `number` + 1 (0-based)."""
        return self.backoff[min(number, len(self.backoff) - 1)]

    def tries(
        self, stop: Callable[[], bool] = never, until: float | None = None, wait_first: bool = True
    ) -> Iterator[int]:
        """The attempt numbers (from 0), each given after its wait (the first one at once unless `wait_first`).
        Ends when the attempts are used up, when `stop()` says so, or at the monotonic time `until`, to which a
        wait is cut short; who asks tells by `stop()` and `until` whether it gave up."""
        waits = 0
        for attempt in range(self.attempts) if self.attempts is not None else itertools.count():
            if attempt or wait_first:
                pause = self.wait(waits)
                if until is not None:
                    pause = min(pause, max(0.0, until - time.monotonic()))
                gevent.sleep(pause)
                waits += 1
            if stop() or (until is not None and time.monotonic() >= until):
                return
            yield attempt

    def given_up(self, down_since: float) -> bool:
        """True once a connection down since `down_since` (monotonic) has been down too long."""
        return self.give_up_after_s is not None and time.monotonic() - down_since > self.give_up_after_s

    def gave_up(self, last: str) -> str:
        """What a connection that used up its attempts says, after its last failure."""
        return f"{last}; gave up after {self.attempts} reconnect attempt{'s' if self.attempts != 1 else ''}"
