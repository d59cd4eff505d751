"""policy-interrupt: ends the request with a 500, an error key (for response templates) and a
message, as Gravitee's policy does; its variables are kept for the response templates."""

from ..messages import Interrupted
from ..settings import Field, Settings
from ..specs import PolicySpec
from .rendering import evaluate, template


class Interrupt:
    def __init__(self, configuration):
        self.key = configuration["errorKey"]
        self.message = template(configuration["message"], "message")

    def on_request(self, exchange):
        raise Interrupted(500, evaluate(self.message, exchange.context, "The message", self.key), self.key)

    on_response = on_request


SPEC = PolicySpec(
    type="policy-interrupt",
    aliases=("interrupt",),
    label="Interrupt",
    policy=Interrupt,
    phases=("request", "response"),
    description="End the request with a 500 and a message of your choosing.",
    configuration=Settings(
        fields=(
            Field("errorKey", "string", "Error key", required=True, help="Names the response template that applies"),
            Field("message", "expression", "Message", required=True, help="May hold {#...}"),
            Field("variables", "pairs", "Variables (for response templates)"),
        )
    ),
)
