"""latency: holds the request or each message for a while before it goes on (Gravitee's test of
timeouts)."""

import gevent

from ..settings import Field, Settings
from ..specs import PolicySpec

UNITS = {"MILLISECONDS": 0.001, "SECONDS": 1.0, "MINUTES": 60.0}


class Latency:
    def __init__(self, configuration):
        self.seconds = configuration["delay"] * UNITS[configuration["timeUnit"]]

    def on_request(self, exchange):
        gevent.sleep(self.seconds)

    on_response = on_request

    def on_message(self, exchange, message):
        gevent.sleep(self.seconds)


SPEC = PolicySpec(
    type="latency",
    label="Latency",
    policy=Latency,
    description="Delay requests or messages.",
    configuration=Settings(
        fields=(
            Field("delay", "integer", "Delay", default=100, minimum=0, maximum=3_600_000),
            Field("timeUnit", "enum", "Unit", default="MILLISECONDS", choices=tuple(UNITS)),
        )
    ),
)
