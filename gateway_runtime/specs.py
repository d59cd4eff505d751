"""What a connector or a policy declares: one EndpointSpec, EntrypointSpec or PolicySpec per module,
as `SPEC`.

A leaf module (it imports only the settings vocabulary and the connector contract in `messages`),
so that connectors can import it while the registry imports the connectors.
"""

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .messages import EndpointConnector
from .settings import Settings

QOS_ORDER = ("none", "auto", "at-most-once", "at-least-once")


@dataclass(frozen=True)
class EndpointSpec:
    type: str
    label: str
    # `builtins.type`: the field `type` hides the builtin in the class body
    connector: builtins.type[EndpointConnector]
    configuration: Settings = field(default_factory=Settings)
    shared: Settings = field(default_factory=Settings)
    qos: tuple[str, ...] = QOS_ORDER
    api_types: tuple[str, ...] = ("message",)
    description: str = ""
    kind: str = "endpoint"
    # probe(configuration) -> None when the backend answers, else what is wrong (for the portal)
    probe: Callable[[dict[str, Any]], str | None] | None = None
    # The listener type it serves under: "tcp" for byte streams routed by SNI; None for any other.
    listener: str | None = None
    # forget(api_id, configuration, shared): the API was deleted; remove what it left at the backend
    forget: Callable[[str, dict[str, Any], dict[str, Any]], None] | None = None
    # summary(shared) -> one line for the Backend services page; target(configuration) -> where it connects
    summary: Callable[[dict[str, Any]], str] | None = None
    target: Callable[[dict[str, Any]], str | None] | None = None
    # Attributes (Gravitee's names) a flow may set to change where a published message goes.
    publish_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntrypointSpec:
    type: str
    label: str
    # handler(configuration, deployed API, qos): an entrypoint, matching and serving WSGI requests
    handler: builtins.type[Any]
    configuration: Settings = field(default_factory=Settings)
    qos: tuple[str, ...] = ("auto",)
    api_types: tuple[str, ...] = ("message",)
    # Higher wins when several entrypoints of an API match one request.
    priority: int = 0
    description: str = ""
    kind: str = "entrypoint"
    # The listener type that carries it (`tcp`: a TLS connection routed by SNI, not an HTTP request).
    listener: str = "http"
    # What its clients do with messages, as flows' channel selectors name it: PUBLISH, SUBSCRIBE.
    operations: tuple[str, ...] = ("SUBSCRIBE",)


# The phases a flow has steps for: proxy APIs run request and response; message APIs run request and
# response once per connection, publish and subscribe once per message.
PHASES = ("request", "response", "publish", "subscribe")
MESSAGE_PHASES = ("publish", "subscribe")


# What a policy's on_message returns to leave a message out without acknowledging it to the
# connector (message-filtering's ackFilteredMessage false); False leaves it out acknowledged.
UNACKNOWLEDGED = object()


@dataclass(frozen=True)
class PolicySpec:
    type: str
    label: str
    # policy(configuration): made once per deployment, with on_request / on_response (exchange) and
    # on_message(exchange, message) for the phases it declares
    policy: builtins.type[Any]
    configuration: Settings = field(default_factory=Settings)
    phases: tuple[str, ...] = PHASES
    description: str = ""
    kind: str = "policy"
    # Other ids definitions name it by (Gravitee's plugin id beside the one its docs and tests use).
    aliases: tuple[str, ...] = ()
    api_types: tuple[str, ...] = ("proxy", "message")
