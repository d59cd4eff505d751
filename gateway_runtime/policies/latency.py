"""latency: holds the request, or each message, for a while before it goes on."""

import gevent

from ..settings import Field, Settings
from ..specs import PolicySpec

UNITS = {"MILLISECONDS": 0.001, "SECONDS": 1.0}


class Latency:
    def __init__(self, configuration):
        if configuration.get("delay") is not None and configuration.get("time") is None:
            self.seconds = configuration["delay"] / 1000  # Gravitee's test kit: `delay`, in milliseconds
        else:
            self.seconds = configuration["time"] * UNITS[configuration["timeUnit"]]

    def on_request(self, exchange):
        gevent.sleep(self.seconds)

    def on_message(self, exchange, message):
        gevent.sleep(self.seconds)


SPEC = PolicySpec(
    type="latency",
    label="Latency",
    policy=Latency,
    phases=("request", "publish", "subscribe"),
    description="Delay requests or messages.",
    configuration=Settings(
        fields=(
            Field("time", "integer", "Delay", default=100, minimum=0, maximum=3_600_000),
            Field("timeUnit", "enum", "Unit", default="MILLISECONDS", choices=tuple(UNITS)),
            Field("delay", "integer", "Delay in ms (Gravitee's test kit)", minimum=0, maximum=3_600_000),
        )
    ),
)
