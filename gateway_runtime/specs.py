"""What a connector declares: one EndpointSpec or EntrypointSpec per module, as `SPEC`.

A leaf module (it imports only the settings vocabulary), so that connectors can import it
while the registry imports the connectors.
"""
from dataclasses import dataclass, field

from .settings import Settings

QOS_ORDER = ("none", "auto", "at-most-once", "at-least-once")


@dataclass(frozen=True)
class EndpointSpec:
    type: str
    label: str
    connector: type
    configuration: Settings = field(default_factory=Settings)
    shared: Settings = field(default_factory=Settings)
    qos: tuple = QOS_ORDER
    api_types: tuple = ("message",)
    description: str = ""
    kind: str = "endpoint"
    # probe(configuration) -> None when the backend answers, else what is wrong (for the portal)
    probe: object = None
    # The listener type it serves under: "tcp" for byte streams routed by SNI; None for any other.
    listener: str | None = None
    # forget(api_id, configuration, shared): the API was deleted; remove what it left at the backend
    forget: object = None
    # summary(shared) -> one line for the Backend services page; target(configuration) -> where it connects
    summary: object = None
    target: object = None


@dataclass(frozen=True)
class EntrypointSpec:
    type: str
    label: str
    handler: type
    configuration: Settings = field(default_factory=Settings)
    qos: tuple = ("auto",)
    api_types: tuple = ("message",)
    # Higher wins when several entrypoints of an API match one request.
    priority: int = 0
    description: str = ""
    kind: str = "entrypoint"
    # The listener type that carries it (`tcp`: a TLS connection routed by SNI, not an HTTP request).
    listener: str = "http"
