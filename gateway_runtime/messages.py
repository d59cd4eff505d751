"""What entrypoints and endpoint connectors exchange; they never import each other."""
import itertools
import json
from dataclasses import dataclass, field

READ_CHUNK = 64 * 1024
REPLAY_LIMIT = 1024 * 1024  # bodies up to this size are kept so that failover can send them again


@dataclass(slots=True)
class Message:
    """One message. Read-only once made: connectors may share `headers` and `metadata` dicts."""
    content: bytes
    id: str | None = None
    headers: dict = field(default_factory=dict)   # name -> [values]
    metadata: dict = field(default_factory=dict)


def json_text(value):
    """A metadata value written as text (SSE comments, XML): a boolean as JSON spells it, true not True."""
    return json.dumps(value) if isinstance(value, bool) else value


@dataclass(slots=True)
class ClientContext:
    """Who is asking, and from where to resume."""
    api_id: str
    client_id: str
    qos: str = "auto"
    resume_after: str | None = None   # Last-Event-ID / ?cursor=


@dataclass(slots=True)
class Request:
    """What the http-proxy entrypoint asks a proxy endpoint to send: `rest` is the path after the
    context path; `body` is None, bytes, or the client's input stream (sent as it is read)."""
    method: str
    rest: str
    query: str
    headers: dict
    body: object
    host: str | None

    def make_replayable(self):
        """Keep a small body in memory so that the request can be sent again; a large one stays a
        stream (it is never held in memory) and the request can be sent once only."""
        if self.body is None or isinstance(self.body, bytes):
            return True
        length = self.headers.get("Content-Length")
        limit = REPLAY_LIMIT if length is None else min(int(length), REPLAY_LIMIT)
        data = read_up_to(self.body, limit + 1)
        if len(data) <= REPLAY_LIMIT:
            self.body = data
            self.headers["Content-Length"] = str(len(data))
            return True
        stream = self.body
        self.body = itertools.chain((data,), iter(lambda: stream.read(READ_CHUNK), b""))
        return False


def read_up_to(stream, size):
    parts, left = [], size
    while left > 0 and (part := stream.read(min(left, READ_CHUNK))):
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class EndpointError(Exception):
    """The backend failed; the message is safe to show to an API consumer."""
    status = "502 Bad Gateway"


class Unreachable(EndpointError):
    """The request never reached the backend (refused, unresolvable, TLS handshake failed): it
    can safely be sent to another endpoint, whatever its method."""


class OutcomeUnknown(EndpointError):
    """The message was handed to the backend and no answer came (a timeout, or the connection was
    lost after sending): it may or may not have been delivered. Never failed over or sent again by
    the gateway; the entrypoint tells the client so (504) rather than claim a failure."""
    status = "504 Gateway Timeout"
    advice = "the message may or may not have been delivered; check before sending it again"


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

    def wait_until_receiving(self):
        """Waits until the subscription receives what comes (a Kafka consumer in its group), within
        a bound of the connector's; called by entrypoints whose client gave a wait of its own that
        this would use up (http-get's messagesLimitDurationMs). Most subscriptions are ready at once."""

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
