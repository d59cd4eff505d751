"""message-filtering: a subscriber gets a message only when the filter holds for it, e.g.
`{#jsonPath(#message.content, '$.symbol') == #subscription.metadata['symbol']}`."""

from ..expressions import EvaluationError, ExpressionError, compile_condition
from ..settings import Field, Settings, SettingsError
from ..specs import UNACKNOWLEDGED, PolicySpec


class MessageFiltering:
    drops = True  # it may leave a message out (the other policies change or refuse them)

    def __init__(self, configuration):
        try:
            self.filter = compile_condition(configuration["filter"])
        except ExpressionError as exc:
            raise SettingsError({"filter": str(exc)}) from exc
        self.left_out = False if configuration["ackFilteredMessage"] else UNACKNOWLEDGED
        self.on_error = configuration["filterMessageOnFilteringError"]

    def on_message(self, exchange, message):
        try:
            kept = self.filter.test(exchange.message_context(message))
        except EvaluationError:  # a message the filter cannot read (not JSON, say)
            kept = not self.on_error
        return None if kept else self.left_out


SPEC = PolicySpec(
    type="message-filtering",
    label="Message filtering",
    policy=MessageFiltering,
    phases=("publish", "subscribe"),
    description="Deliver only the messages a filter expression holds for.",
    configuration=Settings(
        fields=(
            Field("filter", "expression", "Filter", required=True, help="A condition such as {#message.content != ''}"),
            Field(
                "ackFilteredMessage",
                "boolean",
                "Acknowledge the messages left out",
                default=True,
                help="Off: the broker may give them again (at-least-once)",
            ),
            Field(
                "filterMessageOnFilteringError",
                "boolean",
                "Leave out a message the filter cannot be evaluated on",
                default=True,
            ),
        )
    ),
)
