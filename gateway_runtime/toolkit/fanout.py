"""Fan-out hub for qos none: one reader per endpoint and process (a Kafka consumer outside any group, an MQTT
connection at QoS 0) whose messages go to every subscriber connected then. A thousand SSE clients do not mean a
thousand consumers on the broker."""

import gevent

from ..messages import Message
from .subscriptions import BufferedSubscription

QUEUE_LIMIT = 10_000  # messages a subscriber may fall behind before it is told it lost some


class FanOutSubscription(BufferedSubscription[Message]):
    def __init__(self, hub: "FanOut") -> None:
        super().__init__(QUEUE_LIMIT)
        self.hub = hub

    def problem(self) -> str | None:
        return self.error or self.hub.error

    def handed(self, entries: list[Message]) -> list[Message]:
        return entries

    def close(self) -> None:
        super().close()
        self.hub.subscribers.discard(self)


class FanOut:
    """The hub; the connector's reader feeds it a batch at a time (`deliver`) or a message at a time (`gather`),
    and says when it cannot read (`failed`: the subscribers are told once they have taken what came before) and
    when it reads again (`recovered`)."""

    def __init__(self) -> None:
        self.subscribers: set[FanOutSubscription] = set()
        self.error: str | None = None
        self.pending: list[Message] = []

    def subscribe(self) -> FanOutSubscription:
        """A subscriber gets what is read once this returns."""
        subscription = FanOutSubscription(self)
        self.subscribers.add(subscription)
        return subscription

    def deliver(self, batch: list[Message]) -> None:
        for subscriber in list(self.subscribers):
            subscriber.deliver(batch)

    def gather(self, message: Message) -> None:
        # Handed on once the reading greenlet waits for its socket: what arrived meanwhile goes to each
        # subscriber as one batch (a thousand clients: one wake-up each, not one per message).
        if not self.pending:
            gevent.get_hub().loop.run_callback(self._flush)
        self.pending.append(message)

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.deliver(batch)

    def failed(self, error: str) -> None:
        self.error = error
        for subscriber in list(self.subscribers):
            subscriber.wake()

    def recovered(self) -> None:
        self.error = None
