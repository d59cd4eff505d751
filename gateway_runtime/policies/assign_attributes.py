"""assign-attributes: set attributes from expressions, keeping their type: on a request,
#context.attributes (for later steps, and connectors that read them); on a message, that message's
#message.attributes. An attribute whose value cannot be evaluated is left unset, as in Gravitee."""

import logging

from ..expressions import EvaluationError
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import PAIRS_HELP, template

log = logging.getLogger("gatehouse.gateway")


class AssignAttributes:
    def __init__(self, configuration):
        self.attributes = [
            (pair["name"], template(pair["value"], f"attributes[{i}].value"))
            for i, pair in enumerate(configuration.get("attributes") or [])
            if pair.get("name", "").strip()
        ]

    def on_request(self, exchange):
        self._assign(exchange.attributes, exchange.context())

    on_response = on_request

    def on_message(self, exchange, message):
        self._assign(message.attributes, exchange.message_context(message))

    def _assign(self, attributes, context):
        for name, value in self.attributes:
            try:
                attributes[name] = value.evaluate(context)
            except EvaluationError as exc:
                log.debug("attribute %s not assigned: %s", name, exc)


SPEC = PolicySpec(
    type="policy-assign-attributes",
    aliases=("assign-attributes",),
    label="Assign attributes",
    policy=AssignAttributes,
    description="Set attributes that later steps and expressions read (#context.attributes, #message.attributes).",
    configuration=Settings(fields=(Field("attributes", "pairs", "Attributes", help=PAIRS_HELP),)),
)
