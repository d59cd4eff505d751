"""Mock endpoint: generates messages at an interval; published messages are accepted and dropped."""

import time

import gevent
from gevent.event import Event

from ..messages import EndpointConnector, Message, Subscription
from ..settings import Field, Settings
from ..specs import EndpointSpec

# With messageInterval 0 a batch is what one write carries; each batch still yields to the hub.
BATCH = 256


class MockSubscription(Subscription):
    private_messages = True  # made anew for each batch, as they are asked for

    def __init__(self, config, start):
        self.interval = config["messageInterval"] / 1000
        self.content = config["messageContent"].encode()
        self.count = config.get("messageCount")
        self.headers = {h["name"]: [h["value"]] for h in config.get("headers", [])}
        self.metadata = {m["name"]: m["value"] for m in config.get("metadata", [])}
        self.next_id = start
        self.closed = Event()
        self.due = time.monotonic()  # the first message comes at once, the next ones an interval apart

    def _ended(self):
        return self.count is not None and self.next_id >= self.count

    def _take(self, n):
        """The next n messages, fewer when messageCount ends the stream first."""
        start = self.next_id
        end = start + max(n, 0)
        if self.count is not None:
            end = min(end, self.count)
        self.next_id = end
        content, headers, metadata = self.content, self.headers, self.metadata
        # Messages are read-only once made, so every message of a mock shares its headers and metadata.
        return [Message(content, str(i), headers, metadata) for i in range(start, end)]

    def next_batch(self, timeout, max_messages=BATCH):
        if self._ended() or self.closed.is_set():
            return None
        if self.interval == 0:
            gevent.sleep(0)
            return self._take(min(max_messages, BATCH))
        wait = self.due - time.monotonic()
        if wait > timeout:
            return None if self.closed.wait(timeout) else []
        if wait > 0 and self.closed.wait(wait):
            return None
        self.due = max(self.due + self.interval, time.monotonic())
        return self._take(1)

    def close(self):
        self.closed.set()


class MockEndpoint(EndpointConnector):
    def subscribe(self, context):
        return MockSubscription(self.configuration, resume_position(context.resume_after))

    def publish(self, context, message):
        return None


def resume_position(resume_after):
    """A resume continues at last id + 1; a non-numeric id starts again at 0."""
    if resume_after is None or not resume_after.isdigit():
        return 0
    return int(resume_after) + 1


SPEC = EndpointSpec(
    type="mock",
    label="Mock",
    connector=MockEndpoint,
    description="Generates messages at a fixed interval; useful for demos and tests.",
    configuration=Settings(
        fields=(
            Field(
                "messageInterval", "integer", "Interval between messages (ms)", default=1000, required=True, minimum=0
            ),
            Field("messageContent", "text", "Content of published messages", default="mock message", required=True),
            Field(
                "messageCount", "integer", "Count of published messages", minimum=0, help="Leave empty for no limit."
            ),
            Field("headers", "pairs", "Message headers", help="One 'name: value' per line."),
            Field("metadata", "pairs", "Message metadata", help="One 'name: value' per line."),
        ),
        ignored=("connectionErrors", "connectionLatencies"),
    ),
    target=lambda configuration: f"a message every {configuration.get('messageInterval', 1000)} ms",
)
