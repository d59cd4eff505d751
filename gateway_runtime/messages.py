"""What entrypoints and endpoint connectors exchange; they never import each other."""

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, cast

READ_CHUNK = 64 * 1024
REPLAY_LIMIT = 1024 * 1024  # bodies up to this size are kept so that failover can send them again


@dataclass(slots=True)
class Message:
    """One message. Read-only once made: connectors may share `headers` and `metadata` dicts."""

    content: bytes
    id: str | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] | None = None  # set by a flow's policies (assign-attributes)


def json_text(value: Any) -> Any:
    """A metadata value written as text (SSE comments, XML): a boolean as JSON spells it, true not True."""
    return json.dumps(value) if isinstance(value, bool) else value


@dataclass(slots=True)
class ClientContext:
    """Who is asking, and from where to resume."""

    api_id: str
    client_id: str
    qos: str = "auto"
    resume_after: str | None = None  # Last-Event-ID / ?cursor=
    attributes: dict[str, Any] | None = None  # the request's, set by its flows (#context.attributes)


def attribute(context: ClientContext, message: Message, name: str) -> Any:
    """An attribute a flow set for this message (its own first, then its request's), or None."""
    for attributes in (message.attributes, context.attributes):
        if attributes and attributes.get(name) is not None:
            return attributes[name]
    return None


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass(slots=True)
class Request:
    """What the http-proxy entrypoint asks a proxy endpoint to send: `rest` is the path after the
    context path; `body` is None, bytes, or the client's input stream (sent as it is read)."""

    method: str
    rest: str
    query: str
    headers: dict[str, str]
    body: bytes | Readable | Iterator[bytes] | None
    host: str | None

    def make_replayable(self) -> bool:
        """Keep a small body in memory so that the request can be sent again; a large one stays a
        stream (it is never held in memory) and the request can be sent once only."""
        if self.body is None or isinstance(self.body, bytes):
            return True
        length = self.headers.get("Content-Length")
        limit = REPLAY_LIMIT if length is None else min(int(length), REPLAY_LIMIT)
        stream = cast(Readable, self.body)  # the entrypoint's input: chunks are made here, once
        data = read_up_to(stream, limit + 1)
        if len(data) <= REPLAY_LIMIT:
            self.body = data
            self.headers["Content-Length"] = str(len(data))
            return True
        self.body = itertools.chain((data,), iter(lambda: stream.read(READ_CHUNK), b""))
        return False


def read_up_to(stream: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0 and (part := stream.read(min(left, READ_CHUNK))):
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class EndpointError(Exception):
    """The backend failed; the message is safe to show to an API consumer. The key is Gravitee's
    error key, which picks the API's response template."""

    status = "502 Bad Gateway"
    key: str | None = "GATEWAY_CLIENT_CONNECTION_ERROR"

    def __init__(self, message: str = "", key: str | None = None) -> None:
        super().__init__(message)
        self.parameters: dict[str, Any] = {}
        if key is not None:
            self.key = key


class Unreachable(EndpointError):
    """The request never reached the backend (refused, unresolvable, TLS handshake failed): it
    can safely be sent to another endpoint, whatever its method."""


class OutcomeUnknown(EndpointError):
    """The message was handed to the backend and no answer came (a timeout, or the connection was
    lost after sending): it may or may not have been delivered. Never failed over or sent again by
    the gateway; the entrypoint tells the client so (504) rather than claim a failure."""

    status = "504 Gateway Timeout"
    key = "REQUEST_TIMEOUT"
    advice = "the message may or may not have been delivered; check before sending it again"


class NotFound(EndpointError):
    """What the client asked for does not exist at the backend (a topic, with checkTopicExistence)."""

    status = "404 Not Found"
    key = None


class Interrupted(EndpointError):
    """A policy ended the request, or refused a message (interrupt, a failed check): its status,
    message and error key are the answer, whichever entrypoint gives it."""

    def __init__(
        self,
        status: int,
        message: str,
        key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status_line(status)
        self.code = status
        self.message = message
        self.key = key
        self.headers = headers  # sent with the answer (a rate limit's X-Rate-Limit-*, Retry-After)
        self.parameters = parameters or {}  # a response template's #error.parameters


def status_line(status: int) -> str:
    """ "429 Too Many Requests" for 429 (the number alone when it has no reason phrase)."""
    return f"{status} {reason(status)}".rstrip()


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Subscription:
    """A stream of messages from an endpoint connector.

    `next_batch(timeout, max_messages)` returns a list of one to max_messages messages, [] when
    nothing came within the timeout, or None when the stream has ended (the mock's messageCount
    was reached) or was closed. `close()` wakes a waiting `next_batch`.
    """

    # True when every message it hands out was made for this subscription alone (no other
    # subscriber, and not the connector, holds the object): a flow may then change it in place.
    private_messages = False

    def acknowledge(self, messages: list[Message]) -> None:
        """Called by the entrypoint once these messages were written to the client; a connector
        whose qos depends on it (at-least-once) overrides this."""

    def wait_until_receiving(self) -> None:
        """Waits until the subscription receives what comes (a Kafka consumer in its group), within
        a bound of the connector's; called by entrypoints whose client gave a wait of its own that
        this would use up (http-get's messagesLimitDurationMs). Most subscriptions are ready at once."""

    def next_batch(self, timeout: float, max_messages: int) -> list[Message] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class EndpointConnector:
    # "<api id>/<endpoint name>", set by the deployed API: how a connector names itself to its backend.
    owner: str | None = None

    def __init__(self, configuration: dict[str, Any], shared: dict[str, Any]) -> None:
        self.configuration = configuration
        self.shared = shared

    def subscribe(self, context: ClientContext) -> Subscription:
        raise EndpointError("this endpoint cannot be subscribed to")

    def publish(self, context: ClientContext, message: Message) -> None:
        raise EndpointError("this endpoint does not accept messages")

    def close(self) -> None:
        pass
