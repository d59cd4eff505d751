"""transform-headers: remove, keep only (whitelist) and set headers on a request, an answer or a
message, in that order, as Gravitee's policy does; header values are templates."""

from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import render, template


class TransformHeaders:
    def __init__(self, configuration):
        self.remove = configuration.get("removeHeaders") or []
        self.whitelist = configuration.get("whitelistHeaders") or []
        self.add = [
            (pair["name"], template(pair["value"], f"addHeaders[{i}].value"))
            for i, pair in enumerate(configuration.get("addHeaders") or [])
        ]

    def on_request(self, exchange):
        self._apply(exchange.request.headers, exchange.context)

    def on_response(self, exchange):
        self._apply(exchange.response.headers, exchange.context)

    def on_message(self, exchange, message):
        self._apply(message.headers, lambda: exchange.message_context(message))
        message.headers_changed = True

    def _apply(self, headers, context):
        for name in self.remove:
            headers.remove(name)
        if self.whitelist:
            headers.keep_only(self.whitelist)
        for name, value in self.add:
            text = value.text if value.is_constant else render(value, context(), f"the value of header {name}")
            headers.put(name, text)


SPEC = PolicySpec(
    type="transform-headers",
    label="Transform headers",
    policy=TransformHeaders,
    description="Add, replace or remove headers of requests, answers and messages.",
    configuration=Settings(
        fields=(
            Field("scope", "enum", "Scope (v2 APIs; a v4 step runs in its own phase)", choices=("REQUEST", "RESPONSE")),
            Field("addHeaders", "pairs", "Set headers", help="One 'name: value' a line; values may hold {#...}"),
            Field("removeHeaders", "list", "Remove headers"),
            Field("whitelistHeaders", "list", "Keep only these headers"),
        )
    ),
)
