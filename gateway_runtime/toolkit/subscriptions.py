"""Subscriptions that connectors share: a quiet one, a buffered one that a reader fills, and the bookkeeping of
messages handed to the client and not yet acknowledged."""

import collections
from collections.abc import Iterable
from typing import Generic, TypeVar

from gevent.event import Event

from ..messages import EndpointError, Message, Subscription

T = TypeVar("T")


class QuietSubscription(Subscription):
    """A stream with no messages, until closed: what a consumer side left off gives a client that only
    publishes (a WebSocket), as Gravitee does, rather than an error."""

    def __init__(self) -> None:
        self.closed = Event()

    def next_batch(self, timeout: float, max_messages: int) -> list[Message] | None:
        return None if self.closed.wait(timeout) else []

    def close(self) -> None:
        self.closed.set()


class Unacked(Generic[T]):
    """Messages handed to the client, each with what acknowledging it to the broker takes (`T`), until the
    entrypoint acknowledges them: by the message objects it wrote, so each is known by its identity."""

    def __init__(self) -> None:
        self.held: list[tuple[Message, T]] = []

    def __bool__(self) -> bool:
        return bool(self.held)

    def hold(self, handed: Iterable[tuple[Message, T]]) -> None:
        self.held.extend(handed)

    def take(self, messages: Iterable[Message]) -> list[tuple[Message, T]]:
        """The held pairs of these messages, in the order they were handed; no longer held."""
        written = {id(message) for message in messages}
        if not written or not self.held:
            return []
        done = [pair for pair in self.held if id(pair[0]) in written]
        self.held = [pair for pair in self.held if id(pair[0]) not in written]
        return done

    def clear(self) -> list[tuple[Message, T]]:
        """All that is held (handed and never written), no longer held."""
        held, self.held = self.held, []
        return held


class BufferedSubscription(Subscription, Generic[T]):
    """A stream that a reader fills (`deliver`) and the entrypoint empties (`next_batch`). `handed` turns what was
    taken into messages (and may keep what acknowledging them takes). With a `limit`, a client that falls that
    many behind loses what was buffered and is told so: at qos none the gateway drops messages rather than hold
    them without end. A failure ends the stream once what came before it was taken."""

    def __init__(self, limit: int | None = None) -> None:
        self.buffer: collections.deque[T] = collections.deque()
        self.ready = Event()
        self.limit = limit
        self.error: str | None = None
        self.closed = False

    def deliver(self, entries: Iterable[T]) -> None:
        if self.error:
            return
        self.buffer.extend(entries)
        if self.limit is not None and len(self.buffer) > self.limit:
            self.buffer.clear()
            self.fail(f"this client fell more than {self.limit} messages behind; messages were dropped (qos none)")
        self.ready.set()

    def fail(self, reason: str) -> None:
        self.error = self.error or reason
        self.ready.set()

    def wake(self) -> None:
        self.ready.set()

    def problem(self) -> str | None:
        """What ends the stream once its buffer is empty."""
        return self.error

    def handed(self, entries: list[T]) -> list[Message]:
        raise NotImplementedError

    def next_batch(self, timeout: float, max_messages: int) -> list[Message] | None:
        if not self.buffer and not self.closed and not self.problem():
            self.ready.wait(timeout)
        self.ready.clear()
        if self.closed:
            return None
        if not self.buffer:
            problem = self.problem()
            if problem:
                raise EndpointError(problem)
        return self.handed([self.buffer.popleft() for _ in range(min(max_messages, len(self.buffer)))])

    def close(self) -> None:
        self.closed = True
        self.ready.set()
