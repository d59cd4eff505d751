"""connector-to-header: Gravitee's test-kit policy naming the connectors that served a request in
answer headers (X-Entrypoint-Used, X-Endpoint-Used)."""

from ..settings import Settings
from ..specs import PolicySpec


class ConnectorToHeader:
    def __init__(self, configuration):
        pass

    def on_response(self, exchange):
        headers = exchange.response.headers
        headers.put("X-Entrypoint-Used", exchange.entrypoint or "")
        headers.put("X-Endpoint-Used", exchange.endpoint or "")


SPEC = PolicySpec(
    type="connector-to-header",
    label="Connectors to headers (test kit)",
    policy=ConnectorToHeader,
    phases=("response",),
    description="Name the entrypoint and endpoint that served the request in answer headers.",
    configuration=Settings(),
)
