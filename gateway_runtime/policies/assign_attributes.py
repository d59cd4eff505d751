"""assign-attributes: set context attributes (#context.attributes) from templates, for the steps
after it and the endpoint connectors that read them (a topic override, say)."""

from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import render, template


class AssignAttributes:
    def __init__(self, configuration):
        self.attributes = [
            (pair["name"], template(pair["value"], f"attributes[{i}].value"))
            for i, pair in enumerate(configuration.get("attributes") or [])
        ]

    def on_request(self, exchange):
        self._assign(exchange.attributes, exchange.context())

    on_response = on_request

    def on_message(self, exchange, message):
        self._assign(message.attributes, exchange.message_context(message))

    def _assign(self, attributes, context):
        for name, value in self.attributes:
            attributes[name] = render(value, context, f"attribute {name}")


SPEC = PolicySpec(
    type="assign-attributes",
    label="Assign attributes",
    policy=AssignAttributes,
    description="Set attributes that later steps and expressions read (#context.attributes, #message.attributes).",
    configuration=Settings(
        fields=(
            Field("scope", "enum", "Scope (v2 APIs)", choices=("REQUEST", "RESPONSE")),
            Field("attributes", "pairs", "Attributes", help="One 'name: value' a line; values may hold {#...}"),
        )
    ),
)
