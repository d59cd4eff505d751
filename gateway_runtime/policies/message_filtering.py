"""message-filtering: a subscriber gets a message only when the filter holds for it, e.g.
`{#jsonPath(#message.content, '$.symbol') == #subscription.metadata['symbol']}`."""

from ..expressions import EvaluationError, ExpressionError, compile_condition
from ..settings import Field, Settings, SettingsError
from ..specs import PolicySpec


class MessageFiltering:
    drops = True  # it may leave a message out (the other policies change or refuse them)

    def __init__(self, configuration):
        try:
            self.filter = compile_condition(configuration["filter"])
        except ExpressionError as exc:
            raise SettingsError({"filter": str(exc)}) from exc

    def on_message(self, exchange, message):
        try:
            return self.filter.test(exchange.message_context(message))
        except EvaluationError:
            return False  # a message the filter cannot read (not JSON, say) is not the one asked for


SPEC = PolicySpec(
    type="message-filtering",
    label="Message filtering",
    policy=MessageFiltering,
    phases=("subscribe",),
    description="Deliver only the messages a filter expression holds for.",
    configuration=Settings(
        fields=(
            Field("filter", "expression", "Filter", required=True, help="A condition such as {#message.content != ''}"),
        )
    ),
)
