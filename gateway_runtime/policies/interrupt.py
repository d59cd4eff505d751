"""interrupt: ends the request (or refuses the message) with a status, an error key and a message."""

from ..messages import Interrupted
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import render, template


class Interrupt:
    def __init__(self, configuration):
        self.status = configuration["status"]
        self.key = configuration.get("errorKey") or "INTERRUPT"
        self.message = template(configuration.get("message") or "", "message")

    def on_request(self, exchange):
        raise Interrupted(self.status, render(self.message, exchange.context(), "the message"), self.key)

    on_response = on_request

    def on_message(self, exchange, message):
        context = exchange.message_context(message)
        raise Interrupted(self.status, render(self.message, context, "the message"), self.key)


SPEC = PolicySpec(
    type="interrupt",
    label="Interrupt",
    policy=Interrupt,
    description="End the request with an error of your choosing.",
    configuration=Settings(
        fields=(
            Field("status", "integer", "Status", default=500, minimum=100, maximum=599),
            Field("errorKey", "string", "Error key", default="INTERRUPT"),
            Field("message", "expression", "Message", help="May hold {#...}"),
        )
    ),
)
