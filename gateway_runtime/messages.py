"""What entrypoints and endpoint connectors exchange; they never import each other."""
from dataclasses import dataclass, field


@dataclass(slots=True)
class Message:
    """One message. Read-only once made: connectors may share `headers` and `metadata` dicts."""
    content: bytes
    id: str | None = None
    headers: dict = field(default_factory=dict)   # name -> [values]
    metadata: dict = field(default_factory=dict)


@dataclass(slots=True)
class ClientContext:
    """Who is asking, and from where to resume."""
    api_id: str
    client_id: str
    qos: str = "auto"
    resume_after: str | None = None   # Last-Event-ID / ?cursor=


class EndpointError(Exception):
    """The backend failed; the message is safe to show to an API consumer."""
    status = "502 Bad Gateway"


class NotFound(EndpointError):
    """What the client asked for does not exist at the backend (a topic, with checkTopicExistence)."""
    status = "404 Not Found"


class Subscription:
    """A stream of messages from an endpoint connector.

    `next_batch(timeout, max_messages)` returns a list of one to max_messages messages, [] when
    nothing came within the timeout, or None when the stream has ended (the mock's messageCount
    was reached) or was closed. `close()` wakes a waiting `next_batch`.
    """

    def acknowledge(self, messages):
        """Called by the entrypoint once these messages were written to the client; a connector
        whose qos depends on it (at-least-once) overrides this."""

    def next_batch(self, timeout, max_messages):
        raise NotImplementedError

    def close(self):
        pass


class EndpointConnector:
    # "<api id>/<endpoint name>", set by the deployed API: how a connector names itself to its backend.
    owner = None

    def __init__(self, configuration, shared):
        self.configuration = configuration
        self.shared = shared

    def subscribe(self, context):
        raise EndpointError("this endpoint cannot be subscribed to")

    def publish(self, context, message):
        raise EndpointError("this endpoint does not accept messages")

    def close(self):
        pass
